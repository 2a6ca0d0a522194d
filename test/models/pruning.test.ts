// Pruning against torch.nn.utils.prune on the same ResNet-18 weights (random, so no magnitude
// ties): masks, state_dict keys and order, pruned weights, eval logits and weight_orig gradients,
// per layer (L1, fraction and count, pruned twice), global L1 (twice) and L2 structured (twice, and
// then L1 on top); prune.remove; a finetorch-pruned file loading into torchvision after
// prune.identity, and PyTorch-pruned files loading into finetorch.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadTorchFile, loadWeights, saveWeights, tensor, type Model, type Tensor } from '../../lib';
import * as pruning from '../../lib/models/pruning';
import { roundHalfEven } from '../../lib/models/shrink';
import { Optimizer } from '../../lib/training/optimizer';
import { trainStep } from '../../lib/training/steps';
import { getNumThreads } from '../../lib/runtime';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { comparer, values } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const GLOBAL_LAYERS = ['conv1', 'layer1.0.conv1', 'layer2.0.conv2', 'layer3.1.conv1', 'fc'];

// Each scenario: the same pruning calls in PyTorch as the finetorch steps below.
const SCRIPT = String.raw`
import json, sys, torch, torchvision
import torch.nn.functional as F
from torch.nn.utils import prune
out, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)

def fresh():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
    return model.eval()

torch.save(fresh().state_dict(), f'{out}/dense.pth')
torch.manual_seed(1)
x = torch.randn(2, 3, 64, 64)
labels = torch.tensor([3, 7])
refs = {'x': x, 'labels': labels}
keys = {}

def record(tag, model):
    with torch.no_grad():
        refs[tag + '.eval'] = model(x)
    model.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    for name, p in model.named_parameters():
        refs[tag + '.grad.' + name] = p.grad.detach().clone()
    sd = model.state_dict()
    for k, v in sd.items():
        refs[tag + '.sd.' + k] = v.clone()
    keys[tag] = list(sd.keys())
    torch.save(sd, f'{out}/{tag}.pth')

def sub(model, name):
    return model.get_submodule(name)

m = fresh()
prune.l1_unstructured(sub(m, 'layer1.0.conv1'), 'weight', amount=0.3)
prune.l1_unstructured(sub(m, 'layer1.0.conv1'), 'weight', amount=0.5)
prune.l1_unstructured(sub(m, 'fc'), 'weight', amount=1000)
prune.l1_unstructured(sub(m, 'conv1'), 'weight', amount=0.25)
record('l1', m)
for name in ['layer1.0.conv1', 'fc', 'conv1']:
    prune.remove(sub(m, name), 'weight')
record('permanent', m)

m = fresh()
layers = [(sub(m, n), 'weight') for n in ${JSON.stringify(GLOBAL_LAYERS)}]
prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.4)
prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.25)
record('global', m)

m = fresh()
prune.ln_structured(sub(m, 'layer1.0.conv1'), 'weight', amount=0.5, n=2, dim=0)
prune.ln_structured(sub(m, 'layer4.0.conv2'), 'weight', amount=0.3, n=2, dim=0)
prune.ln_structured(sub(m, 'layer1.0.conv1'), 'weight', amount=0.5, n=2, dim=0)
prune.ln_structured(sub(m, 'layer2.0.conv1'), 'weight', amount=5, n=2, dim=0)
prune.l1_unstructured(sub(m, 'layer2.0.conv1'), 'weight', amount=0.5)
record('structured', m)

torch.save(refs, f'{out}/refs.pth')
print(json.dumps(keys))
`;

// Loads the finetorch-pruned file into torchvision after prune.identity on the pruned layers.
const LOAD_IN_TORCH = String.raw`
import json, sys, torch, torchvision
from torch.nn.utils import prune
file, layers, x_file, threads = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
model = torchvision.models.resnet18(num_classes=10).eval()
for name in layers:
    prune.identity(model.get_submodule(name), 'weight')
model.load_state_dict(torch.load(file), strict=True)
with torch.no_grad():
    logits = model(torch.load(x_file)['x'])
print(json.dumps(logits.flatten().tolist()))
`;

type Step = (model: Model) => Promise<void>;

/** How many entries differ bit for bit (toEqual on 11M-entry arrays takes minutes). */
function differing(actual: Tensor, expected: Tensor): number {
  const [a, b] = [actual.toTypedArray(), expected.toTypedArray()];
  if (a.length !== b.length || a.constructor !== b.constructor) return Math.max(a.length, b.length);
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) count++;
  return count;
}

const SCENARIOS: Record<string, Step> = {
  l1: async (model) => {
    await pruning.l1Unstructured(model, ['layer1.0.conv1'], { amount: 0.3 });
    await pruning.l1Unstructured(model, ['layer1.0.conv1'], { amount: 0.5 });
    await pruning.l1Unstructured(model, ['fc'], { count: 1000 });
    await pruning.l1Unstructured(model, ['conv1'], { amount: 0.25 });
  },
  global: async (model) => {
    await pruning.globalL1Unstructured(model, GLOBAL_LAYERS, { amount: 0.4 });
    await pruning.globalL1Unstructured(model, GLOBAL_LAYERS, { amount: 0.25 });
  },
  structured: async (model) => {
    await pruning.l2Structured(model, ['layer1.0.conv1'], { amount: 0.5 });
    await pruning.l2Structured(model, ['layer4.0.conv2'], { amount: 0.3 });
    await pruning.l2Structured(model, ['layer1.0.conv1'], { amount: 0.5 });
    await pruning.l2Structured(model, ['layer2.0.conv1'], { count: 5 });
    await pruning.l1Unstructured(model, ['layer2.0.conv1'], { amount: 0.5 });
  },
};

torch.describe('pruning parity with torch.nn.utils.prune (PyTorch 1.13)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-prune-'));
  let keys: Record<string, string[]>;
  let refs: Map<string, Tensor>;
  const errors: Record<string, number> = {};
  const compare = comparer(errors);

  beforeAll(async () => {
    assertPresent(torch);
    keys = JSON.parse(runPython(SCRIPT, [dir, String(getNumThreads())])) as Record<string, string[]>;
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });
  afterAll(() => {
    console.log(`pruning max relative errors vs PyTorch:\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function dense(): Promise<Model> {
    const model = createModel('resnet18', { numClasses: 10 });
    await model.loadStateDict((await loadWeights(path.join(dir, 'dense.pth'))).stateDict);
    return model.eval();
  }

  /** State_dict keys in PyTorch's order, masks and stored tensors equal, logits and weight_orig gradients close. */
  async function expectLikePyTorch(tag: string, model: Model): Promise<void> {
    const state = model.stateDict();
    expect([...state.keys()]).toEqual(keys[tag]);
    for (const [name, t] of state) {
      const expected = refs.get(`${tag}.sd.${name}`)!;
      // masks decide which entries go: exactly PyTorch's; the rest are copies or orig * mask
      expect({ name, shape: t.shape, differing: differing(t, expected) }).toEqual({ name, shape: expected.shape, differing: 0 });
    }
    compare(`${tag} eval logits`, await model.forward(refs.get('x')!), refs.get(`${tag}.eval`), 1e-5);
    await model.backward(refs.get('x')!, refs.get('labels')!);
    const grads = model.namedGradients();
    expect([...grads.keys()]).toEqual([...model.namedParameters().keys()]);
    for (const [name, grad] of grads) compare(`${tag} gradients${name.endsWith('_orig') ? ' (weight_orig)' : ''}`, grad, refs.get(`${tag}.grad.${name}`), 1e-4);
  }

  for (const tag of Object.keys(SCENARIOS)) {
    test(`${tag}: masks, keys, weights, logits and gradients equal PyTorch's`, async () => {
      const model = await dense();
      await SCENARIOS[tag](model);
      expect(pruning.layerSparsity(model).length).toBe(pruning.prunedModules(model).length);
      await expectLikePyTorch(tag, model);
      model.dispose();
    });

    test(`${tag}: PyTorch's pruned state_dict loads into a fresh finetorch model (prune.identity done for it)`, async () => {
      const model = createModel('resnet18', { numClasses: 10 }).eval();
      await model.loadStateDict((await loadWeights(path.join(dir, `${tag}.pth`))).stateDict);
      await expectLikePyTorch(tag, model);
      model.dispose();
    });
  }

  test('sparsity: pruning again takes the amount of what is left (0.3 then 0.5 of 64x64x3x3, Python’s rounding)', async () => {
    const model = await dense();
    await SCENARIOS.l1(model);
    const layer = pruning.layerSparsity(model).find((s) => s.module === 'layer1.0.conv1')!;
    const first = roundHalfEven(0.3 * 36864);
    // 0.5 x 25805 = 12902.5: Python's round() gives 12902, Math.round 12903
    expect(layer.pruned).toBe(first + roundHalfEven(0.5 * (36864 - first)));
    expect(layer.pruned).toBe(11059 + 12902);
    expect(pruning.layerSparsity(model).find((s) => s.module === 'fc')!.pruned).toBe(1000);
    model.dispose();
  });

  test('makePermanent is prune.remove: weight = orig * mask, PyTorch’s keys and order', async () => {
    const model = await dense();
    await SCENARIOS.l1(model);
    await pruning.makePermanent(model);
    expect(pruning.prunedModules(model)).toEqual([]);
    await expectLikePyTorch('permanent', model);
    model.dispose();
  });

  test('a finetorch-pruned checkpoint loads into torchvision after prune.identity, same logits', async () => {
    const model = await dense();
    await SCENARIOS.global(model);
    const file = path.join(dir, 'finetorch-global.pth');
    await saveWeights(file, model.stateDict());
    const logits = JSON.parse(runPython(LOAD_IN_TORCH, [file, JSON.stringify(pruning.prunedModules(model)), path.join(dir, 'refs.pth'), String(getNumThreads())])) as number[];
    const ours = values(await model.forward(refs.get('x')!));
    compare('finetorch file in PyTorch: logits', tensor(Float32Array.from(logits), [2, 10]), tensor(ours, [2, 10]), 1e-5);
    model.dispose();
  });

  test('an optimizer built before pruning refuses to step; one built after trains weight_orig, pruned entries stay zero', async () => {
    const model = (await dense()).train();
    const early = new Optimizer(model, { type: 'sgd', lr: 0.1 });
    await pruning.l1Unstructured(model, ['layer1.0.conv1'], { amount: 0.5 });
    const x = refs.get('x')!;
    const labels = refs.get('labels')!;
    await expect(trainStep(model, early, x, labels)).rejects.toThrow(/pruned or shrunk after this optimizer was built/);
    const optimizer = new Optimizer(model, { type: 'sgd', lr: 0.1 });
    await trainStep(model, optimizer, x, labels);
    await pruning.makePermanent(model);
    const weight = values(model.namedParameters().get('layer1.0.conv1.weight'));
    expect(weight.filter((v) => v === 0).length).toBe(Math.round(0.5 * weight.length));
    model.dispose();
  });

  test('invalid requests say what was expected', async () => {
    const model = createModel('resnet18', { numClasses: 10 });
    await expect(pruning.l1Unstructured(model, ['layer1.0.bn1'], { amount: 0.5 })).rejects.toThrow(/Conv2d or Linear layer of resnet18 .* 'layer1.0.bn1'/);
    await expect(pruning.l1Unstructured(model, ['fc'], { amount: 1.5 })).rejects.toThrow(/amount/);
    await expect(pruning.l1Unstructured(model, ['fc'], {})).rejects.toThrow(/exactly one of amount .* neither/);
    await expect(pruning.l1Unstructured(model, ['fc'], { count: 6000 })).rejects.toThrow(/amount=6000 should be smaller than the number of parameters to prune=5120/);
    await expect(pruning.makePermanent(model, ['fc'])).rejects.toThrow(/pruned layer .* 'fc'/);
    expect(pruning.prunedModules(model)).toEqual([]);
    model.dispose();
  });
});

describe('pruning a model disposed while the call is queued (found by the API fuzzer)', () => {
  test('the queued pruning settles without error: dispose() lets queued work finish', async () => {
    const model = createModel('resnet18', { numClasses: 2 });
    const running = pruning.l1Unstructured(model, ['conv1'], { amount: 0.3 });
    model.dispose();
    await expect(running).resolves.toBeUndefined();
    await expect(pruning.l1Unstructured(model, ['conv1'], { amount: 0.3 })).rejects.toThrow('Model was used after dispose()');
  });
});
