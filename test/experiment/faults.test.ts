// Faults during training: kill -9 while writing, SIGINT, a full or read-only disk, a NaN loss.
// Each ends with a clear message and no data lost.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { createModel, loadCheckpoint, loadTorchFile, resolveConfig, saveTorchFile, train, type Config } from '../../lib';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist', 'scripts', 'cli.js');
let dir: string;
let data: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-faults-'));
  data = path.join(dir, 'data');
  await createSyntheticDataset(data, { classes: 3, perClass: 8, size: 40, seed: 1 });
});
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
// for the resumed run).
const PROCESS_TEST_MS = 600_000;

/** Polls until `done()` holds. */
async function waitUntil(what: string, done: () => boolean, timeoutMs = 240_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const waitFor = (file: string) => waitUntil(`${file} to appear`, () => fs.existsSync(file));
const inode = (file: string) => fs.statSync(file, { throwIfNoEntry: false })?.ino;

/** Resolves with the exit code once the child has exited and its output streams are read to the end. */
const closed = (child: ReturnType<typeof spawn>) => new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

function finiteWeights(state: Map<string, { dtype: string; toTypedArray(): ArrayLike<number | bigint> }>): boolean {
  for (const t of state.values()) {
    if (!t.dtype.startsWith('float')) continue;
    for (const v of t.toTypedArray() as Float32Array) if (!Number.isFinite(v)) return false;
  }
  return true;
}

const haveDist = fs.existsSync(cli);
if (!haveDist) console.log('dist/ not built (run npm test, which compiles it): skipping the CLI process fault tests');

(haveDist ? describe : describe.skip)('signals', () => {
  test('SIGINT: the current step finishes, last is written, exit code 130; --resume finishes the run', async () => {
    const runDir = path.join(dir, 'runs', 'sigint');
    const child = spawn(process.execPath, cliArgs('sigint', 200), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exit = closed(child); // 'close', not 'exit': all of stderr has arrived by then
    await waitFor(path.join(runDir, 'checkpoints', 'last.pth'));
    child.kill('SIGINT');
    const code = await exit;
    expect(code).toBe(130);
    expect(stderr).toContain('SIGINT: finishing the current step');
    expect(stderr).toMatch(/interrupted: the current step finished and .*last\.pth was written; continue with --resume/);
    const last = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last.pth'));
    expect(last.step).toBeGreaterThan(0);
    const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', runDir, '--epochs', String(last.epoch + 1), '--quiet'], { encoding: 'utf8', timeout: 300_000 });
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8')).epochs).toBe(last.epoch + 1);
  }, PROCESS_TEST_MS);

  test('kill -9 while checkpoints are written: the file always holds a whole checkpoint', async () => {
    const file = path.join(dir, 'atomic.pth');
    const model = createModel('resnet18', { numClasses: 3 });
    await saveTorchFile(file, new Map([['state_dict', model.stateDict()], ['version', 0]]));
    model.dispose();
    // The child says when each write is done; it is killed once it has finished round + 1 of them,
    // so while it is under way in the next one, however fast or loaded the machine is.
    const writer = `
      const { createModel, saveTorchFile } = require(${JSON.stringify(path.join(root, 'dist', 'lib'))});
      (async () => {
        const model = createModel('resnet18', { numClasses: 3 });
        for (let i = 1; ; i++) {
          await saveTorchFile(${JSON.stringify(file)}, new Map([['state_dict', model.stateDict()], ['version', i]]));
          console.log('wrote ' + i);
        }
      })();`;
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, ['-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exit = new Promise((resolve) => child.on('exit', resolve)); // stdout is left unread after the break
      let written = 0;
      for await (const line of readline.createInterface({ input: child.stdout! })) {
        written = Number(line.split(' ')[1]);
        if (written >= round + 1) break;
      }
      child.kill('SIGKILL');
      await exit;
      expect(written).toBe(round + 1);
      const loaded = (await loadTorchFile(file)).value as Map<string, unknown>;
      expect((loaded.get('state_dict') as Map<string, unknown>).size).toBe(122);
      expect(loaded.get('version')).toBeGreaterThanOrEqual(written);
    }
  }, PROCESS_TEST_MS);

  test('kill -9 during training: --resume continues from the last checkpoint', async () => {
    const runDir = path.join(dir, 'runs', 'killed');
    // a checkpoint after every epoch; killed once last.pth has been replaced by a second one, so in
    // the middle of training (and often of a checkpoint write)
    const child = spawn(process.execPath, [...cliArgs('killed', 200), '--set', 'checkpoint_interval=0'], { stdio: 'ignore' });
    const exit = closed(child);
    const lastPth = path.join(runDir, 'checkpoints', 'last.pth');
    await waitFor(lastPth);
    const firstInode = inode(lastPth);
    await waitUntil('a second last.pth', () => inode(lastPth) !== firstInode);
    child.kill('SIGKILL');
    await exit;
    const last = await loadCheckpoint(path.join(runDir, 'checkpoints', 'last.pth'));
    const [result] = await train({ ...config({ phase: 'scratch', run_name: 'killed' }), epochs: last.epoch + 1 }, { log: () => undefined, resumeDir: runDir });
    expect(result.epochs).toBe(last.epoch + 1);
    expect(fs.readdirSync(path.join(runDir, 'checkpoints')).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, PROCESS_TEST_MS);
});

describe('the disk', () => {
  // a small tmpfs, where this process may mount one (root on Linux); skipped elsewhere
  function mount(options: string): string | undefined {
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-mnt-'));
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
    if (result.status !== 0) {
      console.log(`cannot mount a tmpfs here (${String(result.stderr).trim()}): skipping`);
      return undefined;
    }
    return target;
  }
  const unmount = (target: string) => spawnSync('umount', [target]);

  test('a read-only output folder is a clear error before training starts', async () => {
    const target = mount('ro,size=1m');
    if (!target) return;
    try {
      await expect(train(config({ phase: 'scratch', output_dir: target, run_name: 'ro' }), { log: () => undefined })).rejects.toThrow(
        /cannot (write the run folder|create).*(read-only|EROFS)/i,
      );
    } finally {
      unmount(target);
    }
  });

  test('a full disk fails at the write with a clear error, and the earlier checkpoint stays whole', async () => {
    const target = mount('size=60m');
    if (!target) return;
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
