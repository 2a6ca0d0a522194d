// Checkpoints: everything a run needs to continue exactly where it stopped, in a zip-format .pth
// whose 'state_dict' PyTorch loads directly. Written atomically (temp file, fsync, rename).
import * as fs from 'fs';
import * as path from 'path';
import type { Model } from '../models/model';
import { linkFileAtomic } from '../utils/atomic-write';
import { loadTorchFile, saveTorchFile } from '../models/weights';
import { channelWidths, resizeChannels } from '../models/shrink';
import { getRngState, setRngState } from '../runtime';
import { Tensor } from '../tensor';
import type { Optimizer, OptimizerState } from './optimizer';
import type { LrScheduler, SchedulerState } from './schedulers';

export interface CheckpointState {
  model: Model;
  optimizer?: Optimizer;
  scheduler?: LrScheduler;
  epoch: number;
  step: number;
  bestMetric?: number | null;
  /** The resolved run configuration, kept with the weights. */
  config?: unknown;
  /** Extra JSON-serialisable state of the caller (e.g. its data-order RNG). */
  extra?: unknown;
}

export interface LoadedCheckpoint {
  stateDict: Map<string, Tensor>;
  optimizer?: Map<string, unknown>;
  scheduler?: SchedulerState;
  epoch: number;
  step: number;
  bestMetric: number | null;
  config?: unknown;
  extra?: unknown;
  rngState?: Tensor;
  arch?: string;
  /** A ResNet's block conv widths (shrinkChannels changes them): a fresh model takes them before loading. */
  channelWidths?: Record<string, number>;
}

export async function saveCheckpoint(file: string, state: CheckpointState): Promise<void> {
  const optimizerState: OptimizerState | undefined = state.optimizer?.stateDict();
  const value = new Map<string, unknown>([
    ['arch', state.model.arch],
    ['num_classes', state.model.numClasses],
    ['head', state.model.head],
    ['state_dict', state.model.stateDict()],
    ['epoch', state.epoch],
    ['step', state.step],
    ['best_metric', state.bestMetric ?? null],
    ['rng_state', getRngState()],
    ['config_json', JSON.stringify(state.config ?? null)],
    ['extra_json', JSON.stringify(state.extra ?? null)],
  ]);
  const widths = state.model.arch.startsWith('resnet') ? channelWidths(state.model) : undefined;
  if (widths) value.set('channel_widths_json', JSON.stringify(widths));
  if (optimizerState) value.set('optimizer', new Map(Object.entries(optimizerState)));
  if (state.scheduler) value.set('scheduler_json', JSON.stringify(state.scheduler.stateDict()));
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await saveTorchFile(file, value);
}

export async function loadCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const { value } = await loadTorchFile(file);
  if (!(value instanceof Map) || !(value.get('state_dict') instanceof Map)) {
    throw new Error(`cannot load '${file}': not a finetorch checkpoint (no 'state_dict' entry)`);
  }
  const json = (key: string): unknown => {
    const text = value.get(key);
    return typeof text === 'string' ? JSON.parse(text) : undefined;
  };
  return {
    stateDict: value.get('state_dict') as Map<string, Tensor>,
    optimizer: value.get('optimizer') as Map<string, unknown> | undefined,
    scheduler: json('scheduler_json') as SchedulerState | undefined,
    epoch: Number(value.get('epoch') ?? 0),
    step: Number(value.get('step') ?? 0),
    bestMetric: (value.get('best_metric') as number | null) ?? null,
    config: json('config_json') ?? undefined,
    extra: json('extra_json') ?? undefined,
    rngState: value.get('rng_state') as Tensor | undefined,
    arch: value.get('arch') as string | undefined,
    channelWidths: json('channel_widths_json') as Record<string, number> | undefined,
  };
}

/**
 * A checkpoint's weights into `model`: a shrunk network's widths first (an optimizer built for the
 * old shapes then refuses to step), then the state_dict, strictly.
 */
export async function loadCheckpointWeights(checkpoint: LoadedCheckpoint, model: Model): Promise<void> {
  const widths = checkpoint.channelWidths;
  if (widths && Object.entries(channelWidths(model)).some(([name, width]) => widths[name] !== undefined && widths[name] !== width)) {
    await resizeChannels(model, widths);
  }
  await model.loadStateDict(checkpoint.stateDict, { strict: true });
}

/** Restores a loaded checkpoint into live objects (weights, optimizer, scheduler, RNG). */
export async function restoreCheckpoint(
  checkpoint: LoadedCheckpoint,
  target: { model: Model; optimizer?: Optimizer; scheduler?: LrScheduler },
): Promise<void> {
  await loadCheckpointWeights(checkpoint, target.model);
  if (target.optimizer && checkpoint.optimizer) target.optimizer.loadStateDict(checkpoint.optimizer);
  if (target.scheduler && checkpoint.scheduler) target.scheduler.loadStateDict(checkpoint.scheduler);
  if (checkpoint.rngState) setRngState(checkpoint.rngState);
}

/**
 * Writes `last.pth`, and when this is the best so far makes `best.pth` the same file (a hard link,
 * not a second serialisation): each atomically.
 */
export async function writeCheckpoints(dir: string, state: CheckpointState, isBest: boolean): Promise<{ last: string; best?: string }> {
  const last = path.join(dir, 'last.pth');
  await saveCheckpoint(last, state);
  if (!isBest) return { last };
  const best = path.join(dir, 'best.pth');
  await linkFileAtomic(last, best);
  return { last, best };
}
