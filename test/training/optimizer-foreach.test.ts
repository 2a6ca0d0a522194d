// SGD with foreach (PyTorch's _multi_tensor_sgd over libtorch's state) against libtorch's own
// per-parameter SGD::step: the same weights, BatchNorm statistics and momentum buffers to the byte
// after five steps. 'auto' turns foreach on for GPU parameters only, so on this CPU the test forces
// it: the code that runs on a GPU, checked here.
import { createModel, createOptimizer, manualSeed, randn, tensor, trainStep, type Model, type OptimizerOptions, Tensor } from '../../lib';

const bytes = (t: Tensor) => Buffer.from(t.native.toBytes());

function labels(values: number[]): Tensor {
  return tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);
}

/** Five steps; layer1 is frozen for the first two, so its momentum buffers start late (step 3). */
async function run(options: OptimizerOptions, init: Map<string, Tensor>, batches: Array<[Tensor, Tensor]>): Promise<{ model: Model; state: Map<number, Map<string, Tensor | number>> }> {
  const model = createModel('resnet18', { numClasses: 5 });
  await model.loadStateDict(init);
  model.train();
  model.freeze({ only: ['layer1'], freezeBatchNorm: false });
  const optimizer = createOptimizer(model, options);
  for (const [step, [x, y]] of batches.entries()) {
    if (step === 2) model.unfreeze({ only: ['layer1'] });
    await trainStep(model, optimizer, x, y);
  }
  return { model, state: optimizer.stateDict().state };
}

describe('SGD foreach', () => {
  let init: Map<string, Tensor>;
  let batches: Array<[Tensor, Tensor]>;
  beforeAll(() => {
    manualSeed(0);
    init = createModel('resnet18', { numClasses: 5 }).stateDict();
    batches = Array.from({ length: 5 }, (_, i) => [randn([4, 3, 32, 32]), labels([i % 5, (i + 1) % 5, (i + 2) % 5, (i + 3) % 5])]);
  });

  const cases: Array<[string, OptimizerOptions]> = [
    ['momentum, Nesterov, weight decay, a head group', { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4, groups: [{ prefixes: ['fc'], lr: 0.1, weightDecay: 0 }] }],
    ['momentum with dampening', { type: 'sgd', lr: 0.02, momentum: 0.8, dampening: 0.25 }],
    ['no momentum, weight decay', { type: 'sgd', lr: 0.05, weightDecay: 1e-3 }],
  ];
  test.each(cases)('%s: the same bytes as the per-parameter step', async (_name, options) => {
    const loop = await run({ ...options, foreach: false }, init, batches);
    const multi = await run({ ...options, foreach: true }, init, batches);
    const a = loop.model.stateDict();
    const b = multi.model.stateDict();
    expect([...b.keys()]).toEqual([...a.keys()]);
    const moved = [...a.keys()].filter((k) => !bytes(a.get(k)!).equals(bytes(init.get(k)!)));
    expect(moved.length).toBeGreaterThan(60); // the steps changed the weights, layer1 included
    expect(moved.some((k) => k.startsWith('layer1.'))).toBe(true);
    for (const k of a.keys()) expect([k, bytes(b.get(k)!).equals(bytes(a.get(k)!))]).toEqual([k, true]);
    // momentum buffers: one per parameter (layer1's created at step 3), equal to the byte
    expect([...multi.state.keys()]).toEqual([...loop.state.keys()]);
    for (const [index, fields] of loop.state) {
      const other = multi.state.get(index)!;
      for (const [field, value] of fields) {
        expect(value instanceof Tensor && bytes(value).equals(bytes(other.get(field) as Tensor))).toBe(true);
      }
    }
    if (options.momentum) expect(loop.state.size).toBe(62);
    loop.model.dispose();
    multi.model.dispose();
  });

  test('foreach is checked: a boolean or auto, and SGD only', () => {
    const model = createModel('resnet18', { numClasses: 5 });
    expect(createOptimizer(model, { type: 'sgd', lr: 0.1 }).foreach).toBe('auto');
    expect(() => createOptimizer(model, { type: 'sgd', lr: 0.1, foreach: 'yes' as never })).toThrow("Expected true, false or 'auto' for foreach but received 'yes'");
    expect(() => createOptimizer(model, { type: 'adam', lr: 0.1, foreach: true })).toThrow("foreach applies to 'sgd', not 'adam'");
    expect(createOptimizer(model, { type: 'adam', lr: 0.1, foreach: false }).foreach).toBe(false);
    model.dispose();
  });
});
