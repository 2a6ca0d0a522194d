// mobilenet_v3_large against torchvision 0.14 on the same weights (written by torchvision to .pth):
// module and state_dict names, eval logits, train-mode BatchNorm statistics (momentum 0.01) and
// every gradient; the classifier's dropout default (0.2); and the head swap, freeze and feature
// cache of a short two-stage run through the trainer.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, exportOnnx, getNumThreads, loadCheckpoint, loadPretrained, loadTorchFile, loadWeights, resolveConfig, setNumThreads, train, type Model, type Tensor,
} from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';
import { comparer, values } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const SCRIPT = String.raw`
import copy, json, sys, torch, torchvision
out = sys.argv[1]
# the same intra-op thread count as finetorch: parallel reductions then sum in the same order
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)

def randomize(model):
    # every BatchNorm away from its init and every bias non-zero, so a swapped or missing one shows
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
            m.bias.data.uniform_(-0.1, 0.1)
    return model

model = randomize(torchvision.models.mobilenet_v3_large(num_classes=10)).eval()
torch.save(model.state_dict(), f'{out}/mbv3.pth')
torch.save(model, f'{out}/mbv3-whole.pth')
x = torch.randn(2, 3, 64, 64)
labels = torch.tensor([3, 7])
refs = {'x': x, 'labels': labels}
with torch.no_grad():
    refs['eval.logits'] = model(x)
    refs['eval.features'] = model.classifier[:3](torch.flatten(model.avgpool(model.features(x)), 1))

def train_copy():
    m = copy.deepcopy(model).train()
    m.classifier[2].p = 0.0
    return m

forward_only = train_copy()
with torch.no_grad():
    refs['train.logits'] = forward_only(x)
# BatchNorm after one train-mode forward: momentum 0.01, unbiased batch variance, 5 -> 6 batches
for name, b in forward_only.named_buffers():
    refs['train.buffer.' + name] = b.detach().clone()

backward = train_copy()
loss = torch.nn.functional.cross_entropy(backward(x), labels)
loss.backward()
refs['train.loss'] = loss.detach()
for name, p in backward.named_parameters():
    refs['train.grad.' + name] = p.grad.detach().clone()
torch.save(refs, f'{out}/refs.pth')

# stand-in ImageNet weights for the trainer: torchvision's 1000-class layout
torch.save(randomize(torchvision.models.mobilenet_v3_large()).state_dict(), f'{out}/mbv3-imagenet.pth')
json.dump({
    'state': [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
    'modules': [[n, type(m).__name__] for n, m in model.named_modules() if n],
}, open(f'{out}/names.json', 'w'))
`;

let dir = '';
let refs: Map<string, Tensor>;
const errors: Record<string, number> = {};


function maxAbs(t: Tensor | undefined): number {
  return values(t).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

const compare = comparer(errors);

async function loaded(): Promise<Model> {
  const model = createModel('mobilenet_v3_large', { numClasses: 10 });
  const result = await loadPretrained(model, path.join(dir, 'mbv3.pth'));
  expect(result).toMatchObject({ missingKeys: [], unexpectedKeys: [], skippedKeys: [], format: 'zip' });
  return model;
}

beforeAll(() => {
  if (torch.missing) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-mbv3-'));
  runPython(SCRIPT, [dir, String(getNumThreads())]);
}, 600000);
afterAll(() => {
  if (Object.keys(errors).length) {
    console.log(`mobilenet_v3_large, max relative errors vs torchvision:\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

torch.describe('mobilenet_v3_large against torchvision 0.14', () => {
  beforeAll(async () => {
    assertPresent(torch);
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });

  test('the same modules (names and types) and state_dict (names, order, shapes, dtypes)', async () => {
    const expected = JSON.parse(fs.readFileSync(path.join(dir, 'names.json'), 'utf8')) as { state: unknown[]; modules: unknown[] };
    const model = createModel('mobilenet_v3_large', { numClasses: 10 });
    expect([...model.stateDict()].map(([name, t]) => [name, t.shape, `torch.${t.dtype}`])).toEqual(expected.state);
    expect(model.namedModules().map((m) => [m.name, m.type])).toEqual(expected.modules);
    expect(model.headPrefix).toBe('classifier.3');
    expect(model.featureDim).toBe(1280);
    // BatchNorm as torchvision's partial(nn.BatchNorm2d, eps=0.001, momentum=0.01); the momentum is
    // checked by the running statistics below, the eps by the eval logits
    expect(expected.state).toHaveLength(312);
    model.dispose();
    // torch.save(model) of the whole network reads as its state_dict
    const whole = await loadWeights(path.join(dir, 'mbv3-whole.pth'));
    expect([...whole.stateDict.keys()]).toEqual((expected.state as Array<[string]>).map(([k]) => k));
  });

  test('eval-mode logits and the 1280-d features (after classifier.0-2)', async () => {
    const model = await loaded();
    model.eval();
    const x = refs.get('x')!;
    compare('eval logits', await model.forward(x), refs.get('eval.logits'), 1e-5);
    const features = await model.features(x);
    compare('eval features', features, refs.get('eval.features'), 1e-5);
    compare('head on features', await model.classify(features), refs.get('eval.logits'), 1e-5);
    model.dispose();
  });

  test('train mode (dropout 0): logits, BatchNorm running statistics, loss and every gradient', async () => {
    const model = createModel('mobilenet_v3_large', { numClasses: 10, dropout: 0 });
    await loadPretrained(model, path.join(dir, 'mbv3.pth'));
    model.train();
    const x = refs.get('x')!;
    compare('train logits', await model.forward(x), refs.get('train.logits'), 1e-5);
    const prefix = 'train.buffer.';
    const expectedBuffers = [...refs.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
    const buffers = [...model.stateDict()].filter(([name]) => /running_(mean|var)$|num_batches_tracked$/.test(name));
    expect(buffers.map(([name]) => name)).toEqual(expectedBuffers);
    expect(buffers).toHaveLength(3 * 46); // 46 BatchNorm layers
    for (const [name, actual] of buffers) {
      const expected = refs.get(prefix + name)!;
      if (name.endsWith('num_batches_tracked')) expect({ name, value: actual.toArray() }).toEqual({ name, value: [6] });
      else compare('running statistics after one train forward', actual, expected, 1e-5);
    }

    await loadPretrained(model, path.join(dir, 'mbv3.pth'));
    const { loss } = await model.backward(x, refs.get('labels')!);
    const expectedLoss = values(refs.get('train.loss'))[0];
    errors['loss'] = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
    expect(errors['loss']).toBeLessThan(1e-5);
    const grads = model.namedGradients();
    expect([...grads.keys()]).toEqual([...model.namedParameters().keys()]);
    expect(grads.size).toBe(174);
    // Each block's projection BatchNorm has no activation after it, and everything its output feeds
    // goes through a train-mode BatchNorm, which removes a per-channel constant: the exact gradient
    // of those 15 biases is zero and both sides hold rounding noise. They must be noise on both sides.
    const largest = Math.max(...[...grads.keys()].map((name) => maxAbs(refs.get(`train.grad.${name}`))));
    const noise = 1e-6 * largest;
    const zeroByConstruction: string[] = [];
    for (const [name, grad] of grads) {
      const expected = refs.get(`train.grad.${name}`);
      if (maxAbs(expected) < noise) {
        zeroByConstruction.push(name);
        expect({ name, noise: maxAbs(grad) < noise }).toEqual({ name, noise: true });
      } else {
        compare('gradients', grad, expected, 1e-4);
      }
    }
    expect(zeroByConstruction).toEqual(
      Array.from({ length: 15 }, (_, i) => `features.${i + 1}.block.${[1, 2, 2, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3, 3][i]}.1.bias`),
    );
    model.dispose();
  });

  test('dropout: torchvision’s 0.2 by default, as given otherwise; off in eval mode', async () => {
    const x = refs.get('x')!;
    for (const [options, p] of [[{}, 0.2], [{ dropout: 0.5 }, 0.5]] as const) {
      const model = createModel('mobilenet_v3_large', { numClasses: 10, ...options });
      await loadPretrained(model, path.join(dir, 'mbv3.pth'));
      model.freeze(); // every BatchNorm on its running statistics, so only dropout differs by mode
      const evaluated = values(await model.eval().features(x));
      const dropped = values(await model.train().features(x));
      model.dispose();
      expect(evaluated.every((v) => v !== 0)).toBe(true);
      // inverted dropout: each feature zeroed with probability p, the others scaled by 1 / (1 - p)
      const kept = Array.from(dropped).flatMap((v, i) => (v === 0 ? [] : [v / evaluated[i]]));
      const zeroFraction = 1 - kept.length / dropped.length;
      expect({ p, zeroFraction: Math.abs(zeroFraction - p) < 0.05 }).toEqual({ p, zeroFraction: true }); // 2560 draws: > 5 sd
      expect(Math.max(...kept.map((r) => Math.abs(r - 1 / (1 - p))))).toBeLessThan(1e-5);
    }
  });

  test('ONNX export refuses it with a clear error', async () => {
    const model = createModel('mobilenet_v3_large', { numClasses: 3 });
    await expect(exportOnnx(model, path.join(dir, 'mbv3.onnx'))).rejects.toThrow('ONNX export is not supported for mobilenet_v3_large yet');
    expect(fs.existsSync(path.join(dir, 'mbv3.onnx'))).toBe(false);
    model.dispose();
  });

  test('two-stage run: a new 4-class head on the 1000-class file, frozen backbone on cached features, then finetune', async () => {
    const threads = getNumThreads();
    const data = path.join(dir, 'data');
    await createSyntheticDataset(data, { classes: 4, perClass: 6, size: 40, seed: 3 });
    const weights = path.join(dir, 'mbv3-imagenet.pth');
    const lines: string[] = [];
    const config = resolveConfig({
      overrides: {
        arch: 'mobilenet_v3_large', phase: 'two-stage', weights, image_size: 32, resize: 36, batch_size: 8, epochs: 1, device: 'cpu', quiet: true, report: false,
        'data.root': data, 'data.train_per_class': 3, 'data.test_per_class': 2, output_dir: path.join(dir, 'runs'), run_name: 'mbv3',
      },
    });
    let fe, ft;
    try {
      [fe, ft] = await train(config, { log: (l) => lines.push(l) });
    } finally {
      setNumThreads(threads);
    }
    expect(fe.phase).toBe('feature_extract');
    expect(fe.featureCache).toBe(true);
    expect(ft.phase).toBe('finetune');
    expect(lines.join('\n')).toContain('new head, not loaded: classifier.3.weight, classifier.3.bias');
    const source = (await loadWeights(weights)).stateDict;
    const afterFe = (await loadCheckpoint(fe.checkpoints.best)).stateDict;
    const afterFt = (await loadCheckpoint(ft.checkpoints.last)).stateDict;
    const same = (a: Tensor, b: Tensor) => Buffer.from(a.native.toBytes()).equals(b.native.toBytes());
    // feature_extract: the backbone (weights and BatchNorm statistics) is bit-identical to the file
    const changedByFe = [...afterFe].filter(([name, t]) => !name.startsWith('classifier.3.') && !same(t, source.get(name)!));
    expect(changedByFe.map(([name]) => name)).toEqual([]);
    expect(afterFe.get('classifier.3.weight')!.shape).toEqual([4, 1280]);
    expect(afterFe.get('classifier.3.bias')!.shape).toEqual([4]);
    // finetune: every layer trains, BatchNorm statistics move
    for (const name of ['features.0.0.weight', 'features.4.block.2.fc1.weight', 'classifier.0.weight', 'classifier.3.weight', 'features.16.1.running_mean']) {
      expect({ name, changed: !same(afterFt.get(name)!, afterFe.get(name)!) }).toEqual({ name, changed: true });
    }
    expect(Number.isFinite(ft.test.loss)).toBe(true);
  }, 600000);
});
