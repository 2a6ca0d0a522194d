import { createModel, manualSeed, randn, tensor } from '../../lib';

describe('createModel', () => {
  test('validates its options with clear messages', () => {
    expect(() => createModel('resnet19' as never)).toThrow(
      "Expected one of 'alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16', 'mobilenet_v3_large', 'efficientnet_b0' for arch but received 'resnet19' of type string",
    );
    expect(() => createModel('resnet18', { numClasses: 0 })).toThrow('Expected positive integer for numClasses but received 0 of type number');
    expect(() => createModel('alexnet', { head: 'conv1x1' })).toThrow("'conv1x1' is defined for ResNets");
    expect(() => createModel('resnet18', { numClass: 10 } as never)).toThrow("Unknown option 'numClass' in model options (did you mean 'numClasses'?)");
  });

  test('the new head has PyTorch’s default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))', () => {
    const model = createModel('resnet18', { numClasses: 101 });
    const weight = model.namedParameters().get('fc.weight')!;
    expect(weight.shape).toEqual([101, 512]);
    const values = weight.toTypedArray() as Float32Array;
    const bound = 1 / Math.sqrt(512);
    const max = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(max).toBeLessThanOrEqual(bound);
    expect(max).toBeGreaterThan(bound * 0.95); // uniform over the whole range, not a narrower init
    model.dispose();
  });

  test('forward, features and classify shapes for each head', async () => {
    manualSeed(1);
    const x = randn([2, 3, 64, 64]);
    for (const [arch, head, dim] of [
      ['resnet18', 'linear', 512],
      ['resnet18', 'conv1x1', 512],
      ['alexnet', 'linear', 4096],
    ] as const) {
      const model = createModel(arch, { numClasses: 5, head }).eval();
      expect((await model.forward(x)).shape).toEqual([2, 5]);
      const features = await model.features(x);
      expect(features.shape).toEqual([2, dim]);
      expect(model.featureDim).toBe(dim);
      const viaHead = (await model.classify(features)).toTypedArray() as Float32Array;
      const direct = (await model.forward(x)).toTypedArray() as Float32Array;
      direct.forEach((v, i) => expect(viaHead[i]).toBeCloseTo(v, 4));
      model.dispose();
    }
  });

  test('bad inputs are rejected before native work', async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    await expect(model.forward(randn([2, 1, 32, 32]))).rejects.toThrow('Expected images of shape [N, 3, H, W] but received [2, 1, 32, 32]');
    await expect(model.forward(tensor(new Uint8Array(3 * 8 * 8), [1, 3, 8, 8]))).rejects.toThrow('Expected a floating-point images but received dtype uint8');
    await expect(model.classify(randn([2, 10]))).rejects.toThrow('Expected features of shape [N, 512] but received [2, 10]');
    const labels = tensor(new BigInt64Array([0n, 3n]));
    await expect(model.backward(randn([2, 3, 32, 32]), labels)).rejects.toThrow('Expected labels between 0 and 2 but received 3 at index 1');
    await expect(model.backward(randn([2, 3, 32, 32]), tensor([0, 1]))).rejects.toThrow('Expected labels of dtype int64 but received float32');
    model.dispose();
    await expect(model.forward(randn([1, 3, 32, 32]))).rejects.toThrow('Model was used after dispose()');
  });

  test('a libtorch failure inside forward is a JS error, not a crash', async () => {
    const model = createModel('alexnet', { numClasses: 3 });
    await expect(model.forward(randn([1, 3, 8, 8]))).rejects.toThrow(/size|kernel|small|Output/i);
    model.dispose();
  });
});

describe('freezing', () => {
  test("freeze({ except: ['fc'] }) leaves only the head trainable, unfreeze() restores all", () => {
    const model = createModel('resnet18', { numClasses: 4 });
    const frozen = model.freeze({ except: ['fc'] });
    expect(frozen).toHaveLength(60);
    expect(frozen).not.toContain('fc.weight');
    expect([...model.trainableParameters().keys()]).toEqual(['fc.weight', 'fc.bias']);
    model.unfreeze();
    expect(model.trainableParameters().size).toBe(62);
    model.dispose();
  });

  test('nonFinite names NaN/Inf tensors; trainableOnly skips frozen parameters and eval-mode buffers', async () => {
    const model = createModel('resnet18', { numClasses: 4 });
    expect(await model.nonFinite()).toEqual([]);
    const poison = (name: string, value: number) => {
      const t = model.stateDict().get(name)!;
      const values = t.toTypedArray() as Float32Array;
      values[0] = value;
      return [name, tensor(values, t.shape)] as const;
    };
    await model.loadStateDict(new Map([poison('conv1.weight', NaN), poison('fc.bias', Infinity), poison('layer4.1.bn2.running_var', NaN)]), { strict: false });
    expect(await model.nonFinite()).toEqual(['conv1.weight', 'layer4.1.bn2.running_var', 'fc.bias']);
    model.freeze({ except: ['fc', 'layer4'] });
    model.train(); // layer4's BatchNorm trains, the rest is frozen in eval mode
    expect(await model.nonFinite({ trainableOnly: true })).toEqual(['fc.bias', 'layer4.1.bn2.running_var']); // parameters, then buffers
    model.eval();
    expect(await model.nonFinite({ trainableOnly: true })).toEqual(['fc.bias']);
    model.dispose();
  });

  test('only, predicate and prefix matching on whole name segments', () => {
    const model = createModel('resnet18', { numClasses: 4 });
    expect(model.freeze({ only: ['layer1'] })).toHaveLength(12);
    model.unfreeze();
    // 'layer1' must not match 'layer10…'-like names; predicate composes with only
    expect(model.freeze({ only: ['layer4'], predicate: (n) => n.endsWith('.weight') })).toEqual(
      expect.arrayContaining(['layer4.0.conv1.weight', 'layer4.1.bn2.weight']),
    );
    expect(model.freeze({ only: ['layer'] })).toEqual([]);
    expect(() => model.freeze({ except: 'fc' as never })).toThrow("Expected array of non-empty strings for except but received 'fc' of type string");
    model.dispose();
  });

  test('frozen BatchNorm layers stay in eval mode (running stats fixed) through train()', async () => {
    const model = createModel('resnet18', { numClasses: 4 });
    model.freeze({ except: ['fc', 'layer4'] });
    model.train();
    const modes = new Map(model.namedModules().map((m) => [m.name, m]));
    expect(modes.get('bn1')!.training).toBe(false);
    expect(modes.get('layer3.1.bn2')!.training).toBe(false);
    expect(modes.get('layer4.0.bn1')!.training).toBe(true);
    expect(modes.get('bn1')!.type).toBe('BatchNorm2d');
    const before = model.namedBuffers().get('bn1.running_mean')!.toArray();
    const moving = model.namedBuffers().get('layer4.0.bn1.running_mean')!.toArray();
    await model.forward(randn([2, 3, 64, 64]));
    expect(model.namedBuffers().get('bn1.running_mean')!.toArray()).toEqual(before);
    expect(model.namedBuffers().get('layer4.0.bn1.running_mean')!.toArray()).not.toEqual(moving);
    model.unfreeze();
    model.train();
    expect(model.namedModules().find((m) => m.name === 'bn1')!.training).toBe(true);
    model.dispose();
  });

  test('frozen parameters get no gradient', async () => {
    const model = createModel('resnet18', { numClasses: 4 });
    model.freeze({ except: ['fc'] });
    await model.backward(randn([2, 3, 32, 32]), tensor(new BigInt64Array([1n, 2n])));
    expect([...model.namedGradients().keys()]).toEqual(['fc.weight', 'fc.bias']);
    model.dispose();
  });
});
