// Iterative pruning in a fine-tuning phase (config `prune`): the phase's epochs split into `steps`
// rounds, and before each round a fraction 1 - (1 - amount)^(1/steps) of what is still unpruned
// goes (geometric, as iterative magnitude pruning does: Han et al. 2015, Frankle & Carbin 2019),
// so after the last round `amount` of the entries (channels) are pruned, up to rounding. Every
// Conv2d and Linear layer but the new head is pruned (the head's outputs are the classes).
import * as pruning from '../models/pruning';
import * as shrink from '../models/shrink';
import type { Model } from '../models/model';
import type { Config } from './config';

export const PRUNE_METHODS = ['none', 'l1_unstructured', 'global_l1', 'l2_structured', 'l2_structured_shrink'] as const;
export type PruneConfig = Config['prune'];

/** The fraction of the remaining entries each round removes. */
export function roundAmount(prune: PruneConfig): number {
  return 1 - Math.pow(1 - prune.amount, 1 / prune.steps);
}

/** The epoch each round starts at: round r at floor(r x epochs / steps). */
export function roundStarts(prune: PruneConfig, epochs: number): number[] {
  return Array.from({ length: prune.steps }, (_, r) => Math.floor((r * epochs) / prune.steps));
}

/** The layers a run prunes: every Conv2d and Linear outside the head. */
export function prunedLayers(model: Model): string[] {
  const head = model.headPrefix;
  return pruning.prunableModules(model).filter((name) => name !== head && !name.startsWith(`${head}.`));
}

/** One round of the configured method. Mask methods keep parameter names after the first round; shrinking changes shapes every round. */
export async function pruneRound(model: Model, prune: PruneConfig): Promise<void> {
  const amount = { amount: roundAmount(prune) };
  const layers = prunedLayers(model);
  if (prune.method === 'l1_unstructured') await pruning.l1Unstructured(model, layers, amount);
  else if (prune.method === 'global_l1') await pruning.globalL1Unstructured(model, layers, amount);
  else if (prune.method === 'l2_structured') await pruning.l2Structured(model, layers.filter((name) => isConv(model, name)), amount);
  else if (prune.method === 'l2_structured_shrink') await shrink.shrinkChannels(model, amount);
}

function isConv(model: Model, name: string): boolean {
  return model.namedModules().some((m) => m.name === name && m.type === 'Conv2d');
}

export interface PruningSummary {
  method: PruneConfig['method'];
  amount: number;
  steps: number;
  /** How each round's amount was chosen. */
  schedule: 'geometric';
  roundAmount: number;
  /** Per layer: the fraction of its weight entries pruned (shrinking: of its output channels removed). */
  layers: Array<{ module: string; sparsity: number }>;
  /** Parameters before pruning and those left (masked entries, or removed channels, not counted). */
  parameters: { dense: number; remaining: number };
}

function parameterCount(model: Model): number {
  let total = 0;
  for (const [, t] of model.native.namedParameters()) {
    total += t.shape.reduce((a, b) => a * b, 1);
    t.dispose();
  }
  return total;
}

/** What a run records before pruning, to report against. */
export function denseFigures(model: Model): { parameters: number; widths: Record<string, number> } {
  return { parameters: parameterCount(model), widths: model.arch.startsWith('resnet') ? shrink.channelWidths(model) : {} };
}

export function pruningSummary(model: Model, prune: PruneConfig, dense: { parameters: number; widths: Record<string, number> }): PruningSummary {
  const base = { method: prune.method, amount: prune.amount, steps: prune.steps, schedule: 'geometric' as const, roundAmount: roundAmount(prune) };
  if (prune.method === 'l2_structured_shrink') {
    const widths = shrink.channelWidths(model);
    return {
      ...base,
      layers: Object.entries(widths).map(([module, width]) => ({ module, sparsity: 1 - width / dense.widths[module] })),
      parameters: { dense: dense.parameters, remaining: parameterCount(model) },
    };
  }
  const layers = pruning.layerSparsity(model);
  const masked = layers.reduce((sum, layer) => sum + layer.pruned, 0);
  return {
    ...base,
    layers: layers.map(({ module, sparsity }) => ({ module, sparsity })),
    parameters: { dense: dense.parameters, remaining: parameterCount(model) - masked },
  };
}
