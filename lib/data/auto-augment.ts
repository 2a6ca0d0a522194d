// torchvision 0.14's automatic augmentation policies (transforms/autoaugment.py): which ops, with
// which magnitudes and signs, each image gets. Drawn here with our seeded Random from the same
// distributions; the pixel work (native/ops/policy_ops.h) follows _apply_op on PIL images.
import { native } from '../../binding';
import { integerInRange, invalid, knownKeys, oneOf, plainObject } from '../utils/validate';
import type { DecodedImage } from './decode';
import type { Random } from './random';

/** The ops of _apply_op; an op's index is its native code. */
export const POLICY_OPS = [
  'Identity', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate', 'Brightness', 'Color', 'Contrast', 'Sharpness',
  'Posterize', 'Solarize', 'AutoContrast', 'Equalize', 'Invert',
] as const;
export type PolicyOpName = (typeof POLICY_OPS)[number];

export const AUGMENT_POLICIES = ['none', 'trivial_augment_wide', 'rand_augment', 'auto_augment'] as const;
export type AugmentPolicyName = (typeof AUGMENT_POLICIES)[number];

/** One op with the signed magnitude torchvision passes to _apply_op. */
export interface PolicyStep {
  op: PolicyOpName;
  magnitude: number;
}

/** Ops per image the native side takes (RandAugment's numOps is capped there). */
export const MAX_POLICY_STEPS = 4;
/** Native numbers per image: the op count, then (op code, magnitude) pairs. */
export const POLICY_PARAMS = 1 + 2 * MAX_POLICY_STEPS;

/** RandAugment and TrivialAugmentWide's number of magnitude bins (torchvision's default). */
export const MAGNITUDE_BINS = 31;
/** AutoAugment's fixed number of bins. */
const AUTO_AUGMENT_BINS = 10;

export interface AugmentPolicyOptions {
  /** Default 'none'. */
  policy?: AugmentPolicyName;
  /** RandAugment: ops applied in sequence (default 2, at most 4). */
  numOps?: number;
  /** RandAugment: the magnitude bin of every op, 0-30 (default 9). */
  magnitude?: number;
}

type Space = Array<[PolicyOpName, Float32Array | null, boolean]>; // op, magnitudes (null: none), signed

/** float32 math as torch does it: fma(a, b, c) rounded once (exact for these small operands). */
const f32 = Math.fround;
const fma32 = (a: number, b: number, c: number) => f32(a * b + c);

/**
 * torch.linspace(start, end, steps) in float32 as torch 1.13 computes it on an AVX2 CPU: two
 * 8-lane vectors at a time from a base, lane k = base + k * step (rounded twice), and the
 * remaining elements one by one with a fused multiply-add from the nearer end.
 */
export function linspace32(start: number, end: number, steps: number): Float32Array {
  const s = f32(start);
  const e = f32(end);
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalar = (i: number) => (i < halfway ? fma32(step, i, s) : fma32(-step, steps - i - 1, e));
  const lanes = 8;
  let i = 0;
  for (; i + 2 * lanes <= steps; i += lanes) {
    const base = scalar(i);
    for (let k = 0; k < lanes; k++) out[i + k] = f32(base + f32(k * step));
  }
  for (; i < steps; i++) out[i] = scalar(i);
  return out;
}

/** 8 - round(arange(bins) / ((bins - 1) / levels)): Posterize's bits per bin. */
function posterizeBits(bins: number, levels: number): Float32Array {
  const divisor = f32((bins - 1) / levels);
  return Float32Array.from({ length: bins }, (_, i) => 8 - roundHalfEven(f32(i / divisor)));
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  if (x - floor !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** RandAugment's and AutoAugment's _augmentation_space for a width x height image. */
function randAugmentSpace(bins: number, width: number, height: number, withInvert: boolean): Space {
  const space: Space = [
    ['Identity', null, false],
    ['ShearX', linspace32(0, 0.3, bins), true],
    ['ShearY', linspace32(0, 0.3, bins), true],
    ['TranslateX', linspace32(0, (150 / 331) * width, bins), true],
    ['TranslateY', linspace32(0, (150 / 331) * height, bins), true],
    ['Rotate', linspace32(0, 30, bins), true],
    ['Brightness', linspace32(0, 0.9, bins), true],
    ['Color', linspace32(0, 0.9, bins), true],
    ['Contrast', linspace32(0, 0.9, bins), true],
    ['Sharpness', linspace32(0, 0.9, bins), true],
    ['Posterize', posterizeBits(bins, 4), false],
    ['Solarize', linspace32(255, 0, bins), false],
    ['AutoContrast', null, false],
    ['Equalize', null, false],
  ];
  // AutoAugment's space has no Identity and adds Invert
  return withInvert ? [...space.slice(1), ['Invert', null, false]] : space;
}

function trivialAugmentSpace(bins: number): Space {
  return [
    ['Identity', null, false],
    ['ShearX', linspace32(0, 0.99, bins), true],
    ['ShearY', linspace32(0, 0.99, bins), true],
    ['TranslateX', linspace32(0, 32, bins), true],
    ['TranslateY', linspace32(0, 32, bins), true],
    ['Rotate', linspace32(0, 135, bins), true],
    ['Brightness', linspace32(0, 0.99, bins), true],
    ['Color', linspace32(0, 0.99, bins), true],
    ['Contrast', linspace32(0, 0.99, bins), true],
    ['Sharpness', linspace32(0, 0.99, bins), true],
    ['Posterize', posterizeBits(bins, 6), false],
    ['Solarize', linspace32(255, 0, bins), false],
    ['AutoContrast', null, false],
    ['Equalize', null, false],
  ];
}

type SubPolicy = [[PolicyOpName, number, number | null], [PolicyOpName, number, number | null]];

/** AutoAugmentPolicy.IMAGENET: (op, probability, magnitude bin) pairs. */
export const IMAGENET_POLICY: readonly SubPolicy[] = [
  [['Posterize', 0.4, 8], ['Rotate', 0.6, 9]],
  [['Solarize', 0.6, 5], ['AutoContrast', 0.6, null]],
  [['Equalize', 0.8, null], ['Equalize', 0.6, null]],
  [['Posterize', 0.6, 7], ['Posterize', 0.6, 6]],
  [['Equalize', 0.4, null], ['Solarize', 0.2, 4]],
  [['Equalize', 0.4, null], ['Rotate', 0.8, 8]],
  [['Solarize', 0.6, 3], ['Equalize', 0.6, null]],
  [['Posterize', 0.8, 5], ['Equalize', 1.0, null]],
  [['Rotate', 0.2, 3], ['Solarize', 0.6, 8]],
  [['Equalize', 0.6, null], ['Posterize', 0.4, 6]],
  [['Rotate', 0.8, 8], ['Color', 0.4, 0]],
  [['Rotate', 0.4, 9], ['Equalize', 0.6, null]],
  [['Equalize', 0.0, null], ['Equalize', 0.8, null]],
  [['Invert', 0.6, null], ['Equalize', 1.0, null]],
  [['Color', 0.6, 4], ['Contrast', 1.0, 8]],
  [['Rotate', 0.8, 8], ['Color', 1.0, 2]],
  [['Color', 0.8, 8], ['Solarize', 0.8, 7]],
  [['Sharpness', 0.4, 7], ['Invert', 0.6, null]],
  [['ShearX', 0.6, 5], ['Equalize', 1.0, null]],
  [['Color', 0.4, 0], ['Equalize', 0.6, null]],
  [['Equalize', 0.4, null], ['Solarize', 0.2, 4]],
  [['Solarize', 0.6, 5], ['AutoContrast', 0.6, null]],
  [['Invert', 0.6, null], ['Equalize', 1.0, null]],
  [['Color', 0.6, 4], ['Contrast', 1.0, 8]],
  [['Equalize', 0.8, null], ['Equalize', 0.6, null]],
];

/** One of torchvision's policies, resolved and validated; `sample` draws one image's ops. */
export class AugmentPolicy {
  readonly policy: AugmentPolicyName;
  readonly numOps: number;
  readonly magnitude: number;
  /** Spaces by image size: the tables are the same for every image of a run. */
  private readonly spaces = new Map<string, Space>();

  constructor(options: AugmentPolicyOptions = {}) {
    knownKeys('augment policy options', plainObject('augment policy options', options), ['policy', 'numOps', 'magnitude']);
    this.policy = oneOf('policy', options.policy ?? 'none', AUGMENT_POLICIES);
    this.numOps = integerInRange('numOps', options.numOps ?? 2, 0, MAX_POLICY_STEPS);
    this.magnitude = integerInRange('magnitude', options.magnitude ?? 9, 0, MAGNITUDE_BINS - 1);
    if (this.policy !== 'rand_augment' && (options.numOps !== undefined || options.magnitude !== undefined)) {
      throw invalid("policy 'rand_augment' with numOps or magnitude", 'policy', this.policy);
    }
  }

  /** True when the policy draws ops (anything but 'none'). */
  get active(): boolean {
    return this.policy !== 'none';
  }

  /** The ops for one image of width x height (the size the ops see: after the crop). */
  sample(image: { width: number; height: number }, random: Random): PolicyStep[] {
    switch (this.policy) {
      case 'none':
        return [];
      case 'trivial_augment_wide': {
        // TrivialAugmentWide.forward: one op, a uniform bin, a fair sign
        const [op, magnitudes, signed] = pick(this.space(image), random);
        const magnitude = magnitudes ? magnitudes[random.int(magnitudes.length)] : 0;
        return [{ op, magnitude: signed && random.int(2) === 1 ? -magnitude : magnitude }];
      }
      case 'rand_augment': {
        // RandAugment.forward: numOps uniform ops (with repetition) at one fixed bin, fair signs
        const space = this.space(image);
        return Array.from({ length: this.numOps }, () => {
          const [op, magnitudes, signed] = pick(space, random);
          const magnitude = magnitudes ? magnitudes[this.magnitude] : 0;
          return { op, magnitude: signed && random.int(2) === 1 ? -magnitude : magnitude };
        });
      }
      case 'auto_augment': {
        // AutoAugment.get_params: a sub-policy, two probabilities and two signs, all drawn up front
        const subPolicy = IMAGENET_POLICY[random.int(IMAGENET_POLICY.length)];
        const probabilities = [random.next(), random.next()];
        const signs = [random.int(2), random.int(2)];
        const space = this.space(image);
        const steps: PolicyStep[] = [];
        subPolicy.forEach(([op, p, bin], i) => {
          if (probabilities[i] > p) return;
          const [, m, s] = space.find(([name]) => name === op)!;
          const magnitude = bin !== null && m ? m[bin] : 0;
          steps.push({ op, magnitude: s && signs[i] === 0 ? -magnitude : magnitude });
        });
        return steps;
      }
    }
  }

  private space(image: { width: number; height: number }): Space {
    const key = this.policy === 'trivial_augment_wide' ? '' : `${image.width}x${image.height}`;
    let space = this.spaces.get(key);
    if (!space) {
      space = spaceOf(this.policy as Exclude<AugmentPolicyName, 'none'>, image.width, image.height);
      this.spaces.set(key, space);
    }
    return space;
  }
}

/**
 * A policy's augmentation space for a width x height image: each op, its magnitude per bin (null
 * for ops without one) and whether a sign is drawn. AutoAugment's is its 10-bin space.
 */
export function policySpace(policy: Exclude<AugmentPolicyName, 'none'>, width: number, height: number): Array<{ op: PolicyOpName; magnitudes: number[] | null; signed: boolean }> {
  return spaceOf(policy, width, height).map(([op, m, signed]) => ({ op, magnitudes: m ? Array.from(m) : null, signed }));
}

function spaceOf(policy: Exclude<AugmentPolicyName, 'none'>, width: number, height: number): Space {
  if (policy === 'trivial_augment_wide') return trivialAugmentSpace(MAGNITUDE_BINS);
  return randAugmentSpace(policy === 'rand_augment' ? MAGNITUDE_BINS : AUTO_AUGMENT_BINS, width, height, policy === 'auto_augment');
}

function pick(space: Space, random: Random): Space[number] {
  return space[random.int(space.length)];
}

/** The native block for one image: count, then (op code, magnitude) pairs, zero-padded. */
export function encodePolicySteps(steps: readonly PolicyStep[]): number[] {
  if (steps.length > MAX_POLICY_STEPS) throw invalid(`at most ${MAX_POLICY_STEPS} policy ops`, 'policy steps', steps.length);
  const block = new Array<number>(POLICY_PARAMS).fill(0);
  block[0] = steps.length;
  steps.forEach((step, k) => {
    const code = POLICY_OPS.indexOf(step.op);
    if (code < 0) throw invalid(`one of ${POLICY_OPS.join(', ')}`, 'policy op', step.op);
    if (!Number.isFinite(step.magnitude)) throw invalid('a finite number', `magnitude of ${step.op}`, step.magnitude);
    if (step.op === 'Posterize' && !(Math.trunc(step.magnitude) >= 0 && Math.trunc(step.magnitude) <= 8)) {
      throw invalid('bits between 0 and 8', 'Posterize magnitude', step.magnitude);
    }
    block[1 + 2 * k] = code;
    block[2 + 2 * k] = step.magnitude;
  });
  return block;
}

/**
 * Applies ops to uint8 images of any size, as torchvision applies them to PIL images (without the
 * crop and normalisation of Transform.apply, which runs the same kernels after its crop).
 */
export async function applyPolicySteps(images: DecodedImage[], steps: ReadonlyArray<readonly PolicyStep[]>): Promise<DecodedImage[]> {
  if (steps.length !== images.length) throw invalid(`${images.length} lists of policy steps (one per image)`, 'steps', steps.length);
  const flat = new Float64Array(images.length * POLICY_PARAMS);
  steps.forEach((s, i) => flat.set(encodePolicySteps(s), i * POLICY_PARAMS));
  const out = await native().augmentPolicyBatch(images.map((im) => ({ data: im.data, width: im.width, height: im.height })), flat);
  return out.map((data, i) => ({ data, width: images[i].width, height: images[i].height }));
}
