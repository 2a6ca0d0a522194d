// The batches a phase trains, validates and tests on: decoded images through the loaders, or the
// frozen backbone's cached features (feature-cache.ts). The trainer reads both the same way.
import type { LabelledBatches } from './evaluate';
import { onDevice, type PhaseData } from './phase-data';

export interface PhaseBatches {
  /** The batches hold backbone features (the head's input), not images. */
  readonly features: boolean;
  /** Batches in a training epoch (for the progress line). */
  readonly trainLength: number;
  train(epoch: number): LabelledBatches;
  /** The validation part, or null when the split has none. */
  val: (() => LabelledBatches) | null;
  test(): LabelledBatches;
  dispose(): void;
}

/**
 * Which part of each epoch's shuffled sample order this process trains on: all of it in one
 * process; a distributed sampler gives each rank its share here.
 */
export type Shard = (order: number[]) => number[];
export const wholeEpoch: Shard = (order) => order;

export function imageBatches(data: PhaseData, device: string, shard: Shard = wholeEpoch): PhaseBatches {
  return {
    features: false,
    trainLength: data.train.length,
    train: (epoch) => onDevice(data.train.epoch(epoch, shard(data.train.order(epoch))), device),
    val: data.val ? () => onDevice(data.val!.epoch(0), device) : null,
    test: () => onDevice(data.test.epoch(0), device),
    dispose: () => undefined,
  };
}
