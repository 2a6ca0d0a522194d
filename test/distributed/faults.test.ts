// A distributed run that loses a rank, as the issue asks: a rank SIGKILLed mid-run makes every
// other rank exit non-zero within dist_timeout, naming the lost rank; nothing is left running;
// rank 0's last checkpoint loads and --resume continues (with the same or another world size).
// And the rendezvous failures: a busy port, an unreachable master, a rank that never comes.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSyntheticDataset } from '../../lib/data/synthetic';
import { distributedSupport, ProcessGroup } from '../../lib/distributed/process-group';
import { loadCheckpoint } from '../../lib/training/checkpoint';
import { builtCliProblem, CLI, runCli } from '../helpers/cli-process';
import { allExited, freePort, startRanks, type RunningRank } from '../helpers/ranks';
import { killStragglers, track, whenInFolder } from '../helpers/wait-for';

const support = distributedSupport();
const problem = support.c10d ? builtCliProblem() : 'this build of the addon has no c10d (install libgloo-dev and rebuild)';
const describeRanks = problem ? describe.skip : describe;
if (problem) console.warn(`skipping distributed fault tests: ${problem}`);

const DIST_TIMEOUT = 20;
let dir: string;
let dataRoot: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddp-faults-'));
  dataRoot = (await createSyntheticDataset(path.join(dir, 'data'), { classes: 4, perClass: 12, size: 40, seed: 3 })).root;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => killStragglers());

function trainArgs(name: string, epochs: number): string[] {
  return [
    'train', '--phase', 'scratch', '--arch', 'resnet18', '--weights', 'none', '--epochs', String(epochs), '--batch-size', '8', '--image-size', '32',
    '--data', dataRoot, '--out', path.join(dir, 'runs'), '--name', name, '--quiet',
    '--set', 'resize=36', '--set', 'data.train_per_class=8', '--set', 'data.test_per_class=4', '--set', 'report=false',
    '--set', 'checkpoint_interval=0', '--set', `dist_timeout=${DIST_TIMEOUT}`,
  ];
}

function startTraining(name: string, epochs: number, port: number): RunningRank[] {
  // made first, so the test can watch it from the start
  fs.mkdirSync(path.join(dir, 'runs', name, 'checkpoints'), { recursive: true });
  const ranks = startRanks([CLI, ...trainArgs(name, epochs)], { worldSize: 2, port });
  for (const r of ranks) track(r.child);
  return ranks;
}

/** Signals `victim` (and `others`) once rank 0 has written a checkpoint (the run is then in its next epoch). */
async function killAfterFirstCheckpoint(name: string, ranks: RunningRank[], victim: number, signal: NodeJS.Signals = 'SIGKILL', others: number[] = []): Promise<number> {
  const checkpoints = path.join(dir, 'runs', name, 'checkpoints');
  const anyExit = Promise.race(ranks.map((r) => r.exited));
  await whenInFolder(checkpoints, () => (fs.existsSync(path.join(checkpoints, 'last.pth')) ? true : undefined), anyExit, 'last.pth');
  for (const r of [victim, ...others]) ranks[r].child.kill(signal);
  return Date.now();
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

describeRanks('a lost rank', () => {
  test('rank 1 SIGKILLed: rank 0 exits non-zero naming it; the checkpoint resumes in one process', async () => {
    const ranks = startTraining('lost-rank-1', 40, await freePort());
    const killedAt = await killAfterFirstCheckpoint('lost-rank-1', ranks, 1);
    const [zero, one] = await allExited(ranks);
    expect(one.signal).toBe('SIGKILL');
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toMatch(/rank 0 of 2: lost rank 1 \(no heartbeat\)/);
    const seconds = (zero.exitedAt - killedAt) / 1000;
    console.log(`rank 1 SIGKILLed: rank 0 exited ${seconds.toFixed(1)} s later (dist_timeout ${DIST_TIMEOUT} s)`);
    expect(seconds).toBeLessThan(DIST_TIMEOUT);
    expect(ranks.every((r) => processGone(r.child.pid!))).toBe(true);

    const last = path.join(dir, 'runs', 'lost-rank-1', 'checkpoints', 'last.pth');
    const checkpoint = await loadCheckpoint(last);
    expect(checkpoint.epoch).toBeGreaterThanOrEqual(1);
    // another world size: one process continues for one more epoch
    const resumed = await runCli(['train', '--resume', path.join(dir, 'runs', 'lost-rank-1'), '--epochs', String(checkpoint.epoch + 1)]);
    expect({ code: resumed.code, err: resumed.err }).toEqual({ code: 0, err: '' });
    expect((await loadCheckpoint(last)).epoch).toBe(checkpoint.epoch + 1);
  }, 240_000);

  test('rank 0 (the store host) SIGKILLed: rank 1 exits non-zero naming it; two ranks resume', async () => {
    const ranks = startTraining('lost-rank-0', 40, await freePort());
    const killedAt = await killAfterFirstCheckpoint('lost-rank-0', ranks, 0);
    const [zero, one] = await allExited(ranks);
    expect(zero.signal).toBe('SIGKILL');
    expect(one.code).not.toBe(0);
    expect(one.stderr).toMatch(/rank 1 of 2: lost rank 0 \(its rendezvous store stopped answering\)/);
    const seconds = (one.exitedAt - killedAt) / 1000;
    console.log(`rank 0 SIGKILLed: rank 1 exited ${seconds.toFixed(1)} s later (dist_timeout ${DIST_TIMEOUT} s)`);
    expect(seconds).toBeLessThan(DIST_TIMEOUT);

    const runDir = path.join(dir, 'runs', 'lost-rank-0');
    const checkpoint = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last.pth'));
    const again = startRanks([CLI, 'train', '--resume', runDir, '--epochs', String(checkpoint.epoch + 1), '--quiet'], { worldSize: 2, port: await freePort() });
    for (const r of again) track(r.child);
    const exits = await allExited(again);
    expect(exits.map((e) => ({ rank: e.rank, code: e.code, stderr: e.code === 0 ? '' : e.stderr }))).toEqual([
      { rank: 0, code: 0, stderr: '' },
      { rank: 1, code: 0, stderr: '' },
    ]);
    const results = JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8'));
    expect(results.epochs).toBe(checkpoint.epoch + 1);
    expect(results.test.count).toBe(16);
  }, 240_000);
});

describeRanks('Ctrl-C in a distributed run', () => {
  test('SIGINT to every rank (as the launcher forwards it): all stop after the same step, rank 0 writes last.pth, exit 130', async () => {
    const ranks = startTraining('interrupted', 40, await freePort());
    await killAfterFirstCheckpoint('interrupted', ranks, 0, 'SIGINT', [1]);
    const exits = await allExited(ranks);
    expect(exits.map((e) => e.code)).toEqual([130, 130]);
    expect(exits[0].stderr).toMatch(/interrupted: the current step finished and .*last\.pth was written; continue with --resume/);
    for (const e of exits) expect(e.stderr).not.toMatch(/lost rank/);
    const checkpoint = await loadCheckpoint(path.join(dir, 'runs', 'interrupted', 'checkpoints', 'last.pth'));
    expect(checkpoint.step).toBeGreaterThan(0);
  }, 240_000);
});

const describeC10d = support.c10d ? describe : describe.skip;

describeC10d('joining a run', () => {
  test('a busy port is a clear error on rank 0', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      await expect(ProcessGroup.init({ rank: 0, worldSize: 2, masterPort: port, timeoutSeconds: 5 })).rejects.toThrow(
        new RegExp(`rank 0 could not open the rendezvous store on 127\\.0\\.0\\.1:${port}: .*another run using this port`),
      );
    } finally {
      server.close();
    }
  }, 60_000);

  test('an unreachable master is a clear error within the timeout', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(ProcessGroup.init({ rank: 1, worldSize: 2, masterPort: port, timeoutSeconds: 2 })).rejects.toThrow(
      new RegExp(`rank 1 could not reach the master at 127\\.0\\.0\\.1:${port} within 2\\.0 s`),
    );
    expect((Date.now() - started) / 1000).toBeLessThan(30);
  }, 60_000);

  test('a rank that never comes is named', async () => {
    await expect(ProcessGroup.init({ rank: 0, worldSize: 3, masterPort: await freePort(), timeoutSeconds: 2 })).rejects.toThrow(
      /rank\(s\) 1, 2 of 3 did not join at 127\.0\.0\.1:\d+ within 2\.0 s/,
    );
  }, 60_000);

  test('a backend this libtorch lacks is a clear error at start', async () => {
    if (support.backends.includes('nccl')) return; // a CUDA build with NCCL: nothing to refuse
    await expect(ProcessGroup.init({ rank: 0, worldSize: 1, backend: 'nccl' })).rejects.toThrow(/this libtorch has no NCCL \(backends here: gloo\): use backend gloo/);
  });

  test('options are checked before anything starts', async () => {
    await expect(ProcessGroup.init({ rank: 2, worldSize: 2 })).rejects.toThrow(/rank/);
    await expect(ProcessGroup.init({ rank: 0, worldSize: 0 })).rejects.toThrow(/Expected positive integer for worldSize but received 0/);
    await expect(ProcessGroup.init({ rank: 0, worldSize: 1, backend: 'mpi' as never })).rejects.toThrow(/backend/);
  });
});
