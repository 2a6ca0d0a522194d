// Reference files written by Debian's PyTorch/torchvision for the parity tests: seeded torchvision
// models saved in both torch.save formats, inputs, and the outputs and gradients PyTorch computes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { getNumThreads } from '../../lib/runtime';
import type { Tensor } from '../../lib/tensor';
import { findTorchPython, runPython, torchPythonUnavailableReason } from './python';

const SCRIPT = String.raw`
import copy, json, os, subprocess, sys, builtins
import torch, torchvision
out = sys.argv[1]
# the same intra-op thread count as finetorch: parallel reductions then sum in the same order
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)

def randomize_bn(model):
    # non-trivial running statistics, so eval and train mode really differ
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
    return model

def loss_and_grads(model, x, labels, prefix, refs):
    model.zero_grad()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    refs[prefix + '.logits'] = logits.detach()
    refs[prefix + '.loss'] = loss.detach()
    for name, p in model.named_parameters():
        refs[prefix + '.grad.' + name] = p.grad.detach().clone()

x = torch.randn(2, 3, 96, 96)
labels = torch.tensor([3, 7])
refs = {'x': x, 'labels': labels}

resnet = randomize_bn(torchvision.models.resnet18()).eval()
torch.save(resnet.state_dict(), f'{out}/resnet18.pth')
torch.save(resnet.state_dict(), f'{out}/resnet18-legacy.pth', _use_new_zipfile_serialization=False)
torch.save({'epoch': 3, 'arch': 'resnet18', 'state_dict': resnet.state_dict(), 'best_acc1': 0.25}, f'{out}/checkpoint.pth')
torch.save({'module.' + k: v for k, v in resnet.state_dict().items()}, f'{out}/dataparallel.pth')
with torch.no_grad():
    refs['resnet18.eval'] = resnet(x)
    refs['resnet18.features'] = torch.flatten(resnet.avgpool(torch.nn.Sequential(*list(resnet.children())[:-2])(x)), 1)
train_copy = copy.deepcopy(resnet).train()
loss_and_grads(train_copy, x, labels, 'resnet18.train', refs)
# BatchNorm's running statistics after that one train-mode forward (momentum 0.1 over the
# randomised starting values, unbiased batch variance, num_batches_tracked 5 -> 6)
for name, b in train_copy.named_buffers():
    refs['resnet18.train.buffer.' + name] = b.detach().clone()

alexnet = torchvision.models.alexnet().eval()
torch.save(alexnet.state_dict(), f'{out}/alexnet-legacy.pth', _use_new_zipfile_serialization=False)
with torch.no_grad():
    refs['alexnet.eval'] = alexnet(x)
    feats = torch.flatten(alexnet.avgpool(alexnet.features(x)), 1)
    refs['alexnet.features'] = alexnet.classifier[:6](feats)
loss_and_grads(alexnet, x, labels, 'alexnet.evalmode', refs)

# the seed's head: a 1x1 conv on layer4's map, then global average pooling
conv_head = randomize_bn(torchvision.models.resnet18()).eval()
conv_head.fc = torch.nn.Conv2d(512, 10, 1)
torch.save(conv_head.state_dict(), f'{out}/resnet18-conv1x1.pth')
body = torch.nn.Sequential(*list(conv_head.children())[:-2])
with torch.no_grad():
    refs['conv1x1.eval'] = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(conv_head.fc(body(x)), 1), 1)

torch.save(refs, f'{out}/refs.pth')

shapes = {}
for arch in ['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16']:
    sd = getattr(torchvision.models, arch)(num_classes=10).state_dict()
    shapes[arch] = [[k, list(v.shape), str(v.dtype)] for k, v in sd.items()]
json.dump(shapes, open(f'{out}/shapes.json', 'w'))

class Reduce:
    def __init__(self, fn, args): self.fn, self.args = fn, args
    def __reduce__(self): return (self.fn, self.args)
torch.save({'w': torch.zeros(1), 'x': Reduce(os.system, ('echo pwned',))}, f'{out}/evil-os-system.pth')
torch.save({'x': Reduce(builtins.eval, ('1+1',))}, f'{out}/evil-eval.pth')
torch.save({'x': Reduce(subprocess.Popen, (['true'],))}, f'{out}/evil-popen.pth')
print('ok')
`;

export interface Fixtures {
  dir: string;
  cleanup(): void;
}

/** Writes the fixtures into a fresh temp folder, or returns null (with the reason logged) without torch. */
export function writeTorchFixtures(): Fixtures | null {
  if (!findTorchPython()) {
    console.log(`PyTorch reference unavailable, skipping parity tests: ${torchPythonUnavailableReason()}`);
    return null;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fixtures-'));
  runPython(SCRIPT, [dir, String(getNumThreads())]);
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** max |a - b| / max |b|: the relative error of a whole tensor. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** A reference tensor's values (a missing reference is an error, not an empty array). */
export function values(t: Tensor | undefined): Float32Array {
  if (!t) throw new Error('missing reference tensor');
  return t.toTypedArray() as Float32Array;
}

/**
 * A comparer that expects `actual` to have `expected`'s shape and a relative error under
 * `tolerance`, keeping the worst error per name in `errors` (printed by the parity tests).
 */
export function comparer(errors: Record<string, number>) {
  return (name: string, actual: Tensor, expected: Tensor | undefined, tolerance: number): void => {
    expect(actual.shape).toEqual(expected?.shape);
    const error = relativeError(values(actual), values(expected));
    errors[name] = Math.max(errors[name] ?? 0, error);
    expect(error).toBeLessThan(tolerance);
  };
}
