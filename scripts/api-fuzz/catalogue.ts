// The call catalogue, child side: what each operation of a sequence does, through the package's
// public API (lib/index.ts) exactly as a user would call it. The arguments arrive decoded (see
// decodeArg); they may be of any type, which is the point. An operation with a receiver (a method
// call) is skipped when the sequence has no live object of that kind yet.
import * as fs from 'fs';
import * as path from 'path';
import {
  cat, createModel, createOptimizer, createScheduler, DataLoader, EventWriter, evalStep, evalTransform, exportOnnx, GradScaler, ImageCache,
  indexSelect, matmul, MetricsLog, Model, Optimizer, randn, Tensor, tensor, trainStep, trainTransform,
  type Batch, type LrScheduler, type OptimizerState, type Sample, type StateDict,
} from '../../lib';
import { KINDS, type Arg, type Kind, type OpName } from './calls';

/** How many models may be alive (not disposed) at once in a sequence; more createModel calls are skipped. */
export const MAX_LIVE_MODELS = 3;

/** Marks a call the harness chose not to make (no receiver, too many models). */
export class Skip {
  constructor(readonly why: string) {}
}

export class Context {
  readonly objects: Record<Kind, unknown[]> = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, unknown[]>;
  /** Spawned calls not yet awaited. */
  pending: Promise<void>[] = [];
  readonly iterators = new Map<DataLoader, AsyncGenerator<Batch>>();
  /** Everything made, forgotten or not, for the clean-up at the sequence's end. */
  readonly made: unknown[] = [];
  private files = 0;

  /** `dir`: this sequence's scratch folder; `samples`: the synthetic dataset's images. */
  constructor(readonly dir: string, readonly samples: readonly Sample[]) {}

  add<T>(kind: Kind, value: T): T {
    this.objects[kind].push(value);
    if (kind === 'tensor' || kind === 'model' || kind === 'optimizer' || kind === 'state' || kind === 'writer' || kind === 'log') this.made.push(value);
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
      if (value instanceof Tensor || value instanceof Model || value instanceof Optimizer) value.dispose();
      if (value instanceof EventWriter || value instanceof MetricsLog) value.close();
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
};

export function isReceiver(kind: Kind, value: unknown): boolean {
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
