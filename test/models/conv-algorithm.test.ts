// Model.convAlgorithm('winograd'): ResNet blocks' 3x3 training convolutions through oneDNN's f32
// Winograd. Checked against the direct convolution on the same weights and batch: gradients agree
// to rounding, yet differ (so the Winograd kernels really ran), in both weight layouts, with the
// weights or the input alone needing a gradient; evaluation, frozen backbones and maps too small
// for Winograd to pay stay direct bit for bit; and a short SGD run follows the direct one.
import { createModel, createOptimizer, indexSelect, manualSeed, randn, runtimeInfo, tensor, trainStep, type Model, type Tensor } from '../../lib';
import { convAlgorithmFor } from '../../lib/experiment/trainer';
import { assertPresent, prerequisite } from '../helpers/prerequisite';

const support = runtimeInfo().winograd;
const winograd = prerequisite(
  'oneDNN Winograd',
  support.available ? null : `${support.reason} (scripts/setup.sh installs libdnnl-dev before it builds)`,
);

// 128² and batch 8: layer1-3's maps (32², 16², 8²) are large enough for Winograd, layer4's 4² not
const BATCH = 8;
const SIZE = 128;

async function resnet(algorithm: 'direct' | 'winograd', channelsLast = true): Promise<Model> {
  manualSeed(11);
  const model = createModel('resnet18', { numClasses: 10 });
  await model.channelsLast(channelsLast);
  await model.convAlgorithm(algorithm);
  model.train();
  return model;
}

// Seeded ResNet-18s computing with these algorithms, handed to `body`, disposed after it.
async function withResnets<T>(algorithms: Array<'direct' | 'winograd'>, body: (models: Model[]) => Promise<T>, channelsLast = true): Promise<T> {
  const models: Model[] = [];
  try {
    for (const algorithm of algorithms) models.push(await resnet(algorithm, channelsLast));
    return await body(models);
  } finally {
    for (const m of models) m.dispose();
  }
}

function batch(size = SIZE, count = BATCH): { images: Tensor; labels: Tensor } {
  manualSeed(5);
  return {
    images: randn([count, 3, size, size]),
    labels: tensor(BigInt64Array.from({ length: count }, (_, i) => BigInt(i % 10)), [count]),
  };
}

// The same batch in reverse order: the same gradients in exact arithmetic, rounded differently
// (BatchNorm's and the weights' sums run in another order). That difference is the yardstick.
async function reversed({ images, labels }: { images: Tensor; labels: Tensor }): Promise<{ images: Tensor; labels: Tensor }> {
  const order = Array.from({ length: images.shape[0] }, (_, i) => images.shape[0] - 1 - i);
  return { images: await indexSelect(images, order), labels: await indexSelect(labels, order) };
}

function values(t: Tensor): Float32Array {
  return t.toTypedArray() as Float32Array;
}

// Relative L2 error of every gradient the two models hold (the worst, and their geometric mean),
// and whether any differs at all.
function compareGradients(a: Model, b: Model): { worst: number; worstName: string; typical: number; identical: boolean; names: string[] } {
  const ga = a.namedGradients();
  const gb = b.namedGradients();
  expect([...gb.keys()].sort()).toEqual([...ga.keys()].sort());
  let worst = 0;
  let worstName = '';
  let identical = true;
  let logSum = 0;
  for (const [name, t] of ga) {
    const p = values(t);
    const q = values(gb.get(name)!);
    let num = 0;
    let den = 0;
    for (let i = 0; i < p.length; i++) {
      num += (p[i] - q[i]) ** 2;
      den += p[i] ** 2;
      if (p[i] !== q[i]) identical = false;
    }
    const relative = Math.sqrt(num / Math.max(den, 1e-30));
    logSum += Math.log(Math.max(relative, 1e-12));
    if (relative > worst) [worst, worstName] = [relative, name];
  }
  return { worst, worstName, typical: Math.exp(logSum / ga.size), identical, names: [...ga.keys()] };
}

describe('Model.convAlgorithm', () => {
  test('takes direct or winograd, and says what it expected', async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    try {
      await expect(model.convAlgorithm('fast' as never)).rejects.toThrow("Expected one of 'direct', 'winograd' for algorithm but received 'fast'");
      await expect(model.convAlgorithm(7 as never)).rejects.toThrow("Expected one of 'direct', 'winograd' for algorithm but received 7");
      await expect(model.convAlgorithm('direct')).resolves.toBe(model);
    } finally {
      model.dispose();
    }
  });

  test("runtimeInfo().winograd says whether this build has it, and why not", () => {
    expect(typeof support.available).toBe('boolean');
    if (!support.available) expect(support.reason).toMatch(/oneDNN/);
    else expect(support.reason).toBe('');
  });
});

winograd.describe('Winograd training convolutions', () => {
  test.each([
    ['channels-last weights', true],
    ['NCHW weights', false],
  ])('gradients differ from the direct convolution as little as reordering the batch does, but differ (%s)', async (_label, channelsLast) => {
    assertPresent(winograd);
    const data = batch();
    await withResnets(['direct', 'winograd', 'direct'], async ([direct, fast, reorder]) => {
      const a = await direct.backward(data.images, data.labels);
      const b = await fast.backward(data.images, data.labels);
      const back = await reversed(data);
      await reorder.backward(back.images, back.labels);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.abs(a.loss));
      const g = compareGradients(direct, fast);
      const yardstick = compareGradients(direct, reorder);
      expect(g.names.length).toBe(62);
      expect(g.identical).toBe(false); // the Winograd kernels ran
      expect(yardstick.identical).toBe(false);
      // within a few times the rounding of a reordered batch, worst parameter and typical one
      expect({ worst: g.worst, name: g.worstName, within: g.worst <= 4 * yardstick.worst }).toMatchObject({ within: true });
      expect({ typical: g.typical, yardstick: yardstick.typical, within: g.typical <= 4 * yardstick.typical }).toMatchObject({ within: true });
    }, channelsLast);
  });

  test('with layer3 frozen, its convolutions pass the input gradient alone', async () => {
    assertPresent(winograd);
    const data = batch();
    const back = await reversed(data);
    await withResnets(['direct', 'winograd', 'direct'], async ([direct, fast, reorder]) => {
      for (const m of [direct, fast, reorder]) m.freeze({ only: ['layer3'], freezeBatchNorm: false });
      await direct.backward(data.images, data.labels);
      await fast.backward(data.images, data.labels);
      await reorder.backward(back.images, back.labels);
      const g = compareGradients(direct, fast);
      expect(g.names.some((n) => n.startsWith('layer3'))).toBe(false);
      expect(g.names).toContain('layer2.1.conv2.weight');
      expect(g.identical).toBe(false);
      expect(g.typical).toBeLessThanOrEqual(4 * compareGradients(direct, reorder).typical);
    });
  });

  test('evaluation and a frozen backbone are the direct convolution, bit for bit', async () => {
    assertPresent(winograd);
    const { images, labels } = batch();
    await withResnets(['direct', 'winograd'], async ([direct, fast]) => {
      for (const m of [direct, fast]) m.eval();
      const a = values(await direct.forward(images));
      const b = values(await fast.forward(images));
      expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
      for (const m of [direct, fast]) {
        m.freeze({ except: ['fc'] });
        m.train();
        await m.backward(images, labels);
      }
      const g = compareGradients(direct, fast);
      expect(g.names).toEqual(['fc.weight', 'fc.bias']);
      expect(g.identical).toBe(true);
    });
  });

  test('maps too small for Winograd to pay (32², batch 2: 8² and less) stay direct, bit for bit', async () => {
    assertPresent(winograd);
    const { images, labels } = batch(32, 2);
    await withResnets(['direct', 'winograd'], async ([direct, fast]) => {
      await direct.backward(images, labels);
      await fast.backward(images, labels);
      const g = compareGradients(direct, fast);
      expect(g.names.length).toBe(62);
      expect(g.identical).toBe(true);
    });
  });

  test('ten SGD steps (momentum, all layers) follow the direct run', async () => {
    assertPresent(winograd);
    const { images, labels } = batch();
    const losses: number[][] = [];
    for (const algorithm of ['direct', 'winograd'] as const) {
      const model = await resnet(algorithm);
      const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.05, momentum: 0.9 });
      const run: number[] = [];
      try {
        for (let i = 0; i < 10; i++) run.push((await trainStep(model, optimizer, images, labels)).loss);
      } finally {
        optimizer.dispose();
        model.dispose();
      }
      losses.push(run);
    }
    const [direct, fast] = losses;
    // it learns the batch (2.5 -> 0.002 here); rounding differences grow a little as SGD
    // amplifies them (at most 0.013 apart here), where a wrong gradient would go its own way
    expect(direct[9]).toBeLessThan(direct[0] * 0.1);
    expect(fast[9]).toBeLessThan(fast[0] * 0.1);
    for (let i = 0; i < 10; i++) expect({ step: i, gap: Math.abs(fast[i] - direct[i]) < 0.02 * direct[0] }).toEqual({ step: i, gap: true });
  });
});

describe('conv_algorithm in a run', () => {
  test('auto is Winograd on a CPU whose build has it; direct stays direct; CUDA is cuDNN', () => {
    expect(convAlgorithmFor('auto', 'cpu')).toBe(support.available ? 'winograd' : 'direct');
    expect(convAlgorithmFor('direct', 'cpu')).toBe('direct');
    expect(convAlgorithmFor('winograd', 'cuda')).toBe('direct');
    expect(convAlgorithmFor('auto', 'cuda:1')).toBe('direct');
    if (support.available) expect(convAlgorithmFor('winograd', 'cpu')).toBe('winograd');
    else expect(() => convAlgorithmFor('winograd', 'cpu')).toThrow(/conv_algorithm 'winograd' is not available: .*oneDNN/);
  });
});
