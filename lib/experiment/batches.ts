// The batches a phase trains, validates and tests on: decoded images through the loaders, or the
// frozen backbone's cached features (feature-cache.ts). The trainer reads both the same way.
import type { LabelledBatches } from './evaluate';
import { onDevice, type PhaseData } from './phase-data';

export interface PhaseBatches {
  /** The batches hold backbone features (the head's input), not images. */
  readonly features: boolean;
  /** This process's batches in a training epoch (for the progress line). */
  readonly trainLength: number;
  train(epoch: number): LabelledBatches;
  /** The validation part, or null when the split has none. */
  val: (() => LabelledBatches) | null;
  test(): LabelledBatches;
  dispose(): void;
}

import { evaluationShard, wholeEpoch, type Shard } from '../distributed/sampler';

export { wholeEpoch, type Shard };

/** This process's samples: of each training epoch, and of an evaluation set of `count` samples. */
export interface SampleShards {
  train: Shard;
  evaluation: (count: number) => number[];
}
export const ONE_PROCESS: SampleShards = { train: wholeEpoch, evaluation: (count) => evaluationShard(count, 0, 1) };

export function imageBatches(data: PhaseData, device: string, shards: SampleShards = ONE_PROCESS): PhaseBatches {
  const evaluation = (loader: PhaseData['test']) => onDevice(loader.epoch(0, shards.evaluation(loader.samples.length)), device);
  return {
    features: false,
    trainLength: Math.ceil(shards.train(data.train.order(0)).length / data.train.batchSize),
    train: (epoch) => onDevice(data.train.epoch(epoch, shards.train(data.train.order(epoch))), device),
    val: data.val ? () => evaluation(data.val!) : null,
    test: () => evaluation(data.test),
    dispose: () => undefined,
  };
}
