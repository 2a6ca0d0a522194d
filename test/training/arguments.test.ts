// A missing or wrong model, optimizer or state is a TypeError that names what was expected,
// not "Cannot read properties of undefined" from deep inside.
import { createModel, createOptimizer, evalStep, randn, tensor, trainStep, type Model, type Optimizer } from '../../lib';

test('trainStep, evalStep, createOptimizer and loadStateDict say what they expected', async () => {
  const model = createModel('resnet18', { numClasses: 3 });
  const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.1 });
  const images = await randn([2, 3, 32, 32]);
  const labels = tensor(BigInt64Array.from([0n, 1n]), [2]);
  try {
    await expect(trainStep(undefined as unknown as Model, optimizer, images, labels)).rejects.toThrow('Expected Model for model but received undefined');
    await expect(trainStep(model, {} as Optimizer, images, labels)).rejects.toThrow('Expected Optimizer for optimizer but received an object of type Object');
    await expect(evalStep(null as unknown as Model, images)).rejects.toThrow('Expected Model for model but received null');
    expect(() => createOptimizer('resnet18' as unknown as Model, { type: 'sgd', lr: 0.1 })).toThrow("Expected Model for model but received 'resnet18' of type string");
    expect(() => optimizer.loadStateDict(undefined as never)).toThrow('Expected optimizer state (from stateDict()) for state but received undefined');
    // and the real calls still work
    expect((await trainStep(model, optimizer, images, labels)).count).toBe(2);
  } finally {
    for (const t of [images, labels]) t.dispose();
    optimizer.dispose();
    model.dispose();
  }
});
