// The training script, read top to bottom like pytorch/examples' imagenet main.py: set up data,
// model and optimizer for the phase, then train / validate / checkpoint each epoch, then test the
// best weights. Phases: feature_extract (frozen backbone, only the new head), finetune (all layers,
// small rate), scratch (random init), two-stage (feature_extract then finetune from its best).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import YAML from 'yaml';
import { ImageCache, loadImageCache } from '../data/cache';
import { scanDataset, type DatasetScan, type Sample } from '../data/caltech101';
import { EVAL_DECODE, TRAIN_DECODE } from '../data/decode';
import { DataLoader } from '../data/loader';
import { loadSplitManifest, saveSplitManifest, splitDataset, type Split } from '../data/splits';
import { evalTransform, Transform } from '../data/transforms';
import { createModel, type Model } from '../models/model';
import { loadPretrained } from '../models/weights';
import { manualSeed, resolveDevice, setCudnnBenchmark, setNumThreads } from '../runtime';
import { cat, indexSelect, Tensor } from '../tensor';
import { loadCheckpoint, restoreCheckpoint, writeCheckpoints } from '../training/checkpoint';
import { createOptimizer, type Optimizer } from '../training/optimizer';
import { createScheduler, type LrScheduler, type SchedulerConfig } from '../training/schedulers';
import { trainStep } from '../training/steps';
import { MetricsLog } from '../report/metrics-log';
import { EventWriter } from '../report/tensorboard';
import type { Config, Phase } from './config';
import { evaluate, type Evaluation, type LabelledBatches } from './evaluate';
import { AverageMeter, ProgressLine } from './meters';
import { writeRunReport } from './report';

export type SinglePhase = Exclude<Phase, 'two-stage'>;

export interface RunHooks {
  /** Progress and summaries (default: stderr unless config.quiet). */
  log?: (line: string) => void;
  /** Aborting finishes the current step, writes `last`, and rejects with InterruptedError. */
  signal?: AbortSignal;
  /** Resolves 'imagenet' weights to a local file (the CLI downloads into the torch hub cache). */
  resolveImagenetWeights?: (arch: string) => Promise<string>;
  /** Continue this run folder from its last checkpoint. */
  resumeDir?: string;
}

export interface PhaseResult {
  run: string;
  runDir: string;
  phase: SinglePhase;
  arch: string;
  epochs: number;
  wallSeconds: number;
  trainSeconds: number;
  bestValTop1: number;
  featureCache: boolean;
  test: Omit<Evaluation, 'predictions' | 'confusion'>;
  checkpoints: { best: string; last: string };
}

export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(readonly lastCheckpoint: string) {
    super(`interrupted: the current step finished and ${lastCheckpoint} was written; continue with --resume`);
  }
}

/** Runs the configured phase, or both stages of 'two-stage'. */
export async function train(config: Config, hooks: RunHooks = {}): Promise<PhaseResult[]> {
  if (config.phase !== 'two-stage') return [await runPhase({ ...config, phase: config.phase }, hooks)];
  const stamp = timestamp();
  const base = config.run_name ?? `${config.arch}-two-stage-${stamp}`;
  const first = await runPhase({ ...config, phase: 'feature_extract', run_name: `${base}.feature_extract` }, hooks);
  const second = await runPhase(
    { ...config, phase: 'finetune', run_name: `${base}.finetune`, init_checkpoint: first.checkpoints.best, epochs: config.finetune_epochs ?? config.epochs },
    hooks,
  );
  return [first, second];
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/** One phase: its own run folder with checkpoints/, logs/, config.yaml, split.json, results.json. */
export async function runPhase(config: Config & { phase: SinglePhase }, hooks: RunHooks = {}): Promise<PhaseResult> {
  const log = hooks.log ?? ((line: string) => (config.quiet ? undefined : process.stderr.write(`${line}\n`)));
  const started = Date.now();
  const threads = config.threads ?? Math.max(1, os.cpus().length);
  setNumThreads(threads);
  manualSeed(config.seed);
  const device = resolveDevice(config.device);

  // ---- run folder --------------------------------------------------------------------------
  const runDir = hooks.resumeDir ?? path.join(config.output_dir, config.run_name ?? `${config.arch}-${config.phase}-${timestamp()}`);
  const run = path.basename(runDir);
  const checkpointDir = path.join(runDir, 'checkpoints');
  const logDir = path.join(runDir, 'logs');
  prepareRunFolder(runDir, [checkpointDir, logDir]);
  fs.writeFileSync(path.join(runDir, 'config.yaml'), YAML.stringify(config));

  // ---- data ----------------------------------------------------------------------------------
  const scan = await scanDataset(config.data.root, { includeBackground: config.data.include_background, warn: log });
  const split = await chooseSplit(config, scan, runDir, log);
  const classes = split.classes;
  const validation = split.val.length > 0 ? split.val : split.test;
  log(
    `[${run}] ${config.phase} · ${config.arch} on ${device} · ${classes.length} classes · ` +
      `train ${split.train.length} / val ${split.val.length} / test ${split.test.length} images` +
      (split.val.length === 0 ? ' (validating on the test part: the protocol has no validation set)' : ''),
  );

  // ---- model ---------------------------------------------------------------------------------
  const model = createModel(config.arch, { numClasses: classes.length, head: config.head });
  await initialiseWeights(model, config, hooks, log);
  const cuda = device.startsWith('cuda');
  if (cuda) {
    await model.to(device);
    setCudnnBenchmark(true);
  }
  if (config.channels_last) await model.channelsLast(true);
  const layout = { channelsLast: config.channels_last, pinMemory: cuda };

  // ---- phase: what trains, at which rate, with which inputs ----------------------------------
  const augment = config.phase === 'feature_extract' ? config.feature_extract_augmentation : true;
  if (config.phase === 'feature_extract') {
    model.freeze({ except: [model.headPrefix] });
    model.eval(); // frozen backbone in eval mode: BatchNorm statistics and dropout fixed
  } else {
    model.unfreeze();
    model.train();
  }
  const lr = config.phase === 'finetune' ? config.finetune_lr : config.learning_rate;
  const groups = config.phase === 'finetune' && config.head_lr !== null ? [{ prefixes: [model.headPrefix], lr: config.head_lr }] : undefined;
  const optimizer = createOptimizer(model, {
    type: config.optimizer,
    lr,
    weightDecay: config.weight_decay,
    ...(config.optimizer === 'sgd' ? { momentum: config.momentum } : {}),
    groups,
  });
  const scheduler = createScheduler(optimizer, schedulerConfig(config));
  const useFeatureCache = config.phase === 'feature_extract' && config.feature_cache && !augment;

  const trainTransform = augment
    ? new Transform({
        size: config.image_size,
        randomResizedCrop: config.augmentation.random_crop,
        horizontalFlip: config.augmentation.horizontal_flip,
        colorJitter: config.augmentation.color_jitter,
        ...layout,
      })
    : evalTransform({ size: config.image_size, ...layout });
  const evalDecode = { ...EVAL_DECODE, resize: config.resize, centerCrop: config.image_size };
  const evalCache = await decodedCache(split, evalDecode, config, 'eval', log);
  const trainCache = augment ? await decodedCache(split, { ...TRAIN_DECODE, resize: config.resize }, config, 'train', log, true) : evalCache;
  const trainLoader = new DataLoader(split.train, { batchSize: config.batch_size, transform: trainTransform, cache: trainCache, shuffle: true, seed: config.seed });
  const valLoader = new DataLoader(validation, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size, ...layout }), cache: evalCache });
  const testLoader = new DataLoader(split.test, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size, ...layout }), cache: evalCache });

  // ---- resume --------------------------------------------------------------------------------
  let startEpoch = 0;
  let step = 0;
  let bestValTop1 = -1;
  const lastFile = path.join(checkpointDir, 'last.pth');
  const bestFile = path.join(checkpointDir, 'best.pth');
  if (hooks.resumeDir) {
    const checkpoint = await loadCheckpoint(lastFile);
    await restoreCheckpoint(checkpoint, { model, optimizer, scheduler });
    startEpoch = checkpoint.epoch;
    step = checkpoint.step;
    bestValTop1 = checkpoint.bestMetric ?? -1;
    log(`[${run}] resumed from ${lastFile}: epoch ${startEpoch}, step ${step}`);
  }

  // ---- phase-1 feature cache: the frozen backbone runs once per image, not once per epoch ----
  let cached: { train: CachedFeatures; val: CachedFeatures; test: CachedFeatures } | undefined;
  if (useFeatureCache) {
    const t0 = Date.now();
    const trainFeatures = await computeFeatures(model, new DataLoader(split.train, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size }), cache: evalCache }), device);
    const testFeatures = await computeFeatures(model, testLoader, device);
    const valFeatures = split.val.length > 0 ? await computeFeatures(model, valLoader, device) : testFeatures;
    cached = { train: trainFeatures, val: valFeatures, test: testFeatures };
    const images = trainFeatures.count + testFeatures.count + (valFeatures === testFeatures ? 0 : valFeatures.count);
    log(`[${run}] feature cache: ${images} images through the frozen backbone once (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    // A head step on cached features is a few MFLOP: OpenMP's fork/join costs more than the work
    // (2 cores: 50 epochs of head training took 1.55 s with 2 threads, 0.40 s with 1).
    if (device === 'cpu') setNumThreads(1);
  }
  const trainBatches = (epoch: number): LabelledBatches => (cached ? featureBatches(cached.train, trainLoader.order(epoch), config.batch_size) : onDevice(trainLoader.epoch(epoch), device));
  const valBatches = (): LabelledBatches => (cached ? featureBatches(cached.val, range(cached.val.count), config.batch_size) : onDevice(valLoader.epoch(0), device));

  // ---- train / validate / checkpoint, epoch by epoch -----------------------------------------
  const metrics = new MetricsLog(logDir);
  const events = new EventWriter(logDir);
  let trainSeconds = 0;
  // last.pth after an epoch once checkpoint_interval seconds have passed (a 45 MB write costs more
  // than a whole epoch of head training on cached features), and always after a new best (best.pth
  // is a link to it) and the final epoch
  let lastWrittenAt = Date.now();
  try {
    for (let epoch = startEpoch; epoch < config.epochs; epoch++) {
      const epochStart = Date.now();
      const losses = new AverageMeter('loss');
      const top1 = new AverageMeter('top1');
      const top5 = new AverageMeter('top5');
      const progress = new ProgressLine(`[${run}] epoch ${epoch + 1}/${config.epochs}`, trainLoader.length, { quiet: config.quiet });
      let done = 0;
      for await (const batch of trainBatches(epoch)) {
        const result = await trainStep(model, optimizer, batch.images, batch.labels, {
          labelSmoothing: config.label_smoothing,
          features: cached !== undefined,
          gradStatsBins: step % 50 === 0 ? 30 : 0,
          amp: cached ? false : config.amp,
        }).catch((error: Error) => {
          // a diverged run stops here; last.pth still holds the last good epoch
          const kept = fs.existsSync(lastFile) ? `the last good checkpoint ${lastFile} is kept` : 'no checkpoint was written yet';
          throw new Error(`training stopped at step ${step + 1} (epoch ${epoch + 1}): ${error.message}; ${kept}`);
        });
        step++;
        losses.update(result.loss, result.count);
        top1.update(result.correct1 / result.count, result.count);
        top5.update(result.correct5 / result.count, result.count);
        if (result.gradStats) {
          metrics.log({ kind: 'grad_norm', phase: config.phase, step, norms: Object.fromEntries(result.gradStats.map((s) => [s.name, s.norm])) });
          for (const s of result.gradStats) events.addHistogram(`gradients/${s.name}`, histogramOf(s), step);
        }
        batch.images.dispose();
        batch.labels.dispose();
        done++;
        const rate = top1.count / ((Date.now() - epochStart) / 1000);
        progress.update(done, { loss: losses.average.toFixed(4), top1: pct(top1.average), 'img/s': rate.toFixed(1) });
        if (hooks.signal?.aborted) {
          await writeCheckpoints(checkpointDir, { model, optimizer, scheduler, epoch, step, bestMetric: bestValTop1, config }, false);
          throw new InterruptedError(lastFile);
        }
      }
      const broken = await model.nonFinite({ trainableOnly: true });
      if (broken.length > 0) {
        const kept = fs.existsSync(lastFile) ? `the last good checkpoint ${lastFile} is kept` : 'no checkpoint was written';
        throw new Error(`training stopped at step ${step} (epoch ${epoch + 1}): ${broken.length} parameter(s) became NaN/Inf (${broken.slice(0, 3).join(', ')}…); lower the learning rate; ${kept}`);
      }
      const epochSeconds = (Date.now() - epochStart) / 1000;
      trainSeconds += epochSeconds;
      const imagesPerSecond = losses.count / epochSeconds;
      const val = await evaluate(model, valBatches(), classes, { features: cached !== undefined });
      if (config.phase === 'feature_extract') model.eval();
      progress.finish({ loss: losses.average.toFixed(4), top1: pct(top1.average), 'val top1': pct(val.top1), 'img/s': imagesPerSecond.toFixed(1) });
      const currentLr = optimizer.getLr(0);
      scheduler.step(scheduler.needsMetric ? val.top1 : undefined);
      const isBest = val.top1 > bestValTop1;
      if (isBest) bestValTop1 = val.top1;
      const due = isBest || epoch + 1 === config.epochs || (Date.now() - lastWrittenAt) / 1000 >= config.checkpoint_interval;
      if (due) {
        await writeCheckpoints(checkpointDir, { model, optimizer, scheduler, epoch: epoch + 1, step, bestMetric: bestValTop1, config, extra: { classes } }, isBest);
        lastWrittenAt = Date.now();
        log(`[${run}] checkpoint: epoch ${epoch + 1} written to last.pth${isBest ? ' (best.pth: the same file)' : ''}`);
      }
      const common = { phase: config.phase, epoch: epoch + 1, step };
      metrics.log({ ...common, split: 'train', loss: losses.average, top1: top1.average, top5: top5.average, lr: currentLr, imagesPerSecond });
      metrics.log({ ...common, split: 'val', loss: val.loss, top1: val.top1, top5: val.top5 });
      for (const [tag, value] of [
        ['loss/train', losses.average], ['loss/val', val.loss], ['top1/train', top1.average], ['top1/val', val.top1],
        ['top5/train', top5.average], ['top5/val', val.top5], ['lr', currentLr], ['images_per_second', imagesPerSecond],
      ] as const) events.addScalar(tag, value, step);
      events.flush();
    }

    // ---- test the best weights ---------------------------------------------------------------
    if (fs.existsSync(bestFile)) await model.loadStateDict((await loadCheckpoint(bestFile)).stateDict);
    else await writeCheckpoints(checkpointDir, { model, optimizer, scheduler, epoch: config.epochs, step, bestMetric: bestValTop1, config, extra: { classes } }, true);
    const test = await evaluate(model, cached ? featureBatches(cached.test, range(cached.test.count), config.batch_size) : onDevice(testLoader.epoch(0), device), classes, { features: cached !== undefined });
    metrics.log({ phase: config.phase, epoch: config.epochs, step, split: 'test', loss: test.loss, top1: test.top1, top5: test.top5 });
    const wallSeconds = (Date.now() - started) / 1000;
    const { predictions, confusion, ...summary } = test;
    const result: PhaseResult = {
      run, runDir, phase: config.phase, arch: config.arch, epochs: config.epochs, wallSeconds, trainSeconds,
      bestValTop1, featureCache: cached !== undefined, test: summary, checkpoints: { best: bestFile, last: lastFile },
    };
    fs.writeFileSync(path.join(runDir, 'results.json'), JSON.stringify({ ...result, confusion, predictions: predictions.map((p, i) => ({ ...p, file: path.relative(split.root, split.test[i].path) })) }, null, 1));
    log(`[${run}] test: top-1 ${pct(test.top1)}  top-5 ${pct(test.top5)}  mean per-class ${pct(test.meanPerClass)}  (${test.count} images, ${wallSeconds.toFixed(1)} s)`);
    if (config.report) await writeRunReport(runDir, { log });
    return result;
  } finally {
    metrics.close();
    events.close();
    if (cached) for (const part of Object.values(cached)) (part.features.dispose(), part.labels.dispose());
    setNumThreads(threads);
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * Creates the run folders and proves they can be written (a read-only or full disk fails here, not
 * after an epoch), and removes temp files a killed run left behind (its checkpoints are intact).
 */
function prepareRunFolder(runDir: string, folders: string[]): void {
  const probe = (folder: string) => {
    const file = path.join(folder, `.write-test-${process.pid}`);
    fs.writeFileSync(file, Buffer.alloc(4096));
    fs.rmSync(file);
  };
  for (const folder of folders) {
    try {
      fs.mkdirSync(folder, { recursive: true });
      probe(folder);
    } catch (error) {
      // a recursive mkdir can report ENOENT for what is really a read-only or full disk: ask the
      // nearest existing folder for the real reason
      let reason = (error as Error).message;
      let existing = path.dirname(folder);
      while (!fs.existsSync(existing)) existing = path.dirname(existing);
      try {
        probe(existing);
      } catch (real) {
        reason = (real as Error).message;
      }
      throw new Error(`cannot write the run folder ${runDir}: ${reason}`);
    }
    for (const name of fs.readdirSync(folder)) {
      if (/\.tmp-\d+/.test(name)) fs.rmSync(path.join(folder, name), { force: true });
    }
  }
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function histogramOf(stat: { min: number; max: number; histogram: Float32Array; norm: number }) {
  const bins = stat.histogram.length;
  const width = (stat.max - stat.min) / bins || 1;
  const num = stat.histogram.reduce((a, b) => a + b, 0);
  return {
    min: stat.min,
    max: stat.max,
    num,
    sum: 0,
    sumSquares: stat.norm * stat.norm,
    bucketLimits: Array.from(stat.histogram, (_, i) => stat.min + width * (i + 1)),
    buckets: Array.from(stat.histogram),
  };
}

/** The split saved with the run: reused on resume and taken over from the phase-1 run when fine-tuning. */
async function chooseSplit(config: Config, scan: DatasetScan, runDir: string, log: (line: string) => void): Promise<Split> {
  const own = path.join(runDir, 'split.json');
  const inherited = config.init_checkpoint ? path.join(path.dirname(path.dirname(config.init_checkpoint)), 'split.json') : undefined;
  for (const file of [own, inherited]) {
    if (file && fs.existsSync(file)) {
      const split = await loadSplitManifest(file, scan);
      if (file !== own) {
        await saveSplitManifest(split, own);
        log(`using the split of ${path.dirname(file)}`);
      }
      return split;
    }
  }
  const d = config.data;
  const protocol =
    d.protocol === 'per-class'
      ? ({ kind: 'per-class', trainPerClass: d.train_per_class, testPerClass: d.test_per_class, valPerClass: d.val_per_class } as const)
      : ({ kind: 'ratio', train: d.train_ratio, val: d.val_ratio, test: d.test_ratio } as const);
  const split = splitDataset(scan, protocol, config.seed);
  await saveSplitManifest(split, own);
  return split;
}

async function initialiseWeights(model: Model, config: Config, hooks: RunHooks, log: (line: string) => void): Promise<void> {
  if (config.phase === 'finetune' && config.init_checkpoint) {
    const checkpoint = await loadCheckpoint(config.init_checkpoint);
    await model.loadStateDict(checkpoint.stateDict);
    log(`weights: ${config.init_checkpoint} (the feature_extract phase's best)`);
    return;
  }
  if (config.phase === 'scratch' || config.weights === 'none') {
    log('weights: random initialisation (PyTorch defaults)');
    return;
  }
  let file = config.weights;
  if (file === 'imagenet') {
    if (!hooks.resolveImagenetWeights) throw new Error("weights 'imagenet' need a resolver (the CLI downloads them); pass a file path instead");
    file = await hooks.resolveImagenetWeights(config.arch);
  }
  const result = await loadPretrained(model, file);
  log(`weights: ${file} (${result.format})${result.skippedKeys.length ? `; new head, not loaded: ${result.skippedKeys.join(', ')}` : ''}`);
}

function schedulerConfig(config: Config): SchedulerConfig {
  const epochs = Math.max(1, config.epochs);
  switch (config.scheduler) {
    case 'step':
      return { type: 'step', stepSize: Math.max(1, Math.floor(epochs / 3)), gamma: 0.1 };
    case 'cosine':
      return { type: 'cosine', tMax: epochs };
    case 'warmup_cosine':
      return epochs >= 2 ? { type: 'warmup_cosine', warmupEpochs: Math.max(1, Math.min(5, Math.floor(epochs / 10))), tMax: epochs } : { type: 'none' };
    case 'plateau':
      return { type: 'plateau', mode: 'max', patience: 3 };
    default:
      return { type: 'none' };
  }
}

/** Decodes every image of the split once (optionally through the on-disk cache file). */
async function decodedCache(split: Split, decode: typeof EVAL_DECODE, config: Config, which: string, log: (line: string) => void, trainOnly = false): Promise<ImageCache> {
  const samples: Sample[] = trainOnly ? split.train : [...split.train, ...split.val, ...split.test];
  const cacheFile = config.data.cache_file ? `${config.data.cache_file}.${which}-${decode.resize}-${decode.centerCrop ?? 'full'}` : undefined;
  const t0 = Date.now();
  const loaded = await loadImageCache(samples.map((s) => s.path), { decode, cacheFile, warn: log });
  if (!config.quiet) log(`decoded ${samples.length} images (${which}, ${loaded.source}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return loaded.cache;
}

interface CachedFeatures {
  features: Tensor;
  labels: Tensor;
  count: number;
}

async function computeFeatures(model: Model, loader: DataLoader, device: string): Promise<CachedFeatures> {
  const features: Tensor[] = [];
  const labels: Tensor[] = [];
  for await (const batch of onDevice(loader.epoch(0), device)) {
    features.push(await model.features(batch.images));
    labels.push(batch.labels);
    batch.images.dispose();
  }
  const all = { features: await cat(features), labels: await cat(labels), count: loader.samples.length };
  for (const t of [...features, ...labels]) t.dispose();
  return all;
}

/** Batches of cached features in the given sample order (the loader's order, so cached = uncached). */
async function* featureBatches(cache: CachedFeatures, order: number[], batchSize: number): AsyncGenerator<{ images: Tensor; labels: Tensor }> {
  for (let i = 0; i < order.length; i += batchSize) {
    const index = order.slice(i, i + batchSize);
    yield { images: await indexSelect(cache.features, index), labels: await indexSelect(cache.labels, index) };
  }
}

async function* onDevice(batches: AsyncIterable<{ images: Tensor; labels: Tensor }>, device: string): AsyncGenerator<{ images: Tensor; labels: Tensor }> {
  for await (const batch of batches) {
    if (device === 'cpu') {
      yield batch;
      continue;
    }
    const images = await batch.images.to(device, undefined, { nonBlocking: true });
    batch.images.dispose();
    yield { images, labels: batch.labels };
  }
}
