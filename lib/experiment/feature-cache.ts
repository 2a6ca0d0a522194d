// Phase 1 on cached features: the frozen backbone runs once per image, not once per epoch, and
// the head trains on its outputs (the same batches in the same order as without the cache).
import { DataLoader } from '../data/loader';
import { evalTransform } from '../data/transforms';
import type { Model } from '../models/model';
import type { ProcessGroup } from '../distributed/process-group';
import { evaluationShard } from '../distributed/sampler';
import { cat, indexSelect, type Tensor } from '../tensor';
import { ONE_PROCESS, type PhaseBatches, type SampleShards } from './batches';
import type { Config } from './config';
import { onDevice, type PhaseData } from './phase-data';

interface CachedFeatures {
  features: Tensor;
  labels: Tensor;
  count: number;
}

/**
 * In a distributed run (`group`) each rank computes the features of its shard of every part and
 * the shards are all-gathered, so every rank holds the whole cache; `shards` then says which
 * samples each rank trains and evaluates on, as without the cache.
 */
export async function buildFeatureCache(
  model: Model, data: PhaseData, config: Config, device: string, run: string, log: (line: string) => void,
  shards: SampleShards = ONE_PROCESS, group?: ProcessGroup,
): Promise<PhaseBatches> {
  const t0 = Date.now();
  // the train part without augmentation (and in the default layout: the features are 2-D)
  const trainImages = new DataLoader(data.split.train, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size }), cache: data.evalCache });
  const train = await computeFeatures(model, trainImages, device, group);
  const test = await computeFeatures(model, data.test, device, group);
  const val = data.val ? await computeFeatures(model, data.val, device, group) : null;
  const images = train.count + test.count + (val ? val.count : 0);
  const where = group ? `, in ${group.size} shards` : '';
  log(`[${run}] feature cache: ${images} images through the frozen backbone once${where} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const evaluation = (part: CachedFeatures) => featureBatches(part, shards.evaluation(part.count), config.batch_size);
  const trainOrder0 = shards.train(data.train.order(0));
  return {
    features: true,
    trainLength: Math.ceil(trainOrder0.length / config.batch_size),
    // the loader's own order, so cached and uncached runs see the same batches
    train: (epoch) => featureBatches(train, shards.train(data.train.order(epoch)), config.batch_size),
    val: val ? () => evaluation(val) : null,
    test: () => evaluation(test),
    dispose: () => {
      for (const part of [train, val, test]) {
        part?.features.dispose();
        part?.labels.dispose();
      }
    },
  };
}

async function computeFeatures(model: Model, loader: DataLoader, device: string, group?: ProcessGroup): Promise<CachedFeatures> {
  const count = loader.samples.length;
  // a shard of equal size on every rank (all-gather needs it): rank, rank + size, …, padded
  // with the shard's last sample
  const perRank = group ? Math.ceil(count / group.size) : count;
  const order = evaluationShard(count, group?.rank ?? 0, group?.size ?? 1);
  while (order.length < perRank) order.push(order.length > 0 ? order[order.length - 1] : 0);
  const features: Tensor[] = [];
  const labels: Tensor[] = [];
  for await (const batch of onDevice(loader.epoch(0, order), device)) {
    features.push(await model.features(batch.images));
    labels.push(batch.labels);
    batch.images.dispose();
  }
  const mine = { features: await cat(features), labels: await cat(labels) };
  for (const t of [...features, ...labels]) t.dispose();
  if (!group) return { ...mine, count };
  // gathered rank-major: row r * perRank + j holds sample r + j * size
  const gathered = { features: await group.allGather(mine.features), labels: await group.allGather(mine.labels) };
  mine.features.dispose();
  mine.labels.dispose();
  const rows = range(count).map((i) => (i % group.size) * perRank + Math.floor(i / group.size));
  const all = { features: await indexSelect(gathered.features, rows), labels: await indexSelect(gathered.labels, rows), count };
  gathered.features.dispose();
  gathered.labels.dispose();
  return all;
}

/** Batches of cached features in the given sample order. */
async function* featureBatches(cache: CachedFeatures, order: number[], batchSize: number): AsyncGenerator<{ images: Tensor; labels: Tensor }> {
  for (let i = 0; i < order.length; i += batchSize) {
    const index = order.slice(i, i + batchSize);
    yield { images: await indexSelect(cache.features, index), labels: await indexSelect(cache.labels, index) };
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
