// Load and leaks: many tensors and models made and freed (explicitly or by the GC), and many
// concurrent calls, with RSS flat and every result right.
import { createModel, manualSeed, randn, tensor } from '../lib';

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('load and leaks', () => {
  // The first 100,000 grow the JS heap (wrapper objects wait for a GC); a leak shows as growth
  // that continues through a second round of the same work.
  test('100,000 tensors created and disposed, and 100,000 left to the GC: RSS flat from round to round', async () => {
    const data = new Float32Array(256);
    const disposeRound = async () => {
      for (let i = 0; i < 100000; i++) {
        tensor(data).dispose();
        if (i % 5000 === 0) await tick();
      }
    };
    const gcRound = async () => {
      for (let i = 0; i < 100000; i++) {
        tensor(data);
        if (i % 1000 === 0) await tick(); // finalizers run between event-loop turns
      }
    };
    await disposeRound();
    await gcRound();
    const start = rssMiB();
    await disposeRound();
    const afterDispose = rssMiB();
    await gcRound();
    for (let i = 0; i < 20; i++) await tick();
    const afterGc = rssMiB();
    console.log(`RSS after a warm-up round ${start.toFixed(0)} MiB; +100k disposed ${afterDispose.toFixed(0)} MiB; +100k collected ${afterGc.toFixed(0)} MiB`);
    expect(afterDispose - start).toBeLessThan(50);
    expect(afterGc - start).toBeLessThan(50);
  });

  test('200 models created and disposed: RSS flat', async () => {
    for (let i = 0; i < 5; i++) createModel('resnet18', { numClasses: 10 }).dispose();
    const start = rssMiB();
    for (let i = 0; i < 200; i++) {
      const model = createModel('resnet18', { numClasses: 10 }).eval();
      if (i % 50 === 0) await model.forward(randn([1, 3, 32, 32]));
      model.dispose();
    }
    const drift = rssMiB() - start;
    console.log(`RSS drift over 200 ResNet-18 create/dispose cycles: ${drift.toFixed(1)} MiB`);
    expect(drift).toBeLessThan(100); // one model is ~45 MiB: a leak of even a few would show
  });

  test('64 concurrent forward promises on one model and on several models all resolve correctly', async () => {
    manualSeed(3);
    const models = [0, 1, 2].map(() => createModel('resnet18', { numClasses: 5 }).eval());
    const inputs = Array.from({ length: 64 }, () => randn([1, 3, 16, 16]));
    // reference: one at a time
    const expected: Float32Array[] = [];
    for (let i = 0; i < 64; i++) expected.push((await models[i % 3].forward(inputs[i])).toTypedArray() as Float32Array);
    const oneModel = await Promise.all(inputs.map((x) => models[0].forward(x)));
    const several = await Promise.all(inputs.map((x, i) => models[i % 3].forward(x)));
    for (let i = 0; i < 64; i++) {
      expect(several[i].toTypedArray()).toEqual(expected[i]);
      if (i % 3 === 0) expect(oneModel[i].toTypedArray()).toEqual(expected[i]);
    }
    models.forEach((m) => m.dispose());
  });
});
