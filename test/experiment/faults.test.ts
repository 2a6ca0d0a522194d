// Faults during training: kill -9 while writing, SIGINT, a full or read-only disk, a NaN loss.
// Each ends with a clear message and no data lost. Children still running when a test ends (Jest's
// time limit stopped it) are killed after it (afterEach).
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadCheckpoint, loadTorchFile, resolveConfig, saveTorchFile, train, type Config } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';
import { closed, killStragglers, track, watchLines, whenInFolder } from '../helpers/wait-for';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist', 'scripts', 'cli.js');
let dir: string;
let data: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-faults-'));
  data = path.join(dir, 'data');
  await createSyntheticDataset(data, { classes: 3, perClass: 8, size: 40, seed: 1 });
});
afterEach(killStragglers);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(overrides: Record<string, unknown>): Config {
  return resolveConfig({
    overrides: {
      weights: 'none', image_size: 32, resize: 36, batch_size: 4, epochs: 2, quiet: true, report: false, device: 'cpu',
      'data.root': data, 'data.train_per_class': 6, 'data.test_per_class': 2, output_dir: path.join(dir, 'runs'), ...overrides,
    },
  });
}

const cliArgs = (name: string, epochs: number) => [
  cli, 'train', '--phase', 'scratch', '--weights', 'none', '--data', data, '--out', path.join(dir, 'runs'), '--name', name,
  '--epochs', String(epochs), '--image-size', '32', '--set', 'resize=36', '--set', 'data.train_per_class=6', '--set', 'data.test_per_class=2',
  // last.pth every epoch: without a validation part it is otherwise written only at the interval and the end
  '--set', 'report=false', '--set', 'checkpoint_interval=0', '--batch-size', '4', '--device', 'cpu',
];

// Limits that only stop a hang: each test below starts the CLI (libtorch and all) once or twice,
// which took up to 2.5 minutes on a loaded 2-core machine (30 s to the first checkpoint, a minute
// for the resumed run). Nothing below waits on the clock: each step waits for what the child says
// (a line on its output) or does (a change in a folder).
const PROCESS_TEST_MS = 600_000;

function finiteWeights(state: Map<string, { dtype: string; toTypedArray(): ArrayLike<number | bigint> }>): boolean {
  for (const t of state.values()) {
    if (!t.dtype.startsWith('float')) continue;
    for (const v of t.toTypedArray() as Float32Array) if (!Number.isFinite(v)) return false;
  }
  return true;
}

// The CLI and the library as a child process needs them: `npm test` compiles dist/ first (its
// pretest); a bare `npx jest` needs `npx tsc -p .`.
const dist = prerequisite('the compiled CLI (dist/)', fs.existsSync(cli) ? null : `${cli} is missing: run npx tsc -p . (npm test compiles it)`);

dist.describe('signals', () => {
  beforeAll(() => assertPresent(dist));

  test('SIGINT: the current step finishes, last is written, exit code 130; --resume finishes the run', async () => {
    const runDir = path.join(dir, 'runs', 'sigint');
    const child = track(spawn(process.execPath, cliArgs('sigint', 200), { stdio: ['ignore', 'ignore', 'pipe'] }));
    const exit = closed(child); // 'close', not 'exit': all of stderr has arrived by then
    const stderr = watchLines(child.stderr!);
    await stderr.next(/checkpoint: epoch 1 written to last\.pth/, 'the first checkpoint');
    child.kill('SIGINT');
    expect((await exit).code).toBe(130);
    const text = stderr.lines.join('\n');
    expect(text).toContain('SIGINT: finishing the current step');
    expect(text).toMatch(/interrupted: the current step finished and .*last\.pth was written; continue with --resume/);
    const last = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last.pth'));
    expect(last.epoch).toBeGreaterThanOrEqual(1);
    expect(last.step).toBeGreaterThan(0);
    const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', runDir, '--epochs', String(last.epoch + 1), '--quiet'], { encoding: 'utf8', timeout: 300_000 });
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8')).epochs).toBe(last.epoch + 1);
  }, PROCESS_TEST_MS);

  test('kill -9 in the middle of a checkpoint write: the file holds the last whole checkpoint, newer than the first', async () => {
    const file = path.join(dir, 'atomic.pth');
    const model = createModel('resnet18', { numClasses: 3 });
    await saveTorchFile(file, new Map<string, unknown>([['state_dict', model.stateDict()], ['version', 0]]));
    model.dispose();
    const whole = fs.statSync(file).size; // ~45 MB; the versions differ by a few bytes at most
    // The child writes versions base+1, base+2, ... for ever, saying when each is in place.
    const writer = (base: number) => `
      const { createModel, saveTorchFile } = require(${JSON.stringify(path.join(root, 'dist', 'lib'))});
      (async () => {
        const model = createModel('resnet18', { numClasses: 3 });
        for (let i = 1; ; i++) {
          await saveTorchFile(${JSON.stringify(file)}, new Map([['state_dict', model.stateDict()], ['version', ${base} + i]]));
          console.log('wrote ' + (${base} + i));
        }
      })();`;
    for (const base of [1000, 2000]) {
      const child = track(spawn(process.execPath, ['-e', writer(base)], { stdio: ['ignore', 'pipe', 'inherit'] }));
      const exit = closed(child);
      const out = watchLines(child.stdout!);
      const temp = `${file}.tmp-${child.pid}`;
      // two versions in place, so the file has moved on from the first; then killed in the middle of writing a later one
      await out.next(new RegExp(`^wrote ${base + 2}$`), `${file}: the child's second write`);
      await whenInFolder(dir, () => killWhilePartWritten(child, temp, whole), exit, `a part-written ${temp}`);
      expect(await exit).toEqual({ code: null, signal: 'SIGKILL' });
      const written = Math.max(...out.lines.map((l) => Number(/^wrote (\d+)$/.exec(l)?.[1] ?? 0)));
      expect(written).toBeGreaterThanOrEqual(base + 2);
      // the kill landed inside a write: its temp file is left behind, cut short
      expect(fs.statSync(temp).size).toBeLessThan(whole - 4096);
      const loaded = (await loadTorchFile(file)).value as Map<string, unknown>;
      expect((loaded.get('state_dict') as Map<string, unknown>).size).toBe(122);
      expect(loaded.get('version')).toBe(written); // the last write that finished, not the cut one
    }
  }, PROCESS_TEST_MS);

  test('kill -9 while training writes a checkpoint: --resume continues from the last whole one and clears the cut one', async () => {
    const runDir = path.join(dir, 'runs', 'killed');
    const checkpoints = path.join(runDir, 'checkpoints');
    // a checkpoint after every epoch; killed once the second is in place, in the middle of writing the third
    const child = track(spawn(process.execPath, cliArgs('killed', 200), { stdio: ['ignore', 'ignore', 'pipe'] }));
    const exit = closed(child);
    const stderr = watchLines(child.stderr!);
    await stderr.next(/checkpoint: epoch 2 written to last\.pth/, 'the second checkpoint');
    const whole = fs.statSync(path.join(checkpoints, 'last.pth')).size;
    const temp = path.join(checkpoints, `last.pth.tmp-${child.pid}`);
    await whenInFolder(checkpoints, () => killWhilePartWritten(child, temp, whole), exit, `a part-written ${temp}`);
    expect(await exit).toEqual({ code: null, signal: 'SIGKILL' });
    const cut = fs.statSync(temp).size;
    expect(cut).toBeLessThan(whole); // the kill landed inside a write
    const last = await loadCheckpoint(path.join(checkpoints, 'last.pth'));
    expect(last.epoch).toBeGreaterThanOrEqual(2); // a whole checkpoint, and not the first
    const [result] = await train({ ...config({ phase: 'scratch', run_name: 'killed' }), epochs: last.epoch + 1 }, { log: () => undefined, resumeDir: runDir });
    expect(result.epochs).toBe(last.epoch + 1);
    expect(fs.readdirSync(checkpoints).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, PROCESS_TEST_MS);
});

/**
 * For `whenInFolder`: once `temp` holds part of a file of about `whole` bytes, freezes the child
 * (SIGSTOP), looks again, and SIGKILLs it if the file is still part-written; a temp file found whole
 * (being synced or renamed) lets the child go on (SIGCONT) to its next write. Returns true once killed.
 */
function killWhilePartWritten(child: ChildProcess, temp: string, whole: number): true | undefined {
  const part = () => {
    const size = fs.statSync(temp, { throwIfNoEntry: false })?.size;
    return size !== undefined && size > 0 && size + 4096 < whole;
  };
  if (!part()) return undefined;
  child.kill('SIGSTOP');
  if (!part()) {
    child.kill('SIGCONT');
    return undefined;
  }
  child.kill('SIGKILL');
  return true;
}

// A small tmpfs, mounted where this process may (root on Linux). Whether it can is found out once,
// when the file loads, so the tests run or are skipped (and say why) rather than pass doing nothing.
function mountTmpfs(options: string): string {
  const target = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-mnt-'));
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target], { encoding: 'utf8' });
  if (result.status !== 0) {
    fs.rmdirSync(target);
    throw new Error(`cannot mount a tmpfs here: ${(result.error?.message ?? result.stderr).trim() || `mount exited with ${result.status}`}`);
  }
  return target;
}
function unmount(target: string): void {
  const result = spawnSync('umount', [target], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`cannot unmount ${target}: ${result.stderr}`);
  fs.rmdirSync(target);
}
const tmpfs = prerequisite(
  'a tmpfs for the disk fault tests',
  (() => {
    try {
      unmount(mountTmpfs('size=1m'));
      return null;
    } catch (error) {
      return `${(error as Error).message} (needs root on Linux)`;
    }
  })(),
);

tmpfs.describe('the disk', () => {
  beforeAll(() => assertPresent(tmpfs));

  test('a read-only output folder is a clear error before training starts', async () => {
    const target = mountTmpfs('ro,size=1m');
    try {
      await expect(train(config({ phase: 'scratch', output_dir: target, run_name: 'ro' }), { log: () => undefined })).rejects.toThrow(
        /cannot (write the run folder|create).*(read-only|EROFS)/i,
      );
    } finally {
      unmount(target);
    }
  });

  test('a full disk fails at the write with a clear error, and the earlier checkpoint stays whole', async () => {
    const target = mountTmpfs('size=60m');
    try {
      // feature_extract with plain SGD: a checkpoint is ~45 MB, so epoch 1's last.pth fits and
      // epoch 2's, written beside it before the rename, does not
      const run = train(
        config({ phase: 'feature_extract', weights: 'none', optimizer: 'sgd', momentum: 0, output_dir: target, run_name: 'full', checkpoint_interval: 0 }),
        { log: () => undefined },
      );
      await expect(run).rejects.toThrow(/cannot write '.*last\.pth': .*(No space left on device|ENOSPC)/);
      const last = await loadCheckpoint(path.join(target, 'full', 'checkpoints', 'last.pth'));
      expect(last.epoch).toBe(1);
      // no validation part: best.pth (the tested weights) would only be the final epoch's
      expect(fs.readdirSync(path.join(target, 'full', 'checkpoints'))).toEqual(['last.pth']);
    } finally {
      unmount(target);
    }
  });
});

describe('divergence', () => {
  test('a NaN loss stops training with the step number and keeps the last good checkpoint', async () => {
    const run = train(config({ phase: 'scratch', optimizer: 'sgd', momentum: 0, learning_rate: 100, epochs: 8, run_name: 'nan', checkpoint_interval: 0 }), { log: () => undefined });
    await expect(run).rejects.toThrow(
      /training stopped at step \d+ \(epoch ([2-9]|10)\): (loss is (NaN|[+-]Inf): the step was not applied|\d+ parameter\(s\) became NaN\/Inf).* the last good checkpoint .*last\.pth is kept/,
    );
    const last = await loadCheckpoint(path.join(dir, 'runs', 'nan', 'checkpoints', 'last.pth'));
    expect(finiteWeights(last.stateDict)).toBe(true);
  });
});
