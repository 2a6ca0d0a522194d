// Evaluation on a labelled set: loss, top-1, top-5, mean per-class accuracy (the Caltech-101
// protocol's score), per-class accuracy and the confusion matrix.
import { evalStep } from '../training/steps';
import type { Model } from '../models/model';
import type { Tensor } from '../tensor';

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

export async function evaluate(model: Model, batches: LabelledBatches, classNames: string[], options: { features?: boolean } = {}): Promise<Evaluation> {
  const n = classNames.length;
  const confusion = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const predictions: Evaluation['predictions'] = [];
  let count = 0;
  let lossSum = 0;
  let correct1 = 0;
  let correct5 = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const batch of batches) {
      const result = await evalStep(model, batch.images, batch.labels, { returnLogits: true, features: options.features === true });
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
    model.train(wasTraining);
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
