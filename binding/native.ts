// The raw surface of the native addon. lib/ wraps it in the public, validated API; nothing here
// checks its arguments beyond what keeps the process safe.

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int64'
      ? BigInt64Array
      : D extends 'int32'
        ? Int32Array
        : D extends 'int16'
          ? Int16Array
          : D extends 'int8'
            ? Int8Array
            : Uint8Array | Float32Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly requiresGrad: boolean;
  readonly disposed: boolean;
  readonly byteLength: number;
  toTypedArray(): AnyTypedArray;
  /** Raw bytes of a contiguous CPU copy. */
  toBytes(): Buffer;
  /** nonBlocking: asynchronous copy from pinned host memory to CUDA. */
  to(device: string, dtype?: DType, nonBlocking?: boolean): Promise<NativeTensor>;
  clone(): NativeTensor;
  dispose(): void;
}

export interface NativeTensorConstructor {
  new (data: AnyTypedArray, shape: number[], dtype: DType): NativeTensor;
}

export interface RuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudnnAvailable: boolean;
  mkldnnAvailable: boolean;
  parallelInfo: string;
  /** oneDNN's f32 Winograd for training convolutions: whether this build and CPU have it, and why not. */
  winograd: { available: boolean; reason: string };
}

export type NamedTensors = Array<[string, NativeTensor]>;

export interface NativeModelOptions {
  arch: string;
  numClasses: number;
  head: 'linear' | 'conv1x1';
  dropout: number;
  attention: 'none' | 'se' | 'cbam';
}

export interface NativeModule {
  name: string;
  type: string;
  training: boolean;
}

export interface NativeModel {
  /** grad: build the autograd graph (default: inference without one). */
  forward(input: NativeTensor, grad?: boolean): Promise<NativeTensor>;
  features(input: NativeTensor, grad?: boolean): Promise<NativeTensor>;
  classify(features: NativeTensor, grad?: boolean): Promise<NativeTensor>;
  setTraining(mode: boolean, evalModules?: string[]): void;
  readonly training: boolean;
  namedModules(): NativeModule[];
  namedParameters(): NamedTensors;
  namedBuffers(): NamedTensors;
  stateDict(): NamedTensors;
  setRequiresGrad(names: string[], flag: boolean): void;
  loadStateDict(entries: NamedTensors, strict: boolean): Promise<{ missingKeys: string[]; unexpectedKeys: string[] }>;
  backward(images: NativeTensor, labels: NativeTensor, options?: { labelSmoothing?: number }): Promise<{ loss: number; correct1: number; correct5: number }>;
  namedGradients(): NamedTensors;
  to(device: string): Promise<void>;
  setChannelsLast(flag: boolean): Promise<void>;
  setConvAlgorithm(algorithm: 'direct' | 'winograd'): Promise<void>;
  /** Names of parameters and buffers holding NaN or Inf. */
  nonFinite(trainableOnly: boolean): Promise<string[]>;
  readonly device: string;
  readonly headPrefix: string;
  readonly featureDim: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeModelConstructor {
  new (options: NativeModelOptions): NativeModel;
}

export interface NativeQuantizedModelOptions {
  arch: string;
  numClasses: number;
  /** '' picks the best quantized engine this libtorch has. */
  engine: string;
  observer: 'histogram' | 'minmax';
}

export interface NativeQuantizedModel {
  build(model: NativeModel): Promise<void>;
  calibrate(images: NativeTensor): Promise<void>;
  finalize(): Promise<void>;
  forward(images: NativeTensor): Promise<NativeTensor>;
  quantizeInput(images: NativeTensor): Promise<NativeTensor>;
  state(): Promise<NamedTensors>;
  loadState(entries: NamedTensors): Promise<void>;
  readonly engine: string;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeQuantizedModelConstructor {
  new (options: NativeQuantizedModelOptions): NativeQuantizedModel;
}

/** What torch.save files hold: Map for dicts (keys in file order), arrays for lists and tuples. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | NativeTensor
  | PickleValue[]
  | Map<string | number | bigint, PickleValue>;

export interface NativeParamGroup {
  params: string[];
  lr: number;
  weightDecay: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}

export interface NativeOptimizerStateEntry {
  index: number;
  step?: number;
  momentum_buffer?: NativeTensor;
  exp_avg?: NativeTensor;
  exp_avg_sq?: NativeTensor;
  max_exp_avg_sq?: NativeTensor;
}

export interface NativeOptimizer {
  getLr(group: number): number;
  setLr(group: number, lr: number): void;
  readonly groupCount: number;
  stateEntries(): NativeOptimizerStateEntry[];
  loadStateEntries(entries: NativeOptimizerStateEntry[]): void;
  dispose(): void;
}

export interface NativeOptimizerConstructor {
  new (model: NativeModel, options: { type: 'sgd' | 'adam' | 'adamw'; groups: NativeParamGroup[]; foreach: boolean | 'auto' }): NativeOptimizer;
}

export interface NativeStepOptions {
  labelSmoothing: number;
  classWeights: NativeTensor | null;
  clipGradNorm: number;
  gradStatsBins: number;
  /** The inputs are features() outputs: only the head runs. */
  features: boolean;
  /** 'none', 'fp16' (CUDA) or 'bf16': autocast around forward and loss. */
  amp: 'none' | 'fp16' | 'bf16';
  /** fp16 loss scale (0: off); inf/nan gradients skip the step. */
  lossScale: number;
  returnLogits?: boolean;
  /** Averages the gradients across a distributed run's ranks (train steps only). */
  gradientSync?: NativeGradientSync | null;
}

/** One distributed run's c10d group (TCPStore rendezvous, Gloo or NCCL). */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly backend: string;
  readonly disposed: boolean;
  allReduce(tensor: NativeTensor, op: 'sum' | 'max'): Promise<void>;
  broadcast(tensor: NativeTensor, root: number): Promise<void>;
  allGather(tensor: NativeTensor): Promise<NativeTensor>;
  barrier(): Promise<void>;
  shareString(key: string, value: string, root: number): Promise<string>;
  lostRanks(waitMs: number): Promise<{ storeLost: boolean; ranks: number[] }>;
  broadcastModel(model: NativeModel): Promise<void>;
  gradientSync(model: NativeModel, options: { bucketCapMb: number; flatBuckets: boolean }): Promise<NativeGradientSync>;
  abandon(): void;
  dispose(): void;
}

export interface NativeGradientSync {
  readonly mode: 'reducer' | 'flat-buckets';
  dispose(): void;
}

export interface NativeProcessGroupOptions {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  backend: 'gloo' | 'nccl';
}

export interface NativeGradStat {
  name: string;
  norm: number;
  min: number;
  max: number;
  histogram: Float32Array;
}

export interface NativeStepResult {
  loss: number;
  correct1: number;
  correct5: number;
  count: number;
  gradNorm?: number;
  gradStats?: NativeGradStat[];
  logits?: NativeTensor;
  /** Loss scaling found non-finite gradients: the parameters were not updated. */
  skipped?: boolean;
}

export interface NativeAugmentOutput {
  width: number;
  height: number;
  mean: [number, number, number];
  std: [number, number, number];
  channelsLast: boolean;
  /** Page-locked output (when CUDA is available), for asynchronous copies to the GPU. */
  pinMemory: boolean;
  threads: number;
  /** RandomErasing: x, y, width, height per image (width 0: none), applied after normalising. */
  erase?: Int32Array | null;
}

export interface NativeMixOptions {
  numClasses: number;
  lam: number;
  /** CutMix's region [x1, y1, x2, y2]; null: MixUp. */
  box: [number, number, number, number] | null;
}

export interface NativeAddon {
  Tensor: NativeTensorConstructor;
  /** params: 22 numbers per image (cropX, cropY, cropW, cropH, flip, brightness, contrast, saturation, hue, order x4, policy block of 9). */
  augmentBatch(images: Array<{ data: Uint8Array; width: number; height: number }>, params: Float64Array, output: NativeAugmentOutput): Promise<NativeTensor>;
  /** MixUp/CutMix of the images in place; resolves to the soft targets [N, numClasses]. */
  mixBatch(images: NativeTensor, labels: NativeTensor, options: NativeMixOptions): Promise<NativeTensor>;
  /** policy: 9 numbers per image (op count, then op code and magnitude x4); new HWC bytes per image. */
  augmentPolicyBatch(images: Array<{ data: Uint8Array; width: number; height: number }>, policy: Float64Array): Promise<Buffer[]>;
  Optimizer: NativeOptimizerConstructor;
  trainStep(model: NativeModel, optimizer: NativeOptimizer, images: NativeTensor, labels: NativeTensor, options: NativeStepOptions): Promise<NativeStepResult>;
  evalStep(model: NativeModel, images: NativeTensor, labels: NativeTensor | null, options: NativeStepOptions): Promise<NativeStepResult>;
  initProcessGroup(options: NativeProcessGroupOptions): Promise<NativeProcessGroup>;
  distributedSupport(): { c10d: boolean; backends: string[]; gradientSync: 'reducer' | 'flat-buckets' | null };
  getRngState(): NativeTensor;
  setRngState(state: NativeTensor): void;
  loadTorchFile(path: string): Promise<{ format: 'zip' | 'legacy'; value: PickleValue }>;
  /** Maps are saved as OrderedDicts, plain objects as dicts; atomic (temp file, fsync, rename). */
  saveTorchFile(path: string, value: unknown): Promise<void>;
  Model: NativeModelConstructor;
  QuantizedModel: NativeQuantizedModelConstructor;
  /** torch.nn.utils.prune on the named Conv2d/Linear layers (lib/models/pruning.ts validates). */
  prune(model: NativeModel, options: { method: 'l1_unstructured' | 'global_l1' | 'l2_structured' | 'identity'; modules: string[]; amount: number; isCount: boolean }): Promise<void>;
  /** prune.remove: folds the masks of these layers into `weight`. */
  makePermanent(model: NativeModel, modules: string[]): Promise<void>;
  /** Narrows ResNet block convs to these output widths (with their BatchNorm and the next conv's inputs). */
  shrinkChannels(model: NativeModel, widths: Array<[string, number]>, byNorm: boolean): Promise<void>;
  /** The ResNet block convs shrinkChannels can narrow, with their output widths. */
  shrinkableConvs(model: NativeModel): Array<[string, number]>;
  info(): RuntimeInfo;
  getNumThreads(): number;
  setNumThreads(threads: number): void;
  manualSeed(seed: number): void;
  setCudnnBenchmark(flag: boolean): void;
  setAllowTF32(flags: { conv?: boolean; matmul?: boolean }): void;
  allowTF32(): { conv: boolean; matmul: boolean };
  cpuCacheInfo(): { cachedBytes: number; limitBytes: number; hits: number; installed: boolean };
  emptyCpuCache(): void;
  matmul(a: NativeTensor, b: NativeTensor): Promise<NativeTensor>;
  randn(shape: number[]): NativeTensor;
  cat(tensors: NativeTensor[], dim: number): Promise<NativeTensor>;
  indexSelect(tensor: NativeTensor, indices: Int32Array, dim: number): Promise<NativeTensor>;
}
