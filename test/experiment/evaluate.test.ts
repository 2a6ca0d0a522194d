// evaluate(): known answers for the headline metrics on logits designed by hand.
//
// The model is a ResNet-18 whose head is the identity on the first C feature dimensions (fc.weight
// = [I_C | 0], fc.bias = 0), fed cached "features" (the phase-1 path, `features: true`): its logits
// are exactly the numbers written below, so every figure evaluate() reports can be worked out on
// paper from the table. Top-1, top-5, mean per-class accuracy, the per-class table and the
// confusion matrix are written out as counted by hand; the loss and the top-1 probabilities are
// computed here in float64 from the same table (independently of the native cross-entropy).
import { createModel, type Model } from '../../lib/models/model';
import { tensor, type Tensor } from '../../lib/tensor';
import { evaluate } from '../../lib/experiment/evaluate';

const CLASSES = ['a', 'b', 'c', 'd', 'e', 'f'];

// 10 samples, 6 classes, labels imbalanced (class 0: 5 samples, 1: 2, 2: 2, 3: 1, classes 4 and 5:
// none). For each: the logits, its label, and (worked out by hand) the class ranked first and the
// rank of the true class. All values in a row are different, so there are no ties.
const SAMPLES: Array<{ logits: number[]; label: number; predicted: number; trueRank: number }> = [
  { logits: [3, 1, 0.5, 0, -1, -2], label: 0, predicted: 0, trueRank: 1 },
  { logits: [2, 3, 0, -1, -2, 1], label: 0, predicted: 1, trueRank: 2 },
  { logits: [1, 0, 4, 2, -1, -3], label: 0, predicted: 2, trueRank: 3 },
  { logits: [-3, 0, 1, 2, -1, -2], label: 0, predicted: 3, trueRank: 6 }, // not in the top 5
  { logits: [-4, -1, 0, 1, 2, 3], label: 0, predicted: 5, trueRank: 6 }, // not in the top 5
  { logits: [0, 2, 1, -1, -2, -3], label: 1, predicted: 1, trueRank: 1 },
  { logits: [1, 5, 0, 0.5, -1, 2], label: 1, predicted: 1, trueRank: 1 },
  { logits: [3, -1, 2, 0, 1, -2], label: 2, predicted: 0, trueRank: 2 },
  { logits: [1, 2, -1, 0, 4, -2], label: 2, predicted: 4, trueRank: 5 }, // fifth: still in the top 5
  { logits: [0, 1, -1, 3, 2, -2], label: 3, predicted: 3, trueRank: 1 },
];

// Counted by hand from the table above.
// top-1: samples 0, 5, 6, 9 are right                              -> 4 / 10
// top-5: all but samples 3 and 4 (true class ranked sixth)        -> 8 / 10
// per class: a 1/5, b 2/2, c 0/2, d 1/1; e and f have no samples   -> mean over a..d of
//   (0.2 + 1 + 0 + 1) / 4 = 0.55 (not 0.4, the overall top-1; not 2.2 / 6, which counts e and f)
const TOP1 = 0.4;
const TOP5 = 0.8;
const MEAN_PER_CLASS = 0.55;
const PER_CLASS = [
  { className: 'a', correct: 1, count: 5, accuracy: 0.2 },
  { className: 'b', correct: 2, count: 2, accuracy: 1 },
  { className: 'c', correct: 0, count: 2, accuracy: 0 },
  { className: 'd', correct: 1, count: 1, accuracy: 1 },
  { className: 'e', correct: 0, count: 0, accuracy: 0 },
  { className: 'f', correct: 0, count: 0, accuracy: 0 },
];
// confusion[true][predicted]
const CONFUSION = [
  [1, 1, 1, 1, 0, 1],
  [0, 2, 0, 0, 0, 0],
  [1, 0, 0, 0, 1, 0],
  [0, 0, 0, 1, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
];

/** Softmax of a row in float64. */
function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** Mean cross-entropy, float64. */
function crossEntropy(samples: Array<{ logits: number[]; label: number }>): number {
  return samples.reduce((s, x) => s - Math.log(softmax(x.logits)[x.label]), 0) / samples.length;
}

/** A ResNet-18 whose head copies the first `classes` feature dimensions to the logits. */
async function identityHead(classes: number): Promise<Model> {
  const model = createModel('resnet18', { numClasses: classes });
  const d = model.featureDim;
  const weight = new Float32Array(classes * d);
  for (let c = 0; c < classes; c++) weight[c * d + c] = 1;
  const w = tensor(weight, [classes, d]);
  const b = tensor(new Float32Array(classes), [classes]);
  try {
    await model.loadStateDict({ 'fc.weight': w, 'fc.bias': b }, { strict: false });
  } finally {
    w.dispose();
    b.dispose();
  }
  return model;
}

/** Cached-feature batches whose first dimensions hold the logits (the rest: a constant the head ignores). */
async function* batches(model: Model, samples: Array<{ logits: number[]; label: number }>, sizes: number[]) {
  const d = model.featureDim;
  let at = 0;
  for (const size of sizes) {
    const part = samples.slice(at, at + size);
    at += size;
    const features = new Float32Array(size * d).fill(7);
    part.forEach((s, i) => features.set(s.logits, i * d));
    const images: Tensor = tensor(features, [size, d]);
    const labels: Tensor = tensor(BigInt64Array.from(part.map((s) => BigInt(s.label))), [size]);
    try {
      yield { images, labels };
    } finally {
      images.dispose();
      labels.dispose();
    }
  }
  expect(at).toBe(samples.length);
}

describe('evaluate: known answers', () => {
  test('the table itself: each row ranks its classes as written (so the counts below are right)', () => {
    for (const s of SAMPLES) {
      const order = s.logits.map((v, c) => [v, c]).sort((x, y) => y[0] - x[0]).map(([, c]) => c);
      expect(new Set(s.logits).size).toBe(s.logits.length);
      expect(order[0]).toBe(s.predicted);
      expect(order.indexOf(s.label) + 1).toBe(s.trueRank);
    }
    expect(SAMPLES.filter((s) => s.trueRank === 1).length / SAMPLES.length).toBe(TOP1);
    expect(SAMPLES.filter((s) => s.trueRank <= 5).length / SAMPLES.length).toBe(TOP5);
  });

  test('top-1 0.4, top-5 0.8, mean per-class 0.55, per-class table, confusion matrix, loss and top-1 probabilities over two uneven batches', async () => {
    const model = await identityHead(CLASSES.length);
    try {
      model.train(); // evaluate() switches to eval and back
      const result = await evaluate(model, batches(model, SAMPLES, [6, 4]), CLASSES, { features: true });
      expect(model.training).toBe(true);
      expect(result.count).toBe(10);
      expect(result.top1).toBeCloseTo(TOP1, 12);
      expect(result.top5).toBeCloseTo(TOP5, 12);
      expect(result.meanPerClass).toBeCloseTo(MEAN_PER_CLASS, 12);
      expect(result.perClass).toEqual(PER_CLASS);
      expect(result.confusion).toEqual(CONFUSION);
      // the mean over all 10 samples (not the mean of the two batch means, which would be 0.5 *
      // (mean of 6) + 0.5 * (mean of 4))
      expect(result.loss).toBeCloseTo(crossEntropy(SAMPLES), 5);
      expect(result.predictions.map((p) => [p.predicted, p.label])).toEqual(SAMPLES.map((s) => [s.predicted, s.label]));
      result.predictions.forEach((p, i) => expect(p.probability).toBeCloseTo(Math.max(...softmax(SAMPLES[i].logits)), 6));
    } finally {
      model.dispose();
    }
  });

  test('the same samples in another batching and order give the same figures', async () => {
    const model = await identityHead(CLASSES.length);
    try {
      const reversed = [...SAMPLES].reverse();
      const result = await evaluate(model, batches(model, reversed, [1, 3, 6]), CLASSES, { features: true });
      expect(result.top1).toBeCloseTo(TOP1, 12);
      expect(result.top5).toBeCloseTo(TOP5, 12);
      expect(result.meanPerClass).toBeCloseTo(MEAN_PER_CLASS, 12);
      expect(result.confusion).toEqual(CONFUSION);
      expect(result.loss).toBeCloseTo(crossEntropy(SAMPLES), 5);
      expect(result.predictions.map((p) => p.label)).toEqual(reversed.map((s) => s.label));
    } finally {
      model.dispose();
    }
  });

  test('fewer than five classes: top-5 counts every sample; top-1 and the rest as counted by hand', async () => {
    // 3 classes, 4 samples: right; wrong with the true class ranked last (third); right; right
    const samples = [
      { logits: [2, 0, 1], label: 0 },
      { logits: [0, -1, 3], label: 1 },
      { logits: [-1, 0, 1], label: 2 },
      { logits: [0.5, -1, 2], label: 2 },
    ];
    const model = await identityHead(3);
    try {
      const result = await evaluate(model, batches(model, samples, [4]), ['x', 'y', 'z'], { features: true });
      expect(result.top1).toBeCloseTo(3 / 4, 12);
      expect(result.top5).toBe(1);
      // x 1/1, y 0/1, z 2/2 -> (1 + 0 + 1) / 3
      expect(result.meanPerClass).toBeCloseTo(2 / 3, 12);
      expect(result.confusion).toEqual([
        [1, 0, 0],
        [0, 0, 1],
        [0, 0, 2],
      ]);
      expect(result.loss).toBeCloseTo(crossEntropy(samples), 5);
    } finally {
      model.dispose();
    }
  });

  test('no samples: zeros, not NaN', async () => {
    const model = await identityHead(3);
    try {
      const result = await evaluate(model, batches(model, [], []), ['x', 'y', 'z'], { features: true });
      expect(result).toMatchObject({ count: 0, loss: 0, top1: 0, top5: 0, meanPerClass: 0, predictions: [] });
    } finally {
      model.dispose();
    }
  });
});
