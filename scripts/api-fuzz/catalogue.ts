// The call catalogue, child side: what each operation of a sequence does, through the package's
// public API (lib/index.ts) exactly as a user would call it. The arguments arrive decoded (see
// decodeArg); they may be of any type, which is the point. An operation with a receiver (a method
// call) is skipped when the sequence has no live object of that kind yet.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { native } from '../../binding';
import { freePort } from '../../lib/distributed/free-port';
import { saveTorchFile } from '../../lib/models/weights';
import {
  cat, createModel, createOptimizer, createScheduler, DataLoader, EventWriter, evalStep, evalTransform, exportOnnx, GradientSync, GradScaler, ImageCache,
  indexSelect, matmul, MetricsLog, Model, Optimizer, ProcessGroup, randn, Tensor, tensor, trainStep, trainTransform,
  applyPolicySteps, BatchMix, pruning, QuantizedModel, quantizeModel, Random, shrink,
  type Batch, type ConvAlgorithm, type DecodedImage, type MixDraw, type PolicyStep, type LrScheduler, type OptimizerState, type Sample, type StateDict,
} from '../../lib';
import { KINDS, type Arg, type Kind, type OpName } from './calls';

/** How many models may be alive (not disposed) at once in a sequence; more createModel calls are skipped. */
export const MAX_LIVE_MODELS = 3;
/** How many process groups may be alive at once (each holds a store server, its threads and a port); more are skipped. */
export const MAX_LIVE_GROUPS = 2;

/** Marks a call the harness chose not to make (no receiver, too many models). */
export class Skip {
  constructor(readonly why: string) {}
}

export class Context {
  readonly objects: Record<Kind, unknown[]> = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, unknown[]>;
  /** Spawned calls not yet awaited. */
  pending: Promise<void>[] = [];
  readonly iterators = new Map<DataLoader, AsyncGenerator<Batch>>();
  /** The group and the model each GradientSync was made from (sync.trainStep trains that model, or another one). */
  readonly syncOrigins = new Map<GradientSync, { group: ProcessGroup; model: Model }>();
  /** Everything made, forgotten or not, for the clean-up at the sequence's end. */
  readonly made: unknown[] = [];
  private files = 0;

  /** `dir`: this sequence's scratch folder; `samples`: the synthetic dataset's images. */
  constructor(readonly dir: string, readonly samples: readonly Sample[]) {}

  add<T>(kind: Kind, value: T): T {
    this.objects[kind].push(value);
    if (kind === 'tensor' || kind === 'model' || kind === 'optimizer' || kind === 'state' || kind === 'writer' || kind === 'log' || kind === 'group' || kind === 'sync' || kind === 'qmodel') {
      this.made.push(value);
    }
    return value;
  }

  get(kind: Kind, i: number): unknown {
    const list = this.objects[kind];
    return list.length === 0 ? undefined : list[Math.abs(Math.trunc(i)) % list.length];
  }

  scratch(name: string): string {
    return path.join(this.dir, `${name}-${++this.files}`);
  }

  /** Disposes and closes everything the sequence made (disposing twice is allowed by the API). */
  async cleanup(): Promise<void> {
    for (const it of this.iterators.values()) await it.return(undefined).catch(() => undefined);
    for (const value of this.made.reverse()) {
      if (value instanceof Map) for (const t of value.values()) if (t instanceof Tensor) t.dispose();
      if (value instanceof Tensor || value instanceof Model || value instanceof Optimizer || value instanceof QuantizedModel) value.dispose();
      if (value instanceof EventWriter || value instanceof MetricsLog) value.close();
      if (value instanceof GradientSync || value instanceof ProcessGroup) value.dispose();
    }
  }
}

export type Impl = (ctx: Context, args: any[]) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Operation {
  /** The class args[0] must be a live instance of, or the call is skipped. */
  receiver?: Kind;
  run: Impl;
}

const RECEIVER_CLASS: Partial<Record<Kind, abstract new (...a: never[]) => unknown>> = {
  tensor: Tensor, model: Model, optimizer: Optimizer, scaler: GradScaler, loader: DataLoader, writer: EventWriter, log: MetricsLog, state: Map,
  sync: GradientSync,
};

export function isReceiver(kind: Kind, value: unknown): boolean {
  if (kind === 'group') return value instanceof ProcessGroup; // its constructor is private: ProcessGroup.init makes them
  if (kind === 'qmodel') return value instanceof QuantizedModel; // likewise: quantize and load make them
  const cls = RECEIVER_CLASS[kind];
  if (cls) return value instanceof cls;
  return typeof value === 'object' && value !== null; // schedulers and saved states: any object made by the sequence
}

/** Turns an Arg into the value the call receives. */
export function decodeArg(ctx: Context, arg: Arg): unknown {
  if (arg === null || typeof arg !== 'object') return arg;
  if ('u' in arg) return undefined;
  if ('n' in arg) return arg.n === '-0' ? -0 : Number(arg.n);
  if ('big' in arg) return BigInt(arg.big);
  if ('ref' in arg) return ctx.get(arg.ref, arg.i);
  if ('randn' in arg) return ctx.add('tensor', randn(arg.randn));
  if ('labels' in arg) return ctx.add('tensor', tensor(BigInt64Array.from(arg.labels, (v) => BigInt(v)), [arg.labels.length]));
  if ('ta' in arg) {
    const Ctor = globalThis[arg.ta] as unknown as { from(v: ArrayLike<number>, map?: (v: number) => unknown): unknown };
    return arg.ta === 'BigInt64Array' ? Ctor.from(arg.v, (v) => BigInt(Math.trunc(v))) : Ctor.from(arg.v);
  }
  if ('fn' in arg) {
    const kind = arg.fn;
    return () => {
      if (kind === 'throw') throw new Error('thrown by a predicate of the fuzz sequence');
      return kind === 'true';
    };
  }
  if ('sym' in arg) return Symbol('fuzz');
  if ('arr' in arg) return arg.arr.map((a) => decodeArg(ctx, a));
  return Object.fromEntries(Object.entries(arg.obj).map(([k, v]) => [k, decodeArg(ctx, v)]));
}

function liveModels(ctx: Context): number {
  return ctx.objects.model.filter((m) => m instanceof Model && !m.disposed).length;
}

function register(ctx: Context, value: unknown): unknown {
  if (value instanceof Tensor) ctx.add('tensor', value);
  else if (value instanceof Map) ctx.add('state', value);
  return value;
}

/** A state dict made from `state` the way a user might get one wrong. */
async function stateDictVariant(ctx: Context, state: unknown, mode: unknown): Promise<unknown> {
  if (!(state instanceof Map)) return state;
  const entries = [...(state as StateDict).entries()];
  const first = entries[0];
  switch (mode) {
    case 'half':
      return new Map(entries.slice(0, Math.ceil(entries.length / 2)));
    case 'empty':
      return new Map();
    case 'extra':
      return new Map([...entries, ['not.a.parameter', ctx.add('tensor', randn([2]))]]);
    case 'wrong-shape':
      return first ? new Map([[first[0], ctx.add('tensor', randn([1, 2]))], ...entries.slice(1)]) : state;
    case 'wrong-dtype':
      return first ? new Map([[first[0], ctx.add('tensor', await first[1].to('cpu', 'float64'))], ...entries.slice(1)]) : state;
    case 'disposed-entry': {
      if (!first) return state;
      const t = ctx.add('tensor', randn(first[1].shape));
      t.dispose();
      return new Map([[first[0], t], ...entries.slice(1)]);
    }
    case 'non-tensor':
      return new Map<string, unknown>([...entries, ['fc.weight', 42]]);
    case 'object':
      return Object.fromEntries(entries);
    default:
      return state;
  }
}

/** An optimizer state changed the way a corrupt or foreign checkpoint would change it. */
function optimizerStateVariant(ctx: Context, saved: unknown, mode: unknown): unknown {
  if (typeof saved !== 'object' || saved === null || !('state' in saved)) return saved;
  const s = saved as OptimizerState;
  switch (mode) {
    case 'wrong-type':
      return { ...s, type: s.type === 'sgd' ? 'adam' : 'sgd' };
    case 'names':
      return { ...s, param_names: [...s.param_names].reverse() };
    case 'no-state':
      return { ...s, state: undefined };
    case 'bad-index':
      return { ...s, state: new Map([...s.state, [1e9, new Map(s.state.values().next().value ?? [])], [-1, new Map()]]) };
    case 'bad-field': {
      const t = ctx.add('tensor', randn([3]));
      t.dispose();
      return { ...s, state: new Map([...s.state].map(([i, f]) => [i, new Map([...f].map(([k, v], j) => [k, j === 0 ? t : v]))])) };
    }
    case 'wrong-shape':
      return { ...s, state: new Map([...s.state].map(([i, f]) => [i, new Map([...f].map(([k, v]) => [k, v instanceof Tensor ? ctx.add('tensor', randn([1])) : v]))])) };
    case 'map':
      return new Map(Object.entries(s));
    case 'lr-nan':
      return { ...s, param_groups: s.param_groups.map((g) => ({ ...g, lr: NaN })) };
    default:
      return s;
  }
}

async function nextBatch(ctx: Context, loader: DataLoader, epoch: unknown): Promise<unknown> {
  let it = ctx.iterators.get(loader);
  if (!it) {
    it = loader.epoch(epoch as number);
    ctx.iterators.set(loader, it);
  }
  const r = await it.next();
  if (r.done) {
    ctx.iterators.delete(loader);
    return undefined;
  }
  ctx.add('tensor', r.value.images);
  ctx.add('tensor', r.value.labels);
  return r.value;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A server holding a port, for the 'busy' masterPort: rank 0 cannot open its store there. */
function portHolder(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, () => resolve(server));
  });
}

/**
 * Options that pass validation and then wait out the whole timeout by design: a world of more than
 * one rank waits for peers that never come, and a master address other than loopback is retried
 * until the timeout. Such calls run only with a timeout of at most half a second (the generator
 * draws 0.2 s among others); with a longer one they are skipped.
 */
function waitsForTimeout(o: Record<string, unknown>): boolean {
  const manyRanks = typeof o.worldSize === 'number' && o.worldSize > 1;
  const remote = typeof o.masterAddr === 'string' && o.masterAddr !== '' && o.masterAddr !== '127.0.0.1' && o.masterAddr !== 'localhost';
  const shortTimeout = typeof o.timeoutSeconds === 'number' && o.timeoutSeconds <= 0.5;
  return (manyRanks || remote) && !shortTimeout;
}

function liveGroups(ctx: Context): number {
  return ctx.objects.group.filter((g) => g instanceof ProcessGroup && !g.disposed).length;
}

/** What a native call receives for a model argument: its native object when it is a Model, else the value itself. */
const nativeOf = (m: unknown): unknown => (m instanceof Model || m instanceof QuantizedModel ? m.native : m);

const PRUNE_METHODS: Record<string, (model: Model, modules: string[], options: never) => Promise<void>> = {
  l1: pruning.l1Unstructured, global: pruning.globalL1Unstructured, structured: pruning.l2Structured, identity: (m, modules) => pruning.identity(m, modules),
};

/** Calls one of the pruning functions by its short name (an unknown name reaches the API as a non-function). */
function prune(method: unknown, model: unknown, modules: unknown, options: unknown): Promise<void> {
  const fn = PRUNE_METHODS[String(method)];
  if (!fn) throw new Skip(`no pruning method '${String(method)}'`);
  return fn(model as Model, modules as string[], options as never);
}

/** Synthetic decoded images from specs: [width, height] (valid bytes) or [width, height, bytes] (a buffer of that many bytes). */
function decodedImages(specs: unknown): DecodedImage[] {
  if (!Array.isArray(specs)) return specs as DecodedImage[];
  return specs.map((spec) => {
    if (!Array.isArray(spec)) return spec as DecodedImage;
    const [width, height, bytes] = spec as number[];
    const size = bytes ?? (Number.isSafeInteger(width * height * 3) && width * height * 3 >= 0 ? width * height * 3 : 0);
    const data = Buffer.alloc(Math.max(0, Math.min(Number(size) || 0, 1 << 20)));
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) & 255;
    return { data, width, height };
  });
}

/** The calibration batches of a quantization: the listed tensors, or a non-iterable as is. */
const calibrationOf = (batches: unknown): unknown => batches;

/** A model of the sequence other than `model` (or `model` when it is the only one). */
function otherModel(ctx: Context, model: Model): Model {
  return (ctx.objects.model.find((m) => m !== model && m instanceof Model) as Model | undefined) ?? model;
}

export const CATALOGUE: Record<OpName, Operation> = {
  // ---- tensors
  tensor: { run: (ctx, [data, shape, options]) => ctx.add('tensor', tensor(data, shape, options)) },
  randn: { run: (ctx, [shape]) => ctx.add('tensor', randn(shape)) },
  matmul: { run: async (ctx, [a, b]) => ctx.add('tensor', await matmul(a, b)) },
  cat: { run: async (ctx, [list, dim]) => ctx.add('tensor', await cat(list, dim)) },
  indexSelect: { run: async (ctx, [source, indices, dim]) => ctx.add('tensor', await indexSelect(source, indices, dim)) },
  'tensor.toTypedArray': { receiver: 'tensor', run: (_, [t]) => (t as Tensor).toTypedArray() },
  'tensor.toArray': { receiver: 'tensor', run: (_, [t]) => (t as Tensor).toArray() },
  'tensor.to': { receiver: 'tensor', run: async (ctx, [t, device, dtype, options]) => ctx.add('tensor', await (t as Tensor).to(device, dtype, options)) },
  'tensor.clone': { receiver: 'tensor', run: (ctx, [t]) => ctx.add('tensor', (t as Tensor).clone()) },
  'tensor.dispose': { receiver: 'tensor', run: (_, [t]) => (t as Tensor).dispose() },
  'tensor.inspect': {
    receiver: 'tensor',
    run: (_, [t]) => {
      const x = t as Tensor;
      return [x.disposed, x.toString(), x.shape, x.dtype, x.device, x.requiresGrad, x.numel];
    },
  },

  // ---- models
  createModel: {
    run: (ctx, [arch, options]) => {
      if (liveModels(ctx) >= MAX_LIVE_MODELS) throw new Skip(`${MAX_LIVE_MODELS} models alive`);
      return ctx.add('model', createModel(arch, options));
    },
  },
  'model.forward': { receiver: 'model', run: async (ctx, [m, images, options]) => ctx.add('tensor', await (m as Model).forward(images, options)) },
  'model.features': { receiver: 'model', run: async (ctx, [m, images]) => ctx.add('tensor', await (m as Model).features(images)) },
  'model.classify': { receiver: 'model', run: async (ctx, [m, features, options]) => ctx.add('tensor', await (m as Model).classify(features, options)) },
  'model.backward': { receiver: 'model', run: (_, [m, images, labels, options]) => (m as Model).backward(images, labels, options) },
  'model.namedGradients': { receiver: 'model', run: (ctx, [m]) => register(ctx, (m as Model).namedGradients()) },
  'model.train': { receiver: 'model', run: (_, [m, mode]) => void (m as Model).train(mode) },
  'model.eval': { receiver: 'model', run: (_, [m]) => void (m as Model).eval() },
  'model.freeze': { receiver: 'model', run: (_, [m, options]) => (m as Model).freeze(options) },
  'model.unfreeze': { receiver: 'model', run: (_, [m, options]) => (m as Model).unfreeze(options) },
  'model.stateDict': { receiver: 'model', run: (ctx, [m]) => register(ctx, (m as Model).stateDict()) },
  'model.namedParameters': { receiver: 'model', run: (ctx, [m]) => register(ctx, (m as Model).namedParameters()) },
  'model.trainableParameters': { receiver: 'model', run: (ctx, [m]) => register(ctx, (m as Model).trainableParameters()) },
  'model.loadStateDict': {
    receiver: 'model',
    run: async (ctx, [m, state, mode, options]) => (m as Model).loadStateDict((await stateDictVariant(ctx, state, mode)) as StateDict, options),
  },
  'model.to': { receiver: 'model', run: async (_, [m, device]) => void (await (m as Model).to(device)) },
  'model.channelsLast': { receiver: 'model', run: async (_, [m, flag]) => void (await (m as Model).channelsLast(flag)) },
  'model.convAlgorithm': { receiver: 'model', run: async (_, [m, name]) => void (await (m as Model).convAlgorithm(name as ConvAlgorithm)) },
  'model.nonFinite': { receiver: 'model', run: (_, [m, options]) => (m as Model).nonFinite(options) },
  'model.inspect': {
    receiver: 'model',
    run: (_, [m]) => {
      const x = m as Model;
      return [x.disposed, x.training, x.arch, x.numClasses, x.device, x.featureDim, x.headPrefix, x.namedModules().length];
    },
  },
  'model.dispose': { receiver: 'model', run: (_, [m]) => (m as Model).dispose() },
  'model.forwardThenDispose': {
    // the model is freed while its forward is queued or running: the promise must still settle
    receiver: 'model',
    run: async (ctx, [m, images]) => {
      const model = m as Model;
      const running = model.forward(images);
      model.dispose();
      return ctx.add('tensor', await running);
    },
  },
  'state.take': {
    receiver: 'state',
    run: (ctx, [s, i]) => {
      const values = [...(s as Map<string, unknown>).values()];
      return values.length ? register(ctx, values[Math.abs(Math.trunc(Number(i) || 0)) % values.length]) : undefined;
    },
  },
  'state.disposeOne': {
    receiver: 'state',
    run: (_, [s, i]) => {
      const values = [...(s as Map<string, unknown>).values()];
      const t = values[Math.abs(Math.trunc(Number(i) || 0)) % Math.max(1, values.length)];
      if (t instanceof Tensor) t.dispose();
    },
  },

  // ---- optimizers, schedulers, loss scaling
  createOptimizer: { run: (ctx, [model, options]) => ctx.add('optimizer', createOptimizer(model, options)) },
  'optimizer.getLr': { receiver: 'optimizer', run: (_, [o, group]) => (o as Optimizer).getLr(group) },
  'optimizer.setLr': { receiver: 'optimizer', run: (_, [o, group, lr]) => (o as Optimizer).setLr(group, lr) },
  'optimizer.stateDict': {
    receiver: 'optimizer',
    run: (ctx, [o]) => {
      const s = ctx.add('optState', (o as Optimizer).stateDict());
      for (const fields of s.state.values()) for (const v of fields.values()) if (v instanceof Tensor) ctx.add('tensor', v);
      return s;
    },
  },
  'optimizer.loadStateDict': {
    receiver: 'optimizer',
    run: (ctx, [o, saved, mode]) => (o as Optimizer).loadStateDict(optimizerStateVariant(ctx, saved, mode) as OptimizerState),
  },
  'optimizer.dispose': { receiver: 'optimizer', run: (_, [o]) => (o as Optimizer).dispose() },
  createScheduler: { run: (ctx, [optimizer, config]) => ctx.add('scheduler', createScheduler(optimizer, config)) },
  'scheduler.step': { receiver: 'scheduler', run: (_, [s, metric]) => (s as LrScheduler).step(metric) },
  'scheduler.getLastLr': { receiver: 'scheduler', run: (_, [s]) => (s as LrScheduler).getLastLr() },
  'scheduler.stateDict': { receiver: 'scheduler', run: (ctx, [s]) => ctx.add('schedState', (s as LrScheduler).stateDict()) },
  'scheduler.loadStateDict': {
    receiver: 'scheduler',
    run: (_, [s, state, mode]) => {
      let saved = state;
      if (isObject(state) && mode === 'json') saved = JSON.parse(JSON.stringify(state));
      if (isObject(state) && mode === 'mutated') saved = Object.fromEntries(Object.entries(state).map(([k, v], i) => [k, i === 1 ? -1 : v]));
      return (s as LrScheduler).loadStateDict(saved);
    },
  },
  createGradScaler: { run: (ctx, [options]) => ctx.add('scaler', new GradScaler(options)) },
  'scaler.update': { receiver: 'scaler', run: (_, [s, skipped]) => (s as GradScaler).update(skipped) },
  'scaler.stateDict': { receiver: 'scaler', run: (_, [s]) => (s as GradScaler).stateDict() },
  'scaler.loadStateDict': { receiver: 'scaler', run: (_, [s, state]) => (s as GradScaler).loadStateDict(state) },

  // ---- training and evaluation steps
  trainStep: { run: (_, [model, optimizer, images, labels, options]) => trainStep(model, optimizer, images, labels, options) },
  evalStep: {
    run: async (ctx, [model, images, labels, options]) => {
      const r = await evalStep(model, images, labels, options);
      if (r.logits) ctx.add('tensor', r.logits);
      return r;
    },
  },
  trainStepThenDispose: {
    // the model or the optimizer is freed while the step is queued or running
    receiver: 'model',
    run: async (_, [model, optimizer, images, labels, which]) => {
      if (!(optimizer instanceof Optimizer)) throw new Skip('no optimizer');
      const running = trainStep(model, optimizer, images, labels);
      if (which === 'model' || which === 'both') (model as Model)?.dispose?.();
      if (which === 'optimizer' || which === 'both') (optimizer as Optimizer)?.dispose?.();
      return running;
    },
  },

  // ---- data
  createLoader: {
    run: (ctx, [which, options, size]) => {
      const samples =
        which === 'all' ? ctx.samples : which === 'empty' ? [] : which === 'missing' ? ctx.samples.map((s) => ({ ...s, path: `${s.path}.gone` })) : which;
      const o = isObject(options) ? { ...options } : options;
      if (isObject(o)) {
        if (o.transform === 'train') o.transform = trainTransform({ size: size as number });
        else if (o.transform === 'eval') o.transform = evalTransform({ size: size as number });
        if (!('cache' in o)) o.cache = new ImageCache({ decode: { resize: size as number } });
        if (!('warn' in o)) o.warn = () => undefined; // 'missing' files are skipped with a warning each
      }
      return ctx.add('loader', new DataLoader(samples as Sample[], o as never));
    },
  },
  'loader.next': { receiver: 'loader', run: (ctx, [l, epoch]) => nextBatch(ctx, l as DataLoader, epoch) },
  'loader.stop': {
    receiver: 'loader',
    run: async (ctx, [l]) => {
      const it = ctx.iterators.get(l as DataLoader);
      ctx.iterators.delete(l as DataLoader);
      await it?.return(undefined);
    },
  },
  'loader.order': { receiver: 'loader', run: (_, [l, epoch]) => [(l as DataLoader).length, (l as DataLoader).order(epoch).length] },

  // ONNX export reads the weights through the native model while other calls may dispose or train it
  exportOnnx: {
    run: (ctx, [m, where, options]) => {
      const file = where === 'file' ? ctx.scratch('model.onnx') : where === 'no-folder' ? path.join(ctx.scratch('missing'), 'sub', 'model.onnx') : where;
      return exportOnnx(m as Model, file as string, options as Parameters<typeof exportOnnx>[2]);
    },
  },

  // ---- distributed: world-size-1 groups (collectives return at once), misused and disposed mid-flight
  createProcessGroup: {
    run: async (ctx, [options]) => {
      if (liveGroups(ctx) >= MAX_LIVE_GROUPS) throw new Skip(`${MAX_LIVE_GROUPS} process groups alive`);
      if (!isObject(options)) return ctx.add('group', await ProcessGroup.init(options as never));
      const o = { ...options };
      let holder: net.Server | undefined;
      if (o.masterPort === 'free') o.masterPort = await freePort();
      else if (o.masterPort === 'busy') {
        holder = await portHolder();
        o.masterPort = (holder.address() as net.AddressInfo).port;
      }
      try {
        if (waitsForTimeout(o)) throw new Skip('would wait out the timeout for peers or an unreachable master');
        return ctx.add('group', await ProcessGroup.init(o as never));
      } finally {
        holder?.close();
      }
    },
  },
  'group.allReduce': { receiver: 'group', run: (_, [g, t, op]) => (g as ProcessGroup).allReduce(t, op) },
  'group.broadcast': { receiver: 'group', run: (_, [g, t, root]) => (g as ProcessGroup).broadcast(t, root) },
  'group.allGather': { receiver: 'group', run: async (ctx, [g, t]) => ctx.add('tensor', await (g as ProcessGroup).allGather(t)) },
  'group.barrier': { receiver: 'group', run: (_, [g]) => (g as ProcessGroup).barrier() },
  'group.shareString': { receiver: 'group', run: (_, [g, key, value, root]) => (g as ProcessGroup).shareString(key, value, root) },
  'group.broadcastModel': { receiver: 'group', run: (_, [g, m]) => (g as ProcessGroup).broadcastModel(m) },
  'group.gradientSync': {
    // 'frozen': every parameter frozen first, so nothing is left to average
    receiver: 'group',
    run: async (ctx, [g, m, options, prepare]) => {
      if (prepare === 'frozen' && m instanceof Model && !m.disposed) m.freeze();
      const sync = ctx.add('sync', await (g as ProcessGroup).gradientSync(m, options));
      ctx.syncOrigins.set(sync, { group: g as ProcessGroup, model: m as Model });
      return sync;
    },
  },
  'group.explainFailure': {
    // waits 1.5 s for heartbeats by design (kept rare), then abandons the group
    receiver: 'group',
    run: (_, [g, what]) => (g as ProcessGroup).explainFailure(what === 'error' ? new Error('a collective failed (fuzz)') : what),
  },
  'group.inspect': {
    receiver: 'group',
    run: (_, [g]) => {
      const x = g as ProcessGroup;
      return [x.disposed, x.localRank, x.localWorldSize, x.timeoutSeconds, x.rank, x.size, x.backend];
    },
  },
  'group.abandon': { receiver: 'group', run: (_, [g]) => (g as ProcessGroup).abandon() },
  'group.dispose': { receiver: 'group', run: (_, [g]) => (g as ProcessGroup).dispose() },
  'group.disposeDuring': {
    // the group is disposed or abandoned while its collective is queued or running: the promise must still settle
    receiver: 'group',
    run: async (ctx, [g, which, how, t, m]) => {
      const group = g as ProcessGroup;
      let running: Promise<unknown>;
      if (which === 'allGather') running = group.allGather(t).then((r) => ctx.add('tensor', r));
      else if (which === 'broadcastModel') running = group.broadcastModel(m);
      else if (which === 'gradientSync') running = group.gradientSync(m).then((s) => ctx.add('sync', s));
      else if (which === 'barrier') running = group.barrier();
      else running = group.allReduce(t);
      if (how === 'abandon') group.abandon();
      else group.dispose();
      return running;
    },
  },
  'sync.inspect': { receiver: 'sync', run: (_, [s]) => (s as GradientSync).mode },
  'sync.dispose': { receiver: 'sync', run: (_, [s]) => (s as GradientSync).dispose() },
  'sync.trainStep': {
    // a step with the sync on its own model or on another one; `then` frees something while the step is queued or running
    receiver: 'sync',
    run: async (ctx, [s, optimizer, images, labels, which, then]) => {
      const sync = s as GradientSync;
      const origin = ctx.syncOrigins.get(sync);
      if (!origin) throw new Skip('sync of unknown origin');
      const model = which === 'other' ? otherModel(ctx, origin.model) : origin.model;
      const running = trainStep(model, optimizer, images, labels, { gradientSync: sync });
      if (then === 'sync') sync.dispose();
      else if (then === 'group') origin.group.dispose();
      else if (then === 'abandon') origin.group.abandon();
      else if (then === 'model') model.dispose();
      return running;
    },
  },

  // ---- pruning and channel shrinking; the native calls also directly, without the TS checks in front
  'pruning.prune': { run: (_, [method, m, modules, options]) => prune(method, m, modules, options) },
  'pruning.makePermanent': { run: (_, [m, modules]) => pruning.makePermanent(m as Model, modules as string[] | undefined) },
  'pruning.inspect': {
    run: (_, [m]) => [pruning.prunableModules(m as Model).length, pruning.prunedModules(m as Model), pruning.layerSparsity(m as Model).length, Object.keys(shrink.channelWidths(m as Model)).length],
  },
  'pruning.pruneThenDispose': {
    // the model is freed while its pruning is queued or running: the promise must still settle
    receiver: 'model',
    run: async (_, [m, method, modules, options]) => {
      const running = prune(method, m, modules, options);
      (m as Model).dispose();
      return running;
    },
  },
  'shrink.shrinkChannels': { run: (_, [m, options]) => shrink.shrinkChannels(m as Model, options as { amount: number }) },
  'shrink.resizeChannels': { run: (_, [m, widths]) => shrink.resizeChannels(m as Model, widths as Record<string, number>) },
  'native.prune': { run: (_, [m, options]) => native().prune(nativeOf(m) as never, options as never) },
  'native.makePermanent': { run: (_, [m, modules]) => native().makePermanent(nativeOf(m) as never, modules as string[]) },
  'native.shrinkChannels': { run: (_, [m, widths, byNorm]) => native().shrinkChannels(nativeOf(m) as never, widths as Array<[string, number]>, byNorm as boolean) },
  'native.shrinkableConvs': { run: (_, [m]) => native().shrinkableConvs(nativeOf(m) as never) },

  // ---- int8 quantized models
  quantizeModel: { run: async (ctx, [m, batches, options]) => ctx.add('qmodel', await quantizeModel(m as Model, calibrationOf(batches) as Tensor[], options as never)) },
  quantizeThenDispose: {
    // the float model is freed while its quantization runs (build, calibration)
    receiver: 'model',
    run: async (ctx, [m, batches]) => {
      const running = quantizeModel(m as Model, batches as Tensor[]);
      (m as Model).dispose();
      return ctx.add('qmodel', await running);
    },
  },
  'qmodel.forward': { receiver: 'qmodel', run: async (ctx, [q, images]) => ctx.add('tensor', await (q as QuantizedModel).forward(images as Tensor)) },
  'qmodel.quantizeInput': { receiver: 'qmodel', run: async (ctx, [q, images]) => ctx.add('tensor', await (q as QuantizedModel).quantizeInput(images as Tensor)) },
  'qmodel.evaluate': {
    receiver: 'qmodel',
    run: async (ctx, [q, images, labels]) => {
      const r = await (q as QuantizedModel).evaluate(images as Tensor, labels as Tensor);
      ctx.add('tensor', r.logits);
      return [r.count, r.loss, r.correct1, r.correct5];
    },
  },
  'qmodel.stateDict': { receiver: 'qmodel', run: async (ctx, [q]) => register(ctx, await (q as QuantizedModel).stateDict()) },
  'qmodel.saveLoad': {
    receiver: 'qmodel',
    run: async (ctx, [q, engine]) => {
      const file = ctx.scratch('int8.pt');
      await (q as QuantizedModel).save(file);
      return ctx.add('qmodel', await QuantizedModel.load(file, engine === undefined ? undefined : { engine: engine as never }));
    },
  },
  'qmodel.load': {
    // files that are not int8 models: missing, not a torch file, a float model's state dict, a hand-made header
    run: async (ctx, [what, m]) => {
      let file = ctx.scratch('bad.pt');
      if (what === 'missing') file = path.join(file, 'gone.pt');
      else if (what === 'garbage') fs.writeFileSync(file, 'not a torch file');
      else if (what === 'folder') fs.mkdirSync(file);
      else if (what === 'float-model') {
        if (!(m instanceof Model) || m.disposed) throw new Skip('no live model');
        const state = m.stateDict();
        try {
          await saveTorchFile(file, state);
        } finally {
          for (const t of state.values()) t.dispose();
        }
      } else file = what as string;
      return ctx.add('qmodel', await QuantizedModel.load(file));
    },
  },
  'qmodel.inspect': {
    receiver: 'qmodel',
    run: (_, [q]) => {
      const x = q as QuantizedModel;
      return [x.disposed, x.arch, x.numClasses, x.observer, x.calibrationImages, x.engine];
    },
  },
  'qmodel.dispose': { receiver: 'qmodel', run: (_, [q]) => (q as QuantizedModel).dispose() },
  'qmodel.forwardThenDispose': {
    receiver: 'qmodel',
    run: async (ctx, [q, images, how]) => {
      const model = q as QuantizedModel;
      const running = how === 'stateDict' ? model.stateDict() : how === 'save' ? model.save(ctx.scratch('int8.pt')) : model.forward(images as Tensor);
      model.dispose();
      return register(ctx, await running);
    },
  },

  // ---- MixUp/CutMix and soft targets, augmentation with erasing and policies
  mixBatch: {
    run: async (ctx, [options, images, labels, seed]) => {
      const mix = new BatchMix(options as never);
      const x = images as Tensor;
      const draw = mix.sample(x?.shape?.[3] as number, x?.shape?.[2] as number, new Random(seed as number));
      const r = await mix.apply(x, labels as Tensor, draw);
      return ctx.add('tensor', r.targets);
    },
  },
  'mix.applyDraw': {
    run: async (ctx, [options, images, labels, draw]) => ctx.add('tensor', (await new BatchMix(options as never).apply(images as Tensor, labels as Tensor, draw as MixDraw)).targets),
  },
  'native.mixBatch': { run: async (ctx, [images, labels, options]) => ctx.add('tensor', new Tensor(await native().mixBatch((images as Tensor)?.native ?? images, (labels as Tensor)?.native ?? labels, options as never))) },
  trainStepMixed: {
    // a step on MixUp/CutMix soft targets; `then` frees the targets or the model while it is queued
    run: async (ctx, [model, optimizer, images, labels, mixOptions, then]) => {
      const mix = new BatchMix(mixOptions as never);
      const x = images as Tensor;
      const { targets } = await mix.apply(x, labels as Tensor, mix.sample(x?.shape?.[3] as number, x?.shape?.[2] as number, new Random(1)));
      ctx.add('tensor', targets);
      const running = trainStep(model, optimizer, x, targets);
      if (then === 'targets') targets.dispose();
      else if (then === 'model' && model instanceof Model) model.dispose();
      return running;
    },
  },
  augmentBatch: {
    // a training transform with erasing and a policy over synthetic images; `erase`: the drawn boxes or hand-made ones
    run: async (ctx, [options, specs, seed, erase]) => {
      const t = trainTransform(options as never);
      const images = decodedImages(specs);
      const random = new Random(seed as number);
      const params = images.map((im) => t.sample(im, random));
      const erasures = erase === 'drawn' ? t.sampleErasures(images.length, random) : Array.isArray(erase) ? Int32Array.from(erase as number[]) : (erase as Int32Array | null);
      return ctx.add('tensor', await t.apply(images, params, erasures));
    },
  },
  'native.augmentBatch': {
    run: async (ctx, [specs, params, output]) => {
      const images = decodedImages(specs).map((im) => ({ data: im.data, width: im.width, height: im.height }));
      const flat = Array.isArray(params) ? Float64Array.from(params as number[]) : params;
      const o = isObject(output) && Array.isArray(output.erase) ? { ...output, erase: Int32Array.from(output.erase as number[]) } : output;
      return ctx.add('tensor', new Tensor(await native().augmentBatch(images, flat as Float64Array, o as never)));
    },
  },
  applyPolicySteps: { run: async (_, [specs, steps]) => (await applyPolicySteps(decodedImages(specs), steps as PolicyStep[][])).length },
  'native.augmentPolicyBatch': {
    run: async (_, [specs, policy]) => {
      const images = Array.isArray(specs) ? decodedImages(specs) : specs;
      const flat = Array.isArray(policy) ? Float64Array.from(policy as number[]) : policy;
      return (await native().augmentPolicyBatch(images as DecodedImage[], flat as Float64Array)).length;
    },
  },

  // ---- reporting
  createEventWriter: {
    run: (ctx, [where]) => {
      const dir = where === 'dir' ? ctx.scratch('tb') : where === 'file' ? ctx.scratch('file') : where;
      if (where === 'file') fs.writeFileSync(dir as string, 'not a folder');
      return ctx.add('writer', new EventWriter(where === 'file' ? path.join(dir as string, 'sub') : (dir as string)));
    },
  },
  'writer.addScalar': { receiver: 'writer', run: (_, [w, tag, value, step, wallTime]) => (w as EventWriter).addScalar(tag, value, step, wallTime) },
  'writer.addHistogram': { receiver: 'writer', run: (_, [w, tag, values, step]) => (w as EventWriter).addHistogram(tag, values, step) },
  'writer.flush': { receiver: 'writer', run: (_, [w]) => (w as EventWriter).flush() },
  'writer.close': { receiver: 'writer', run: (_, [w]) => (w as EventWriter).close() },
  createMetricsLog: {
    run: (ctx, [where, fileName]) => {
      const dir = where === 'dir' ? ctx.scratch('metrics') : where;
      return ctx.add('log', new MetricsLog(dir as string, fileName as string | undefined));
    },
  },
  'log.log': { receiver: 'log', run: (_, [l, record]) => (l as MetricsLog).log(record) },
  'log.flush': { receiver: 'log', run: (_, [l]) => (l as MetricsLog).flush() },
  'log.close': { receiver: 'log', run: (_, [l]) => (l as MetricsLog).close() },

  // ---- the harness
  awaitAll: { run: () => undefined }, // done by the worker: it waits for the spawned calls
  forget: {
    // drops the sequence's references to one object without disposing it: the GC's finalizer frees it
    run: (ctx, [kind, i]) => {
      const list = ctx.objects[kind as Kind];
      if (!list || list.length === 0) throw new Skip('nothing to forget');
      const value = list.splice(Math.abs(Math.trunc(Number(i) || 0)) % list.length, 1)[0];
      const k = ctx.made.indexOf(value);
      if (k >= 0) ctx.made.splice(k, 1);
    },
  },
  gc: { run: () => (globalThis as { gc?: () => void }).gc?.() },
};
