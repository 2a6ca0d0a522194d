// Phase 1 on cached features: the frozen backbone runs once per image, not once per epoch, and
// the head trains on its outputs (the same batches in the same order as without the cache).
import { DataLoader } from '../data/loader';
import { evalTransform } from '../data/transforms';
import type { Model } from '../models/model';
import { cat, indexSelect, type Tensor } from '../tensor';
import { wholeEpoch, type PhaseBatches, type Shard } from './batches';
import type { Config } from './config';
import { onDevice, type PhaseData } from './phase-data';

interface CachedFeatures {
  features: Tensor;
  labels: Tensor;
  count: number;
}

export async function buildFeatureCache(model: Model, data: PhaseData, config: Config, device: string, run: string, log: (line: string) => void, shard: Shard = wholeEpoch): Promise<PhaseBatches> {
  const t0 = Date.now();
  // the train part without augmentation (and in the default layout: the features are 2-D)
  const trainImages = new DataLoader(data.split.train, { batchSize: config.batch_size, transform: evalTransform({ size: config.image_size }), cache: data.evalCache });
  const train = await computeFeatures(model, trainImages, device);
  const test = await computeFeatures(model, data.test, device);
  const val = data.val ? await computeFeatures(model, data.val, device) : null;
  const images = train.count + test.count + (val ? val.count : 0);
  log(`[${run}] feature cache: ${images} images through the frozen backbone once (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const inOrder = (part: CachedFeatures) => featureBatches(part, range(part.count), config.batch_size);
  return {
    features: true,
    trainLength: data.train.length,
    // the loader's own order, so cached and uncached runs see the same batches
    train: (epoch) => featureBatches(train, shard(data.train.order(epoch)), config.batch_size),
    val: val ? () => inOrder(val) : null,
    test: () => inOrder(test),
    dispose: () => {
      for (const part of [train, val, test]) {
        part?.features.dispose();
        part?.labels.dispose();
      }
    },
  };
}

async function computeFeatures(model: Model, loader: DataLoader, device: string): Promise<CachedFeatures> {
  const features: Tensor[] = [];
  const labels: Tensor[] = [];
  for await (const batch of onDevice(loader.epoch(0), device)) {
    features.push(await model.features(batch.images));
    labels.push(batch.labels);
    batch.images.dispose();
  }
  const all = { features: await cat(features), labels: await cat(labels), count: loader.samples.length };
  for (const t of [...features, ...labels]) t.dispose();
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
