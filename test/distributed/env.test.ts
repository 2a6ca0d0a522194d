// The worker's side of torchrun's contract, read from plain objects: torchrun and our launcher,
// Kubeflow's PyTorchJob, Slurm's srun, and the errors for environments that contradict themselves.
import { expandHostlist, expandTaskCounts, readDistributedEnv, workerThreads } from '../../lib/distributed/env';

const torchrun = { RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.5', MASTER_PORT: '29400' };

/** What srun gives task 5 of 6 (3 nodes × 2) in a job on gpu[07-09]; SLURM_STEP_ID marks a task of a step. */
const slurm = {
  SLURM_PROCID: '5', SLURM_NTASKS: '6', SLURM_LOCALID: '1', SLURM_NODEID: '2', SLURM_STEP_ID: '0',
  SLURM_TASKS_PER_NODE: '2(x3)', SLURM_JOB_NODELIST: 'gpu[07-09]',
};

describe('readDistributedEnv', () => {
  test('an ordinary process (no RANK, WORLD_SIZE nor Slurm task) is not part of a run', () => {
    expect(readDistributedEnv({})).toBeNull();
    expect(readDistributedEnv({ PATH: '/usr/bin', RANK: '' })).toBeNull();
  });

  test('torchrun (and our launcher): every variable read; the node rank is rank ÷ local world size, or GROUP_RANK', () => {
    expect(readDistributedEnv(torchrun)).toEqual({
      rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, nodeRank: 1, masterAddr: '10.0.0.5', masterPort: 29400, source: 'torchrun',
    });
    expect(readDistributedEnv({ ...torchrun, GROUP_RANK: '7' })?.nodeRank).toBe(7);
  });

  test("Kubeflow's PyTorchJob sets only RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT: one process per pod", () => {
    const env = readDistributedEnv({ RANK: '2', WORLD_SIZE: '3', MASTER_ADDR: 'job-master-0', MASTER_PORT: '23456' });
    expect(env).toEqual({ rank: 2, worldSize: 3, localRank: 0, localWorldSize: 1, nodeRank: 2, masterAddr: 'job-master-0', masterPort: 23456, source: 'torchrun' });
  });

  test('torchrun variables win over Slurm ones (torchrun run inside an allocation)', () => {
    expect(readDistributedEnv({ ...slurm, ...torchrun })?.source).toBe('torchrun');
  });

  test('Slurm: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID, the per-node count and the first host of the node list', () => {
    expect(readDistributedEnv(slurm)).toEqual({
      rank: 5, worldSize: 6, localRank: 1, localWorldSize: 2, nodeRank: 2, masterAddr: 'gpu07', masterPort: 29500, source: 'slurm',
    });
    // MASTER_ADDR and MASTER_PORT exported by the sbatch script win
    expect(readDistributedEnv({ ...slurm, MASTER_ADDR: 'login1', MASTER_PORT: '12345' })).toMatchObject({ masterAddr: 'login1', masterPort: 12345 });
    // --ntasks-per-node's variable is read first; the plain node list form works too
    expect(readDistributedEnv({ ...slurm, SLURM_NTASKS_PER_NODE: '2', SLURM_TASKS_PER_NODE: undefined, SLURM_JOB_NODELIST: undefined, SLURM_NODELIST: 'b1,a2' }))
      .toMatchObject({ localWorldSize: 2, masterAddr: 'b1' });
  });

  test("Slurm: the step's figures and node list over the job's (a step may use part of the allocation)", () => {
    const env = readDistributedEnv({
      ...slurm, SLURM_NTASKS: '8', SLURM_STEP_NUM_TASKS: '6', SLURM_JOB_NODELIST: 'gpu[01-09]', SLURM_STEP_NODELIST: 'gpu[07-09]',
      SLURM_TASKS_PER_NODE: '4(x2)', SLURM_STEP_TASKS_PER_NODE: '2(x3)',
    });
    expect(env).toMatchObject({ worldSize: 6, localWorldSize: 2, masterAddr: 'gpu07' });
  });

  test('Slurm: tasks that do not divide evenly: this node\'s count is read at its index', () => {
    const env = readDistributedEnv({ ...slurm, SLURM_PROCID: '4', SLURM_NTASKS: '5', SLURM_LOCALID: '0', SLURM_NODEID: '2', SLURM_TASKS_PER_NODE: '2(x2),1' });
    expect(env).toMatchObject({ rank: 4, localRank: 0, localWorldSize: 1, nodeRank: 2 });
  });

  test('Slurm: an sbatch script itself (no step), and a one-task step, are ordinary runs', () => {
    // the batch script has SLURM_PROCID=0 and the job's SLURM_NTASKS, but it is not a task of srun
    expect(readDistributedEnv({ ...slurm, SLURM_PROCID: '0', SLURM_STEP_ID: undefined })).toBeNull();
    expect(readDistributedEnv({ ...slurm, SLURM_PROCID: '0', SLURM_LOCALID: '0', SLURM_NODEID: '0', SLURM_NTASKS: '1', SLURM_TASKS_PER_NODE: '1' })).toBeNull();
  });

  test('errors say what was expected and what came', () => {
    expect(() => readDistributedEnv({ ...torchrun, RANK: '5' })).toThrow('Expected RANK in [0, WORLD_SIZE=4) but received 5');
    expect(() => readDistributedEnv({ ...torchrun, MASTER_ADDR: undefined })).toThrow(
      'WORLD_SIZE is set but MASTER_ADDR is not: set MASTER_ADDR and MASTER_PORT as torchrun does',
    );
    expect(() => readDistributedEnv({ ...torchrun, MASTER_PORT: undefined })).toThrow('WORLD_SIZE is set but MASTER_PORT is not');
    expect(() => readDistributedEnv({ ...torchrun, MASTER_PORT: '70000' })).toThrow("Expected MASTER_PORT to be a port between 1 and 65535 but received '70000'");
    expect(() => readDistributedEnv({ ...torchrun, WORLD_SIZE: undefined })).toThrow('RANK is set but WORLD_SIZE is not');
    expect(() => readDistributedEnv({ ...torchrun, RANK: undefined })).toThrow('WORLD_SIZE is set but RANK is not');
    expect(() => readDistributedEnv({ ...torchrun, WORLD_SIZE: '0' })).toThrow("Expected WORLD_SIZE to be a positive integer but received '0'");
    expect(() => readDistributedEnv({ ...torchrun, RANK: '-1' })).toThrow("Expected RANK to be a non-negative integer but received '-1'");
    expect(() => readDistributedEnv({ ...torchrun, RANK: '1.5' })).toThrow("Expected RANK to be a non-negative integer but received '1.5'");
    expect(() => readDistributedEnv({ ...torchrun, LOCAL_RANK: '2' })).toThrow('Expected LOCAL_RANK in [0, LOCAL_WORLD_SIZE=2) but received 2');
    expect(() => readDistributedEnv({ ...torchrun, LOCAL_WORLD_SIZE: '8' })).toThrow('Expected LOCAL_WORLD_SIZE at most WORLD_SIZE=4 but received 8');
    expect(() => readDistributedEnv({ ...slurm, SLURM_PROCID: '6' })).toThrow('Expected SLURM_PROCID in [0, SLURM_NTASKS=6) but received 6');
    expect(() => readDistributedEnv({ ...slurm, SLURM_NTASKS: undefined })).toThrow('SLURM_PROCID is set but SLURM_NTASKS is not');
    expect(() => readDistributedEnv({ ...slurm, SLURM_JOB_NODELIST: 'gpu[07-' })).toThrow(
      "Expected SLURM_JOB_NODELIST like 'node[01-04,07]' or 'a,b' but received 'gpu[07-'",
    );
    expect(() => readDistributedEnv({ ...slurm, SLURM_JOB_NODELIST: undefined })).toThrow('set MASTER_ADDR to the first node of the job');
    expect(() => readDistributedEnv({ ...slurm, SLURM_TASKS_PER_NODE: '2(x)' })).toThrow("Expected SLURM_TASKS_PER_NODE like '2' or '2(x3),1' but received '2(x)'");
  });
});

describe('expandHostlist', () => {
  test("Slurm's compact forms", () => {
    expect(expandHostlist('node[01-04,07]')).toEqual(['node01', 'node02', 'node03', 'node04', 'node07']);
    expect(expandHostlist('a,b')).toEqual(['a', 'b']);
    expect(expandHostlist('single')).toEqual(['single']);
    expect(expandHostlist('gpu[8-10]-ib,cpu5')).toEqual(['gpu8-ib', 'gpu9-ib', 'gpu10-ib', 'cpu5']);
    expect(expandHostlist('r[1-2]n[1,3]')).toEqual(['r1n1', 'r1n3', 'r2n1', 'r2n3']);
    expect(expandHostlist('x[098-101],y[5]')).toEqual(['x098', 'x099', 'x100', 'x101', 'y5']);
  });

  test('malformed lists are errors', () => {
    for (const bad of ['', 'a,,b', 'n[1-', 'n]1', 'n[a-b]', 'n[3-1]', 'n[[1]]', 'n[]']) {
      expect(() => expandHostlist(bad, 'SLURM_NODELIST')).toThrow(`Expected SLURM_NODELIST like 'node[01-04,07]' or 'a,b' but received '${bad}'`);
    }
  });
});

test('expandTaskCounts', () => {
  expect(expandTaskCounts('2')).toEqual([2]);
  expect(expandTaskCounts('2(x3),1')).toEqual([2, 2, 2, 1]);
  expect(() => expandTaskCounts('0')).toThrow("Expected the task count list like '2' or '2(x3),1' but received '0'");
});

describe('workerThreads', () => {
  test("OMP_NUM_THREADS when it is a positive integer, else the cores shared by this machine's workers", () => {
    expect(workerThreads({ ...torchrun, OMP_NUM_THREADS: '3' }, 16)).toBe(3);
    expect(workerThreads(torchrun, 16)).toBe(8);
    expect(workerThreads({ ...torchrun, OMP_NUM_THREADS: '0' }, 5)).toBe(2);
    expect(workerThreads({ ...torchrun, OMP_NUM_THREADS: 'lots' }, 5)).toBe(2);
    expect(workerThreads({ ...torchrun, LOCAL_WORLD_SIZE: '4', LOCAL_RANK: '0' }, 2)).toBe(1);
    expect(workerThreads({}, 6)).toBe(6);
  });
});
