// torchvision-style transforms for batches: random parameters are drawn here with a seeded
// generator (so a run is reproducible whatever the prefetch order), the pixel work is native.
import * as os from 'os';
import { native } from '../../binding';
import { Tensor } from '../tensor';
import { boolean, integerInRange, invalid, knownKeys, numberInRange, plainObject, positiveInteger } from '../utils/validate';
import { AugmentPolicy, encodePolicySteps, POLICY_PARAMS, type AugmentPolicyName, type AugmentPolicyOptions } from './auto-augment';
import type { DecodedImage } from './decode';
import type { Random } from './random';

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];
const BASE_PARAMS = 13;
const PARAMS_PER_IMAGE = BASE_PARAMS + POLICY_PARAMS;

export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

export interface TransformOptions {
  /** Output side (default 224). */
  size?: number;
  /** RandomResizedCrop with torchvision's defaults (scale 0.08-1, ratio 3/4-4/3), or custom ranges. */
  randomResizedCrop?: boolean | { scale?: [number, number]; ratio?: [number, number] };
  /** RandomCrop of `size` from the (shorter side S) training image; ignored with randomResizedCrop. */
  randomCrop?: boolean;
  /** Horizontal flip with probability 0.5 (true) or the given probability. */
  horizontalFlip?: boolean | number;
  /** ColorJitter: one number for brightness/contrast/saturation (e.g. 0.1), or each one (and hue). */
  colorJitter?: number | ColorJitterOptions;
  /**
   * torchvision's RandomErasing after Normalize (value 0): the probability per image (e.g. 0.25),
   * or the probability with its own area scale (default 0.02-0.33) and aspect ratio (0.3-3.3).
   */
  randomErasing?: number | RandomErasingOptions;
  /** TrivialAugmentWide, RandAugment or AutoAugment (ImageNet policy) after the crop and flip, before ColorJitter. */
  augmentPolicy?: AugmentPolicyName | AugmentPolicyOptions;
  mean?: [number, number, number];
  std?: [number, number, number];
  /** Lay the batch out channels-last in memory (same NCHW shape). */
  channelsLast?: boolean;
  /** Page-locked batches (when CUDA is available) for asynchronous copies to the GPU. */
  pinMemory?: boolean;
  /**
   * Threads preparing one batch. Default 1 (training on the CPU needs the cores; batches already
   * overlap on libuv's pool); with pinMemory (a GPU to feed) every core.
   */
  threads?: number;
}

export interface RandomErasingOptions {
  probability: number;
  scale?: [number, number];
  ratio?: [number, number];
}

interface ResolvedJitter {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

export class Transform {
  readonly size: number;
  readonly randomResizedCrop: { scale: [number, number]; ratio: [number, number] } | null;
  readonly randomCrop: boolean;
  readonly flipProbability: number;
  readonly jitter: ResolvedJitter;
  /** RandomErasing (probability 0: off). */
  readonly erasing: { probability: number; scale: [number, number]; ratio: [number, number] };
  readonly augmentPolicy: AugmentPolicy;
  readonly mean: [number, number, number];
  readonly std: [number, number, number];
  readonly channelsLast: boolean;
  readonly pinMemory: boolean;
  readonly threads: number;

  constructor(options: TransformOptions = {}) {
    knownKeys('transform options', plainObject('transform options', options), [
      'size', 'randomResizedCrop', 'randomCrop', 'horizontalFlip', 'colorJitter', 'augmentPolicy', 'randomErasing', 'mean', 'std', 'channelsLast', 'pinMemory', 'threads',
    ]);
    this.size = positiveInteger('size', options.size ?? 224);
    const rrc = options.randomResizedCrop ?? false;
    if (rrc === false) this.randomResizedCrop = null;
    else {
      const custom = rrc === true ? {} : plainObject('randomResizedCrop', rrc);
      const scale = (custom.scale ?? [0.08, 1]) as [number, number];
      const ratio = (custom.ratio ?? [3 / 4, 4 / 3]) as [number, number];
      if (!Array.isArray(scale) || scale.length !== 2 || !(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) {
        throw invalid('[min, max] with 0 < min <= max <= 1', 'randomResizedCrop.scale', scale);
      }
      if (!Array.isArray(ratio) || ratio.length !== 2 || !(ratio[0] > 0 && ratio[0] <= ratio[1])) {
        throw invalid('[min, max] with 0 < min <= max', 'randomResizedCrop.ratio', ratio);
      }
      this.randomResizedCrop = { scale, ratio };
    }
    this.randomCrop = boolean('randomCrop', options.randomCrop ?? false);
    const flip = options.horizontalFlip ?? false;
    this.flipProbability = typeof flip === 'boolean' ? (flip ? 0.5 : 0) : numberInRange('horizontalFlip', flip, 0, 1);
    const jitter = options.colorJitter ?? 0;
    if (typeof jitter === 'number') {
      numberInRange('colorJitter', jitter, 0, 1);
      this.jitter = { brightness: jitter, contrast: jitter, saturation: jitter, hue: 0 };
    } else {
      const j = plainObject('colorJitter', jitter);
      knownKeys('colorJitter', j, ['brightness', 'contrast', 'saturation', 'hue']);
      this.jitter = {
        brightness: numberInRange('colorJitter.brightness', jitter.brightness ?? 0, 0, 1),
        contrast: numberInRange('colorJitter.contrast', jitter.contrast ?? 0, 0, 1),
        saturation: numberInRange('colorJitter.saturation', jitter.saturation ?? 0, 0, 1),
        hue: numberInRange('colorJitter.hue', jitter.hue ?? 0, 0, 0.5),
      };
    }
    this.erasing = resolveErasing(options.randomErasing ?? 0);
    const policy = options.augmentPolicy ?? 'none';
    this.augmentPolicy = new AugmentPolicy(typeof policy === 'string' ? { policy } : policy);
    this.mean = options.mean ?? IMAGENET_MEAN;
    this.std = options.std ?? IMAGENET_STD;
    this.channelsLast = boolean('channelsLast', options.channelsLast ?? false);
    this.pinMemory = boolean('pinMemory', options.pinMemory ?? false);
    this.threads = integerInRange('threads', options.threads ?? (this.pinMemory ? os.availableParallelism() : 1), 1, 1024);
  }

  /** True when the transform draws random numbers (training augmentation). */
  get random(): boolean {
    const j = this.jitter;
    return (
      this.randomResizedCrop !== null || this.randomCrop || this.flipProbability > 0 || j.brightness + j.contrast + j.saturation + j.hue > 0 ||
      this.augmentPolicy.active || this.erasing.probability > 0
    );
  }

  /** The 22 native parameters for one image: crop box, flip, jitter factors and their order, the policy's ops. */
  sample(image: { width: number; height: number }, random?: Random): number[] {
    const { width, height } = image;
    if (this.random && !random) throw new Error('this transform is random: pass a seeded Random');
    let crop: [number, number, number, number];
    if (this.randomResizedCrop) crop = this.resizedCropBox(width, height, random!);
    else if (this.randomCrop && width >= this.size && height >= this.size) {
      crop = [random!.int(width - this.size + 1), random!.int(height - this.size + 1), this.size, this.size];
    } else crop = centerBox(width, height, this.size);
    const flip = this.flipProbability > 0 && random!.next() < this.flipProbability ? 1 : 0;
    const j = this.jitter;
    // torchvision's ColorJitter.get_params: a random order, then each factor
    const order = j.brightness + j.contrast + j.saturation + j.hue > 0 ? random!.shuffle([0, 1, 2, 3]) : [0, 1, 2, 3];
    const factor = (amount: number) => (amount > 0 ? random!.uniform(Math.max(0, 1 - amount), 1 + amount) : 1);
    const brightness = factor(j.brightness);
    const contrast = factor(j.contrast);
    const saturation = factor(j.saturation);
    const hue = j.hue > 0 ? random!.uniform(-j.hue, j.hue) : 0;
    // the policy's ops see the output image (drawn last, so runs without a policy draw as before)
    const policy = this.augmentPolicy.active ? encodePolicySteps(this.augmentPolicy.sample({ width: this.size, height: this.size }, random!)) : encodePolicySteps([]);
    return [...crop, flip, brightness, contrast, saturation, hue, ...order, ...policy];
  }

  /** torchvision's RandomResizedCrop.get_params: 10 tries at a random area and aspect, then a centre fallback. */
  private resizedCropBox(width: number, height: number, random: Random): [number, number, number, number] {
    const area = width * height;
    const { scale, ratio } = this.randomResizedCrop!;
    const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = area * random.uniform(scale[0], scale[1]);
      const aspect = Math.exp(random.uniform(logRatio[0], logRatio[1]));
      const w = roundHalfEven(Math.sqrt(targetArea * aspect));
      const h = roundHalfEven(Math.sqrt(targetArea / aspect));
      if (w > 0 && h > 0 && w <= width && h <= height) return [random.int(width - w + 1), random.int(height - h + 1), w, h];
    }
    const inRatio = width / height;
    let w: number;
    let h: number;
    if (inRatio < ratio[0]) {
      w = width;
      h = roundHalfEven(w / ratio[0]);
    } else if (inRatio > ratio[1]) {
      h = height;
      w = roundHalfEven(h * ratio[1]);
    } else {
      w = width;
      h = height;
    }
    return [Math.floor((width - w) / 2), Math.floor((height - h) / 2), w, h];
  }

  /**
   * RandomErasing's boxes for a batch of `count` images (x, y, width, height each; width 0 keeps the
   * image whole), drawn after the other parameters so turning it on leaves the crops as they were;
   * null when erasing is off.
   */
  sampleErasures(count: number, random?: Random): Int32Array | null {
    if (this.erasing.probability === 0) return null;
    if (!random) throw new Error('this transform is random: pass a seeded Random');
    const boxes = new Int32Array(count * 4);
    for (let i = 0; i < count; i++) {
      if (random.next() < this.erasing.probability) boxes.set(this.erasureBox(random), i * 4);
    }
    return boxes;
  }

  /**
   * torchvision's RandomErasing.get_params on the size x size output: 10 tries at a random area and
   * log-uniform aspect (height = round(sqrt(area * aspect)), strictly inside the image), else nothing.
   */
  private erasureBox(random: Random): [number, number, number, number] {
    const side = this.size;
    const { scale, ratio } = this.erasing;
    const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
    for (let attempt = 0; attempt < 10; attempt++) {
      const eraseArea = side * side * random.uniform(scale[0], scale[1]);
      const aspect = Math.exp(random.uniform(logRatio[0], logRatio[1]));
      const h = roundHalfEven(Math.sqrt(eraseArea * aspect));
      const w = roundHalfEven(Math.sqrt(eraseArea / aspect));
      if (!(h < side && w < side)) continue;
      const y = random.int(side - h + 1);
      const x = random.int(side - w + 1);
      // a side rounded to 0 (tiny outputs): torchvision erases nothing; the empty box says so
      return h === 0 || w === 0 ? [0, 0, 0, 0] : [x, y, w, h];
    }
    return [0, 0, 0, 0];
  }

  /**
   * Crops, resizes, flips, applies the policy's ops, jitters and normalises a batch in one native
   * call (off the event loop), then erases the `erasures` boxes (sampleErasures) from the normalised
   * images. A parameter list of 13 (no policy block) means no policy ops.
   */
  async apply(images: DecodedImage[], params: number[][], erasures: Int32Array | null = null): Promise<Tensor> {
    if (images.length === 0) throw new RangeError('Expected at least one image in the batch');
    if (erasures !== null) validateErasures(erasures, images.length, this.size);
    const flat = new Float64Array(images.length * PARAMS_PER_IMAGE);
    params.forEach((p, i) => flat.set(p, i * PARAMS_PER_IMAGE));
    const result = await native().augmentBatch(
      images.map((im) => ({ data: im.data, width: im.width, height: im.height })),
      flat,
      {
        width: this.size, height: this.size, mean: this.mean, std: this.std, channelsLast: this.channelsLast, pinMemory: this.pinMemory, threads: this.threads,
        erase: erasures,
      },
    );
    return new Tensor(result);
  }
}

function resolveErasing(option: number | RandomErasingOptions): Transform['erasing'] {
  const custom = typeof option === 'number' ? { probability: option } : plainObject('randomErasing', option);
  if (typeof option !== 'number') knownKeys('randomErasing', custom, ['probability', 'scale', 'ratio']);
  const probability = numberInRange(typeof option === 'number' ? 'randomErasing' : 'randomErasing.probability', custom.probability, 0, 1);
  const scale = (custom.scale ?? [0.02, 0.33]) as [number, number];
  const ratio = (custom.ratio ?? [0.3, 3.3]) as [number, number];
  if (!Array.isArray(scale) || scale.length !== 2 || !(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) {
    throw invalid('[min, max] with 0 < min <= max <= 1', 'randomErasing.scale', scale);
  }
  if (!Array.isArray(ratio) || ratio.length !== 2 || !(ratio[0] > 0 && ratio[0] <= ratio[1])) {
    throw invalid('[min, max] with 0 < min <= max', 'randomErasing.ratio', ratio);
  }
  return { probability, scale, ratio };
}

function validateErasures(erasures: unknown, count: number, side: number): void {
  if (!(erasures instanceof Int32Array) || erasures.length !== count * 4) throw invalid(`Int32Array of ${count * 4} values (x, y, width, height per image)`, 'erasures', erasures);
  for (let i = 0; i < erasures.length; i += 4) {
    const [x, y, w, h] = erasures.subarray(i, i + 4);
    if (w === 0) continue;
    if (!(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= side && y + h <= side)) {
      throw new RangeError(`Expected erase box ${i / 4} inside the ${side}x${side} output but received x ${x}, y ${y}, width ${w}, height ${h}`);
    }
  }
}

/** A centred square of `size` (the whole image when it is smaller, then resized up). */
function centerBox(width: number, height: number, size: number): [number, number, number, number] {
  if (width < size || height < size) {
    const side = Math.min(width, height);
    return [Math.floor((width - side) / 2), Math.floor((height - side) / 2), side, side];
  }
  // torchvision CenterCrop: int(round((h - size) / 2))
  return [Math.round((width - size) / 2), Math.round((height - size) / 2), size, size];
}

/** The seed's training augmentation: random crop, flip, ColorJitter(0.1). */
export function trainTransform(options: TransformOptions = {}): Transform {
  return new Transform({ randomResizedCrop: true, horizontalFlip: true, colorJitter: 0.1, ...options });
}

/** Evaluation: the centre crop of the Resize(256) -> CenterCrop(224) decode, normalised. */
export function evalTransform(options: Pick<TransformOptions, 'size' | 'mean' | 'std' | 'channelsLast' | 'pinMemory' | 'threads'> = {}): Transform {
  return new Transform(options);
}

/** Python's round(): halves to the even neighbour (torchvision's crop sizes use it; Math.round rounds them up). */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}
