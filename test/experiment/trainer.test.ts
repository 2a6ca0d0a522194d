// Each phase end to end on a tiny synthetic set: losses fall, frozen weights stay put, the feature
// cache equals the uncached phase, resume continues exactly, and the outputs are where they belong.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, getNumThreads, InterruptedError, manualSeed, setNumThreads, loadCheckpoint, loadWeights, readMetrics, resolveConfig, saveWeights, train, type Config, type PhaseResult } from '../../lib';
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
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('train', () => {
  test('two-stage: feature_extract on cached features, then finetune from its final weights; losses fall; frozen weights untouched', async () => {
    setNumThreads(1);
    const [fe, ft] = await train(config({ phase: 'two-stage', weights, run_name: 'two', epochs: 4, threads: 2 }), quiet);
    expect(getNumThreads()).toBe(2); // the head-only epochs ran on one thread; the phase's count is back
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
      expect(r.test.top5).toBeGreaterThanOrEqual(r.test.top1);
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

  test('the phase-1 feature cache gives the same training as the uncached phase, faster', async () => {
    const t0 = Date.now();
    const [cached] = await train(config({ phase: 'feature_extract', weights, run_name: 'cached', feature_cache: true }), quiet);
    const t1 = Date.now();
    const [plain] = await train(config({ phase: 'feature_extract', weights, run_name: 'plain', feature_cache: false }), quiet);
    const t2 = Date.now();
    expect(cached.featureCache).toBe(true);
    expect(plain.featureCache).toBe(false);
    const a = trainLosses(cached);
    const b = trainLosses(plain);
    a.forEach((loss, i) => expect(Math.abs(loss - b[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(b[i]))));
    const headA = (await loadCheckpoint(cached.checkpoints.last)).stateDict.get('fc.weight')!.toTypedArray() as Float32Array;
    const headB = (await loadCheckpoint(plain.checkpoints.last)).stateDict.get('fc.weight')!.toTypedArray() as Float32Array;
    let worst = 0;
    headA.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - headB[i]))));
    expect(worst).toBeLessThan(1e-4);
    console.log(`feature_extract, 3 epochs: cached ${t1 - t0} ms, uncached ${t2 - t1} ms (head max diff ${worst.toExponential(1)})`);
  });

  test('checkpoint_interval: last.pth only after a new best and the final epoch; best.pth is a link, not a copy', async () => {
    // frozen backbone and learning rate 0: validation (carved from the training images) never improves after epoch 1
    const written = (interval: number, name: string, validation = 2) => async () => {
      const lines: string[] = [];
      const overrides = { phase: 'feature_extract', weights, run_name: name, epochs: 4, learning_rate: 0, checkpoint_interval: interval, 'data.val_per_class': validation };
      const [result] = await train(config(overrides), { log: (l) => lines.push(l) });
      return { result, epochs: lines.filter((l) => l.includes('checkpoint:')).map((l) => Number(/epoch (\d+)/.exec(l)![1])) };
    };
    const sparse = await written(1e6, 'sparse')();
    expect(sparse.epochs).toEqual([1, 4]);
    const every = await written(0, 'every')();
    expect(every.epochs).toEqual([1, 2, 3, 4]);
    const { best, last } = sparse.result.checkpoints;
    expect((await loadCheckpoint(best)).epoch).toBe(1);
    expect((await loadCheckpoint(last)).epoch).toBe(4);
    expect(fs.statSync(best).ino).not.toBe(fs.statSync(last).ino); // last.pth was replaced, best.pth kept epoch 1
    // without a validation part nothing is "best": only the final epoch is written, and tested
    const final = await written(1e6, 'final', 0)();
    expect(final.epochs).toEqual([4]);
    expect((await loadCheckpoint(final.result.checkpoints.best)).epoch).toBe(4);
    expect(fs.statSync(final.result.checkpoints.best).ino).toBe(fs.statSync(final.result.checkpoints.last).ino);
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
