// Which samples each rank takes, as PyTorch's DistributedSampler: every rank reads the same seeded
// order of the epoch, padded by repeating its start to a multiple of the world size, and takes
// every worldSize-th sample from its rank on. Equal shard sizes, disjoint up to the padding, and
// rank r's k-th batch together with the other ranks' k-th batches is the one-process k-th batch of
// batch_size × worldSize.
import { integerInRange, positiveInteger } from '../utils/validate';

/** Which part of each epoch's shuffled sample order this process trains on. */
export type Shard = (order: number[]) => number[];
/** One process: all of it. */
export const wholeEpoch: Shard = (order) => order;

export function distributedShard(rank: number, worldSize: number): Shard {
  const size = positiveInteger('worldSize', worldSize);
  const me = integerInRange('rank', rank, 0, size - 1);
  return (order) => {
    const perRank = Math.ceil(order.length / size);
    const padded = order.slice();
    for (let i = 0; padded.length < perRank * size; i++) padded.push(order[i % order.length]);
    const mine: number[] = [];
    for (let i = me; i < padded.length; i += size) mine.push(padded[i]);
    return mine;
  };
}

/**
 * An evaluation shard: indices rank, rank + worldSize, … of 0..count-1, without padding (the counts
 * are summed afterwards, so a repeated sample would count twice).
 */
export function evaluationShard(count: number, rank: number, worldSize: number): number[] {
  const mine: number[] = [];
  for (let i = rank; i < count; i += worldSize) mine.push(i);
  return mine;
}
