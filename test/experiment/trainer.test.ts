// Each phase end to end on a tiny synthetic set: losses fall, frozen weights stay put, the feature
// cache equals the uncached phase, resume continues exactly, and the outputs are where they belong.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, DataLoader, EVAL_DECODE, evalTransform, getNumThreads, InterruptedError, loadCheckpoint, loadImageCache, loadSplitManifest, loadWeights, manualSeed,
  readMetrics, resolveConfig, saveWeights, scanDataset, setNumThreads, train, type Config, type PhaseResult,
} from '../../lib';
import { planPhase } from '../../lib/experiment/phases';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

let dir: string;
let weights: string;
const quiet = { log: () => undefined };

function config(overrides: Record<string, unknown>): Config {
  return resolveConfig({
    overrides: {
      arch: 'resnet18', image_size: 32, resize: 36, batch_size: 8, epochs: 3, device: 'cpu', quiet: true,
      'data.root': path.join(dir, 'data'), 'data.train_per_class': 8, 'data.test_per_class': 4, output_dir: path.join(dir, 'runs'),
      learning_rate: 5e-3, finetune_lr: 1e-3, ...overrides,
    },
  });
}

function trainLosses(result: PhaseResult): number[] {
  return readMetrics(path.join(result.runDir, 'logs', 'metrics.jsonl'))
    .filter((r) => r.kind === 'metrics' && r.split === 'train')
    .map((r) => (r as { loss: number }).loss);
}

/**
 * The run's test figures computed again by another path: best.pth loaded into a fresh model, the
 * split's test images decoded and transformed here, the whole network run on them (not the feature
 * cache), and top-1, top-5, mean per-class accuracy and the loss counted by hand from the logits.
 */
async function independentTest(r: PhaseResult) {
  const { stateDict, extra } = await loadCheckpoint(r.checkpoints.best);
  const classes = (extra as { classes: string[] }).classes;
  const model = createModel('resnet18', { numClasses: classes.length });
  try {
    await model.loadStateDict(stateDict);
    model.eval();
    const split = await loadSplitManifest(path.join(r.runDir, 'split.json'), await scanDataset(path.join(dir, 'data'), { warn: () => undefined }));
    const { cache } = await loadImageCache(split.test.map((s) => s.path), { decode: { ...EVAL_DECODE, resize: 36, centerCrop: 32 }, warn: () => undefined });
    const loader = new DataLoader(split.test, { batchSize: split.test.length, transform: evalTransform({ size: 32 }), cache, shuffle: false });
    let top1 = 0;
    let top5 = 0;
    let loss = 0;
    const hits = classes.map(() => ({ correct: 0, count: 0 }));
    for await (const batch of loader.epoch(0)) {
      const logits = await model.forward(batch.images);
      const values = logits.toTypedArray() as Float32Array;
      batch.labels.toArray().forEach((label, i) => {
        const row = Array.from(values.subarray(i * classes.length, (i + 1) * classes.length));
        const rank = row.filter((v) => v > row[label]).length;
        const max = Math.max(...row);
        loss += Math.log(row.reduce((sum, v) => sum + Math.exp(v - max), 0)) - (row[label] - max);
        if (rank === 0) top1++;
        if (rank < 5) top5++;
        hits[label].count++;
        if (rank === 0) hits[label].correct++;
      });
      logits.dispose();
      batch.images.dispose();
      batch.labels.dispose();
    }
    const n = split.test.length;
    const present = hits.filter((h) => h.count > 0);
    return { count: n, top1: top1 / n, top5: top5 / n, loss: loss / n, meanPerClass: present.reduce((s, h) => s + h.correct / h.count, 0) / present.length };
  } finally {
    model.dispose();
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-trainer-'));
  await createSyntheticDataset(path.join(dir, 'data'), { classes: 4, perClass: 12, size: 40, seed: 3 });
  // stand-in pretrained weights with a 1000-class head, like torchvision's (seeded: the same weights
  // whatever ran before in this process)
  manualSeed(11);
  const model = createModel('resnet18');
  weights = path.join(dir, 'resnet18-pretrained.pth');
  await saveWeights(weights, model.stateDict());
  model.dispose();
});
// train() and the first test set the thread count: put the file's starting count back after each test
const startThreads = getNumThreads();
afterEach(() => setNumThreads(startThreads));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('train', () => {
  test('two-stage: feature_extract on cached features, then finetune from its final weights; losses fall; frozen weights untouched', async () => {
    setNumThreads(3);
    const [fe, ft] = await train(config({ phase: 'two-stage', weights, run_name: 'two', epochs: 4, threads: 2 }), quiet);
    // the phases ran on 2 threads (the head-only epochs on 1); the caller's count is put back
    expect(getNumThreads()).toBe(3);
    expect(fe.phase).toBe('feature_extract');
    expect(fe.featureCache).toBe(true);
    expect(ft.phase).toBe('finetune');
    for (const r of [fe, ft]) {
      const losses = trainLosses(r);
      expect(losses).toHaveLength(4);
      // 32 augmented images in batches of 8 make single epochs noisy: compare the last two with the first
      expect((losses[2] + losses[3]) / 2).toBeLessThan(losses[0]);
      for (const f of ['checkpoints/best.pth', 'checkpoints/last.pth', 'config.yaml', 'split.json', 'results.json', 'logs/metrics.jsonl']) {
        expect(fs.existsSync(path.join(r.runDir, f))).toBe(true);
      }
      expect(fs.readdirSync(path.join(r.runDir, 'logs')).some((f) => f.startsWith('events.out.tfevents.'))).toBe(true);
    }
    // the reported test figures are those of the weights in best.pth, recomputed by another path
    // (for feature_extract the run tested on cached features; here the whole network runs)
    for (const r of [fe, ft]) {
      const expected = await independentTest(r);
      expect(r.test.count).toBe(expected.count);
      expect(r.test.top1).toBe(expected.top1);
      expect(r.test.top5).toBe(expected.top5);
      expect(r.test.meanPerClass).toBeCloseTo(expected.meanPerClass, 12);
      expect(Math.abs(r.test.loss - expected.loss)).toBeLessThan(1e-4 * Math.max(1, expected.loss));
    }
    // the backbone after feature_extract is bit-identical to the pretrained file
    const after = (await loadCheckpoint(fe.checkpoints.best)).stateDict;
    const source = (await loadWeights(weights)).stateDict;
    for (const [name, t] of after) {
      if (name.startsWith('fc.')) continue;
      expect(Buffer.from(t.native.toBytes()).equals(source.get(name)!.native.toBytes())).toBe(true);
    }
    expect(Buffer.from(after.get('fc.weight')!.native.toBytes()).length).toBe(4 * 512 * 4);
    // every run ends with pictures and a self-contained report
    for (const picture of ['loss.png', 'accuracy.png', 'confusion.png', 'tsne.png', 'gradient-norms.png']) {
      expect(fs.statSync(path.join(ft.runDir, 'pictures', picture)).size).toBeGreaterThan(1000);
    }
    const html = fs.readFileSync(path.join(ft.runDir, 'report.html'), 'utf8');
    expect(html).toContain('data:image/png;base64,');
    expect(html).toContain('fine-tuning (all layers)');
    // finetune used the same split as feature_extract
    expect(fs.readFileSync(path.join(ft.runDir, 'split.json'), 'utf8')).toBe(fs.readFileSync(path.join(fe.runDir, 'split.json'), 'utf8'));
  });

  test('MixUp + CutMix + RandomErasing (finetune): the run completes and reports accuracy; the draws are seeded and change training; phase 1 never mixes', async () => {
    const mixing = { 'augmentation.mixup_alpha': 0.2, 'augmentation.cutmix_alpha': 1, 'augmentation.random_erasing': 0.25, label_smoothing: 0.1 };
    const run = async (name: string, overrides: Record<string, unknown>) => {
      const [r] = await train(config({ phase: 'finetune', weights, epochs: 2, report: false, run_name: name, ...overrides }), quiet);
      return r;
    };
    const mixed = await run('mix-a', mixing);
    const again = await run('mix-b', mixing);
    const plain = await run('mix-off', {});
    const train1 = readMetrics(path.join(mixed.runDir, 'logs', 'metrics.jsonl')).filter((r) => r.kind === 'metrics' && r.split === 'train') as Array<{ top1: number; loss: number }>;
    expect(train1).toHaveLength(2);
    for (const r of train1) expect(r.top1 >= 0 && r.top1 <= 1 && Number.isFinite(r.loss)).toBe(true);
    expect(mixed.test.count).toBe(16);
    expect(mixed.test.top1 >= 0 && mixed.test.top1 <= 1).toBe(true);
    console.log(`mixed finetune: train top-1 ${train1.map((r) => r.top1.toFixed(3)).join(', ')} (dominant label), test top-1 ${mixed.test.top1.toFixed(3)}; unmixed test top-1 ${plain.test.top1.toFixed(3)}`);
    expect(trainLosses(again)).toEqual(trainLosses(mixed));
    expect(trainLosses(plain)).not.toEqual(trainLosses(mixed));
    const phase1 = resolveConfig({ overrides: { ...mixing, phase: 'feature_extract', feature_extract_augmentation: true } });
    expect(planPhase({ ...phase1, phase: 'feature_extract' }).mixBatches).toBe(false);
    expect(planPhase({ ...phase1, phase: 'scratch' }).mixBatches).toBe(true);
  });

  test('the phase-1 feature cache runs the backbone once and gives the same training as the uncached phase', async () => {
    const logged = async (overrides: Record<string, unknown>) => {
      const lines: string[] = [];
      const [result] = await train(config({ phase: 'feature_extract', weights, ...overrides }), { log: (l) => lines.push(l) });
      return { result, cacheLines: lines.filter((l) => l.includes('feature cache:')) };
    };
    const { result: cached, cacheLines } = await logged({ run_name: 'cached', feature_cache: true });
    const { result: plain, cacheLines: none } = await logged({ run_name: 'plain', feature_cache: false });
    expect(cached.featureCache).toBe(true);
    expect(plain.featureCache).toBe(false);
    // 32 training + 16 test images, each through the frozen backbone once for the whole phase
    expect(cacheLines).toEqual([expect.stringMatching(/feature cache: 48 images through the frozen backbone once/)]);
    expect(none).toEqual([]);
    const a = trainLosses(cached);
    const b = trainLosses(plain);
    a.forEach((loss, i) => expect(Math.abs(loss - b[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(b[i]))));
    const headA = (await loadCheckpoint(cached.checkpoints.last)).stateDict.get('fc.weight')!.toTypedArray() as Float32Array;
    const headB = (await loadCheckpoint(plain.checkpoints.last)).stateDict.get('fc.weight')!.toTypedArray() as Float32Array;
    let worst = 0;
    headA.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - headB[i]))));
    expect(worst).toBeLessThan(1e-4);
  });

  test('checkpoint_interval: last.pth only after a new best and the final epoch; best.pth is a link, not a copy', async () => {
    // frozen backbone and learning rate 0: validation (carved from the training images) never improves after epoch 1
    const written = (interval: number, name: string, validation = 2) => async () => {
      const checkpoints = path.join(dir, 'runs', name, 'checkpoints');
      // the files as each checkpoint line is logged, i.e. right after that epoch's write
      const files: Array<{ epoch: number; last: fs.Stats; best: fs.Stats | null }> = [];
      const log = (l: string) => {
        if (!l.includes('checkpoint:')) return;
        const best = path.join(checkpoints, 'best.pth');
        files.push({ epoch: Number(/epoch (\d+)/.exec(l)![1]), last: fs.statSync(path.join(checkpoints, 'last.pth')), best: fs.existsSync(best) ? fs.statSync(best) : null });
      };
      const overrides = { phase: 'feature_extract', weights, run_name: name, epochs: 4, learning_rate: 0, checkpoint_interval: interval, 'data.val_per_class': validation };
      const [result] = await train(config(overrides), { log });
      return { result, files, epochs: files.map((f) => f.epoch) };
    };
    const sparse = await written(1e6, 'sparse')();
    expect(sparse.epochs).toEqual([1, 4]);
    const every = await written(0, 'every')();
    expect(every.epochs).toEqual([1, 2, 3, 4]);
    const { best, last } = sparse.result.checkpoints;
    // epoch 1, the best: best.pth is last.pth itself, one file with two names (a hard link, not a copy)
    const [atBest, atEnd] = sparse.files;
    expect(atBest.best!.ino).toBe(atBest.last.ino);
    expect(atBest.last.nlink).toBe(2);
    // epoch 4, not a better one: last.pth is a new file; best.pth is still epoch 1's file, untouched
    expect(atEnd.last.ino).not.toBe(atBest.last.ino);
    expect(atEnd.best!.ino).toBe(atBest.last.ino);
    expect([atEnd.last.nlink, atEnd.best!.nlink]).toEqual([1, 1]);
    expect(fs.statSync(best).ino).toBe(atBest.last.ino);
    expect((await loadCheckpoint(best)).epoch).toBe(1);
    expect((await loadCheckpoint(last)).epoch).toBe(4);
    // without a validation part nothing is "best": only the final epoch is written, and tested; best.pth is that file
    const final = await written(1e6, 'final', 0)();
    expect(final.epochs).toEqual([4]);
    expect((await loadCheckpoint(final.result.checkpoints.best)).epoch).toBe(4);
    expect(final.files[0].best!.ino).toBe(final.files[0].last.ino);
    expect(fs.statSync(final.result.checkpoints.best).ino).toBe(fs.statSync(final.result.checkpoints.last).ino);
    expect(fs.statSync(final.result.checkpoints.last).nlink).toBe(2);
  });

  test('resume continues exactly where the run stopped', async () => {
    const [straight] = await train(config({ phase: 'scratch', weights: 'none', run_name: 'straight', epochs: 2 }), quiet);
    const short = config({ phase: 'scratch', weights: 'none', run_name: 'resumed', epochs: 1 });
    const [first] = await train(short, quiet);
    const [resumed] = await train({ ...short, epochs: 2 }, { ...quiet, resumeDir: first.runDir });
    expect(trainLosses(resumed)).toEqual(trainLosses(straight));
    const a = (await loadCheckpoint(straight.checkpoints.last)).stateDict.get('fc.weight')!.native.toBytes();
    const b = (await loadCheckpoint(resumed.checkpoints.last)).stateDict.get('fc.weight')!.native.toBytes();
    expect(Buffer.from(a).equals(b)).toBe(true);
  });

  test('an abort finishes the current step, writes last.pth and rejects with InterruptedError', async () => {
    const controller = new AbortController();
    controller.abort();
    const run = train(config({ phase: 'scratch', weights: 'none', run_name: 'aborted' }), { ...quiet, signal: controller.signal });
    await expect(run).rejects.toThrow(InterruptedError);
    const last = path.join(dir, 'runs', 'aborted', 'checkpoints', 'last.pth');
    expect((await loadCheckpoint(last)).step).toBe(1);
  });

  test('a missing dataset root is a clear error before any training', async () => {
    await expect(train(config({ phase: 'scratch', weights: 'none', 'data.root': path.join(dir, 'nowhere'), run_name: 'nodata' }), quiet)).rejects.toThrow(/nowhere/);
  });
});
