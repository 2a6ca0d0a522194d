// Channel shrinking against PyTorch on the same ResNet-18 weights. "Equal" means: the shrunk
// network's eval logits equal those of PyTorch's model with prune.ln_structured(amount, n=2, dim=0)
// on each block's conv1 AND prune.custom_from_mask on that block's bn1 weight and bias with the
// same channel mask (a zeroed conv channel alone still passes BatchNorm's bias and running mean on
// to conv2; with bn1 masked too the channel carries exact zeros, so removing it changes nothing);
// and its state_dict (names, shapes, values) is PyTorch's own surgery: the kept rows of conv1 and
// bn1, the kept input channels of conv2.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadTorchFile, loadWeights, tensor, type Model, type Tensor } from '../../lib';
import * as pruning from '../../lib/models/pruning';
import * as shrink from '../../lib/models/shrink';
import { getNumThreads } from '../../lib/runtime';
import { loadCheckpoint, restoreCheckpoint, saveCheckpoint } from '../../lib/training/checkpoint';
import { Optimizer } from '../../lib/training/optimizer';
import { trainStep } from '../../lib/training/steps';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { comparer, values } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const SCRIPT = String.raw`
import json, sys, torch, torchvision
from torch.nn.utils import prune
out, threads, amount = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)

def fresh():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
    return model.eval()

def blocks(model):
    return [(f'layer{i}.{j}', getattr(model, f'layer{i}')[j]) for i in range(1, 5) for j in range(2)]

torch.save(fresh().state_dict(), f'{out}/dense.pth')
torch.manual_seed(1)
x = torch.randn(2, 3, 64, 64)
refs = {'x': x}

masked = fresh()
kept = {}
for name, block in blocks(masked):
    prune.ln_structured(block.conv1, 'weight', amount=amount, n=2, dim=0)
    keep = block.conv1.weight_mask.sum((1, 2, 3)) != 0
    prune.custom_from_mask(block.bn1, 'weight', keep)
    prune.custom_from_mask(block.bn1, 'bias', keep)
    kept[name] = keep.nonzero().flatten()
with torch.no_grad():
    refs['masked.eval'] = masked(x)

surgery = fresh()
with torch.no_grad():
    for name, block in blocks(surgery):
        idx = kept[name]
        block.conv1.weight = torch.nn.Parameter(block.conv1.weight[idx].clone())
        for t in ['weight', 'bias']:
            setattr(block.bn1, t, torch.nn.Parameter(getattr(block.bn1, t)[idx].clone()))
        block.bn1.running_mean = block.bn1.running_mean[idx].clone()
        block.bn1.running_var = block.bn1.running_var[idx].clone()
        block.conv2.weight = torch.nn.Parameter(block.conv2.weight[:, idx].clone())
    refs['surgery.eval'] = surgery(x)
for k, v in surgery.state_dict().items():
    refs['surgery.sd.' + k] = v.clone()
# ResNet-50: each Bottleneck's conv1 and conv2, ranked on their own weights, with bn1 and bn2 masked
torch.manual_seed(0)
r50 = torchvision.models.resnet50(num_classes=10)
for m in r50.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
r50.eval()
torch.save(r50.state_dict(), f'{out}/resnet50.pth')
for layer in [r50.layer1, r50.layer2, r50.layer3, r50.layer4]:
    for block in layer:
        for conv, bn in [(block.conv1, block.bn1), (block.conv2, block.bn2)]:
            prune.ln_structured(conv, 'weight', amount=amount, n=2, dim=0)
            keep = conv.weight_mask.sum((1, 2, 3)) != 0
            prune.custom_from_mask(bn, 'weight', keep)
            prune.custom_from_mask(bn, 'bias', keep)
with torch.no_grad():
    refs['resnet50.masked.eval'] = r50(x)
torch.save(refs, f'{out}/refs.pth')
print(json.dumps({'keys': list(surgery.state_dict().keys()), 'widths': {n + '.conv1': len(i) for n, i in kept.items()}}))
`;

const AMOUNT = 0.5;

function differing(actual: Tensor, expected: Tensor): number {
  const [a, b] = [actual.toTypedArray(), expected.toTypedArray()];
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let count = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) count++;
  return count;
}

torch.describe('shrinkChannels against PyTorch (ResNet-18 and ResNet-50, 50% of each block’s inner channels)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-shrink-'));
  let reference: { keys: string[]; widths: Record<string, number> };
  let refs: Map<string, Tensor>;
  const errors: Record<string, number> = {};
  const compare = comparer(errors);

  beforeAll(async () => {
    assertPresent(torch);
    reference = JSON.parse(runPython(SCRIPT, [dir, String(getNumThreads()), String(AMOUNT)]));
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });
  afterAll(() => {
    console.log(`shrink max relative errors vs PyTorch:\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function dense(): Promise<Model> {
    const model = createModel('resnet18', { numClasses: 10 });
    await model.loadStateDict((await loadWeights(path.join(dir, 'dense.pth'))).stateDict);
    return model.eval();
  }

  async function expectShrunk(tag: string, model: Model): Promise<void> {
    const x = refs.get('x')!;
    compare(`${tag}: logits vs masked PyTorch (conv1 + bn1 masked)`, await model.forward(x), refs.get('masked.eval'), 1e-5);
    compare(`${tag}: logits vs PyTorch surgery`, await model.forward(x), refs.get('surgery.eval'), 1e-5);
  }

  test('shrinking the dense model: PyTorch’s surgery exactly (names, shapes, values), logits of the masked model', async () => {
    const model = await dense();
    const widths = await shrink.shrinkChannels(model, { amount: AMOUNT });
    expect(widths).toEqual(reference.widths);
    expect(Object.values(widths)).toEqual([32, 32, 64, 64, 128, 128, 256, 256]);
    const state = model.stateDict();
    expect([...state.keys()]).toEqual(reference.keys);
    for (const [name, t] of state) {
      const expected = refs.get(`surgery.sd.${name}`)!;
      expect({ name, shape: t.shape, differing: differing(t, expected) }).toEqual({ name, shape: expected.shape, differing: 0 });
    }
    await expectShrunk('dense -> shrunk', model);
    model.dispose();
  });

  test('shrinking a masked model (l2Structured on each conv1 first) removes exactly the masked channels', async () => {
    const model = await dense();
    await pruning.l2Structured(model, Object.keys(shrink.channelWidths(model)), { amount: AMOUNT });
    await shrink.shrinkChannels(model, { amount: AMOUNT });
    // still pruned (weight_orig + an all-ones mask of the new shape)
    for (const layer of pruning.layerSparsity(model)) expect(layer.pruned).toBe(0);
    await expectShrunk('masked -> shrunk', model);
    await pruning.makePermanent(model);
    await expectShrunk('masked -> shrunk -> permanent', model);
    model.dispose();
  });

  test('a checkpoint records the widths; restoring it into a fresh model gives the same network', async () => {
    const model = await dense();
    await shrink.shrinkChannels(model, { amount: AMOUNT });
    const file = path.join(dir, 'shrunk.pth');
    await saveCheckpoint(file, { model, epoch: 1, step: 2 });
    const loaded = await loadCheckpoint(file);
    expect(loaded.channelWidths).toEqual(reference.widths);
    const fresh = createModel('resnet18', { numClasses: 10 }).eval();
    await restoreCheckpoint(loaded, { model: fresh });
    expect(shrink.channelWidths(fresh)).toEqual(reference.widths);
    expect(values(await fresh.forward(refs.get('x')!))).toEqual(values(await model.forward(refs.get('x')!)));
    // a bare weights file: its shapes say the widths
    const other = createModel('resnet18', { numClasses: 10 }).eval();
    await shrink.resizeChannels(other, shrink.widthsIn(other, loaded.stateDict));
    await other.loadStateDict(loaded.stateDict);
    await expectShrunk('weights file -> resized fresh model', other);
    for (const m of [model, fresh, other]) m.dispose();
  });

  test('the shrunk model trains with an optimizer built after shrinking (one built before refuses)', async () => {
    const model = (await dense()).train();
    const before = new Optimizer(model, { type: 'sgd', lr: 0.01 });
    await shrink.shrinkChannels(model, { amount: AMOUNT });
    const x = refs.get('x')!;
    const y = tensor(BigInt64Array.from([3n, 7n]), [2]);
    await expect(trainStep(model, before, x, y)).rejects.toThrow(/pruned or shrunk after this optimizer was built/);
    const after = new Optimizer(model, { type: 'sgd', lr: 0.01 });
    const { loss } = await trainStep(model, after, x, y);
    expect(Number.isFinite(loss)).toBe(true);
    model.dispose();
  });

  test('ResNet-50: each Bottleneck’s conv1 and conv2 halved, logits of PyTorch’s masked model (bn1 and bn2 masked too)', async () => {
    const model = createModel('resnet50', { numClasses: 10 }).eval();
    await model.loadStateDict((await loadWeights(path.join(dir, 'resnet50.pth'))).stateDict);
    const before = shrink.channelWidths(model);
    expect(Object.keys(before)).toHaveLength(32);
    const widths = await shrink.shrinkChannels(model, { amount: AMOUNT });
    expect(Object.entries(widths).map(([name, w]) => [name, w * 2])).toEqual(Object.entries(before));
    expect(model.namedParameters().get('layer2.0.conv3.weight')!.shape).toEqual([512, 64, 1, 1]);
    compare('resnet50: logits vs masked PyTorch (conv1/conv2 + bn1/bn2 masked)', await model.forward(refs.get('x')!), refs.get('resnet50.masked.eval'), 1e-5);
    model.dispose();
  });

  test('invalid requests say what was expected', async () => {
    const vgg = createModel('alexnet', { numClasses: 10 });
    await expect(shrink.shrinkChannels(vgg, { amount: 0.5 })).rejects.toThrow(/Expected a ResNet for channel shrinking but received alexnet/);
    vgg.dispose();
    const model = createModel('resnet18', { numClasses: 10 });
    await expect(shrink.shrinkChannels(model, { amount: 1 })).rejects.toThrow(/leaves each conv a channel/);
    await expect(shrink.resizeChannels(model, { 'layer1.0.conv2': 3 })).rejects.toThrow(/narrowable conv .* 'layer1.0.conv2'/);
    await expect(shrink.resizeChannels(model, { 'layer1.0.conv1': 65 })).rejects.toThrow(/integer between 1 and 64/);
    model.dispose();
  });
});
