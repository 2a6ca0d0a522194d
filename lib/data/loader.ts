// The batch loader: a seeded shuffle per epoch, decoding through the decode-once cache (sharp, in
// parallel), native augmentation, and several batches prepared ahead while the current one trains.
import { Tensor, tensor } from '../tensor';
import { boolean, invalid, knownKeys, nonNegativeInteger, plainObject, positiveInteger } from '../utils/validate';
import type { Sample } from './caltech101';
import { ImageCache } from './cache';
import type { DecodedImage } from './decode';
import { defaultWarn, type WarnFn } from './skipped';
import { deriveSeed, Random, validateSeed } from './random';
import type { Transform } from './transforms';

export interface LoaderOptions {
  batchSize: number;
  transform: Transform;
  /** Where decoded images live (decode settings included); one per dataset part. */
  cache: ImageCache;
  /** Reshuffle every epoch (default true when the transform is random). */
  shuffle?: boolean;
  /** Drop a last batch smaller than batchSize (default false). */
  dropLast?: boolean;
  seed?: number;
  /** Batches prepared ahead of the one being consumed (default 2). */
  prefetch?: number;
  warn?: WarnFn;
}

export interface Batch {
  /** float32 [N, 3, size, size], normalised. */
  images: Tensor;
  /** int64 [N]. */
  labels: Tensor;
  /** Indices into the loader's samples. */
  indices: number[];
  /** Which batch of the epoch this is. */
  index: number;
}

export class DataLoader {
  readonly samples: readonly Sample[];
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly prefetch: number;
  readonly transform: Transform;
  readonly cache: ImageCache;
  private readonly warn: WarnFn;
  private readonly unusable = new Set<string>();

  constructor(samples: readonly Sample[], options: LoaderOptions) {
    knownKeys('loader options', plainObject('loader options', options), ['batchSize', 'transform', 'cache', 'shuffle', 'dropLast', 'seed', 'prefetch', 'warn']);
    if (!Array.isArray(samples)) throw invalid('array of samples', 'samples', samples);
    this.samples = samples;
    this.batchSize = positiveInteger('batchSize', options.batchSize);
    if (!(options.cache instanceof ImageCache)) throw invalid('ImageCache', 'cache', options.cache);
    this.cache = options.cache;
    this.transform = options.transform;
    this.shuffle = boolean('shuffle', options.shuffle ?? options.transform.random);
    this.dropLast = boolean('dropLast', options.dropLast ?? false);
    this.seed = validateSeed('seed', options.seed ?? 0);
    this.prefetch = nonNegativeInteger('prefetch', options.prefetch ?? 2);
    this.warn = options.warn ?? defaultWarn;
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.samples.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The sample order of an epoch: a pure function of (seed, epoch). */
  order(epoch: number): number[] {
    const indices = this.samples.map((_, i) => i);
    return this.shuffle ? new Random(deriveSeed(this.seed, `order:${epoch}`)).shuffle(indices) : indices;
  }

  /**
   * The batches of one epoch, prepared `prefetch` ahead. Break out early and nothing leaks. `order`
   * (default: the epoch's own) lets a distributed sampler hand this process its part of it.
   */
  async *epoch(epoch = 0, order: readonly number[] = this.order(epoch)): AsyncGenerator<Batch> {
    const groups: number[][] = [];
    for (let i = 0; i < order.length; i += this.batchSize) {
      const group = order.slice(i, i + this.batchSize);
      if (group.length < this.batchSize && this.dropLast) break;
      groups.push(group);
    }
    const pending: Array<Promise<Batch | null>> = [];
    let next = 0;
    const fill = () => {
      while (next < groups.length && pending.length <= this.prefetch) {
        const index = next++;
        const p = this.makeBatch(groups[index], index, epoch);
        p.catch(() => undefined);
        pending.push(p);
      }
    };
    try {
      fill();
      while (pending.length > 0) {
        const batch = await pending.shift()!;
        fill();
        if (batch) yield batch;
      }
    } finally {
      // batches prepared but never consumed: free them as soon as they arrive
      for (const p of pending) p.then((b) => b && (b.images.dispose(), b.labels.dispose())).catch(() => undefined);
    }
  }

  private async makeBatch(group: number[], index: number, epoch: number): Promise<Batch | null> {
    const decoded = await Promise.all(
      group.map((i) =>
        this.cache.get(this.samples[i].path).then(
          (image) => image,
          (error: Error) => {
            // a file deleted or corrupted since the scan: skip it, say so once
            const path = this.samples[i].path;
            if (!this.unusable.has(path)) {
              this.unusable.add(path);
              this.warn(`Skipping ${path}: ${error.message}`);
            }
            return undefined;
          },
        ),
      ),
    );
    const kept = group.filter((_, k) => decoded[k] !== undefined);
    if (kept.length === 0) return null;
    const images = decoded.filter((d): d is DecodedImage => d !== undefined);
    // per-batch generator: the same numbers whatever order batches are prepared in
    const random = this.transform.random ? new Random(deriveSeed(this.seed, `augment:${epoch}:${index}`)) : undefined;
    const params = images.map((image) => this.transform.sample(image, random));
    const batchImages = await this.transform.apply(images, params, this.transform.sampleErasures(images.length, random));
    const labels = tensor(BigInt64Array.from(kept, (i) => BigInt(this.samples[i].label)), [kept.length]);
    return { images: batchImages, labels, indices: kept, index };
  }
}
