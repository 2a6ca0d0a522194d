// The data model of an API-fuzz sequence, shared by the parent (arbitraries, runner) and the child
// (worker, catalogue): plain JSON, so a sequence can travel over IPC and be saved as a regression
// file. No library code here.
//
// A sequence is a list of calls. A call names an operation of the catalogue (catalogue.ts) and
// gives its arguments as `Arg`s: JSON values, plus tagged objects for what JSON cannot hold
// (undefined, NaN, BigInt, functions, typed arrays) and for references to objects that earlier
// calls made (the i-th live tensor, model, optimizer, ...; taken modulo how many there are, so a
// sequence stays meaningful when shrinking removes calls).

/** The folder of the run's scratch folder holding the synthetic image tree the loaders read (made by child.ts). */
export const DATASET_FOLDER = 'dataset';

/** Kinds of objects a sequence creates and later refers to. */
export const KINDS = ['tensor', 'model', 'optimizer', 'scheduler', 'scaler', 'loader', 'writer', 'log', 'state', 'optState', 'schedState', 'group', 'sync', 'qmodel'] as const;
export type Kind = (typeof KINDS)[number];

export type Arg =
  | null
  | boolean
  | string
  | number
  /** undefined */
  | { u: 1 }
  /** a number JSON cannot hold */
  | { n: 'NaN' | 'Infinity' | '-Infinity' | '-0' }
  /** a BigInt */
  | { big: string }
  /** a live object made by an earlier call (undefined when there is none of that kind) */
  | { ref: Kind; i: number }
  /** a fresh standard-normal float32 tensor of this shape, made when the call runs */
  | { randn: number[] }
  /** a fresh int64 label tensor holding these values */
  | { labels: number[] }
  /** a typed array of this constructor with these values */
  | { ta: TypedArrayName; v: number[] }
  /** a function: returns true, returns false, or throws */
  | { fn: 'true' | 'false' | 'throw' }
  /** a Symbol */
  | { sym: 1 }
  | { arr: Arg[] }
  | { obj: { [key: string]: Arg } };

export const TYPED_ARRAYS = ['Float32Array', 'Float64Array', 'Int32Array', 'Int16Array', 'Int8Array', 'Uint8Array', 'BigInt64Array', 'Uint16Array'] as const;
export type TypedArrayName = (typeof TYPED_ARRAYS)[number];

export interface Call {
  op: OpName;
  args: Arg[];
  /** Start it and go on without waiting (it is awaited at the next awaitAll or at the sequence's end). */
  spawn?: boolean;
  /** Start it this many times at once (Promise.all of the copies). */
  times?: number;
}

export type Sequence = Call[];

/** How one call ended in the child. */
export type CallOutcome = 'ok' | 'error' | 'skipped' | 'finding';

/** What the child reports for one sequence it finished. */
export interface SequenceStats {
  ok: number;
  /** JS Errors with a message: normalised message → count. */
  errors: Record<string, number>;
  skipped: number;
  /** Thrown non-Errors, Errors with an empty message. */
  findings: Array<{ call: number; op: string; what: string }>;
  /** Outcomes per operation: [succeeded, JS Errors, skipped]. */
  byOp: Record<string, [number, number, number]>;
}

/** A readable one-line form of a call, for reports and regression files. */
export function describeCall(call: Call): string {
  const flags = `${call.spawn ? ' (spawned)' : ''}${call.times && call.times > 1 ? ` x${call.times}` : ''}`;
  return `${call.op}(${call.args.map(describeArg).join(', ')})${flags}`;
}

export function describeArg(arg: Arg): string {
  if (arg === null || typeof arg !== 'object') return JSON.stringify(arg);
  if ('u' in arg) return 'undefined';
  if ('n' in arg) return arg.n;
  if ('big' in arg) return `${arg.big}n`;
  if ('ref' in arg) return `${arg.ref}#${arg.i}`;
  if ('randn' in arg) return `randn([${arg.randn.join(', ')}])`;
  if ('labels' in arg) return `labels([${arg.labels.join(', ')}])`;
  if ('ta' in arg) return `${arg.ta}[${arg.v.join(', ')}]`;
  if ('fn' in arg) return `() => ${arg.fn === 'throw' ? '{ throw }' : arg.fn}`;
  if ('sym' in arg) return 'Symbol()';
  if ('arr' in arg) return `[${arg.arr.map(describeArg).join(', ')}]`;
  return `{ ${Object.entries(arg.obj).map(([k, v]) => `${k}: ${describeArg(v)}`).join(', ')} }`;
}

/** Error messages with numbers, paths and addresses made generic, to count alike ones together. */
export function normalizeMessage(message: string): string {
  return message
    .split('\n')[0]
    .replace(/\/tmp\/[^\s'"]*/g, '<path>')
    .replace(/0x[0-9a-f]+/gi, '#')
    .replace(/\d+(\.\d+)?(e[-+]?\d+)?/gi, '#')
    .slice(0, 120);
}

/** Every operation of the catalogue; catalogue.ts implements each, arbitraries.ts generates each. */
export const OP_NAMES = [
  // tensors
  'tensor', 'randn', 'matmul', 'cat', 'indexSelect', 'tensor.toTypedArray', 'tensor.toArray', 'tensor.to', 'tensor.clone',
  'tensor.dispose', 'tensor.inspect',
  // models and their state dicts
  'createModel', 'model.forward', 'model.features', 'model.classify', 'model.backward', 'model.namedGradients', 'model.train',
  'model.eval', 'model.freeze', 'model.unfreeze', 'model.stateDict', 'model.namedParameters', 'model.trainableParameters',
  'model.loadStateDict', 'model.to', 'model.channelsLast', 'model.convAlgorithm', 'model.nonFinite', 'model.inspect', 'model.dispose',
  'model.forwardThenDispose', 'state.take', 'state.disposeOne', 'exportOnnx',
  // optimizers, schedulers, loss scaling, steps
  'createOptimizer', 'optimizer.getLr', 'optimizer.setLr', 'optimizer.stateDict', 'optimizer.loadStateDict', 'optimizer.dispose',
  'createScheduler', 'scheduler.step', 'scheduler.getLastLr', 'scheduler.stateDict', 'scheduler.loadStateDict',
  'createGradScaler', 'scaler.update', 'scaler.stateDict', 'scaler.loadStateDict',
  'trainStep', 'evalStep', 'trainStepThenDispose',
  // data
  'createLoader', 'loader.next', 'loader.stop', 'loader.order',
  // distributed: a world-size-1 process group, its collectives and gradient syncs
  'createProcessGroup', 'group.allReduce', 'group.broadcast', 'group.allGather', 'group.barrier', 'group.shareString',
  'group.broadcastModel', 'group.gradientSync', 'group.explainFailure', 'group.inspect', 'group.abandon', 'group.dispose',
  'group.disposeDuring', 'sync.inspect', 'sync.dispose', 'sync.trainStep',
  // pruning, channel shrinking (public and the native calls behind them)
  'pruning.prune', 'pruning.makePermanent', 'pruning.inspect', 'pruning.pruneThenDispose', 'shrink.shrinkChannels', 'shrink.resizeChannels',
  'native.prune', 'native.makePermanent', 'native.shrinkChannels', 'native.shrinkableConvs',
  // int8 quantized models
  'quantizeModel', 'quantizeThenDispose', 'qmodel.forward', 'qmodel.quantizeInput', 'qmodel.evaluate', 'qmodel.stateDict', 'qmodel.saveLoad', 'qmodel.load',
  'qmodel.inspect', 'qmodel.dispose', 'qmodel.forwardThenDispose',
  // batch mixing (MixUp/CutMix), soft targets, augmentation with erasing and policies
  'mixBatch', 'mix.applyDraw', 'native.mixBatch', 'trainStepMixed', 'augmentBatch', 'native.augmentBatch', 'applyPolicySteps',
  'native.augmentPolicyBatch',
  // reporting
  'createEventWriter', 'writer.addScalar', 'writer.addHistogram', 'writer.flush', 'writer.close',
  'createMetricsLog', 'log.log', 'log.flush', 'log.close',
  // the harness: wait for spawned calls, drop a reference and collect garbage (finalizers run)
  'awaitAll', 'forget', 'gc',
] as const;
export type OpName = (typeof OP_NAMES)[number];
