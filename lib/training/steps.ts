// One native call per batch. trainStep: forward → cross-entropy → backward → clipping → optimizer
// step; evalStep: forward without a graph. Inputs are checked here, before any native work.
import { native, type NativeStepOptions } from '../../binding';
import { validateImages, validateLabels, type Model } from '../models/model';
import { Tensor } from '../tensor';
import { invalid, knownKeys, nonNegativeInteger, numberInRange, plainObject } from '../utils/validate';
import type { Optimizer } from './optimizer';

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
}

function stepOptions(model: Model, options: StepOptions, extra: string[] = []): NativeStepOptions {
  knownKeys('step options', plainObject('options', options), ['labelSmoothing', 'classWeights', 'clipGradNorm', 'gradStatsBins', 'features', ...extra]);
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
  };
}

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
 * Trains on one batch in one native call. Calls on the same model run one after another, never
 * interleaved. A non-finite loss rejects with an error and leaves the parameters untouched.
 */
export async function trainStep(model: Model, optimizer: Optimizer, images: Tensor, labels: Tensor, options: StepOptions = {}): Promise<StepResult> {
  const opts = stepOptions(model, options);
  validateInputs(model, images, opts.features);
  validateLabels(labels, images.shape[0], model.numClasses);
  const result = await native().trainStep(model.native, optimizer.native, images.native, labels.native, opts);
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
  options: Omit<StepOptions, 'clipGradNorm' | 'gradStatsBins'> & { returnLogits?: boolean } = {},
): Promise<EvalResult> {
  const opts = stepOptions(model, options, ['returnLogits']);
  validateInputs(model, images, opts.features);
  if (labels !== undefined) validateLabels(labels, images.shape[0], model.numClasses);
  const result = await native().evalStep(model.native, images.native, labels?.native ?? null, { ...opts, returnLogits: options.returnLogits === true });
  const { logits, ...rest } = result;
  return logits ? { ...rest, logits: new Tensor(logits) } : rest;
}
