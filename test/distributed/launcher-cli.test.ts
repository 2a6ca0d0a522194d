// `finetorch train --nproc-per-node N` through the built CLI: it trains nothing itself but runs the
// same command, less the launcher options, in N workers. A preloaded fixture (which the CLI hands
// on to its workers with its execArgv) stands in for the training: it records what each worker got
// and exits before the CLI would load a model.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { builtCliProblem, CLI, expectExit, runCli } from '../helpers/cli-process';
import { prerequisite } from '../helpers/prerequisite';

const built = prerequisite('dist/ compiled from the current sources', builtCliProblem());
const RECORDER = path.join(__dirname, 'fixtures', 'record-worker.js');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-launch-cli-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The CLI as a user runs it, outside any distributed run (whatever the test's own environment holds). */
const run = (args: string[], env: Record<string, string | undefined> = {}) =>
  runCli(args, {
    preload: [RECORDER],
    env: { FIXTURE_DIR: dir, RANK: undefined, WORLD_SIZE: undefined, SLURM_PROCID: undefined, SLURM_STEP_ID: undefined, SLURM_STEPID: undefined, OMP_NUM_THREADS: undefined, ...env },
  });

const recordOf = (rank: number) => JSON.parse(fs.readFileSync(path.join(dir, `rank-${rank}.json`), 'utf8'));

built.describe('finetorch train --nproc-per-node', () => {
  test('runs the same command in N workers with torchrun\'s environment, without the launcher options', async () => {
    const result = await run(['train', '--nproc-per-node', '2', '--master-port=29577', '--name', '--nnodes', '--epochs', '3', '--node-rank', '0']);
    expectExit(result, 0, 'launch');
    expect(result.err).toContain('launching 2 workers on node 0 of 1 (world size 2, master 127.0.0.1:29577)');
    const threads = String(Math.max(1, Math.floor(os.availableParallelism() / 2)));
    for (const rank of [0, 1]) {
      const record = recordOf(rank);
      expect(record.script).toBe(CLI);
      expect(record.argv).toEqual(['train', '--name', '--nnodes', '--epochs', '3']);
      expect(record.execArgv).toEqual(['-r', RECORDER]);
      expect(record.env).toEqual({
        RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '2', GROUP_RANK: '0',
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29577', OMP_NUM_THREADS: threads,
      });
    }
  });

  test('a failed rank makes the launcher exit 1 with a message naming it', async () => {
    const result = await run(['train', '--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '1'], { FIXTURE_FAIL_RANK: '3' });
    expectExit(result, 1, 'a failed rank');
    expect(result.err).toMatch(/^finetorch: rank 3 \(pid \d+\) exited with code 3/m);
    expect(recordOf(3).env).toMatchObject({ RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', GROUP_RANK: '1' });
  });

  test('launcher options are checked, and those without --nproc-per-node are an error, before anything starts', async () => {
    const stray = await run(['train', '--nnodes', '2', '--master-addr', 'h']);
    expectExit(stray, 2, 'stray launcher options');
    expect(stray.err).toContain('finetorch: --nnodes, --master-addr take effect only with --nproc-per-node');
    const rank = await run(['train', '--nproc-per-node', '1', '--node-rank', '2', '--nnodes', '2']);
    expectExit(rank, 2, 'node rank out of range');
    expect(rank.err).toContain('Expected --node-rank in [0, --nnodes=2) but received 2');
    const port = await run(['train', '--nproc-per-node', '1', '--master-port', '0']);
    expectExit(port, 2, 'bad port');
    expect(port.err).toContain("expected a port between 1 and 65535, got '0'");
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
