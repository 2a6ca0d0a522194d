// Optimizers over a model's parameters: SGD, Adam, AdamW (libtorch's, numerically torch.optim's),
// with parameter groups chosen by name prefix, each with its own learning rate and weight decay.
import { native, type NativeOptimizer, type NativeOptimizerStateEntry, type NativeParamGroup } from '../../binding';
import { Model } from '../models/model';
import { Tensor } from '../tensor';
import { boolean, invalid, knownKeys, numberInRange, oneOf, plainObject } from '../utils/validate';
import type { LrGroups } from './schedulers';

export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerType = (typeof OPTIMIZERS)[number];

export interface ParamGroupOptions {
  /** Parameters whose names equal or start with one of these (e.g. ['fc'] or ['layer4', 'fc']). */
  prefixes: string[];
  lr?: number;
  weightDecay?: number;
}

export interface OptimizerOptions {
  type: OptimizerType;
  lr: number;
  /** Default 0 for SGD and Adam, 1e-2 for AdamW (PyTorch's defaults). */
  weightDecay?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  betas?: [number, number];
  eps?: number;
  amsgrad?: boolean;
  /**
   * SGD only: update all of a group's parameters with multi-tensor (`_foreach_*`) operations, as
   * PyTorch's `foreach=True`: the same numbers, fewer kernel launches. 'auto' (default): on when the
   * parameters are on a GPU at the step, as PyTorch 2.x decides; on the CPU the per-parameter loop
   * is as fast.
   */
  foreach?: boolean | 'auto';
  /**
   * Groups with their own lr/weightDecay, matched in order; parameters matching none form a last
   * group with the base settings. E.g. [{ prefixes: ['fc'], lr: 1e-3 }] with lr 1e-5: the seed's
   * fine-tuning rates.
   */
  groups?: ParamGroupOptions[];
}

const OPTION_KEYS = ['type', 'lr', 'weightDecay', 'momentum', 'dampening', 'nesterov', 'betas', 'eps', 'amsgrad', 'foreach', 'groups'];

/** PyTorch's optimizer state_dict layout: per-parameter state by index, then the groups. */
export interface OptimizerState {
  state: Map<number, Map<string, Tensor | number>>;
  param_groups: Array<Record<string, unknown> & { params: number[] }>;
  param_names: string[];
  type: OptimizerType;
}

function underPrefix(name: string, prefixes: string[]): boolean {
  return prefixes.some((p) => name === p || name.startsWith(`${p}.`));
}

export class Optimizer implements LrGroups {
  readonly type: OptimizerType;
  /** @internal */
  readonly native: NativeOptimizer;
  readonly groups: ReadonlyArray<Readonly<NativeParamGroup>>;
  readonly foreach: boolean | 'auto';
  /** trainStep calls on this optimizer not yet settled: they update its state on the compute thread. */
  private stepsInFlight = 0;
  /** The model and its structure when built: pruning renames or reshapes parameters, this optimizer then holds stale ones. */
  private readonly builtFor: { model: Model; structureId: number };

  constructor(model: Model, options: OptimizerOptions) {
    if (!(model instanceof Model)) throw invalid('Model', 'model', model);
    const opts = plainObject('optimizer options', options);
    knownKeys('optimizer options', opts, OPTION_KEYS);
    this.type = oneOf('type', options.type, OPTIMIZERS);
    const base = {
      lr: numberInRange('lr', options.lr, 0, 1e6),
      weightDecay: numberInRange('weightDecay', options.weightDecay ?? (this.type === 'adamw' ? 1e-2 : 0), 0, 1e6),
      momentum: numberInRange('momentum', options.momentum ?? 0, 0, 1),
      dampening: numberInRange('dampening', options.dampening ?? 0, 0, 1),
      nesterov: boolean('nesterov', options.nesterov ?? false),
      betas: (options.betas ?? [0.9, 0.999]) as [number, number],
      eps: numberInRange('eps', options.eps ?? 1e-8, 0, 1),
      amsgrad: boolean('amsgrad', options.amsgrad ?? false),
    };
    if (!Array.isArray(base.betas) || base.betas.length !== 2) throw invalid('[beta1, beta2]', 'betas', base.betas);
    base.betas.forEach((b, i) => numberInRange(`betas[${i}]`, b, 0, 0.999999999));
    if (this.type !== 'sgd' && (options.momentum !== undefined || options.nesterov !== undefined)) {
      throw new TypeError(`momentum and nesterov apply to 'sgd', not '${this.type}' (use betas)`);
    }
    const foreach = options.foreach ?? 'auto';
    if (foreach !== 'auto' && typeof foreach !== 'boolean') throw invalid("true, false or 'auto'", 'foreach', foreach);
    if (foreach === true && this.type !== 'sgd') throw new TypeError(`foreach applies to 'sgd', not '${this.type}'`);
    this.foreach = foreach;
    if (base.nesterov && (base.momentum <= 0 || base.dampening !== 0)) {
      throw new TypeError('Nesterov momentum requires a momentum above 0 and zero dampening');
    }
    const names = model.native.namedParameters().map(([name, t]) => {
      t.dispose();
      return name;
    });
    const specs = options.groups ?? [];
    if (!Array.isArray(specs)) throw invalid('array of parameter groups', 'groups', specs);
    const assigned = new Set<string>();
    const groups: NativeParamGroup[] = specs.map((spec, i) => {
      knownKeys(`groups[${i}]`, plainObject(`groups[${i}]`, spec), ['prefixes', 'lr', 'weightDecay']);
      if (!Array.isArray(spec.prefixes) || spec.prefixes.length === 0) throw invalid('non-empty array of name prefixes', `groups[${i}].prefixes`, spec.prefixes);
      const params = names.filter((n) => !assigned.has(n) && underPrefix(n, spec.prefixes));
      if (params.length === 0) throw new TypeError(`groups[${i}] matches no parameter of ${model.arch} (prefixes ${spec.prefixes.join(', ')})`);
      params.forEach((n) => assigned.add(n));
      return {
        ...base,
        params,
        lr: spec.lr === undefined ? base.lr : numberInRange(`groups[${i}].lr`, spec.lr, 0, 1e6),
        weightDecay: spec.weightDecay === undefined ? base.weightDecay : numberInRange(`groups[${i}].weightDecay`, spec.weightDecay, 0, 1e6),
      };
    });
    const rest = names.filter((n) => !assigned.has(n));
    if (rest.length > 0) groups.push({ ...base, params: rest });
    this.groups = groups;
    this.native = new (native().Optimizer)(model.native, { type: this.type, groups, foreach });
    this.builtFor = { model, structureId: model.structureId };
  }

  get groupCount(): number {
    return this.groups.length;
  }

  getLr(group: number): number {
    return this.native.getLr(this.groupIndex(group));
  }

  setLr(group: number, lr: number): void {
    this.native.setLr(this.groupIndex(group), numberInRange('lr', lr, 0, 1e6));
  }

  private groupIndex(group: number): number {
    if (!Number.isInteger(group) || group < 0 || group >= this.groups.length) {
      throw invalid(`integer between 0 and ${this.groups.length - 1}`, 'group', group);
    }
    return group;
  }

  /** @internal trainStep marks its step in flight; the returned function ends it. */
  beginStep(model?: Model): () => void {
    if (model !== undefined && model === this.builtFor.model && model.structureId !== this.builtFor.structureId) {
      throw new Error(
        'Expected an Optimizer built for the model as it is now, but the model was pruned or shrunk after this optimizer was built (its parameters were renamed or reshaped): build a new Optimizer(model, ...) after pruning',
      );
    }
    this.stepsInFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.stepsInFlight--;
    };
  }

  /** State is read and replaced on this thread while queued steps change it on the compute thread: not at once. */
  private checkIdle(what: string): void {
    if (this.stepsInFlight > 0) {
      throw new Error(`Optimizer state cannot be ${what} while ${this.stepsInFlight} trainStep call(s) on it are in flight; await them first`);
    }
  }

  /** PyTorch's layout (state by parameter index, param_groups), plus the parameter names. */
  stateDict(): OptimizerState {
    this.checkIdle('read');
    const state = new Map<number, Map<string, Tensor | number>>();
    for (const entry of this.native.stateEntries()) {
      const fields = new Map<string, Tensor | number>();
      for (const [key, value] of Object.entries(entry)) {
        if (key === 'index') continue;
        fields.set(key, typeof value === 'number' ? value : new Tensor(value));
      }
      state.set(entry.index, fields);
    }
    let index = 0;
    const param_groups = this.groups.map((g, i) => {
      const params = g.params.map(() => index++);
      const common = { lr: this.getLr(i), weight_decay: g.weightDecay, initial_lr: g.lr };
      return this.type === 'sgd'
        ? { ...common, momentum: g.momentum, dampening: g.dampening, nesterov: g.nesterov, params }
        : { ...common, betas: [...g.betas], eps: g.eps, amsgrad: g.amsgrad, params };
    });
    return { state, param_groups, param_names: this.groups.flatMap((g) => g.params), type: this.type };
  }

  /** Restores stateDict() output (also after a trip through a checkpoint file, where dicts are Maps). */
  loadStateDict(saved: OptimizerState | Map<string, unknown>): void {
    this.checkIdle('loaded');
    if (!(saved instanceof Map) && (typeof saved !== 'object' || saved === null)) throw invalid('optimizer state (from stateDict())', 'state', saved);
    const get = (key: string): unknown => (saved instanceof Map ? saved.get(key) : (saved as unknown as Record<string, unknown>)[key]);
    const type = get('type');
    if (type !== this.type) throw new Error(`optimizer state is for '${String(type)}' but this optimizer is '${this.type}'`);
    const names = get('param_names') as string[];
    const own = this.groups.flatMap((g) => g.params);
    if (!Array.isArray(names) || names.join('\n') !== own.join('\n')) {
      throw new Error('optimizer state was saved for other parameter groups (names or order differ)');
    }
    const groups = get('param_groups') as Array<Record<string, unknown> | Map<string, unknown>>;
    const state = get('state') as Map<number, Map<string, Tensor | number>>;
    const entries: NativeOptimizerStateEntry[] = [];
    for (const [index, fields] of state) {
      const entry: NativeOptimizerStateEntry = { index: Number(index) };
      for (const [key, value] of fields) {
        (entry as unknown as Record<string, unknown>)[key] = value instanceof Tensor ? value.native : Number(value);
      }
      entries.push(entry);
    }
    this.native.loadStateEntries(entries);
    groups.forEach((g, i) => this.setLr(i, Number(g instanceof Map ? g.get('lr') : g.lr)));
  }

  dispose(): void {
    this.native.dispose();
  }
}

export function createOptimizer(model: Model, options: OptimizerOptions): Optimizer {
  return new Optimizer(model, options);
}
