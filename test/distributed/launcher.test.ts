// The launcher with a stand-in worker (fixtures/worker.js): torchrun's environment per rank, a
// failed or killed rank stopping the others, signals forwarded, and no process left behind. Every
// wait is on a file a worker writes or on a process's exit, never on the clock.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readDistributedEnv } from '../../lib/distributed/env';
import { launchWorkers, withoutLauncherOptions, type LaunchOptions, type LaunchResult } from '../../lib/distributed/launcher';
import { closed, killStragglers, track, whenInFolder } from '../helpers/wait-for';

const WORKER = path.join(__dirname, 'fixtures', 'worker.js');
const DRIVER = path.join(__dirname, 'fixtures', 'launch-driver.js');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-launcher-'));
});
afterEach(() => {
  killStragglers();
  // a test that failed half-way may leave workers (each in its own process group) running
  for (const record of recordsIn(dir)) {
    try {
      process.kill(record.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

interface WorkerRecord {
  pid: number;
  argv: string[];
  env: Record<string, string | undefined>;
}

function recordsIn(folder: string): WorkerRecord[] {
  if (!fs.existsSync(folder)) return [];
  return fs
    .readdirSync(folder)
    .filter((f) => /^rank-\d+\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(folder, f), 'utf8')));
}

function record(rank: number): WorkerRecord {
  return JSON.parse(fs.readFileSync(path.join(dir, `rank-${rank}.json`), 'utf8'));
}

/** Resolves once workers of these global ranks have recorded themselves. */
function whenRecorded(ranks: number[], abort?: Promise<unknown>): Promise<true> {
  return whenInFolder(dir, () => (ranks.every((r) => fs.existsSync(path.join(dir, `rank-${r}.json`))) ? true : undefined), abort, `ranks ${ranks.join(', ')} recorded`);
}

function signalsOf(rank: number): string[] {
  const file = path.join(dir, `signals-${rank}.txt`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Whether the process runs (a zombie waiting for its reaper counts as gone: it holds nothing and runs nothing). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function launch(extra: string[], options: Partial<LaunchOptions> = {}, lines: string[] = []): Promise<LaunchResult> {
  return launchWorkers({
    command: [process.execPath, WORKER, '--dir', dir, ...extra],
    nprocPerNode: 2,
    signals: false,
    log: (line) => lines.push(line),
    ...options,
  });
}

describe('launchWorkers', () => {
  test("each worker gets torchrun's environment; the workers' threads share the cores unless OMP_NUM_THREADS is set", async () => {
    const lines: string[] = [];
    const result = await launch([], { nnodes: 3, nodeRank: 1, masterAddr: 'host0', masterPort: 29511, cores: 5, env: { OMP_NUM_THREADS: undefined, FIXTURE_EXTRA: 'x' } }, lines);
    expect(result).toMatchObject({ ok: true, exitCodes: [0, 0], message: 'all 2 workers exited with code 0' });
    expect(result.failedRank).toBeUndefined();
    expect(lines).toEqual(['launching 2 workers on node 1 of 3 (world size 6, master host0:29511)']);
    for (const [localRank, rank] of [[0, 2], [1, 3]]) {
      const { env, pid } = record(rank);
      expect(env).toEqual({
        RANK: String(rank), WORLD_SIZE: '6', LOCAL_RANK: String(localRank), LOCAL_WORLD_SIZE: '2', GROUP_RANK: '1',
        MASTER_ADDR: 'host0', MASTER_PORT: '29511', OMP_NUM_THREADS: '2', FIXTURE_EXTRA: 'x',
      });
      expect(result.workers[localRank]).toEqual({ rank, localRank, pid, code: 0, signal: null });
      // what the worker side reads from it
      expect(readDistributedEnv(env)).toEqual({
        rank, worldSize: 6, localRank, localWorldSize: 2, nodeRank: 1, masterAddr: 'host0', masterPort: 29511, source: 'torchrun',
      });
    }
    expect(recordsIn(dir)).toHaveLength(2);

    fs.rmSync(path.join(dir, 'rank-2.json'));
    const defaults = await launch([], { nprocPerNode: 1, env: { OMP_NUM_THREADS: '3' } });
    expect(defaults.ok).toBe(true);
    expect(record(0).env).toMatchObject({ RANK: '0', WORLD_SIZE: '1', GROUP_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', OMP_NUM_THREADS: '3' });
  });

  test('a rank that exits non-zero stops the others (SIGTERM) and is named', async () => {
    const lines: string[] = [];
    const result = await launch(['--wait', '--fail-rank', '1', '--fail-code', '3'], { nprocPerNode: 3 }, lines);
    const pids = [0, 1, 2].map((r) => record(r).pid);
    expect(result).toMatchObject({ ok: false, failedRank: 1, exitCodes: [143, 3, 143] });
    expect(result.message).toBe(`rank 1 (pid ${pids[1]}) exited with code 3; stopped the other 2 workers`);
    expect(lines).toContain(`rank 1 (pid ${pids[1]}) exited with code 3: stopping the other 2 workers`);
    expect(signalsOf(0)).toEqual(['SIGTERM']);
    expect(signalsOf(2)).toEqual(['SIGTERM']);
    expect(pids.filter(alive)).toEqual([]);
  });

  test('a worker killed with SIGKILL is named, and the others are stopped', async () => {
    const running = launch(['--wait']);
    await whenRecorded([0, 1], running);
    const victim = record(1).pid;
    process.kill(victim, 'SIGKILL');
    const result = await running;
    expect(result).toMatchObject({ ok: false, failedRank: 1, exitCodes: [143, null] });
    expect(result.workers[1]).toMatchObject({ pid: victim, code: null, signal: 'SIGKILL' });
    expect(result.message).toBe(`rank 1 (pid ${victim}) was killed by SIGKILL; stopped the other 1 worker`);
    expect(signalsOf(0)).toEqual(['SIGTERM']);
    expect(alive(record(0).pid)).toBe(false);
  });

  test('a worker that ignores SIGTERM gets SIGKILL once graceMs has passed', async () => {
    const result = await launch(['--wait', '--fail-rank', '1', '--exit-on', 'SIGINT'], { graceMs: 100 });
    expect(result).toMatchObject({ ok: false, failedRank: 1, exitCodes: [null, 1] });
    expect(result.workers[0].signal).toBe('SIGKILL');
    expect(signalsOf(0)).toEqual(['SIGTERM']);
  });

  test('a worker that cannot be started fails the launch, naming its rank', async () => {
    const result = await launchWorkers({ command: [path.join(dir, 'no-such-program')], nprocPerNode: 2, signals: false, log: () => {} });
    expect(result).toMatchObject({ ok: false, failedRank: 0, exitCodes: [null, null] });
    expect(result.message).toMatch(/^rank 0 could not be started: spawn .*no-such-program ENOENT$/);
    expect(result.workers.map((w) => w.pid)).toEqual([undefined, undefined]);
  });

  test('invalid options are rejected before anything starts', async () => {
    const command = [process.execPath, WORKER, '--dir', dir];
    await expect(launchWorkers({ command, nprocPerNode: 0 })).rejects.toThrow('Expected positive integer for nprocPerNode but received 0 of type number');
    await expect(launchWorkers({ command, nprocPerNode: 1, nnodes: 2, nodeRank: 2 })).rejects.toThrow('Expected integer between 0 and 1 for nodeRank but received 2 of type number');
    await expect(launchWorkers({ command, nprocPerNode: 1, masterPort: 65536 })).rejects.toThrow('Expected integer between 1 and 65535 for masterPort but received 65536 of type number');
    await expect(launchWorkers({ command: [], nprocPerNode: 1 })).rejects.toThrow('Expected non-empty array of strings for command but received an array of length 0');
    await expect(launchWorkers({ command, nprocPerNode: 1, env: { A: 1 as unknown as string } })).rejects.toThrow('Expected string or undefined for env.A but received 1 of type number');
    await expect(launchWorkers({ command, nprocPerNode: 1, nproc: 2 } as LaunchOptions)).rejects.toThrow("Unknown option 'nproc' in launchWorkers options");
    expect(recordsIn(dir)).toEqual([]);
  });
});

describe('the launcher as a process of its own (signals)', () => {
  function startDriver(options: Partial<LaunchOptions>, extra: string[] = [], detached = false): { driver: ChildProcess; out: () => string; err: () => string } {
    const full = { command: [process.execPath, WORKER, '--dir', dir, '--wait', ...extra], nprocPerNode: 2, ...options };
    const driver = track(spawn(process.execPath, [DRIVER, JSON.stringify(full)], { stdio: ['ignore', 'pipe', 'pipe'], detached }));
    let out = '';
    let err = '';
    driver.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    driver.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    return { driver, out: () => out, err: () => err };
  }
  const resultOf = (out: string): LaunchResult => JSON.parse(out.trim().split('\n').pop()!);

  test('SIGTERM to the launcher is forwarded to every worker; the launcher reports the interruption', async () => {
    const { driver, out, err } = startDriver({});
    const exited = closed(driver);
    await whenRecorded([0, 1], exited);
    driver.kill('SIGTERM');
    // 'close': the driver and every worker sharing its output pipe have exited
    expect(await exited).toEqual({ code: 1, signal: null });
    const result = resultOf(out());
    expect(result).toMatchObject({ ok: false, interrupted: 'SIGTERM', exitCodes: [143, 143], message: 'interrupted by SIGTERM: exit codes 143, 143' });
    expect(result.failedRank).toBeUndefined();
    expect(err()).toContain('SIGTERM: forwarding it to 2 workers');
    expect([signalsOf(0), signalsOf(1)]).toEqual([['SIGTERM'], ['SIGTERM']]);
  });

  test("a terminal's Ctrl-C (SIGINT to the launcher's process group) reaches each worker once, and a non-zero exit after it stops no one", async () => {
    // the workers record SIGINT and carry on, as finetorch finishing its step and checkpoint would; SIGTERM ends them
    const { driver, out } = startDriver({}, ['--exit-on', 'SIGTERM'], true);
    const exited = closed(driver);
    await whenRecorded([0, 1], exited);
    process.kill(-driver.pid!, 'SIGINT');
    await whenInFolder(dir, () => (signalsOf(0).length > 0 && signalsOf(1).length > 0 ? true : undefined), exited, 'SIGINT recorded');
    driver.kill('SIGTERM');
    expect(await exited).toEqual({ code: 1, signal: null });
    // a worker in the launcher's group would have had SIGINT twice: from the terminal and forwarded
    expect([signalsOf(0), signalsOf(1)]).toEqual([['SIGINT', 'SIGTERM'], ['SIGINT', 'SIGTERM']]);
    expect(resultOf(out())).toMatchObject({ ok: false, interrupted: 'SIGINT', exitCodes: [143, 143] });
  });

  test('a launcher that crashes takes its workers along', async () => {
    const crashing = spawn(process.execPath, [DRIVER, JSON.stringify({ command: [process.execPath, WORKER, '--dir', dir, '--wait'], nprocPerNode: 2 }), '--crash-when', path.join(dir, 'rank-1.json')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(crashing);
    let stderr = '';
    crashing.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    crashing.stdout.resume();
    // 'close' comes once the workers, which share the driver's output pipe, have exited too
    const { code } = await closed(crashing);
    expect(code).toBe(1);
    expect(stderr).toContain('the launcher crashed (on purpose)');
    const pids = recordsIn(dir).map((r) => r.pid);
    expect(pids.length).toBeGreaterThan(0);
    expect(pids.filter(alive)).toEqual([]);
  });
});

describe('withoutLauncherOptions', () => {
  test('drops the five launcher options with their values, in both forms, and keeps everything else in order', () => {
    expect(
      withoutLauncherOptions(['train', '--nproc-per-node', '2', '--config', 'a.yaml', '--nnodes=2', '--node-rank', '1', '--master-addr=10.0.0.1', '--master-port', '29501', '--set', 'x=1', '--quiet']),
    ).toEqual(['train', '--config', 'a.yaml', '--set', 'x=1', '--quiet']);
  });

  test("a value that looks like a launcher option stays the value of its option; after '--' nothing is touched", () => {
    expect(withoutLauncherOptions(['train', '--name', '--nnodes', '--nproc-per-node=2'], ['--name'])).toEqual(['train', '--name', '--nnodes']);
    expect(withoutLauncherOptions(['train', '--nnodes', '2', '--', '--nnodes', '3'])).toEqual(['train', '--', '--nnodes', '3']);
    expect(withoutLauncherOptions(['train', '--name=--nnodes', '--nproc-per-node', '4'], ['--name'])).toEqual(['train', '--name=--nnodes']);
  });
});
