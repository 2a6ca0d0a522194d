// Model.convAlgorithm('winograd'): ResNet blocks' 3x3 training convolutions through oneDNN's f32
// Winograd. Checked against the direct convolution on the same weights and batch: gradients agree
// to rounding, yet differ (so the Winograd kernels really ran), in both weight layouts, with the
// weights or the input alone needing a gradient; evaluation and frozen backbones stay direct
// bit for bit; and a short SGD run follows the direct one.
import { createModel, createOptimizer, manualSeed, randn, runtimeInfo, tensor, trainStep, type Model, type Tensor } from '../../lib';
import { convAlgorithmFor } from '../../lib/experiment/trainer';
import { assertPresent, prerequisite } from '../helpers/prerequisite';

const support = runtimeInfo().winograd;
const winograd = prerequisite(
  'oneDNN Winograd',
  support.available ? null : `${support.reason} (scripts/setup.sh installs libdnnl-dev before it builds)`,
);

const BATCH = 4;
const SIZE = 48;

async function resnet(algorithm: 'direct' | 'winograd', channelsLast = true): Promise<Model> {
  manualSeed(11);
  const model = createModel('resnet18', { numClasses: 10 });
  await model.channelsLast(channelsLast);
  await model.convAlgorithm(algorithm);
  model.train();
  return model;
}

function batch(): { images: Tensor; labels: Tensor } {
  manualSeed(5);
  return {
    images: randn([BATCH, 3, SIZE, SIZE]),
    labels: tensor(BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i % 10)), [BATCH]),
  };
}

function values(t: Tensor): Float32Array {
  return t.toTypedArray() as Float32Array;
}

// Relative L2 error of every gradient the two models hold, and whether any differs at all.
function compareGradients(a: Model, b: Model): { worst: number; worstName: string; identical: boolean; names: string[] } {
  const ga = a.namedGradients();
  const gb = b.namedGradients();
  expect([...gb.keys()].sort()).toEqual([...ga.keys()].sort());
  let worst = 0;
  let worstName = '';
  let identical = true;
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
    if (relative > worst) [worst, worstName] = [relative, name];
  }
  return { worst, worstName, identical, names: [...ga.keys()] };
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
  ])('gradients equal the direct convolution to rounding but are computed differently (%s)', async (_label, channelsLast) => {
    assertPresent(winograd);
    const { images, labels } = batch();
    const direct = await resnet('direct', channelsLast);
    const fast = await resnet('winograd', channelsLast);
    try {
      const a = await direct.backward(images, labels);
      const b = await fast.backward(images, labels);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.abs(a.loss));
      const g = compareGradients(direct, fast);
      expect(g.names.length).toBe(62);
      expect(g.identical).toBe(false); // the Winograd kernels ran
      expect({ worst: g.worst < 1e-4, name: g.worstName }).toEqual({ worst: true, name: g.worstName });
    } finally {
      direct.dispose();
      fast.dispose();
    }
  });

  test('with layer4 frozen, its convolutions pass the input gradient alone', async () => {
    assertPresent(winograd);
    const { images, labels } = batch();
    const direct = await resnet('direct');
    const fast = await resnet('winograd');
    try {
      for (const m of [direct, fast]) m.freeze({ only: ['layer4'], freezeBatchNorm: false });
      await direct.backward(images, labels);
      await fast.backward(images, labels);
      const g = compareGradients(direct, fast);
      expect(g.names.some((n) => n.startsWith('layer4'))).toBe(false);
      expect(g.names).toContain('layer3.1.conv2.weight');
      expect(g.identical).toBe(false);
      expect(g.worst).toBeLessThan(1e-4);
    } finally {
      direct.dispose();
      fast.dispose();
    }
  });

  test('evaluation and a frozen backbone are the direct convolution, bit for bit', async () => {
    assertPresent(winograd);
    const { images, labels } = batch();
    const direct = await resnet('direct');
    const fast = await resnet('winograd');
    try {
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
    } finally {
      direct.dispose();
      fast.dispose();
    }
  });

  test('ten SGD steps follow the direct run', async () => {
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
    expect(direct[9]).toBeLessThan(direct[0] * 0.5); // it learned the batch
    for (let i = 0; i < 10; i++) expect(Math.abs(fast[i] - direct[i])).toBeLessThan(2e-3 * direct[0]);
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
