// Whole pickled models (torch.save(model), not model.state_dict()): read as the state_dict PyTorch
// would give, through inert stand-ins for the module classes; any other class stays refused.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadPretrained, loadWeights, type Tensor } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { findTorchPython, runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());
const ARCHS = ['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16'] as const;

// One Python run writes every file. AlexNet's and VGG-16's classifiers are narrowed (hidden width
// 32, same layers and names) so that their files are megabytes, not half a gigabyte.
const SCRIPT = String.raw`
import json, os, sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(0)

def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
    return model

def narrow(classifier, width=32):
    layers = list(classifier)
    linears = [i for i, l in enumerate(layers) if isinstance(l, torch.nn.Linear)]
    for i in linears:
        fan_in = layers[i].in_features if i == linears[0] else width
        layers[i] = torch.nn.Linear(fan_in, layers[i].out_features if i == linears[-1] else width)
    return torch.nn.Sequential(*layers)

keys = {}
def save(name, model):
    torch.save(model, f'{out}/{name}-whole.pth')
    torch.save(model.state_dict(), f'{out}/{name}-sd.pth')
    keys[name] = list(model.state_dict().keys())

for arch in ['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16']:
    model = randomize_bn(getattr(torchvision.models, arch)(num_classes=10))
    if hasattr(model, 'classifier'):
        model.classifier = narrow(model.classifier)
    save(arch, model)

head = randomize_bn(torchvision.models.resnet18())
head.fc = torch.nn.Linear(512, 7)
save('resnet18-head7', head)
torch.save(head, f'{out}/resnet18-head7-legacy.pth', _use_new_zipfile_serialization=False)
torch.save({'epoch': 4, 'model': head}, f'{out}/resnet18-head7-checkpoint.pth')
save('nested', torch.nn.Sequential(torch.nn.Sequential(randomize_bn(torchvision.models.resnet18(num_classes=3)))))
save('dataparallel', torch.nn.DataParallel(head))

class MyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)
torch.save(MyNet(), f'{out}/mynet-whole.pth')

class Run:
    def __reduce__(self): return (os.system, ('touch ' + out + '/ran',))
armed = torch.nn.Linear(2, 2)
armed.hook = Run()
torch.save(armed, f'{out}/armed-whole.pth')
json.dump(keys, open(f'{out}/keys.json', 'w'))
`;

let dir: string;
let keys: Record<string, string[]>;
beforeAll(() => {
  if (torch.missing) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-whole-model-'));
  runPython(SCRIPT, [dir]);
  keys = JSON.parse(fs.readFileSync(path.join(dir, 'keys.json'), 'utf8'));
}, 600000);
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const file = (name: string) => path.join(dir, name);

function sameValues(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && Buffer.from(a.native.toBytes()).equals(b.native.toBytes());
}

function disposeAll(dicts: Array<Map<string, Tensor>>): void {
  for (const dict of dicts) for (const t of dict.values()) t.dispose();
}

async function expectSameAsStateDict(whole: string, stateDict: string, expectedKeys: string[]): Promise<void> {
  const fromWhole = await loadWeights(file(whole));
  const fromStateDict = await loadWeights(file(stateDict));
  expect([...fromWhole.stateDict.keys()]).toEqual(expectedKeys);
  expect([...fromStateDict.stateDict.keys()]).toEqual(expectedKeys);
  const differing = expectedKeys.filter((k) => !sameValues(fromWhole.stateDict.get(k)!, fromStateDict.stateDict.get(k)!));
  expect(differing).toEqual([]);
  disposeAll([fromWhole.stateDict, fromStateDict.stateDict]);
}

torch.describe('torch.save(model) files written by PyTorch', () => {
  beforeAll(() => assertPresent(torch));

  test.each(ARCHS)('%s: the same tensors, in the order of PyTorch state_dict()', async (arch) => {
    await expectSameAsStateDict(`${arch}-whole.pth`, `${arch}-sd.pth`, keys[arch]);
    if (arch.startsWith('resnet')) expect(keys[arch]).toContain('bn1.num_batches_tracked');
  });

  test('a replaced head, zip and legacy: loads into a model with that head', async () => {
    await expectSameAsStateDict('resnet18-head7-whole.pth', 'resnet18-head7-sd.pth', keys['resnet18-head7']);
    const legacy = await loadWeights(file('resnet18-head7-legacy.pth'));
    expect(legacy.format).toBe('legacy');
    expect([...legacy.stateDict.keys()]).toEqual(keys['resnet18-head7']);
    const model = createModel('resnet18', { numClasses: 7 });
    const result = await loadPretrained(model, file('resnet18-head7-whole.pth'));
    expect(result).toMatchObject({ missingKeys: [], unexpectedKeys: [], skippedKeys: [], format: 'zip' });
    const loaded = model.stateDict();
    const differing = [...legacy.stateDict].filter(([k, t]) => !sameValues(loaded.get(k)!, t)).map(([k]) => k);
    expect(differing).toEqual([]);
    disposeAll([legacy.stateDict, loaded]);
    model.dispose();
  });

  test('nested in nn.Sequential, wrapped in DataParallel, or inside a checkpoint dict', async () => {
    await expectSameAsStateDict('nested-whole.pth', 'nested-sd.pth', keys.nested);
    expect(keys.nested[0]).toBe('0.0.conv1.weight');
    const parallel = await loadWeights(file('dataparallel-whole.pth'));
    expect(parallel.strippedModulePrefix).toBe(true);
    expect([...parallel.stateDict.keys()]).toEqual(keys['resnet18-head7']);
    const checkpoint = await loadWeights(file('resnet18-head7-checkpoint.pth'));
    expect(checkpoint.foundAt).toBe('model');
    expect([...checkpoint.stateDict.keys()]).toEqual(keys['resnet18-head7']);
    disposeAll([parallel.stateDict, checkpoint.stateDict]);
  });

  test('a class of the user\'s own is refused, naming it and saying how to re-save', async () => {
    await expect(loadWeights(file('mynet-whole.pth'))).rejects.toThrow(
      /global '__main__\.MyNet' is not allowed .*re-save its weights with torch\.save\(model\.state_dict\(\), path\)/,
    );
  });

  test('a module attribute that would run code is refused, and nothing runs', async () => {
    await expect(loadWeights(file('armed-whole.pth'))).rejects.toThrow(/global 'posix\.system' is not allowed/);
    expect(fs.existsSync(file('ran'))).toBe(false);
  });
});
