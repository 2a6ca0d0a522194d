// finetorch against torchvision on the same weights and inputs: names, shapes, logits, gradients.
import * as fs from 'fs';
import * as path from 'path';
import { createModel, loadPretrained, loadTorchFile, Tensor, type Model } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { torchPythonUnavailableReason } from '../helpers/python';
import { comparer, values, writeTorchFixtures, type Fixtures } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());
const fixtures: Fixtures | null = torch.missing === null ? writeTorchFixtures() : null;


torch.describe('parity with torchvision (PyTorch 1.13 reference)', () => {
  let refs: Map<string, Tensor>;
  const errors: Record<string, number> = {};
  const dir = fixtures?.dir ?? '';

  beforeAll(async () => {
    assertPresent(torch);
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });
  afterAll(() => {
    console.log(`max relative errors vs PyTorch:\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
    fixtures?.cleanup();
  });

  const compare = comparer(errors);

  /** Every BatchNorm buffer of `model` against PyTorch's after its one train-mode forward. */
  function compareRunningStats(when: string, model: Model): void {
    const prefix = 'resnet18.train.buffer.';
    const expectedNames = [...refs.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
    const buffers = [...model.stateDict()].filter(([name]) => /running_(mean|var)$|num_batches_tracked$/.test(name));
    expect(buffers.map(([name]) => name)).toEqual(expectedNames);
    expect(buffers).toHaveLength(60); // 20 BatchNorm layers in ResNet-18
    for (const [name, actual] of buffers) {
      const expected = refs.get(prefix + name)!;
      if (name.endsWith('num_batches_tracked')) {
        // randomize_bn set 5; one train-mode forward adds one
        expect({ name, value: actual.toArray() }).toEqual({ name, value: expected.toArray() });
        expect(expected.toArray()).toEqual([6]);
      } else {
        compare(`resnet18 running stats (${when})`, actual, expected, 1e-5);
      }
    }
  }

  test.each(['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16'] as const)(
    '%s has exactly torchvision’s state_dict names, order, shapes and dtypes',
    (arch) => {
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'shapes.json'), 'utf8'))[arch] as Array<[string, number[], string]>;
      const model = createModel(arch, { numClasses: 10 });
      const actual = [...model.stateDict()].map(([name, t]) => [name, t.shape, `torch.${t.dtype}`]);
      expect(actual).toEqual(expected);
      model.dispose();
    },
  );

  describe('resnet18', () => {
    let model: Model;
    beforeAll(async () => {
      model = createModel('resnet18');
      const result = await loadPretrained(model, path.join(dir, 'resnet18.pth'));
      expect(result).toMatchObject({ missingKeys: [], unexpectedKeys: [], skippedKeys: [] });
    });
    afterAll(() => model.dispose());

    test('eval-mode logits and features', async () => {
      model.eval();
      compare('resnet18 eval logits', await model.forward(refs.get('x')!), refs.get('resnet18.eval'), 1e-5);
      compare('resnet18 features', await model.features(refs.get('x')!), refs.get('resnet18.features'), 1e-5);
    });

    test('train-mode logits (batch statistics), loss and every gradient after one backward', async () => {
      const fresh = createModel('resnet18');
      await loadPretrained(fresh, path.join(dir, 'resnet18.pth'));
      fresh.train();
      const x = refs.get('x')!;
      compare('resnet18 train logits', await fresh.forward(x), refs.get('resnet18.train.logits'), 1e-5);
      // that forward moved the running statistics exactly as PyTorch's did
      compareRunningStats('after forward', fresh);
      // start again from the file for the backward, whose own forward moves them once more
      await loadPretrained(fresh, path.join(dir, 'resnet18.pth'));
      const { loss } = await fresh.backward(x, refs.get('labels')!);
      compareRunningStats('after backward', fresh);
      const expectedLoss = values(refs.get('resnet18.train.loss'))[0];
      errors['resnet18 loss'] = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
      expect(errors['resnet18 loss']).toBeLessThan(1e-5);
      const grads = fresh.namedGradients();
      expect(grads.size).toBe(62);
      for (const [name, grad] of grads) compare('resnet18 gradients', grad, refs.get(`resnet18.train.grad.${name}`), 1e-4);
      fresh.dispose();
    });
  });

  describe('alexnet (legacy-format weights, as torchvision’s alexnet-owt file)', () => {
    let model: Model;
    beforeAll(async () => {
      model = createModel('alexnet');
      const result = await loadPretrained(model, path.join(dir, 'alexnet-legacy.pth'));
      expect(result.format).toBe('legacy');
      model.eval();
    });
    afterAll(() => model.dispose());

    test('eval-mode logits and 4096-d features', async () => {
      compare('alexnet eval logits', await model.forward(refs.get('x')!), refs.get('alexnet.eval'), 1e-5);
      compare('alexnet features', await model.features(refs.get('x')!), refs.get('alexnet.features'), 1e-5);
    });

    test('loss and every gradient', async () => {
      const { loss } = await model.backward(refs.get('x')!, refs.get('labels')!);
      const expectedLoss = values(refs.get('alexnet.evalmode.loss'))[0];
      errors['alexnet loss'] = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
      expect(errors['alexnet loss']).toBeLessThan(1e-5);
      const grads = model.namedGradients();
      expect(grads.size).toBe(16);
      for (const [name, grad] of grads) compare('alexnet gradients', grad, refs.get(`alexnet.evalmode.grad.${name}`), 1e-4);
    });
  });

  test('the conv1x1 head equals PyTorch’s 1x1 conv on layer4 followed by global average pooling', async () => {
    const model = createModel('resnet18', { numClasses: 10, head: 'conv1x1' });
    const result = await loadPretrained(model, path.join(dir, 'resnet18-conv1x1.pth'));
    expect(result.missingKeys).toEqual([]);
    const fc = model.namedParameters().get('fc.weight')!;
    expect(fc.shape).toEqual([10, 512, 1, 1]);
    model.eval();
    const x = refs.get('x')!;
    compare('conv1x1 head logits', await model.forward(x), refs.get('conv1x1.eval'), 1e-5);
    // the head on cached (pooled) features gives the same logits
    compare('conv1x1 head on features', await model.classify(await model.features(x)), refs.get('conv1x1.eval'), 1e-5);
    model.dispose();
  });
});
