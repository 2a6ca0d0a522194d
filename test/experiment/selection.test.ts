// No choice is made on the test images. The same recipe is trained twice, once with every test
// evaluation the trainer sees inverted and shuffled: the checkpoints kept, the learning-rate
// schedule (reduce-on-plateau), the two-stage start and the tested weights stay the same. Without
// a validation part the final weights are tested; with one, the best epoch by validation.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCheckpoint, readMetrics, readResults, readSplitManifest, resolveConfig, train, type Config, type Evaluation, type PhaseResult } from '../../lib';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

// generous bounds for a loaded 2-core machine: each test trains four small runs
jest.setTimeout(900_000);

let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-selection-'));
  await createSyntheticDataset(path.join(dir, 'data'), { classes: 3, perClass: 10, size: 40, seed: 8 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(overrides: Record<string, unknown>): Config {
  return resolveConfig({
    overrides: {
      arch: 'resnet18', weights: 'none', image_size: 32, resize: 36, batch_size: 6, epochs: 2, device: 'cpu', quiet: true, report: false,
      threads: 1, checkpoint_interval: 1e6, scheduler: 'plateau', learning_rate: 5e-2, finetune_lr: 1e-2,
      'data.root': path.join(dir, 'data'), 'data.train_per_class': 6, 'data.test_per_class': 3, output_dir: path.join(dir, 'runs'), ...overrides,
    },
  });
}

/** The adversary: higher is worse, lower is better, and the per-image answers shuffled. */
function invert(e: Evaluation): Evaluation {
  const shuffled = [...e.predictions].reverse();
  return { ...e, top1: 1 - e.top1, top5: 1 - e.top5, meanPerClass: 1 - e.meanPerClass, loss: 100 - e.loss, predictions: shuffled };
}

/** Every float parameter and buffer of a checkpoint, with its epoch, as raw bytes per key. */
async function weightsOf(file: string): Promise<Map<string, Buffer>> {
  const { stateDict, epoch } = await loadCheckpoint(file);
  const out = new Map<string, Buffer>([['epoch', Buffer.from(String(epoch))]]);
  for (const [k, t] of stateDict) {
    if (t.dtype === 'float32') {
      const values = t.toTypedArray() as Float32Array;
      out.set(k, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    }
    t.dispose();
  }
  return out;
}

/**
 * Bit-identical weights. Compared as bytes: Jest's toEqual walks 11 million floats element by element
 * (minutes per ResNet-18), and a failure names the keys that differ instead of printing the arrays.
 */
async function expectSameWeights(fileA: string, fileB: string): Promise<void> {
  const [a, b] = [await weightsOf(fileA), await weightsOf(fileB)];
  expect([...b.keys()]).toEqual([...a.keys()]);
  const differing = [...a.keys()].filter((k) => !a.get(k)!.equals(b.get(k)!));
  expect(differing).toEqual([]);
}

function lrs(result: PhaseResult): number[] {
  return readMetrics(path.join(result.runDir, 'logs', 'metrics.jsonl'))
    .filter((r) => r.kind === 'metrics' && r.split === 'train')
    .map((r) => (r as { lr: number }).lr);
}

async function expectSameChoices(a: PhaseResult[], b: PhaseResult[]): Promise<void> {
  expect(b.map((r) => r.phase)).toEqual(a.map((r) => r.phase));
  for (let i = 0; i < a.length; i++) {
    expect(lrs(b[i])).toEqual(lrs(a[i]));
    for (const which of ['best', 'last'] as const) await expectSameWeights(b[i].checkpoints[which], a[i].checkpoints[which]);
  }
}

test('no validation part: final weights tested, and inverted test figures change no choice', async () => {
  const honest = await train(config({ phase: 'two-stage', run_name: 'honest' }), {});
  const fooled = await train(config({ phase: 'two-stage', run_name: 'fooled' }), { auditTestEvaluation: invert });
  await expectSameChoices(honest, fooled);
  for (const r of honest) {
    expect(r.selection).toBe('final');
    expect(r.bestValTop1).toBeNull();
    expect(readResults(r.runDir).selection).toBe('final');
    // the tested weights are the last epoch's
    expect((await loadCheckpoint(r.checkpoints.best)).epoch).toBe(2);
    await expectSameWeights(r.checkpoints.best, r.checkpoints.last);
    // per-epoch test figures are logged for the curves, as 'test', never as 'val'
    const held = readMetrics(path.join(r.runDir, 'logs', 'metrics.jsonl')).filter((m) => m.kind === 'metrics' && m.split !== 'train');
    expect(held.every((m) => m.kind === 'metrics' && m.split === 'test')).toBe(true);
    // the final test is the last epoch's evaluation (same weights), not a second pass
    expect((held[held.length - 1] as { top1: number }).top1).toBe(r.test.top1);
  }
  // phase 2 starts from phase 1's final weights
  const [fe, ft] = honest;
  expect(fs.readFileSync(path.join(ft.runDir, 'config.yaml'), 'utf8')).toContain(`init_checkpoint: ${fe.checkpoints.best}`);
  // the fooled run's reported test numbers are the adversary's; its weights are not
  expect(fooled[0].test.top1).toBeCloseTo(1 - honest[0].test.top1, 12);
});

test('reduce-on-plateau without a validation part steps on the training accuracy, not on the test figures', async () => {
  // six epochs: enough for ReduceLROnPlateau (patience 3) to cut the rate if fed the inverted test top-1
  const overrides = { phase: 'scratch', epochs: 6, learning_rate: 0.2 };
  const [honest] = await train(config({ ...overrides, run_name: 'plateau-honest' }), {});
  const [fooled] = await train(config({ ...overrides, run_name: 'plateau-fooled' }), { auditTestEvaluation: invert });
  await expectSameChoices([honest], [fooled]);
  expect(lrs(honest)).toHaveLength(6);
});

test('a validation part carved from the training images picks the best epoch by validation, still blind to the test part', async () => {
  const overrides = { phase: 'scratch', 'data.val_per_class': 2, epochs: 4 };
  const [honest] = await train(config({ ...overrides, run_name: 'val-honest' }), {});
  const [fooled] = await train(config({ ...overrides, run_name: 'val-fooled' }), { auditTestEvaluation: invert });
  await expectSameChoices([honest], [fooled]);
  expect(honest.selection).toBe('validation');
  const records = readMetrics(path.join(honest.runDir, 'logs', 'metrics.jsonl')).filter((m) => m.kind === 'metrics' && m.split === 'val') as Array<{ epoch: number; top1: number }>;
  expect(records).toHaveLength(4);
  const best = records.reduce((a, r) => (r.top1 > a.top1 ? r : a));
  expect((await loadCheckpoint(honest.checkpoints.best)).epoch).toBe(best.epoch);
  expect(honest.bestValTop1).toBe(best.top1);
  // 6 training images per class, 2 of them carved out to validate; the test part is untouched
  expect((await readSplitManifest(path.join(honest.runDir, 'split.json'))).counts).toEqual({ train: 12, val: 6, test: 9 });
});
