// The data of a phase: its split (saved with the run), the decoded images, and the loaders of the
// train, validation and test parts; batches moved to the training device.
import * as fs from 'fs';
import * as path from 'path';
import type { AugmentPolicyOptions } from '../data/auto-augment';
import { ImageCache, loadImageCache } from '../data/cache';
import type { DatasetScan, Sample } from '../data/caltech101';
import { EVAL_DECODE, SOURCE_TRAIN_DECODE, TRAIN_DECODE, type DecodeOptions } from '../data/decode';
import { DataLoader } from '../data/loader';
import { loadSplitManifest, saveSplitManifest, splitDataset, type Split } from '../data/splits';
import { evalTransform, Transform } from '../data/transforms';
import type { Tensor } from '../tensor';
import type { Config } from './config';
import type { PhasePlan } from './phases';

/** Memory layout of the batches: channels-last for the network, pinned for a CUDA copy. */
export interface BatchLayout {
  channelsLast: boolean;
  pinMemory: boolean;
}

export interface PhaseData {
  split: Split;
  /** Decoded at the evaluation size, for every part (the feature cache reads the train part from it too). */
  evalCache: ImageCache;
  train: DataLoader;
  /** The validation part; null when the protocol has none (then nothing is chosen by evaluation). */
  val: DataLoader | null;
  test: DataLoader;
}

/**
 * The split saved with the run: reused on resume and taken over from the phase-1 run when
 * fine-tuning. `save` false (a distributed run's other ranks) reads but never writes.
 */
export async function chooseSplit(config: Config, scan: DatasetScan, runDir: string, log: (line: string) => void, save = true): Promise<Split> {
  const own = path.join(runDir, 'split.json');
  const inherited = config.init_checkpoint ? path.join(path.dirname(path.dirname(config.init_checkpoint)), 'split.json') : undefined;
  for (const file of [own, inherited]) {
    if (file && fs.existsSync(file)) {
      const split = await loadSplitManifest(file, scan);
      if (file !== own && save) {
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
  if (save) await saveSplitManifest(split, own);
  return split;
}

/** augmentation.policy, with RandAugment's ops and magnitude (the other policies have none). */
export function augmentPolicyOf(augmentation: Config['augmentation']): AugmentPolicyOptions {
  const { policy, rand_augment_ops: numOps, rand_augment_magnitude: magnitude } = augmentation;
  return policy === 'rand_augment' ? { policy, numOps, magnitude } : { policy };
}

/** Decodes the split's images once and builds the three loaders with the phase's transforms. */
export async function loadPhaseData(split: Split, config: Config, plan: PhasePlan, layout: BatchLayout, log: (line: string) => void): Promise<PhaseData> {
  const trainTransform = plan.augment
    ? new Transform({
        size: config.image_size,
        randomResizedCrop: config.augmentation.random_crop,
        horizontalFlip: config.augmentation.horizontal_flip,
        colorJitter: config.augmentation.color_jitter,
        randomErasing: config.augmentation.random_erasing,
        augmentPolicy: augmentPolicyOf(config.augmentation),
        ...layout,
      })
    : evalTransform({ size: config.image_size, ...layout });
  const evalDecode = { ...EVAL_DECODE, resize: config.resize, centerCrop: config.image_size };
  const evalCache = await decodedCache(split, evalDecode, config, 'eval', log);
  const trainCache = plan.augment ? await decodedCache(split, trainDecode(config), config, 'train', log, true) : evalCache;
  const evalLoader = (samples: Sample[]) => new DataLoader(samples, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size, ...layout }), cache: evalCache });
  return {
    split,
    evalCache,
    train: new DataLoader(split.train, { batchSize: config.batch_size, transform: trainTransform, cache: trainCache, shuffle: true, seed: config.seed }),
    val: split.val.length > 0 ? evalLoader(split.val) : null,
    test: evalLoader(split.test),
  };
}

/**
 * The augmented training images: RandomResizedCrop cuts its box from the decoded image (shorter
 * side capped at train_max_side) and resizes once, as torchvision does on the original; without
 * it, the Resize(resize) copy the centre crop is taken from.
 */
export function trainDecode(config: Config): DecodeOptions {
  if (config.augmentation.random_crop) return { ...SOURCE_TRAIN_DECODE, maxShorterSide: config.train_max_side };
  return { ...TRAIN_DECODE, resize: config.resize };
}

/** The cache file of a decode: `<cache_file>.<which>-<resize, max<cap> or full>-<centre crop or full>`. */
export function cacheFileName(base: string, which: string, decode: DecodeOptions): string {
  const size = decode.resize ?? (decode.maxShorterSide ? `max${decode.maxShorterSide}` : 'full');
  return `${base}.${which}-${size}-${decode.centerCrop ?? 'full'}`;
}

/** Decodes every image of the split once (optionally through the on-disk cache file). */
async function decodedCache(split: Split, decode: DecodeOptions, config: Config, which: string, log: (line: string) => void, trainOnly = false): Promise<ImageCache> {
  const samples: Sample[] = trainOnly ? split.train : [...split.train, ...split.val, ...split.test];
  const cacheFile = config.data.cache_file ? cacheFileName(config.data.cache_file, which, decode) : undefined;
  const t0 = Date.now();
  const loaded = await loadImageCache(samples.map((s) => s.path), { decode, cacheFile, warn: log });
  if (!config.quiet) log(`decoded ${samples.length} images (${which}, ${loaded.source}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return loaded.cache;
}

/** Batches as the loader makes them, images moved to `device` (a non-blocking copy from pinned memory). */
export async function* onDevice(batches: AsyncIterable<{ images: Tensor; labels: Tensor }>, device: string): AsyncGenerator<{ images: Tensor; labels: Tensor }> {
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
