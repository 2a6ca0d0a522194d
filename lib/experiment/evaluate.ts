// Evaluation on a labelled set: loss, top-1, top-5, mean per-class accuracy (the Caltech-101
// protocol's score), per-class accuracy and the confusion matrix.
import type { ProcessGroup } from '../distributed/process-group';
import { evalStep } from '../training/steps';
import type { Model } from '../models/model';
import { QuantizedModel } from '../models/quantized';
import { tensor, type Tensor } from '../tensor';

export interface Evaluation {
  count: number;
  loss: number;
  top1: number;
  top5: number;
  /** Mean over classes of each class's top-1 accuracy (classes without test images are left out). */
  meanPerClass: number;
  perClass: Array<{ className: string; correct: number; count: number; accuracy: number }>;
  /** confusion[true][predicted] counts; rows sum to the class counts. */
  confusion: number[][];
  /** Top-1 prediction and its probability for each sample, in the order given. */
  predictions: Array<{ predicted: number; probability: number; label: number }>;
}

/** Batches of inputs (images, or cached features with `features: true`) with their labels. */
export type LabelledBatches = AsyncIterable<{ images: Tensor; labels: Tensor }>;

export interface EvaluateOptions {
  /** The batches hold model.features() outputs. */
  features?: boolean;
  /**
   * A distributed evaluation: the batches are this rank's shard (samples rank, rank + size, … of
   * `total`); the counts, sums and confusion matrix are all-reduced and the predictions gathered,
   * so every rank returns the figures of the whole set, equal to one process's.
   */
  group?: ProcessGroup;
  total?: number;
}

/** `model` may be an int8 QuantizedModel (image batches only). */
export async function evaluate(model: Model | QuantizedModel, batches: LabelledBatches, classNames: string[], options: EvaluateOptions = {}): Promise<Evaluation> {
  const n = classNames.length;
  const confusion = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const predictions: Evaluation['predictions'] = [];
  let count = 0;
  let lossSum = 0;
  let correct1 = 0;
  let correct5 = 0;
  if (model instanceof QuantizedModel && options.features) throw new TypeError('Expected image batches for an int8 QuantizedModel but received features: true');
  const float = model instanceof QuantizedModel ? undefined : model;
  const wasTraining = float?.training ?? false;
  float?.eval();
  try {
    for await (const batch of batches) {
      const result = float
        ? await evalStep(float, batch.images, batch.labels, { returnLogits: true, features: options.features === true })
        : await (model as QuantizedModel).evaluate(batch.images, batch.labels);
      const logits = result.logits!.toTypedArray() as Float32Array;
      result.logits!.dispose();
      const labels = batch.labels.toArray();
      labels.forEach((label, i) => {
        const row = logits.subarray(i * n, (i + 1) * n);
        let best = 0;
        for (let c = 1; c < n; c++) if (row[c] > row[best]) best = c;
        let denominator = 0;
        for (let c = 0; c < n; c++) denominator += Math.exp(row[c] - row[best]);
        predictions.push({ predicted: best, probability: 1 / denominator, label });
        confusion[label][best]++;
      });
      lossSum += result.loss * result.count;
      correct1 += result.correct1;
      correct5 += result.correct5;
      count += result.count;
    }
  } finally {
    float?.train(wasTraining);
  }
  if (options.group) {
    const combined = await combineShards(options.group, options.total ?? count, { count, lossSum, correct1, correct5, confusion, predictions });
    ({ count, lossSum, correct1, correct5 } = combined);
    confusion.splice(0, n, ...combined.confusion);
    predictions.splice(0, predictions.length, ...combined.predictions);
  }
  const perClass = classNames.map((className, c) => {
    const total = confusion[c].reduce((a, b) => a + b, 0);
    return { className, correct: confusion[c][c], count: total, accuracy: total ? confusion[c][c] / total : 0 };
  });
  const present = perClass.filter((p) => p.count > 0);
  return {
    count,
    loss: count ? lossSum / count : 0,
    top1: count ? correct1 / count : 0,
    top5: count ? correct5 / count : 0,
    meanPerClass: present.length ? present.reduce((s, p) => s + p.accuracy, 0) / present.length : 0,
    perClass,
    confusion,
    predictions,
  };
}

interface PartialEvaluation {
  count: number;
  lossSum: number;
  correct1: number;
  correct5: number;
  confusion: number[][];
  predictions: Evaluation['predictions'];
}

/** Sums the ranks' counts and confusion matrices; puts the ranks' predictions back in sample order. */
async function combineShards(group: ProcessGroup, total: number, mine: PartialEvaluation): Promise<PartialEvaluation> {
  const n = mine.confusion.length;
  const sums = tensor(Float64Array.from([mine.count, mine.lossSum, mine.correct1, mine.correct5, ...mine.confusion.flat()]), [4 + n * n]);
  await group.allReduce(sums);
  const summed = sums.toTypedArray() as Float64Array;
  sums.dispose();
  // predictions: [predicted, probability, label] per sample, padded to the largest shard
  const perRank = Math.ceil(total / group.size);
  const rows = new Float64Array(perRank * 3).fill(-1);
  mine.predictions.forEach((p, j) => rows.set([p.predicted, p.probability, p.label], j * 3));
  const local = tensor(rows, [perRank, 3]);
  const gathered = await group.allGather(local);
  local.dispose();
  const all = gathered.toTypedArray() as Float64Array;
  gathered.dispose();
  const predictions: Evaluation['predictions'] = [];
  for (let i = 0; i < total; i++) {
    const at = ((i % group.size) * perRank + Math.floor(i / group.size)) * 3;
    if (all[at] >= 0) predictions.push({ predicted: all[at], probability: all[at + 1], label: all[at + 2] });
  }
  const confusion = Array.from({ length: n }, (_, t) => Array.from(summed.subarray(4 + t * n, 4 + (t + 1) * n)));
  return { count: summed[0], lossSum: summed[1], correct1: summed[2], correct5: summed[3], confusion, predictions };
}
