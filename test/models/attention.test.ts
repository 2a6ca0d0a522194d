// SE and CBAM ResNets against a PyTorch reimplementation: torchvision's resnet18 with the blocks
// inserted after each residual block's bn2 (SE as Hu et al., CBAM as github.com/Jongchan/attention-module),
// on the same weights and inputs: state_dict names and shapes, eval and train logits, BatchNorm
// statistics, every gradient; ImageNet-format weights loading with the attention keys new; and
// phase 1 through the trainer training the head and the attention modules only.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadPretrained, loadTorchFile, saveWeights, type Model, type Tensor } from '../../lib';
import { resolveConfig } from '../../lib/experiment/config';
import { train } from '../../lib/experiment/trainer';
import { getNumThreads, setNumThreads } from '../../lib/runtime';
import { loadCheckpoint } from '../../lib/training/checkpoint';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';
import { comparer, values } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const KINDS = ['se', 'cbam'] as const;

/** A tensor's values as bytes, for exact comparisons. */
function bytes(t: Tensor): Buffer {
  const v = t.toTypedArray();
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

const SCRIPT = String.raw`
import copy, json, sys, types, torch, torchvision
import torch.nn as nn, torch.nn.functional as F
out, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)

class SE(nn.Module):  # Hu et al.: squeeze, excite (reduction 16), scale
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c, c // 16); self.fc2 = nn.Linear(c // 16, c)
    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]

class ChannelGate(nn.Module):  # the authors' ChannelGate, pool_types ['avg', 'max']
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c, c // 16); self.fc2 = nn.Linear(c // 16, c)
    def mlp(self, v): return self.fc2(F.relu(self.fc1(v.flatten(1))))
    def forward(self, x):
        hw = (x.size(2), x.size(3))
        att = self.mlp(F.avg_pool2d(x, hw, stride=hw)) + self.mlp(F.max_pool2d(x, hw, stride=hw))
        return x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)

class SpatialGate(nn.Module):  # the authors' ChannelPool (max, mean) and BasicConv(2, 1, 7, relu=False)
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True)
    def forward(self, x):
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))

class CBAM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.channel = ChannelGate(c); self.spatial = SpatialGate()
    def forward(self, x): return self.spatial(self.channel(x))

def basic_forward(self, x):  # torchvision's BasicBlock.forward, attention after bn2
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = getattr(self, self.kind)(self.bn2(self.conv2(out)))
    return self.relu(out + identity)

def bottleneck_forward(self, x):  # torchvision's Bottleneck.forward, attention after bn3
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = getattr(self, self.kind)(self.bn3(self.conv3(out)))
    return self.relu(out + identity)

def with_attention(arch, kind):
    model = getattr(torchvision.models, arch)(num_classes=10)
    for layer in [model.layer1, model.layer2, model.layer3, model.layer4]:
        for block in layer:
            bottleneck = isinstance(block, torchvision.models.resnet.Bottleneck)
            channels = (block.bn3 if bottleneck else block.bn2).num_features
            setattr(block, kind, SE(channels) if kind == 'se' else CBAM(channels))
            block.kind = kind
            block.forward = types.MethodType(bottleneck_forward if bottleneck else basic_forward, block)
    return model

shapes = {}
for arch in ['resnet18', 'resnet34', 'resnet50']:
    for kind in ['se', 'cbam']:
        shapes[arch + '.' + kind] = sorted([k, list(v.shape), str(v.dtype)] for k, v in with_attention(arch, kind).state_dict().items())

torch.manual_seed(0)
x = torch.randn(2, 3, 96, 96)
labels = torch.tensor([3, 7])
refs = {'x': x, 'labels': labels}
for kind in ['se', 'cbam']:
    model = with_attention('resnet18', kind)
    # non-trivial BatchNorm parameters and statistics (CBAM's spatial BatchNorm included)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
    model.eval()
    torch.save(model.state_dict(), f'{out}/resnet18-{kind}.pth')
    with torch.no_grad():
        refs[kind + '.eval'] = model(x)
    trained = copy.deepcopy(model).train()
    logits = trained(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    refs[kind + '.train.logits'] = logits.detach()
    refs[kind + '.train.loss'] = loss.detach()
    for name, p in trained.named_parameters():
        refs[kind + '.train.grad.' + name] = p.grad.detach().clone()
    for name, b in trained.named_buffers():
        refs[kind + '.train.buffer.' + name] = b.detach().clone()
    # the same step in channels-last (the layout finetorch computes in on the CPU) and in float64
    for suffix, convert in [('channels_last', lambda t: t.contiguous(memory_format=torch.channels_last)), ('float64', lambda t: t.double())]:
        other = copy.deepcopy(model).train()
        other = other.to(memory_format=torch.channels_last) if suffix == 'channels_last' else other.double()
        F.cross_entropy(other(convert(x)), labels).backward()
        for name, p in other.named_parameters():
            refs[kind + '.train.grad.' + suffix + '.' + name] = p.grad.detach().clone()
torch.save(refs, f'{out}/refs.pth')
# plain torchvision resnet18 weights in ImageNet's format (1000 classes)
torch.save(torchvision.models.resnet18().state_dict(), f'{out}/resnet18-imagenet-format.pth')
print(json.dumps({'shapes': shapes}))
`;

torch.describe('SE and CBAM ResNets against a PyTorch reimplementation', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-attention-'));
  let shapes: Record<string, Array<[string, number[], string]>>;
  let refs: Map<string, Tensor>;
  const errors: Record<string, number> = {};

  beforeAll(async () => {
    assertPresent(torch);
    shapes = (JSON.parse(runPython(SCRIPT, [dir, String(getNumThreads())])) as { shapes: typeof shapes }).shapes;
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });
  afterAll(() => {
    console.log(`SE/CBAM resnet18 max relative errors vs PyTorch:\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const compare = comparer(errors);

  async function loaded(kind: (typeof KINDS)[number]): Promise<Model> {
    const model = createModel('resnet18', { numClasses: 10, attention: kind });
    expect(await loadPretrained(model, path.join(dir, `resnet18-${kind}.pth`))).toMatchObject({ missingKeys: [], unexpectedKeys: [], skippedKeys: [] });
    return model;
  }

  test.each(['resnet18', 'resnet34', 'resnet50'] as const)('%s: SE and CBAM state_dict names, shapes and dtypes are the reference’s', (arch) => {
    for (const kind of KINDS) {
      const model = createModel(arch, { numClasses: 10, attention: kind });
      const actual = [...model.stateDict()].map(([name, t]) => [name, t.shape, `torch.${t.dtype}`]);
      actual.sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1));
      expect(actual).toEqual(shapes[`${arch}.${kind}`]);
      model.dispose();
    }
  });

  test('key names under each block, the documented ones', () => {
    const se = createModel('resnet50', { numClasses: 10, attention: 'se' });
    const seShapes = new Map([...se.stateDict()].map(([name, t]) => [name, t.shape]));
    // Bottleneck: attention on bn3's 256 channels in layer1, 2048 in layer4
    expect(seShapes.get('layer1.0.se.fc1.weight')).toEqual([16, 256]);
    expect(seShapes.get('layer4.2.se.fc2.weight')).toEqual([2048, 128]);
    expect(se.attentionPrefixes).toHaveLength(16);
    se.dispose();
    const cbam = createModel('resnet18', { numClasses: 10, attention: 'cbam' });
    const names = [...cbam.stateDict().keys()].filter((k) => k.startsWith('layer1.0.cbam.'));
    expect(names).toEqual([
      'layer1.0.cbam.channel.fc1.weight', 'layer1.0.cbam.channel.fc1.bias', 'layer1.0.cbam.channel.fc2.weight', 'layer1.0.cbam.channel.fc2.bias',
      'layer1.0.cbam.spatial.conv.weight', 'layer1.0.cbam.spatial.bn.weight', 'layer1.0.cbam.spatial.bn.bias',
      'layer1.0.cbam.spatial.bn.running_mean', 'layer1.0.cbam.spatial.bn.running_var', 'layer1.0.cbam.spatial.bn.num_batches_tracked',
    ]);
    expect(cbam.attentionPrefixes).toEqual(['layer1.0.cbam', 'layer1.1.cbam', 'layer2.0.cbam', 'layer2.1.cbam', 'layer3.0.cbam', 'layer3.1.cbam', 'layer4.0.cbam', 'layer4.1.cbam']);
    // the authors' initialisation: spatial gates start uniform (BatchNorm weight and bias 0), MLP biases 0
    const state = cbam.stateDict();
    for (const key of ['layer2.1.cbam.spatial.bn.weight', 'layer2.1.cbam.spatial.bn.bias', 'layer2.1.cbam.channel.fc1.bias', 'layer2.1.cbam.channel.fc2.bias']) {
      expect({ key, values: [...values(state.get(key))].every((v) => v === 0) }).toEqual({ key, values: true });
    }
    expect([...values(state.get('layer2.1.cbam.spatial.conv.weight'))].some((v) => v !== 0)).toBe(true);
    cbam.dispose();
    const plain = createModel('resnet18');
    expect(plain.attentionPrefixes).toEqual([]);
    expect([...plain.stateDict().keys()].some((k) => /\.(se|cbam)\./.test(k))).toBe(false);
    plain.dispose();
  });

  test('attention is refused for the other architectures and must be none, se or cbam', () => {
    expect(() => createModel('vgg16', { attention: 'se' })).toThrow("Expected attention 'none' for vgg16 ('se' and 'cbam' are defined for ResNets) but received 'se'");
    expect(() => createModel('efficientnet_b0', { attention: 'cbam' })).toThrow(/Expected attention 'none' for efficientnet_b0/);
    expect(() => createModel('resnet18', { attention: 'eca' as never })).toThrow(/attention/);
    expect(() => resolveConfig({ overrides: { arch: 'alexnet', attention: 'se' } })).toThrow("attention 'se' needs a ResNet but arch is 'alexnet'");
    expect(() => resolveConfig({ overrides: { attention: 'sk' } })).toThrow(/expected one of none, se, cbam for attention/);
  });

  test.each(KINDS)('%s: eval-mode logits', async (kind) => {
    const model = (await loaded(kind)).eval();
    compare(`${kind} eval logits`, await model.forward(refs.get('x')!), refs.get(`${kind}.eval`), 1e-5);
    model.dispose();
  });

  test.each(KINDS)('%s: train-mode logits, BatchNorm statistics, loss and every gradient', async (kind) => {
    const x = refs.get('x')!;
    const model = (await loaded(kind)).train();
    compare(`${kind} train logits`, await model.forward(x), refs.get(`${kind}.train.logits`), 1e-5);
    const buffers = [...model.namedBuffers()];
    const expectedBuffers = [...refs.keys()].filter((k) => k.startsWith(`${kind}.train.buffer.`)).map((k) => k.slice(`${kind}.train.buffer.`.length));
    expect(buffers.map(([name]) => name).sort()).toEqual(expectedBuffers.sort());
    expect(buffers).toHaveLength((kind === 'cbam' ? 28 : 20) * 3); // CBAM: one more BatchNorm per block
    for (const [name, actual] of buffers) {
      const expected = refs.get(`${kind}.train.buffer.${name}`);
      if (name.endsWith('num_batches_tracked')) expect({ name, value: actual.toArray() }).toEqual({ name, value: [6] });
      else compare(`${kind} train running stats`, actual, expected, 1e-5);
    }
    // from the file again: backward's own forward moves the statistics once more
    await loadPretrained(model, path.join(dir, `resnet18-${kind}.pth`));
    const { loss } = await model.backward(x, refs.get('labels')!);
    const expectedLoss = values(refs.get(`${kind}.train.loss`))[0];
    errors[`${kind} train loss`] = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
    expect(errors[`${kind} train loss`]).toBeLessThan(1e-5);
    const grads = model.namedGradients();
    expect([...grads.keys()].sort()).toEqual([...model.namedParameters().keys()].sort());
    expect(grads.size).toBe(kind === 'cbam' ? 62 + 8 * 7 : 62 + 8 * 4);
    // CBAM's spatial BatchNorm weight has one element, its gradient a sum over every position of
    // the map with much cancellation: PyTorch's own float32 gradients of layer1.1's, NCHW against
    // channels-last, differ by 1.0e-4 (and by 3e-5 and 7e-5 from float64). Every gradient is held to
    // 1e-4 against PyTorch in the layout finetorch computes in; against PyTorch NCHW and float64,
    // those eight single-element gradients to 2e-4 (reported apart), every other one to 1e-4.
    for (const [name, grad] of grads) {
      const single = /spatial\.bn\.weight$/.test(name);
      const group = single ? 'cbam spatial BatchNorm weight gradients' : name.includes(`.${kind}.`) ? `${kind} attention gradients` : `${kind} other gradients`;
      compare(`${group} (vs PyTorch channels-last)`, grad, refs.get(`${kind}.train.grad.channels_last.${name}`), 1e-4);
      compare(`${group} (vs PyTorch float64)`, grad, refs.get(`${kind}.train.grad.float64.${name}`), single ? 2e-4 : 1e-4);
      compare(`${group} (vs PyTorch NCHW)`, grad, refs.get(`${kind}.train.grad.${name}`), single ? 2e-4 : 1e-4);
    }
    model.dispose();
  });

  test('ImageNet-format resnet18 weights load into an SE model with exactly the SE keys missing; other missing keys stay an error', async () => {
    const file = path.join(dir, 'resnet18-imagenet-format.pth');
    const model = createModel('resnet18', { numClasses: 10, attention: 'se' });
    const result = await loadPretrained(model, file);
    const seKeys = [...model.stateDict().keys()].filter((k) => k.includes('.se.'));
    expect(seKeys).toHaveLength(8 * 4);
    expect(result).toMatchObject({ missingKeys: seKeys, unexpectedKeys: [], skippedKeys: ['fc.weight', 'fc.bias'] });
    // every backbone tensor is the file's
    const source = (await loadTorchFile(file)).value as Map<string, Tensor>;
    const state = model.stateDict();
    for (const [name, t] of source) {
      if (!name.startsWith('fc.')) expect({ name, same: bytes(t).equals(bytes(state.get(name)!)) }).toEqual({ name, same: true });
    }
    const partial = new Map([...source].filter(([name]) => name !== 'layer3.1.bn2.weight'));
    await expect(loadPretrained(model, partial)).rejects.toThrow(/missing keys: layer3\.1\.bn2\.weight \(is it/);
    // a file with attention keys does not fit a plain model
    await expect(loadPretrained(createModel('resnet18', { numClasses: 10 }), path.join(dir, 'resnet18-se.pth'))).rejects.toThrow(/unexpected keys: layer1\.0\.se\.fc1\.weight/);
    model.dispose();
  });

  test('feature_extract through the trainer with CBAM: the head and the attention modules train (CBAM BatchNorm on batch statistics), the backbone stays as loaded, no feature cache', async () => {
    const work = path.join(dir, 'phase1');
    const dataset = await createSyntheticDataset(path.join(work, 'data'), { classes: 2, perClass: 6, size: 40, seed: 3 });
    // starting weights with every key (attention included), so the change of each tensor shows
    const start = createModel('resnet18', { numClasses: 2, attention: 'cbam' });
    const weights = path.join(work, 'start.pth');
    await saveWeights(weights, start.stateDict());
    start.dispose();
    const config = resolveConfig({
      overrides: {
        arch: 'resnet18', attention: 'cbam', phase: 'feature_extract', weights, image_size: 32, resize: 36, batch_size: 4, epochs: 1,
        learning_rate: 1e-2, device: 'cpu', quiet: true, report: false, 'data.root': dataset.root, 'data.train_per_class': 4,
        'data.test_per_class': 2, output_dir: path.join(work, 'runs'), run_name: 'cbam',
      },
    });
    const threads = getNumThreads();
    const lines: string[] = [];
    let result;
    try {
      [result] = await train(config, { log: (line) => lines.push(line) });
    } finally {
      setNumThreads(threads);
    }
    expect(result.featureCache).toBe(false);
    expect(lines.filter((l) => l.includes('feature cache'))).toEqual([
      '[cbam] feature cache: not used: the cbam attention modules inside the backbone train with the head, so its features change every step',
    ]);
    const source = (await loadTorchFile(weights)).value as Map<string, Tensor>;
    const trained = (await loadCheckpoint(result.checkpoints.best)).stateDict;
    const same = (key: string) => bytes(trained.get(key)!).equals(bytes(source.get(key)!));
    const keys = [...source.keys()].filter((k) => !k.endsWith('num_batches_tracked'));
    const isNew = (k: string) => k.startsWith('fc.') || k.includes('.cbam.');
    // the backbone, BatchNorm statistics included, is the file's
    expect(keys.filter((k) => !isNew(k) && !same(k))).toEqual([]);
    // the head and every attention tensor changed; the spatial BatchNorm's running statistics too
    expect(keys.filter((k) => isNew(k) && same(k))).toEqual([]);
    expect(trained.get('layer1.0.cbam.spatial.bn.num_batches_tracked')!.toArray()).toEqual([2]);
    expect(trained.get('layer1.0.bn1.num_batches_tracked')!.toArray()).toEqual(source.get('layer1.0.bn1.num_batches_tracked')!.toArray());
    for (const dict of [source, trained]) for (const t of dict.values()) t.dispose();
  });
});
