// The public Model: a torchvision-exact network with freezing, training modes and state dicts.
import { native, type NativeModel } from '../../binding';
import { Tensor, validateDevice, validateLabels } from '../tensor';
import { boolean, invalid, knownKeys, numberInRange, oneOf, plainObject, positiveInteger } from '../utils/validate';

export const ARCHITECTURES = ['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16', 'mobilenet_v3_large', 'efficientnet_b0'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];
export const HEADS = ['linear', 'conv1x1'] as const;
export type HeadKind = (typeof HEADS)[number];
export const ATTENTIONS = ['none', 'se', 'cbam'] as const;
export type AttentionKind = (typeof ATTENTIONS)[number];
export const CONV_ALGORITHMS = ['direct', 'winograd'] as const;
export type ConvAlgorithm = (typeof CONV_ALGORITHMS)[number];

export interface ModelOptions {
  /** Width of the classification head (default 1000, ImageNet's). */
  numClasses?: number;
  /** ResNets only: 'conv1x1' puts a 1x1 convolution on the layer4 map before pooling (the seed's head). */
  head?: HeadKind;
  /** Dropout probability of the classifier (default torchvision's: 0.2 for MobileNetV3 and EfficientNet, 0.5 for AlexNet/VGG; ResNets have none). */
  dropout?: number;
  /**
   * ResNets only: attention in every residual block, after its last BatchNorm and before the
   * residual addition (default 'none'). 'se': squeeze-and-excitation (Hu et al., reduction 16),
   * keys `layerS.B.se.fc{1,2}.*`; 'cbam': CBAM (Woo et al.), keys `layerS.B.cbam.channel.fc{1,2}.*`,
   * `layerS.B.cbam.spatial.conv.weight` and `layerS.B.cbam.spatial.bn.*`. Pretrained ImageNet
   * weights load into such a model with exactly these keys missing.
   */
  attention?: AttentionKind;
}

/** torchvision's classifier dropout where it differs from AlexNet/VGG's 0.5. */
const DEFAULT_DROPOUT: Partial<Record<Architecture, number>> = { mobilenet_v3_large: 0.2, efficientnet_b0: 0.2 };

/** Named tensors in torch's state_dict order. */
export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export interface FreezeOptions {
  /** Freeze everything except parameters under these prefixes (e.g. ['fc']). */
  except?: string[];
  /** Freeze only parameters under these prefixes. */
  only?: string[];
  /** Freeze the parameters for which this returns true. */
  predicate?: (name: string) => boolean;
  /** Keep BatchNorm layers whose parameters are all frozen in eval mode (running stats fixed). Default true. */
  freezeBatchNorm?: boolean;
}

function underPrefix(name: string, prefixes: string[]): boolean {
  return prefixes.some((p) => name === p || name.startsWith(`${p}.`));
}

function prefixList(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw invalid('array of non-empty strings', name, value);
  }
  return value as string[];
}

function toMap(entries: Array<[string, import('../../binding').NativeTensor]>): StateDict {
  return new Map(entries.map(([name, t]) => [name, new Tensor(t)]));
}

export function validateImages(name: string, input: unknown): Tensor {
  if (!(input instanceof Tensor)) throw invalid('Tensor', name, input);
  const shape = input.shape;
  if (shape.length !== 4 || shape[1] !== 3) {
    throw new TypeError(`Expected ${name} of shape [N, 3, H, W] but received [${shape.join(', ')}]`);
  }
  if (!input.dtype.startsWith('float') && input.dtype !== 'bfloat16') {
    throw new TypeError(`Expected a floating-point ${name} but received dtype ${input.dtype}`);
  }
  return input;
}

/** Structure ids are unique across models: an Optimizer records its model's to detect later pruning. */
let nextStructureId = 1;

export class Model {
  readonly arch: Architecture;
  readonly numClasses: number;
  readonly head: HeadKind;
  readonly attention: AttentionKind;
  /** @internal */
  readonly native: NativeModel;
  private readonly frozenBatchNorm = new Set<string>();
  private trainingMode = true;
  private structure = nextStructureId++;

  constructor(arch: Architecture, options: ModelOptions = {}) {
    this.arch = oneOf('arch', arch, ARCHITECTURES);
    const opts = plainObject('options', options);
    knownKeys('model options', opts, ['numClasses', 'head', 'dropout', 'attention']);
    this.numClasses = positiveInteger('numClasses', options.numClasses ?? 1000);
    this.head = oneOf('head', options.head ?? 'linear', HEADS);
    if (this.head === 'conv1x1' && !arch.startsWith('resnet')) {
      throw new TypeError(`Expected head 'linear' for ${arch} ('conv1x1' is defined for ResNets) but received 'conv1x1'`);
    }
    this.attention = oneOf('attention', options.attention ?? 'none', ATTENTIONS);
    if (this.attention !== 'none' && !arch.startsWith('resnet')) {
      throw new TypeError(`Expected attention 'none' for ${arch} ('se' and 'cbam' are defined for ResNets) but received '${this.attention}'`);
    }
    const dropout = numberInRange('dropout', options.dropout ?? DEFAULT_DROPOUT[this.arch] ?? 0.5, 0, 1);
    this.native = new (native().Model)({ arch, numClasses: this.numClasses, head: this.head, dropout, attention: this.attention });
  }

  /** Logits for a float [N, 3, H, W] batch. `grad: true` builds the autograd graph. */
  async forward(images: Tensor, options: { grad?: boolean } = {}): Promise<Tensor> {
    validateImages('images', images);
    return new Tensor(await this.native.forward(images.native, options.grad === true));
  }

  /**
   * Penultimate features: AlexNet/VGG 4096-d after the last hidden ReLU, ResNets pooled (512-d for 18/34),
   * MobileNetV3 1280-d after classifier.0-2, EfficientNet-B0 pooled 1280-d.
   */
  async features(images: Tensor): Promise<Tensor> {
    validateImages('images', images);
    return new Tensor(await this.native.features(images.native));
  }

  /** The head alone applied to features(): how a frozen backbone's cached features are trained. */
  async classify(features: Tensor, options: { grad?: boolean } = {}): Promise<Tensor> {
    if (!(features instanceof Tensor)) throw invalid('Tensor', 'features', features);
    const shape = features.shape;
    if (shape.length !== 2 || shape[1] !== this.featureDim) {
      throw new TypeError(`Expected features of shape [N, ${this.featureDim}] but received [${shape.join(', ')}]`);
    }
    return new Tensor(await this.native.classify(features.native, options.grad === true));
  }

  /**
   * Zeroes the gradients, then forward, cross-entropy and backward on one batch; the gradients stay
   * on the parameters (see namedGradients()). Resolves with the loss and top-1/top-5 correct counts.
   */
  async backward(
    images: Tensor,
    labels: Tensor,
    options: { labelSmoothing?: number } = {},
  ): Promise<{ loss: number; correct1: number; correct5: number }> {
    validateImages('images', images);
    validateLabels(labels, images.shape[0], this.numClasses);
    const labelSmoothing = numberInRange('labelSmoothing', options.labelSmoothing ?? 0, 0, 1);
    return this.native.backward(images.native, labels.native, { labelSmoothing });
  }

  /** Gradients left by the last backward, by parameter name (parameters without one are absent). */
  namedGradients(): StateDict {
    return toMap(this.native.namedGradients());
  }

  /**
   * @internal Changes whenever parameters are renamed or reshaped (pruning, shrinkChannels): an
   * Optimizer built for another structure refuses to step.
   */
  get structureId(): number {
    return this.structure;
  }

  /** @internal */
  structureChanged(): void {
    this.structure = nextStructureId++;
  }

  get featureDim(): number {
    return this.native.featureDim;
  }

  /** Prefixes of the attention modules ('layer1.0.se', …; empty without attention): new layers that train with the head in phase 1. */
  get attentionPrefixes(): string[] {
    if (this.attention === 'none') return [];
    const suffix = `.${this.attention}`;
    return this.native.namedModules().map((m) => m.name).filter((name) => name.endsWith(suffix));
  }

  /** The state_dict prefix of the replaceable head: 'fc' (ResNets), 'classifier.6' (AlexNet, VGG), 'classifier.3' (MobileNetV3), 'classifier.1' (EfficientNet). */
  get headPrefix(): string {
    return this.native.headPrefix;
  }

  get device(): string {
    return this.native.device;
  }

  get training(): boolean {
    return this.trainingMode;
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Training mode (dropout on, BatchNorm batch statistics), except BatchNorm layers frozen by freeze(). */
  train(mode = true): this {
    this.trainingMode = mode;
    this.native.setTraining(mode, [...this.frozenBatchNorm]);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  async to(device: string): Promise<this> {
    validateDevice(device);
    await this.native.to(device);
    return this;
  }

  /**
   * Names of parameters and buffers that hold NaN or Inf (empty when the model is healthy).
   * trainableOnly: only what training can change (parameters that require grad, buffers of modules
   * in training mode), e.g. just the head of a frozen backbone.
   */
  async nonFinite(options: { trainableOnly?: boolean } = {}): Promise<string[]> {
    knownKeys('nonFinite options', plainObject('nonFinite options', options), ['trainableOnly']);
    return this.native.nonFinite(boolean('trainableOnly', options.trainableOnly ?? false));
  }

  /** Stores 4-D weights channels-last (NHWC), the layout oneDNN and cuDNN convolutions prefer. */
  async channelsLast(flag = true): Promise<this> {
    await this.native.setChannelsLast(flag === true);
    return this;
  }

  /**
   * How the 3x3 convolutions of training steps are computed on the CPU. 'direct' (the default) is
   * ATen's kernels, as PyTorch computes them. 'winograd' is oneDNN's f32 Winograd F(4x4, 3x3): the
   * 3x3 stride-1 convolutions of ResNet blocks with channel counts divisible by 16, in fp32
   * training forwards and their backward, 1.4x faster for a whole ResNet-18 step here; results
   * differ from direct by rounding (as much as reordering the batch does). Evaluation, inference,
   * autocast and other shapes stay direct. Needs a build with oneDNN 2.x and an AVX-512 CPU:
   * runtimeInfo().winograd says whether this one has it.
   */
  async convAlgorithm(algorithm: ConvAlgorithm): Promise<this> {
    oneOf('algorithm', algorithm, CONV_ALGORITHMS);
    if (algorithm === 'winograd') {
      const support = native().info().winograd;
      if (!support.available) throw new Error(`convAlgorithm('winograd') is not available: ${support.reason}`);
    }
    await this.native.setConvAlgorithm(algorithm);
    return this;
  }

  namedModules(): Array<{ name: string; type: string; training: boolean }> {
    return this.native.namedModules().map((m) => ({ ...m, type: m.type.replace(/^torch::nn::|Impl$/g, '') }));
  }

  /** Parameters by state_dict name; the tensors share memory with the model. */
  namedParameters(): StateDict {
    return toMap(this.native.namedParameters());
  }

  namedBuffers(): StateDict {
    return toMap(this.native.namedBuffers());
  }

  /** Parameters and buffers in torch's state_dict order, sharing memory with the model. */
  stateDict(): StateDict {
    return toMap(this.native.stateDict());
  }

  /**
   * Copies values in by name. A shape mismatch is an error naming the key and both shapes (nothing is
   * copied then); with strict (default) missing or unexpected keys are an error too.
   */
  async loadStateDict(dict: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): Promise<LoadResult> {
    const entries: Array<[string, unknown]> =
      dict instanceof Map ? [...dict.entries()] : Object.entries(plainObject('stateDict', dict));
    for (const [name, value] of entries) {
      if (!(value instanceof Tensor)) throw invalid('Tensor', `stateDict['${name}']`, value);
    }
    await this.reparametrizeFor(entries.map(([name]) => name));
    return this.native.loadStateDict(
      entries.map(([name, t]) => [name, (t as Tensor).native]),
      options.strict ?? true,
    );
  }

  /**
   * A pruned state_dict (X.weight_orig + X.weight_mask, PyTorch's torch.nn.utils.prune form) puts
   * those layers of this model in the same form first, as prune.identity does in PyTorch.
   * @internal also used by loadPretrained before it compares keys
   */
  async reparametrizeFor(names: string[]): Promise<void> {
    const incoming = new Set(names);
    const own = new Set(this.native.namedParameters().map(([name, t]) => (t.dispose(), name)));
    const modules = names
      .filter((name) => name.endsWith('.weight_orig') && incoming.has(name.replace(/_orig$/, '_mask')))
      .map((name) => name.slice(0, -'.weight_orig'.length))
      .filter((module) => own.has(`${module}.weight`));
    if (modules.length === 0) return;
    await native().prune(this.native, { method: 'identity', modules, amount: 0, isCount: true });
    this.structureChanged();
  }

  /** Stops gradients for the chosen parameters (all by default). Returns the names frozen. */
  freeze(options: FreezeOptions = {}): string[] {
    knownKeys('freeze options', plainObject('options', options), ['except', 'only', 'predicate', 'freezeBatchNorm']);
    const except = options.except === undefined ? [] : prefixList('except', options.except);
    const only = options.only === undefined ? undefined : prefixList('only', options.only);
    if (options.predicate !== undefined && typeof options.predicate !== 'function') {
      throw invalid('function', 'predicate', options.predicate);
    }
    const names = [...this.native.namedParameters()].map(([name]) => name);
    const chosen = names.filter(
      (name) =>
        !underPrefix(name, except) &&
        (only === undefined || underPrefix(name, only)) &&
        (options.predicate === undefined || options.predicate(name)),
    );
    this.native.setRequiresGrad(chosen, false);
    if (options.freezeBatchNorm ?? true) {
      for (const module of this.batchNormModules()) {
        if (chosen.includes(`${module}.weight`) && chosen.includes(`${module}.bias`)) this.frozenBatchNorm.add(module);
      }
      this.train(this.trainingMode);
    }
    return chosen;
  }

  /** Lets gradients flow again (to all parameters, or those under `only`). Returns the names. */
  unfreeze(options: { only?: string[] } = {}): string[] {
    const only = options.only === undefined ? undefined : prefixList('only', options.only);
    const names = [...this.native.namedParameters()]
      .map(([name]) => name)
      .filter((name) => only === undefined || underPrefix(name, only));
    this.native.setRequiresGrad(names, true);
    for (const module of [...this.frozenBatchNorm]) {
      if (only === undefined || underPrefix(module, only)) this.frozenBatchNorm.delete(module);
    }
    this.train(this.trainingMode);
    return names;
  }

  /** The parameters an optimizer should step: those with requiresGrad. */
  trainableParameters(): StateDict {
    const trainable: StateDict = new Map();
    for (const [name, t] of this.namedParameters()) {
      if (t.requiresGrad) trainable.set(name, t);
      else t.dispose();
    }
    return trainable;
  }

  private batchNormModules(): string[] {
    return this.native
      .namedModules()
      .filter((m) => /BatchNorm/.test(m.type))
      .map((m) => m.name);
  }

  /** Frees the network now; work already queued finishes first. Safe to call twice. */
  dispose(): void {
    this.native.dispose();
  }
}

/** A new model with PyTorch's default initialisation (torchvision's for ResNets and VGG). */
export function createModel(arch: Architecture, options: ModelOptions = {}): Model {
  return new Model(arch, options);
}
