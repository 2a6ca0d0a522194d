// Pruning with torch.nn.utils.prune's semantics. A pruned layer's `X.weight` parameter becomes the
// parameter `X.weight_orig` plus the buffer `X.weight_mask`; every forward computes
// weight = weight_orig * weight_mask, so gradients reach weight_orig masked, and the state_dict has
// PyTorch's keys. Pruning a layer again composes masks as PyTorch's PruningContainer does: the
// amount applies to the entries (channels) still unpruned. makePermanent() is prune.remove.
//
// Pruning renames parameters (weight -> weight_orig) and shrinkChannels() changes their shapes: an
// Optimizer built before either refuses to step; build a new one after pruning.
import { native } from '../../binding';
import { Model } from './model';
import { invalid, knownKeys, nonNegativeInteger, numberInRange, plainObject } from '../utils/validate';

/** How much to prune: a fraction of the still-unpruned entries (channels), or a number of them. */
export interface PruneAmount {
  /** Fraction in [0, 1] (PyTorch's float amount; rounded half to even as Python's round()). */
  amount?: number;
  /** A number of entries (channels for structured pruning): PyTorch's int amount. */
  count?: number;
}

type NativeMethod = 'l1_unstructured' | 'global_l1' | 'l2_structured' | 'identity';

function checkModel(model: unknown): Model {
  if (!(model instanceof Model)) throw invalid('Model', 'model', model);
  return model;
}

function amountOf(options: PruneAmount): { amount: number; isCount: boolean } {
  const opts = plainObject('prune options', options);
  knownKeys('prune options', opts, ['amount', 'count']);
  if ((options.amount === undefined) === (options.count === undefined)) {
    throw new TypeError(`Expected exactly one of amount (a fraction) and count (a number of entries) but received ${options.amount === undefined ? 'neither' : 'both'}`);
  }
  if (options.count !== undefined) return { amount: nonNegativeInteger('count', options.count), isCount: true };
  return { amount: numberInRange('amount', options.amount, 0, 1), isCount: false };
}

/** Names of the model's Conv2d and Linear layers: what can be pruned. */
export function prunableModules(model: Model): string[] {
  return checkModel(model)
    .namedModules()
    .filter((m) => m.type === 'Conv2d' || m.type === 'Linear')
    .map((m) => m.name);
}

/** Layers currently pruned (holding weight_orig and weight_mask). */
export function prunedModules(model: Model): string[] {
  const names: string[] = [];
  for (const [name, t] of checkModel(model).native.namedBuffers()) {
    if (name.endsWith('.weight_mask')) names.push(name.slice(0, -'.weight_mask'.length));
    t.dispose();
  }
  return names;
}

function moduleList(model: Model, modules: unknown): string[] {
  if (!Array.isArray(modules) || modules.length === 0 || modules.some((m) => typeof m !== 'string')) {
    throw invalid('non-empty array of module names', 'modules', modules);
  }
  const known = new Set(prunableModules(model));
  for (const name of modules as string[]) {
    if (!known.has(name)) throw new TypeError(`Expected the name of a Conv2d or Linear layer of ${model.arch} for modules but received '${name}'`);
  }
  if (new Set(modules).size !== modules.length) throw new TypeError(`Expected distinct module names but received ${modules.join(', ')}`);
  return modules as string[];
}

async function run(model: Model, method: NativeMethod, modules: string[], amount: { amount: number; isCount: boolean }): Promise<void> {
  const before = prunedModules(model).length;
  try {
    await native().prune(model.native, { method, modules, ...amount });
  } finally {
    // a model disposed while its pruning was queued: the pruning ran, there is nothing left to mark
    if (!model.disposed && prunedModules(model).length !== before) model.structureChanged();
  }
}

/** prune.l1_unstructured on each named layer: its smallest-|w| entries, per layer. */
export async function l1Unstructured(model: Model, modules: string[], options: PruneAmount): Promise<void> {
  checkModel(model);
  await run(model, 'l1_unstructured', moduleList(model, modules), amountOf(options));
}

/** prune.global_unstructured(..., pruning_method=L1Unstructured): smallest-|w| entries over all the named layers together. */
export async function globalL1Unstructured(model: Model, modules: string[], options: PruneAmount): Promise<void> {
  checkModel(model);
  await run(model, 'global_l1', moduleList(model, modules), amountOf(options));
}

/** prune.ln_structured(n=2, dim=0): the output channels of smallest L2 norm, per layer. */
export async function l2Structured(model: Model, modules: string[], options: PruneAmount): Promise<void> {
  checkModel(model);
  await run(model, 'l2_structured', moduleList(model, modules), amountOf(options));
}

/** prune.identity: the weight_orig/weight_mask form with nothing pruned (or the mask kept as is). */
export async function identity(model: Model, modules: string[]): Promise<void> {
  checkModel(model);
  await run(model, 'identity', moduleList(model, modules), { amount: 0, isCount: true });
}

/** prune.remove on the named pruned layers (all by default): the masks folded into `weight` for good. */
export async function makePermanent(model: Model, modules?: string[]): Promise<void> {
  checkModel(model);
  const pruned = prunedModules(model);
  const chosen = modules === undefined ? pruned : moduleList(model, modules);
  for (const name of chosen) {
    if (!pruned.includes(name)) throw new TypeError(`Expected a pruned layer for modules but received '${name}' (not pruned)`);
  }
  if (chosen.length === 0) return;
  try {
    await native().makePermanent(model.native, chosen);
  } finally {
    model.structureChanged();
  }
}

export interface LayerSparsity {
  module: string;
  /** Entries of the weight pruned (mask zero). */
  pruned: number;
  total: number;
  /** pruned / total. */
  sparsity: number;
}

/** Per pruned layer: how many weight entries its mask zeroes. */
export function layerSparsity(model: Model): LayerSparsity[] {
  const result: LayerSparsity[] = [];
  for (const [name, t] of checkModel(model).native.namedBuffers()) {
    if (name.endsWith('.weight_mask')) {
      const mask = t.toTypedArray() as Float32Array;
      let pruned = 0;
      for (let i = 0; i < mask.length; i++) if (mask[i] === 0) pruned++;
      result.push({ module: name.slice(0, -'.weight_mask'.length), pruned, total: mask.length, sparsity: pruned / mask.length });
    }
    t.dispose();
  }
  return result;
}

