// Five steps of each optimizer from the same weights and batches as torch.optim: every parameter
// within relative error 1e-5, losses equal to 1e-5.
import * as path from 'path';
import { createModel, createOptimizer, getNumThreads, loadTorchFile, setNumThreads, trainStep, type OptimizerOptions, Tensor } from '../../lib';
import { findTorchPython, runPython, torchPythonUnavailableReason } from '../helpers/python';
import { prerequisite } from '../helpers/prerequisite';
import { relativeError } from '../helpers/torch-fixtures';
import * as fs from 'fs';
import * as os from 'os';

const SCRIPT = String.raw`
import sys, torch, torchvision
out = sys.argv[1]
# the same intra-op thread count on both sides: parallel reductions then sum in the same order
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=5)
init = {k: v.clone() for k, v in model.state_dict().items()}
torch.save(init, f'{out}/init.pth')
batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 5, (4,))) for _ in range(5)]
torch.save({'x': [b[0] for b in batches], 'y': [b[1] for b in batches]}, f'{out}/batches.pth')

def run(name, make_optimizer, frozen=lambda n: False):
    m = torchvision.models.resnet18(num_classes=5)
    m.load_state_dict(init)
    m.train()
    for n, p in m.named_parameters():
        p.requires_grad_(not frozen(n))
    for n, mod in m.named_modules():
        # finetorch's freeze() keeps BatchNorm of frozen parts in eval mode by default
        if isinstance(mod, torch.nn.BatchNorm2d) and frozen(n + '.weight'):
            mod.eval()
    opt = make_optimizer(m)
    losses = []
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        # finetorch computes a CPU batch in channels-last (native/models/net.h): the same kernels here
        loss = torch.nn.functional.cross_entropy(m(x.contiguous(memory_format=torch.channels_last)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.save({'state_dict': m.state_dict(), 'losses': torch.tensor(losses, dtype=torch.float64)}, f'{out}/{name}.pth')

run('sgd', lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4))
run('adam', lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4))
run('adamw', lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2))
run('amsgrad', lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, amsgrad=True))
def groups(m):
    named = list(m.named_parameters())
    layer4 = [p for n, p in named if n.startswith('layer4.')]
    fc = [p for n, p in named if n.startswith('fc.')]
    rest = [p for n, p in named if not n.startswith(('layer4.', 'fc.'))]
    return torch.optim.Adam([{'params': layer4, 'lr': 1e-4}, {'params': fc, 'lr': 1e-2}, {'params': rest}], lr=1e-5, weight_decay=1e-4)
run('two-group-frozen', groups, frozen=lambda n: not n.startswith(('layer4.', 'fc.')))
print('ok')
`;

const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());

torch.describe('optimizer parity with torch.optim (5 steps, ResNet-18)', () => {
  let dir: string;
  let batches: { x: Tensor[]; y: Tensor[] };
  const report: string[] = [];
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-optim-'));
    runPython(SCRIPT, [dir, String(getNumThreads())]);
    const value = (await loadTorchFile(path.join(dir, 'batches.pth'))).value as Map<string, Tensor[]>;
    batches = { x: value.get('x')!, y: value.get('y')! };
  });
  afterAll(() => {
    console.log(`max parameter relative error after 5 steps:\n${report.join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, OptimizerOptions, string[] | undefined]> = [
    ['sgd', { type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 }, undefined],
    ['adam', { type: 'adam', lr: 1e-3, weightDecay: 1e-4 }, undefined],
    ['adamw', { type: 'adamw', lr: 1e-3, weightDecay: 1e-2 }, undefined],
    ['amsgrad', { type: 'adam', lr: 1e-3, amsgrad: true }, undefined],
    [
      'two-group-frozen',
      { type: 'adam', lr: 1e-5, weightDecay: 1e-4, groups: [{ prefixes: ['layer4'], lr: 1e-4 }, { prefixes: ['fc'], lr: 1e-2 }] },
      ['layer4', 'fc'],
    ],
  ];

  test.each(cases)('%s', async (name, options, trainable) => {
    const model = createModel('resnet18', { numClasses: 5 });
    await model.loadStateDict((await loadTorchFile(path.join(dir, 'init.pth'))).value as Map<string, Tensor>);
    if (trainable) model.freeze({ except: trainable });
    model.train();
    const optimizer = createOptimizer(model, options);
    const initial = trainable ? model.namedParameters().get('conv1.weight')!.clone() : undefined;
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) losses.push((await trainStep(model, optimizer, batches.x[i], batches.y[i])).loss);
    const reference = (await loadTorchFile(path.join(dir, `${name}.pth`))).value as Map<string, unknown>;
    const expectedLosses = (reference.get('losses') as Tensor).toArray();
    losses.forEach((loss, i) => expect(Math.abs(loss - expectedLosses[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(expectedLosses[i]))));
    const expected = reference.get('state_dict') as Map<string, Tensor>;
    let worst = 0;
    for (const [key, value] of model.stateDict()) {
      if (value.dtype !== 'float32') continue;
      const error = relativeError(value.toTypedArray() as Float32Array, expected.get(key)!.toTypedArray() as Float32Array);
      worst = Math.max(worst, error);
      expect(error).toBeLessThan(1e-5);
    }
    if (initial) {
      // the frozen backbone did not move at all
      expect(Buffer.from(model.namedParameters().get('conv1.weight')!.native.toBytes()).equals(initial.native.toBytes())).toBe(true);
    }
    report.push(`  ${name}: ${worst.toExponential(2)} (losses ${losses.map((l) => l.toFixed(4)).join(', ')})`);
    optimizer.dispose();
    model.dispose();
  });
});
