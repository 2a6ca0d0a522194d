// One native call per batch. trainStep: forward → cross-entropy → backward → clipping → optimizer
// step; evalStep: forward without a graph. Inputs are checked here, before any native work.
import { native, type NativeStepOptions } from '../../binding';
import { GradientSync } from '../distributed/process-group';
import { Model, validateImages } from '../models/model';
import { Tensor, validateLabels } from '../tensor';
import { cpuInfo, hasNativeBf16 } from '../utils/cpuinfo';
import { invalid, knownKeys, nonNegativeInteger, numberInRange, oneOf, plainObject } from '../utils/validate';
import { GradScaler } from './grad-scaler';
import { Optimizer } from './optimizer';

export interface StepOptions {
  /** Label smoothing of the cross-entropy (default 0). */
  labelSmoothing?: number;
  /** Per-class loss weights, a float tensor of shape [numClasses]. */
  classWeights?: Tensor;
  /** Clip the total gradient norm to this value (default 0: off). */
  clipGradNorm?: number;
  /** Per-parameter gradient norm, range and a histogram with this many bins (default 0: off). */
  gradStatsBins?: number;
  /** The inputs are model.features() outputs: only the head runs (the phase-1 feature cache). */
  features?: boolean;
  /**
   * Automatic mixed precision around forward and loss: 'fp16' (CUDA, with loss scaling), 'bf16'
   * (CUDA or CPU), true for the device's best ('fp16' on CUDA, 'bf16' on the CPU), 'auto' as true
   * but only where it is fast: on a CPU, bf16 only with bf16 in hardware (AVX-512 BF16 or AMX;
   * elsewhere bf16 is emulated and slower than float32, so float32). Default off.
   */
  amp?: boolean | 'fp16' | 'bf16' | 'auto';
  /** Loss scaling for amp 'fp16' (one is made per optimizer when omitted). */
  scaler?: GradScaler;
  /** A distributed run's gradient averaging (ProcessGroup.gradientSync): DDP's all-reduce during backward. */
  gradientSync?: GradientSync;
}

export interface GradStat {
  name: string;
  norm: number;
  min: number;
  max: number;
  histogram: Float32Array;
}

export interface StepResult {
  /** Mean loss of the batch. */
  loss: number;
  /** How many images had the right class first, and among the top five. */
  correct1: number;
  correct5: number;
  count: number;
  /** Total gradient norm before clipping (when clipping). */
  gradNorm?: number;
  gradStats?: GradStat[];
  /** fp16 loss scaling found inf/nan gradients: no update this step (the scale was lowered). */
  skipped?: boolean;
}

/** The autocast a step runs: `nativeBf16` says whether this CPU computes bf16 in hardware. */
export function resolveAmp(amp: StepOptions['amp'], device: string, nativeBf16 = hasNativeBf16(cpuInfo().flags)): 'none' | 'fp16' | 'bf16' {
  if (amp === undefined || amp === false) return 'none';
  const cuda = device.startsWith('cuda');
  if (amp === true) return cuda ? 'fp16' : 'bf16';
  const chosen = oneOf('amp', amp, ['fp16', 'bf16', 'auto'] as const);
  if (chosen === 'auto') return cuda ? 'fp16' : nativeBf16 ? 'bf16' : 'none';
  if (chosen === 'fp16' && !cuda) {
    throw new TypeError("Expected amp 'bf16', 'auto' or true on the CPU ('fp16' autocast needs a CUDA device) but received 'fp16'");
  }
  return chosen;
}

function stepOptions(model: Model, options: StepOptions, device: string, extra: string[] = []): NativeStepOptions {
  if (!(model instanceof Model)) throw invalid('Model', 'model', model);
  knownKeys('step options', plainObject('options', options), ['labelSmoothing', 'classWeights', 'clipGradNorm', 'gradStatsBins', 'features', 'amp', 'scaler', ...extra]);
  const classWeights = options.classWeights;
  if (classWeights !== undefined) {
    if (!(classWeights instanceof Tensor)) throw invalid('Tensor', 'classWeights', classWeights);
    if (classWeights.shape.join() !== String(model.numClasses) || !classWeights.dtype.startsWith('float')) {
      throw new TypeError(`Expected classWeights of shape [${model.numClasses}] and a float dtype but received [${classWeights.shape}] ${classWeights.dtype}`);
    }
  }
  return {
    labelSmoothing: numberInRange('labelSmoothing', options.labelSmoothing ?? 0, 0, 1),
    classWeights: classWeights?.native ?? null,
    clipGradNorm: numberInRange('clipGradNorm', options.clipGradNorm ?? 0, 0, Number.MAX_VALUE),
    gradStatsBins: nonNegativeInteger('gradStatsBins', options.gradStatsBins ?? 0),
    features: options.features === true,
    amp: resolveAmp(options.amp, device),
    lossScale: 0,
  };
}

const scalers = new WeakMap<Optimizer, GradScaler>();

function validateInputs(model: Model, inputs: Tensor, features: boolean): void {
  if (!features) {
    validateImages('images', inputs);
    return;
  }
  if (!(inputs instanceof Tensor)) throw invalid('Tensor', 'features', inputs);
  if (inputs.shape.length !== 2 || inputs.shape[1] !== model.featureDim) {
    throw new TypeError(`Expected features of shape [N, ${model.featureDim}] but received [${inputs.shape.join(', ')}]`);
  }
}

/**
 * Class indices (int64 [N]) or soft targets (class probabilities, float32 [N, numClasses], e.g.
 * MixUp/CutMix's): cross_entropy takes either, as PyTorch's does since 1.10.
 */
function validateTargets(labels: unknown, batch: number, numClasses: number): void {
  if (!(labels instanceof Tensor) || !labels.dtype.startsWith('float')) {
    validateLabels(labels, batch, numClasses);
    return;
  }
  if (labels.dtype !== 'float32' || labels.shape.length !== 2 || labels.shape[0] !== batch || labels.shape[1] !== numClasses) {
    throw new TypeError(
      `Expected soft targets of shape [${batch}, ${numClasses}] and dtype float32 (class probabilities per image) but received [${labels.shape.join(', ')}] ${labels.dtype}`,
    );
  }
}

/**
 * Trains on one batch in one native call. `labels` are class indices (int64 [N]) or soft targets
 * (float32 [N, numClasses]); with soft targets top-1/top-5 count against each image's dominant
 * class. Calls on the same model run one after another, never
 * interleaved. A non-finite loss rejects with an error and leaves the parameters untouched.
 */
export async function trainStep(model: Model, optimizer: Optimizer, images: Tensor, labels: Tensor, options: StepOptions = {}): Promise<StepResult> {
  if (!(optimizer instanceof Optimizer)) throw invalid('Optimizer', 'optimizer', optimizer);
  const opts = stepOptions(model, options, images?.device ?? 'cpu', ['gradientSync']);
  if (options.gradientSync !== undefined && !(options.gradientSync instanceof GradientSync)) throw invalid('GradientSync', 'gradientSync', options.gradientSync);
  // another model's sync would average nothing of this one's gradients, silently
  if (options.gradientSync !== undefined && options.gradientSync.model !== model) {
    throw new Error('Expected the GradientSync made for this model (ProcessGroup.gradientSync(model)) but received one made for another model');
  }
  opts.gradientSync = options.gradientSync?.native ?? null;
  validateInputs(model, images, opts.features);
  validateTargets(labels, images.shape[0], model.numClasses);
  let scaler: GradScaler | undefined;
  if (opts.amp === 'fp16') {
    scaler = options.scaler ?? scalers.get(optimizer) ?? new GradScaler();
    scalers.set(optimizer, scaler);
    opts.lossScale = scaler.scale;
  }
  const release = optimizer.beginStep(model);
  let result: StepResult;
  try {
    result = await native().trainStep(model.native, optimizer.native, images.native, labels.native, opts);
  } finally {
    release();
  }
  scaler?.update(result.skipped === true);
  return result;
}

export interface EvalResult extends StepResult {
  /** The logits, when asked for with returnLogits. */
  logits?: Tensor;
}

/** Forward without building a graph: the loss and top-1/top-5 counts (with labels), logits on request. */
export async function evalStep(
  model: Model,
  images: Tensor,
  labels?: Tensor,
  options: Omit<StepOptions, 'clipGradNorm' | 'gradStatsBins' | 'scaler' | 'gradientSync'> & { returnLogits?: boolean } = {},
): Promise<EvalResult> {
  const opts = stepOptions(model, options, images?.device ?? 'cpu', ['returnLogits']);
  validateInputs(model, images, opts.features);
  if (labels !== undefined) validateLabels(labels, images.shape[0], model.numClasses);
  const result = await native().evalStep(model.native, images.native, labels?.native ?? null, { ...opts, returnLogits: options.returnLogits === true });
  const { logits, ...rest } = result;
  return logits ? { ...rest, logits: new Tensor(logits) } : rest;
}
