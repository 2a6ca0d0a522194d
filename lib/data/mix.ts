// Batch-level MixUp and CutMix as torchvision's references/classification/transforms.py
// (RandomMixup, RandomCutmix with p=1, under RandomChoice when both are on) apply them to a
// collated training batch: the partner of image i is image i - 1 (batch.roll(1, 0)), lam ~ Beta(alpha,
// alpha), and the targets become lam * onehot(y) + (1 - lam) * onehot(y.roll(1)). The draws are made
// here with a seeded Random; the pixels are mixed natively, in place, with the same libtorch ops.
import { native } from '../../binding';
import { Tensor, validateLabels } from '../tensor';
import { invalid, knownKeys, numberInRange, plainObject, positiveInteger } from '../utils/validate';
import type { Random } from './random';

export interface BatchMixOptions {
  /** MixUp's Beta(alpha, alpha) (0: off). torchvision's recipes use 0.2. */
  mixupAlpha?: number;
  /** CutMix's Beta(alpha, alpha) (0: off). torchvision's recipes use 1.0. */
  cutmixAlpha?: number;
  numClasses: number;
}

/** One batch's draw: MixUp (no box) or CutMix (the pasted region, lam already corrected to its area). */
export interface MixDraw {
  kind: 'mixup' | 'cutmix';
  lam: number;
  /** CutMix: [x1, y1, x2, y2], the region [y1, y2) x [x1, x2) taken from the partner image. */
  box: [number, number, number, number] | null;
}

export class BatchMix {
  readonly mixupAlpha: number;
  readonly cutmixAlpha: number;
  readonly numClasses: number;

  constructor(options: BatchMixOptions) {
    knownKeys('batch mix options', plainObject('batch mix options', options), ['mixupAlpha', 'cutmixAlpha', 'numClasses']);
    this.mixupAlpha = numberInRange('mixupAlpha', options.mixupAlpha ?? 0, 0, 1e6);
    this.cutmixAlpha = numberInRange('cutmixAlpha', options.cutmixAlpha ?? 0, 0, 1e6);
    this.numClasses = positiveInteger('numClasses', options.numClasses);
  }

  /** Whether any mixing is on. */
  get enabled(): boolean {
    return this.mixupAlpha > 0 || this.cutmixAlpha > 0;
  }

  /** Chooses MixUp or CutMix (one half each when both are on), then draws lam and, for CutMix, the box. */
  sample(width: number, height: number, random: Random): MixDraw {
    if (!this.enabled) throw new Error('Expected mixupAlpha or cutmixAlpha above 0 but both are 0');
    positiveInteger('width', width);
    positiveInteger('height', height);
    const mixup = this.mixupAlpha > 0 && (this.cutmixAlpha === 0 || random.next() < 0.5);
    if (mixup) return { kind: 'mixup', lam: random.beta(this.mixupAlpha, this.mixupAlpha), box: null };
    const lam = random.beta(this.cutmixAlpha, this.cutmixAlpha);
    return cutmixBox(lam, width, height, random.int(width), random.int(height));
  }

  /**
   * Mixes the batch's images in place (NCHW shape, any memory layout, any device) and returns them
   * with the soft targets [N, numClasses] (float32, on the labels' device). Label smoothing, when
   * configured, is the loss's business (as in torchvision's reference, where the loss smooths).
   */
  async apply(images: Tensor, labels: Tensor, draw: MixDraw): Promise<{ images: Tensor; targets: Tensor }> {
    if (!(images instanceof Tensor)) throw invalid('Tensor', 'images', images);
    if (images.shape.length !== 4 || !images.dtype.startsWith('float')) {
      throw new TypeError(`Expected images of shape [N, C, H, W] and a float dtype but received [${images.shape.join(', ')}] ${images.dtype}`);
    }
    validateLabels(labels, images.shape[0], this.numClasses);
    const lam = numberInRange('lam', draw?.lam, 0, 1);
    const [height, width] = images.shape.slice(2);
    if (draw.box !== null) {
      const [x1, y1, x2, y2] = Array.isArray(draw.box) && draw.box.length === 4 ? draw.box : [NaN, NaN, NaN, NaN];
      if (![x1, y1, x2, y2].every(Number.isInteger) || !(x1 >= 0 && y1 >= 0 && x1 <= x2 && y1 <= y2 && x2 <= width && y2 <= height)) {
        throw invalid(`box [x1, y1, x2, y2] of integers inside ${width}x${height}`, 'box', draw.box);
      }
    }
    const targets = await native().mixBatch(images.native, labels.native, { numClasses: this.numClasses, lam, box: draw.box });
    return { images, targets: new Tensor(targets) };
  }
}

/**
 * RandomCutmix's box around the centre (rx, ry): half sides int(r * W) and int(r * H) with
 * r = 0.5 * sqrt(1 - lam), clamped to the image; lam becomes 1 - box area / (W * H).
 */
export function cutmixBox(lam: number, width: number, height: number, rx: number, ry: number): MixDraw {
  const r = 0.5 * Math.sqrt(1 - lam);
  const halfWidth = Math.trunc(r * width);
  const halfHeight = Math.trunc(r * height);
  const x1 = Math.max(rx - halfWidth, 0);
  const y1 = Math.max(ry - halfHeight, 0);
  const x2 = Math.min(rx + halfWidth, width);
  const y2 = Math.min(ry + halfHeight, height);
  return { kind: 'cutmix', lam: 1 - ((x2 - x1) * (y2 - y1)) / (width * height), box: [x1, y1, x2, y2] };
}
