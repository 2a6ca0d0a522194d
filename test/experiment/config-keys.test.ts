// Every configuration key that changes what a run does, set once through train(resolveConfig(...))
// on a tiny synthetic set, with its effect checked against something other than the code under
// test: PyTorch replaying the head's training and the learning-rate schedules, the weights and
// optimizer state the run saved compared with the weights it was given, the split, and the image
// cache file on disk.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, DataLoader, ImageCache, EVAL_DECODE, evalTransform, getNumThreads, getRngState, loadCheckpoint, loadImageCache, loadSplitManifest, loadWeights,
  readMetrics, readResults, readSplitManifest, resolveConfig, saveCheckpoint, saveWeights, scanDataset, setNumThreads, setRngState, tensor, train,
  manualSeed, decodeImage, POLICY_OPS, Random, Transform, type Config, type DecodeOptions, type PhaseResult, type Sample, type Tensor,
} from '../../lib';
import { augmentPolicyOf } from '../../lib/experiment/phase-data';
import { roundHalfEven } from '../../lib/models/shrink';
import { loadCheckpointWeights } from '../../lib/training/checkpoint';
import { prerequisite } from '../helpers/prerequisite';
import { findTorchPython, runPython, torchPythonUnavailableReason } from '../helpers/python';
import { createSyntheticDataset, type SyntheticDataset } from '../helpers/synthetic-dataset';

const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());

let dir: string;
let data: SyntheticDataset;
/** Stand-in pretrained weights with a 3-class head whose logits are confident (so label smoothing shows). */
let weights: string;
/** The same weights as a finetorch checkpoint, for init_checkpoint. */
let initCheckpoint: string;
let savedThreads: number;
let savedRng: Tensor;

const HEAD_SCALE = 8;
const quiet = { log: () => undefined };

function config(overrides: Record<string, unknown>): Config {
  return resolveConfig({
    overrides: {
      arch: 'resnet18', weights, image_size: 32, resize: 36, batch_size: 6, epochs: 1, device: 'cpu', threads: 1,
      quiet: true, report: false, checkpoint_interval: 1e6, learning_rate: 0, finetune_lr: 0,
      'data.root': data.root, 'data.train_per_class': 5, 'data.test_per_class': 3, output_dir: path.join(dir, 'runs'), ...overrides,
    },
  });
}

function metrics(result: PhaseResult, split: 'train' | 'val' | 'test') {
  return readMetrics(path.join(result.runDir, 'logs', 'metrics.jsonl')).filter((r) => r.kind === 'metrics' && r.split === split) as Array<{
    epoch: number; loss: number; top1: number; lr: number;
  }>;
}

const trainLosses = (result: PhaseResult) => metrics(result, 'train').map((r) => r.loss);

/** A float tensor's values as bytes, in logical order (Jest's toEqual on millions of floats takes minutes). */
function bytes(t: Tensor): Buffer {
  const v = t.toTypedArray() as Float32Array;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.toTypedArray() as Float32Array;
  const y = b.toTypedArray() as Float32Array;
  expect(x.length).toBe(y.length);
  let worst = 0;
  x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - y[i]))));
  return worst;
}

/** The run's split, as the test reads it back (samples with absolute paths and labels). */
async function splitOf(result: PhaseResult, includeBackground = false) {
  const scan = await scanDataset(data.root, { includeBackground, warn: () => undefined });
  return loadSplitManifest(path.join(result.runDir, 'split.json'), scan);
}

/**
 * The backbone features of `samples` (eval decode and transform, one batch, no shuffle), computed
 * here with a fresh model loaded from the weights file: not through the run's feature cache.
 */
async function featuresOf(samples: Sample[]): Promise<number[][]> {
  const model = createModel('resnet18', { numClasses: 3 });
  try {
    await model.loadStateDict((await loadWeights(weights)).stateDict);
    model.eval();
    const { cache } = await loadImageCache(samples.map((s) => s.path), { decode: { ...EVAL_DECODE, resize: 36, centerCrop: 32 }, warn: () => undefined });
    const loader = new DataLoader(samples, { batchSize: samples.length, transform: evalTransform({ size: 32 }), cache, shuffle: false });
    const rows: number[][] = [];
    for await (const batch of loader.epoch(0)) {
      const f = await model.features(batch.images);
      const values = f.toTypedArray() as Float32Array;
      const width = f.shape[1];
      for (let i = 0; i < f.shape[0]; i++) rows.push(Array.from(values.subarray(i * width, (i + 1) * width)));
      expect(batch.labels.toArray()).toEqual(samples.map((s) => s.label));
      f.dispose();
      batch.images.dispose();
      batch.labels.dispose();
    }
    return rows;
  } finally {
    model.dispose();
  }
}

/** Writes `value` as JSON into the test folder and runs `script` on it in PyTorch; parses its JSON output. */
function python<T>(script: string, value: unknown): T {
  const file = path.join(dir, `input-${process.hrtime.bigint()}.json`);
  fs.writeFileSync(file, JSON.stringify(value));
  return JSON.parse(runPython(script, [file])) as T;
}

beforeAll(async () => {
  savedThreads = getNumThreads();
  savedRng = getRngState();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-config-keys-'));
  // three classes of 8 images, and a BACKGROUND_Google folder that only include_background brings in
  data = await createSyntheticDataset(path.join(dir, 'data'), { classes: 3, perClass: 8, size: 40, seed: 5, extras: { background: 8 } });
  manualSeed(21);
  const model = createModel('resnet18', { numClasses: 3 });
  // a head with large weights: confident logits, so smoothing the labels changes the loss a lot
  const state = model.stateDict();
  for (const key of ['fc.weight', 'fc.bias']) {
    const t = state.get(key)!;
    const scaled = Float32Array.from(t.toTypedArray() as Float32Array, (v) => v * HEAD_SCALE);
    await model.loadStateDict(new Map([[key, tensor(scaled, t.shape)]]), { strict: false });
  }
  for (const t of state.values()) t.dispose();
  weights = path.join(dir, 'pretrained-3-classes.pth');
  await saveWeights(weights, model.stateDict());
  initCheckpoint = path.join(dir, 'init', 'start.pth');
  await saveCheckpoint(initCheckpoint, { model, epoch: 0, step: 0 });
  model.dispose();
});

// train() sets the thread count from its config and leaves it so: put it back after every test
afterEach(() => setNumThreads(savedThreads));
afterAll(() => {
  setRngState(savedRng);
  savedRng.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

torch.test('optimizer, momentum, weight_decay, learning_rate and label_smoothing: the head trains on cached features exactly as PyTorch replays it', async () => {
  const settings = { optimizer: 'sgd', momentum: 0.5, weight_decay: 0.05, learning_rate: 0.05, label_smoothing: 0.3, epochs: 2 };
  const [run] = await train(config({ phase: 'feature_extract', run_name: 'replay', ...settings }), quiet);
  expect(run.featureCache).toBe(true);
  // the default data.include_background (false) leaves BACKGROUND_Google out
  const split = await splitOf(run);
  expect(split.classes).toEqual(data.classes);
  expect([split.train.length, split.val.length, split.test.length]).toEqual([15, 0, 9]);
  // report: false writes no pictures and no report.html
  expect(fs.existsSync(path.join(run.runDir, 'report.html'))).toBe(false);
  expect(fs.existsSync(path.join(run.runDir, 'pictures'))).toBe(false);

  // the batches in the order the run's loader draws them (a shuffle seeded by the config's seed, 0, per epoch)
  const orderOf = new DataLoader(split.train, { batchSize: 6, transform: evalTransform({ size: 32 }), cache: new ImageCache(), shuffle: true, seed: 0 });
  const start = (await loadWeights(weights)).stateDict;
  const replay = python<Record<string, { losses: number[]; weight: number[]; bias: number[] }>>(
    `
import json, sys, torch
d = json.load(open(sys.argv[1]))
feats = torch.tensor(d['features'], dtype=torch.float32)
labels = torch.tensor(d['labels'])
out = {}
for eps in (0.3, 0.0):
    fc = torch.nn.Linear(512, 3)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(d['weight']).view(3, 512))
        fc.bias.copy_(torch.tensor(d['bias']))
    opt = torch.optim.SGD(fc.parameters(), lr=d['lr'], momentum=d['momentum'], weight_decay=d['weight_decay'])
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=eps)
    losses = []
    for order in d['orders']:
        epoch = 0.0
        for i in range(0, len(order), d['batch']):
            idx = torch.tensor(order[i:i + d['batch']])
            opt.zero_grad()
            loss = loss_fn(fc(feats[idx]), labels[idx])
            loss.backward()
            opt.step()
            epoch += loss.item() * len(idx)
        losses.append(epoch / len(order))
    out[str(eps)] = {'losses': losses, 'weight': fc.weight.detach().flatten().tolist(), 'bias': fc.bias.detach().tolist()}
print(json.dumps(out))
`,
    {
      lr: settings.learning_rate, momentum: settings.momentum, weight_decay: settings.weight_decay, batch: 6,
      features: await featuresOf(split.train),
      labels: split.train.map((s) => s.label),
      orders: [orderOf.order(0), orderOf.order(1)],
      weight: Array.from(start.get('fc.weight')!.toTypedArray() as Float32Array),
      bias: Array.from(start.get('fc.bias')!.toTypedArray() as Float32Array),
    },
  );
  const expected = replay['0.3'];
  const losses = trainLosses(run);
  expect(losses).toHaveLength(2);
  // float32 here and in the replay: they agree to about 1e-6
  losses.forEach((loss, i) => expect(Math.abs(loss - expected.losses[i])).toBeLessThan(1e-5 * Math.max(1, expected.losses[i])));
  // label smoothing matters here: the unsmoothed replay is far from what the run logged
  expect(Math.abs(replay['0.0'].losses[0] - losses[0])).toBeGreaterThan(0.01);
  const last = await loadCheckpoint(run.checkpoints.last);
  const weight = last.stateDict.get('fc.weight')!.toTypedArray() as Float32Array;
  const bias = last.stateDict.get('fc.bias')!.toTypedArray() as Float32Array;
  let worst = 0;
  weight.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected.weight[i]))));
  bias.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected.bias[i]))));
  expect(worst).toBeLessThan(1e-5);
  // and the head did move: the replay is not trivially the starting point
  expect(maxAbsDiff(last.stateDict.get('fc.weight')!, start.get('fc.weight')!)).toBeGreaterThan(1e-3);
  // the optimizer state says the same
  const state = last.optimizer!;
  expect(state.get('type')).toBe('sgd');
  const group = (state.get('param_groups') as Array<Map<string, unknown>>)[0];
  expect([group.get('lr'), group.get('momentum'), group.get('weight_decay')]).toEqual([settings.learning_rate, settings.momentum, settings.weight_decay]);
});

torch.test('scheduler: the learning rate logged each epoch is what torch.optim.lr_scheduler gives for the same settings', async () => {
  const epochs = 6;
  // plateau: a tiny rate keeps the training accuracy flat, so the rate is cut
  const rates: Record<string, number> = { step: 0.01, cosine: 0.01, warmup_cosine: 0.01, plateau: 1e-6 };
  const runs: Record<string, PhaseResult> = {};
  for (const [scheduler, lr] of Object.entries(rates)) {
    [runs[scheduler]] = await train(config({ phase: 'feature_extract', run_name: `sched-${scheduler}`, scheduler, epochs, learning_rate: lr }), quiet);
  }
  const logged = Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, metrics(r, 'train')]));
  // The settings are the documented mapping of the config key (phases.ts schedulerConfig): step
  // every epochs/3 by 0.1; cosine over the epochs; warm-up of epochs/10 (1..5) from a third of the
  // rate, then cosine; reduce-on-plateau on the training top-1 (mode max, patience 3).
  const reference = python<Record<string, number[]>>(
    `
import json, sys, warnings, torch
from torch.optim import lr_scheduler as S
warnings.filterwarnings('ignore')
d = json.load(open(sys.argv[1]))
E = d['epochs']
out = {}
for kind, metric in d['metrics'].items():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=d['rates'][kind])
    if kind == 'step':
        s = S.StepLR(opt, step_size=max(1, E // 3), gamma=0.1)
    elif kind == 'cosine':
        s = S.CosineAnnealingLR(opt, T_max=E)
    elif kind == 'warmup_cosine':
        w = max(1, min(5, E // 10))
        s = S.SequentialLR(opt, [S.LinearLR(opt, start_factor=1 / 3, end_factor=1.0, total_iters=w), S.CosineAnnealingLR(opt, T_max=E - w)], milestones=[w])
    else:
        s = S.ReduceLROnPlateau(opt, mode='max', patience=3)
    lrs = []
    for e in range(E):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        if kind == 'plateau':
            s.step(metric[e])
        else:
            s.step()
    out[kind] = lrs
print(json.dumps(out))
`,
    { epochs, rates, metrics: Object.fromEntries(Object.entries(logged).map(([k, records]) => [k, records.map((r) => r.top1)])) },
  );
  for (const [scheduler, records] of Object.entries(logged)) {
    const expected = reference[scheduler];
    expect(records.map((r) => r.epoch)).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
    // every schedule changes the rate within these epochs (else this would not test the wiring)
    expect(new Set(expected).size).toBeGreaterThan(1);
    records.forEach((r, i) => expect(Math.abs(r.lr - expected[i])).toBeLessThanOrEqual(1e-12 * expected[0]));
  }
});

describe('feature_extract_augmentation and augmentation.*', () => {
  // Learning rate 0 and a frozen backbone in eval mode: the network is the same in every step, so
  // the training loss changes from one epoch to the next only if the images do, i.e. only if they
  // are augmented. Each run is two epochs of 15 images.
  const off = { 'augmentation.random_crop': false, 'augmentation.horizontal_flip': false, 'augmentation.color_jitter': 0 };
  async function phaseOne(name: string, overrides: Record<string, unknown>) {
    const [run] = await train(config({ phase: 'feature_extract', run_name: name, epochs: 2, ...overrides }), quiet);
    const losses = trainLosses(run);
    expect(losses).toHaveLength(2);
    return { run, losses, change: Math.abs(losses[1] - losses[0]) / losses[0] };
  }

  test('feature_extract_augmentation: phase 1 leaves the feature cache and trains on augmented images', async () => {
    const plain = await phaseOne('fea-off', { feature_extract_augmentation: false });
    expect(plain.run.featureCache).toBe(true);
    const augmented = await phaseOne('fea-on', { feature_extract_augmentation: true });
    expect(augmented.run.featureCache).toBe(false);
    // the control: the same uncached path with every augmentation off sees the same images each epoch
    const control = await phaseOne('fea-on-all-off', { feature_extract_augmentation: true, ...off });
    expect(control.run.featureCache).toBe(false);
    expect(control.change).toBeLessThan(1e-5);
    expect(plain.change).toBeLessThan(1e-5);
    expect(augmented.change).toBeGreaterThan(1e-3);
  });

  test.each([
    ['random_crop', { 'augmentation.random_crop': true }],
    ['horizontal_flip', { 'augmentation.horizontal_flip': true }],
    ['color_jitter', { 'augmentation.color_jitter': 0.4 }],
    ['random_erasing', { 'augmentation.random_erasing': 0.5 }],
    ['policy', { 'augmentation.policy': 'trivial_augment_wide' }],
  ])('augmentation.%s alone makes the epochs see different images', async (name, on) => {
    const run = await phaseOne(`aug-${name}`, { feature_extract_augmentation: true, ...off, ...on });
    expect(run.change).toBeGreaterThan(1e-3);
  });

  // MixUp/CutMix act in the phases that train the whole network: fine-tuning at rate 0 with the 15
  // training images in one batch, so BatchNorm's batch statistics and the weights are the same
  // each epoch and only the mixing can change the training loss.
  async function finetuneChange(name: string, overrides: Record<string, unknown>) {
    const [run] = await train(config({ phase: 'finetune', run_name: name, epochs: 2, batch_size: 15, ...off, ...overrides }), quiet);
    const losses = trainLosses(run);
    expect(losses).toHaveLength(2);
    return Math.abs(losses[1] - losses[0]) / losses[0];
  }

  test.each([
    ['mixup_alpha', { 'augmentation.mixup_alpha': 0.4 }],
    ['cutmix_alpha', { 'augmentation.cutmix_alpha': 1 }],
  ])('augmentation.%s alone makes the fine-tuning epochs train on different mixes', async (name, on) => {
    expect(await finetuneChange(`mix-${name}`, on)).toBeGreaterThan(1e-3);
  });

  test('the fine-tuning control: every augmentation off, the epochs train on the same batch', async () => {
    expect(await finetuneChange('mix-control', {})).toBeLessThan(1e-5);
  });

  test('augmentation.policy and rand_augment_*: the training transform draws that policy’s ops', () => {
    const sample = (overrides: Record<string, unknown>) => {
      const c = config({ ...off, ...overrides });
      const t = new Transform({ size: 32, augmentPolicy: augmentPolicyOf(c.augmentation) });
      return Array.from({ length: 200 }, (_, i) => t.sample({ width: 32, height: 32 }, new Random(i)).slice(13));
    };
    // none: no ops; TrivialAugmentWide: one; RandAugment: rand_augment_ops of them, at rand_augment_magnitude's bin
    expect(sample({}).every((block) => block[0] === 0)).toBe(true);
    expect(sample({ 'augmentation.policy': 'trivial_augment_wide' }).every((block) => block[0] === 1)).toBe(true);
    const rand = sample({ 'augmentation.policy': 'rand_augment', 'augmentation.rand_augment_ops': 3, 'augmentation.rand_augment_magnitude': 30 });
    expect(rand.every((block) => block[0] === 3)).toBe(true);
    // bin 30 of Rotate's 0-30° is 30°; of Solarize's 255-0, 0
    const rotations = rand.flatMap((b) => [1, 3, 5].filter((k) => b[k] === POLICY_OPS.indexOf('Rotate')).map((k) => Math.abs(b[k + 1])));
    expect(rotations.length).toBeGreaterThan(0);
    expect(new Set(rotations)).toEqual(new Set([30]));
    expect(sample({ 'augmentation.policy': 'auto_augment' }).some((block) => block[0] === 2)).toBe(true);
  });
});

test('init_checkpoint and head_lr: fine-tuning starts from the checkpoint given; with finetune_lr 0 only the head moves, at head_lr', async () => {
  const headLr = 0.01;
  const [run] = await train(config({ phase: 'finetune', weights: 'none', init_checkpoint: initCheckpoint, finetune_lr: 0, head_lr: headLr, run_name: 'init-head' }), quiet);
  const start = (await loadCheckpoint(initCheckpoint)).stateDict;
  const last = await loadCheckpoint(run.checkpoints.last);
  expect([...last.stateDict.keys()].sort()).toEqual([...start.keys()].sort());
  const statistics = /running_mean|running_var|num_batches_tracked/;
  const moved = [...start.keys()].filter((k) => !statistics.test(k) && !bytes(start.get(k)!).equals(bytes(last.stateDict.get(k)!)));
  // every backbone parameter is still the checkpoint's, bit for bit; the head's two moved
  expect(moved).toEqual(['fc.weight', 'fc.bias']);
  // 3 Adam steps move a weight by at most about 3 x lr, the first one by about lr
  for (const key of moved) {
    const change = maxAbsDiff(last.stateDict.get(key)!, start.get(key)!);
    expect(change).toBeGreaterThan(0.5 * headLr);
    expect(change).toBeLessThan(3 * headLr * 1.5);
  }
  // the optimizer's groups: the backbone at finetune_lr, the head at head_lr
  const optimizer = last.optimizer!;
  const names = optimizer.get('param_names') as string[];
  const groups = (optimizer.get('param_groups') as Array<Map<string, unknown>>).map((g) => ({ lr: g.get('lr'), names: (g.get('params') as number[]).map((i) => names[i]) }));
  const head = groups.find((g) => g.names.includes('fc.weight'))!;
  const backbone = groups.find((g) => g.names.includes('conv1.weight'))!;
  expect(groups).toHaveLength(2);
  expect(head).toEqual({ lr: headLr, names: ['fc.weight', 'fc.bias'] });
  expect(backbone.lr).toBe(0);
});

test('finetune_epochs: the fine-tuning stage of two-stage runs that many epochs, phase 1 runs epochs', async () => {
  const [fe, ft] = await train(config({ phase: 'two-stage', run_name: 'stages', epochs: 2, finetune_epochs: 1 }), quiet);
  expect(metrics(fe, 'train').map((r) => r.epoch)).toEqual([1, 2]);
  expect(metrics(ft, 'train').map((r) => r.epoch)).toEqual([1]);
  expect([fe.epochs, ft.epochs]).toEqual([2, 1]);
  expect((await loadCheckpoint(ft.checkpoints.last)).epoch).toBe(1);
  expect(readResults(ft.runDir).epochs).toBe(1);
});

test('data.cache_file: the first run writes the decoded images, the next reuses them, a changed image rebuilds them; quiet hides the decode lines', async () => {
  const small = await createSyntheticDataset(path.join(dir, 'cache-data'), { classes: 2, perClass: 4, size: 40, seed: 9 });
  const cacheFile = path.join(dir, 'image-cache', 'decoded');
  const onDisk = `${cacheFile}.eval-36-32`; // the eval decode: resize 36, centre crop 32
  const once = async (name: string, quietRun: boolean) => {
    const lines: string[] = [];
    const overrides = { phase: 'feature_extract', weights: 'none', run_name: name, quiet: quietRun, 'data.root': small.root, 'data.train_per_class': 2, 'data.test_per_class': 2, 'data.cache_file': cacheFile };
    await train(config(overrides), { log: (l) => lines.push(l) });
    return lines.filter((l) => l.startsWith('decoded '));
  };
  expect(fs.existsSync(onDisk)).toBe(false);
  expect(await once('cache-1', false)).toEqual([expect.stringMatching(/^decoded 8 images \(eval, decoded\)/)]);
  const written = fs.statSync(onDisk);
  expect(await once('cache-2', false)).toEqual([expect.stringMatching(/^decoded 8 images \(eval, disk\)/)]);
  expect(fs.statSync(onDisk).ino).toBe(written.ino); // read, not rewritten
  // a changed image makes the file stale: decoded again and the file replaced (quiet: no decode line)
  fs.copyFileSync(small.files[small.classes[1]][0], small.files[small.classes[0]][0]);
  expect(await once('cache-3', true)).toEqual([]);
  expect(fs.statSync(onDisk).ino).not.toBe(written.ino);
});

test('train_max_side: with random_crop the training images keep their decoded size, the shorter side capped; without it the Resize(resize) copy', async () => {
  const cacheFile = path.join(dir, 'train-max-side', 'decoded');
  /** Sizes of the training images the run decoded, read back from its cache file for that decode. */
  const trainSizes = async (name: string, overrides: Record<string, unknown>, suffix: string, decode: DecodeOptions) => {
    const [run] = await train(config({ phase: 'finetune', run_name: name, 'data.cache_file': cacheFile, ...overrides }), quiet);
    const files = (await splitOf(run)).train.map((s) => s.path);
    const back = await loadImageCache(files, { decode, cacheFile: `${cacheFile}.${suffix}`, warn: () => undefined });
    expect(back.source).toBe('disk');
    return { files, sizes: back.images.map((im) => [im!.width, im!.height]) };
  };
  // the synthetic images have a shorter side of 40: a cap of 36 reduces them, no cap keeps them
  const capped = await trainSizes('max-side-36', { train_max_side: 36 }, 'train-max36-full', { resize: null, maxShorterSide: 36, centerCrop: null });
  expect(capped.sizes.every(([w, h]) => Math.min(w, h) === 36)).toBe(true);
  const full = await trainSizes('max-side-null', { train_max_side: null }, 'train-full-full', { resize: null, centerCrop: null });
  const originals = await Promise.all(full.files.map(async (f) => decodeImage(f, { resize: null })));
  expect(full.sizes).toEqual(originals.map((im) => [im.width, im.height]));
  expect(full.sizes.every(([w, h]) => Math.min(w, h) === 40)).toBe(true);
  // random_crop off: the centre crop comes from the Resize(resize) decode, as before
  const resized = await trainSizes('max-side-no-rrc', { train_max_side: 36, 'augmentation.random_crop': false }, 'train-36-full', { resize: 36, centerCrop: null });
  expect(resized.sizes.every(([w, h]) => Math.min(w, h) === 36)).toBe(true);
});

test('data.include_background: BACKGROUND_Google becomes a class of its own', async () => {
  const [run] = await train(config({ phase: 'feature_extract', run_name: 'background', 'data.include_background': true }), quiet);
  const split = await splitOf(run, true);
  expect(split.classes).toEqual(['BACKGROUND_Google', ...data.classes]); // code-unit order: 'B' < 'S' < 'c'
  expect(split.train.filter((s) => s.label === 0).length).toBe(5);
  expect(split.train.filter((s) => s.label === 0).every((s) => s.path.includes(`${path.sep}BACKGROUND_Google${path.sep}`))).toBe(true);
  const best = await loadCheckpoint(run.checkpoints.best);
  expect(best.stateDict.get('fc.weight')!.shape).toEqual([4, 512]);
  expect((best.extra as { classes: string[] }).classes).toEqual(split.classes);
  expect(run.test.count).toBe(12);
});

test("data.protocol 'ratio' with train_ratio, val_ratio and test_ratio: each class split 4/2/2, and the validation part selects", async () => {
  const ratio = { 'data.protocol': 'ratio', 'data.train_ratio': 0.5, 'data.val_ratio': 0.25, 'data.test_ratio': 0.25 };
  const [run] = await train(config({ phase: 'feature_extract', run_name: 'ratio', ...ratio }), quiet);
  const manifest = await readSplitManifest(path.join(run.runDir, 'split.json'));
  expect(manifest.protocol.kind).toBe('ratio');
  expect(manifest.counts).toEqual({ train: 12, val: 6, test: 6 });
  for (const part of ['train', 'val', 'test'] as const) {
    const perClass = [0, 1, 2].map((label) => manifest.parts[part].filter((s) => s.label === label).length);
    expect(perClass).toEqual(part === 'train' ? [4, 4, 4] : [2, 2, 2]);
  }
  expect(run.selection).toBe('validation');
});

test("head 'conv1x1': the run's head is a 1x1 convolution", async () => {
  const [run] = await train(config({ phase: 'feature_extract', run_name: 'conv-head', head: 'conv1x1' }), quiet);
  const best = await loadCheckpoint(run.checkpoints.best);
  // the stand-in weights' linear head ([3, 512]) does not fit, so it is not loaded
  expect(best.stateDict.get('fc.weight')!.shape).toEqual([3, 512, 1, 1]);
  expect(best.stateDict.get('fc.bias')!.shape).toEqual([3]);
});

test("attention 'se': the stand-in weights load with the SE layers new, and phase 1 trains them with the head, uncached", async () => {
  const [run] = await train(config({ phase: 'feature_extract', run_name: 'se', attention: 'se', learning_rate: 1e-2 }), quiet);
  expect(run.featureCache).toBe(false);
  const best = (await loadCheckpoint(run.checkpoints.best)).stateDict;
  const given = (await loadWeights(weights)).stateDict;
  expect(best.get('layer4.1.se.fc1.weight')!.shape).toEqual([32, 512]);
  const changed = [...best.keys()].filter((k) => !k.endsWith('num_batches_tracked') && (!given.has(k) || bytes(best.get(k)!).compare(bytes(given.get(k)!)) !== 0));
  expect(changed.filter((k) => !k.includes('.se.') && !k.startsWith('fc.'))).toEqual([]);
  expect(changed.filter((k) => k.includes('.se.'))).toHaveLength(32);
});

test('amp: bf16 autocast on the CPU changes the forward pass a little', async () => {
  const off = { 'augmentation.random_crop': false, 'augmentation.horizontal_flip': false, 'augmentation.color_jitter': 0 };
  const [plain] = await train(config({ phase: 'feature_extract', run_name: 'amp-off', feature_extract_augmentation: true, ...off }), quiet);
  const [bf16] = await train(config({ phase: 'feature_extract', run_name: 'amp-on', feature_extract_augmentation: true, amp: 'bf16', ...off }), quiet);
  // the same images and weights: only the precision of the forward pass differs
  const [a, b] = [trainLosses(plain)[0], trainLosses(bf16)[0]];
  expect(Math.abs(a - b) / a).toBeGreaterThan(1e-5); // uncached epochs repeat to ~3e-8 in float32
  expect(Math.abs(a - b) / a).toBeLessThan(1e-2);
});

describe('prune.method, prune.amount and prune.steps', () => {
  // finetune_lr 0: the weights stay the pretrained ones, so each round's counts follow from the
  // amounts alone: round r removes 1 - (1 - amount)^(1/steps) of what is left, rounded as Python does
  const perRound = 1 - Math.sqrt(1 - 0.5);

  test('l1_unstructured in 2 rounds (epochs 0 and 1): every layer but the head ends at the counts of two rounds; results and checkpoint say so', async () => {
    const lines: string[] = [];
    const [run] = await train(config({ phase: 'finetune', epochs: 2, run_name: 'prune-l1', 'prune.method': 'l1_unstructured', 'prune.amount': 0.5, 'prune.steps': 2 }), { log: (l) => lines.push(l) });
    expect(lines.filter((l) => /prune: round 2\/2/.test(l))).toHaveLength(1);
    const { pruning } = readResults(run.runDir);
    expect(pruning).toMatchObject({ method: 'l1_unstructured', amount: 0.5, steps: 2, schedule: 'geometric' });
    expect(pruning!.roundAmount).toBeCloseTo(perRound, 12);
    expect(pruning!.layers.map((l) => l.module)).not.toContain('fc');
    expect(pruning!.layers).toHaveLength(20); // ResNet-18's convs: stem, 16 in blocks, 3 downsamples
    const last = await loadCheckpoint(run.checkpoints.last);
    for (const { module, sparsity } of pruning!.layers) {
      const mask = last.stateDict.get(`${module}.weight_mask`)!;
      const total = mask.shape.reduce((a, b) => a * b, 1);
      const first = roundHalfEven(perRound * total);
      const pruned = first + roundHalfEven(perRound * (total - first));
      expect({ module, zeros: (mask.toTypedArray() as Float32Array).filter((v) => v === 0).length }).toEqual({ module, zeros: pruned });
      expect(sparsity).toBeCloseTo(pruned / total, 12);
    }
    expect(pruning!.parameters.remaining).toBeLessThan(pruning!.parameters.dense);
  });

  test('l2_structured_shrink in 2 rounds: each block keeps half its inner channels; best.pth restores into a fresh model', async () => {
    const [run] = await train(config({ phase: 'finetune', epochs: 2, run_name: 'prune-shrink', 'prune.method': 'l2_structured_shrink', 'prune.amount': 0.5, 'prune.steps': 2 }), quiet);
    const { pruning } = readResults(run.runDir);
    expect(pruning!.layers.map((l) => l.sparsity)).toEqual(Array(8).fill(0.5));
    const best = await loadCheckpoint(run.checkpoints.best);
    expect(Object.values(best.channelWidths!)).toEqual([32, 32, 64, 64, 128, 128, 256, 256]);
    expect(best.stateDict.get('layer3.1.conv2.weight')!.shape).toEqual([256, 128, 3, 3]);
    const model = createModel('resnet18', { numClasses: 3 });
    await loadCheckpointWeights(best, model);
    expect(model.namedParameters().get('layer1.0.bn1.weight')!.shape).toEqual([32]);
    let count = 0;
    for (const t of model.namedParameters().values()) count += t.shape.reduce((a, b) => a * b, 1);
    expect(count).toBe(pruning!.parameters.remaining);
    model.dispose();
  });

  test('prune outside the finetune phase is a configuration error', () => {
    expect(() => config({ phase: 'feature_extract', 'prune.method': 'global_l1' })).toThrow(/prune applies to the finetune phase .* 'feature_extract'/);
    expect(() => config({ arch: 'alexnet', phase: 'finetune', 'prune.method': 'l2_structured_shrink' })).toThrow(/needs a ResNet but arch is 'alexnet'/);
  });
});
