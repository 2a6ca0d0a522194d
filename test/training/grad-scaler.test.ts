// GradScaler (loss scaling for fp16 autocast) against PyTorch's GradScaler semantics.
//
// torch.cuda.amp.GradScaler updates its scale with torch._amp_update_scale_, which Debian's
// PyTorch 1.13 has only for CUDA, and it disables itself without CUDA. The reference here is
// PyTorch's own CPU implementation of the same rule, ShardedGradScaler
// (torch/distributed/fsdp/sharded_grad_scaler.py, a GradScaler subclass), whose update() on a
// CPU scale runs these lines of _amp_update_scale_cpu_:
//
//     if found_inf.item() >= 1.0:
//         self._scale *= self._backoff_factor
//         self._growth_tracker = 0
//     else:
//         successful = self._growth_tracker + 1
//         if successful == self._growth_interval:
//             self._scale *= self._growth_factor
//             self._growth_tracker = 0
//         else:
//             self._growth_tracker = successful
//
// the rule of the CUDA kernel amp_update_scale_cuda_kernel (aten/src/ATen/native/cuda/AmpKernels.cu,
// which in later versions also declines a growth that would overflow float32 to inf; no case
// here comes near that). Its step() skips optimizer.step() when the unscaled gradients hold an
// inf or NaN, as GradScaler._maybe_opt_step does. The Python below drives that class on the CPU:
// GradScaler's "CUDA is not available, disabling" check is answered no, and ShardedGradScaler's
// cross-rank sync of the inf flag (an all_reduce through .cuda()) is the identity it is for a
// single process.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { native, type NativeStepOptions } from '../../binding';
import {
  createModel, createOptimizer, getNumThreads, getRngState, GradScaler, manualSeed, Random, randn, setRngState, tensor, trainStep,
  type GradScalerOptions, type Model, type Tensor,
} from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { relativeError } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference for GradScaler', torchPythonUnavailableReason());

// the tests seed libtorch's generator; leave it as it was found for the files that run after
let rngState: Tensor;
beforeAll(() => {
  rngState = getRngState();
});
afterAll(() => setRngState(rngState));

const PYTHON_PRELUDE = String.raw`
import importlib.util, json, os, sys
import torch
import torch.cuda.amp.grad_scaler as grad_scaler
import torch.distributed as dist
grad_scaler.amp_definitely_not_available = lambda: False
# torch/distributed/fsdp/__init__.py does not import on Python 3.11 (a dataclass default in _shard);
# the scaler's own module does, loaded by path
spec = importlib.util.spec_from_file_location(
    'sharded_grad_scaler', os.path.join(os.path.dirname(torch.__file__), 'distributed/fsdp/sharded_grad_scaler.py'))
sharded = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sharded)
ShardedGradScaler = sharded.ShardedGradScaler
# one process: the all_reduce of the inf flag is the identity
torch.Tensor.cuda = lambda self, *args, **kwargs: self
class _Done:
    def __init__(self, t): self.t = t
    def get_future(self):
        f = torch.futures.Future()
        f.set_result([self.t])
        return f
dist.all_reduce = lambda t, *args, **kwargs: _Done(t)

def scaler(options):
    names = {'initScale': 'init_scale', 'growthFactor': 'growth_factor', 'backoffFactor': 'backoff_factor',
             'growthInterval': 'growth_interval'}
    s = ShardedGradScaler(**{names[k]: v for k, v in options.items()})
    assert s._enabled
    return s
`;

const UPDATE_RULE = String.raw`
results = []
for case in json.load(open(sys.argv[1])):
    s = scaler(case['options'])
    s.scale(torch.ones(()))  # creates the scale and growth tracker on the CPU
    trace = []
    for flag in case['flags']:
        s._per_optimizer_states[0]['found_inf_per_device'][torch.device('cpu')] = torch.tensor([1.0 if flag else 0.0])
        s.update()
        trace.append([s.get_scale(), int(s._growth_tracker)])
    results.append(trace)
print(json.dumps(results))
`;

const TRAINING_LOOP = String.raw`
data = json.load(open(sys.argv[1]))
torch.set_num_threads(int(sys.argv[2]))
results = []
for scenario in data['scenarios']:
    head = torch.nn.Linear(512, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(data['weight']).view(3, 512))
        head.bias.copy_(torch.tensor(data['bias']))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    s = scaler(scenario['options'])
    steps = []
    for batch in scenario['batches']:
        f = torch.tensor(batch['features'], dtype=torch.float32).view(-1, 512)
        y = torch.tensor(batch['labels'])
        opt.zero_grad(set_to_none=True)
        used = s.get_scale()
        loss = torch.nn.functional.cross_entropy(head(f), y)
        s.scale(loss).backward()
        s.step(opt)
        found = sum(v.item() for st in s._per_optimizer_states.values() for v in st['found_inf_per_device'].values())
        s.update()
        steps.append({'lossScale': used, 'skipped': found > 0, 'loss': loss.item(), 'scale': s.get_scale(),
                      'tracker': int(s._growth_tracker), 'weight': head.weight.detach().flatten().tolist(),
                      'bias': head.bias.detach().tolist()})
    results.append(steps)
print(json.dumps(results))
`;

function withJsonFile<T>(value: unknown, use: (file: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-scaler-'));
  try {
    const file = path.join(dir, 'input.json');
    fs.writeFileSync(file, JSON.stringify(value));
    return use(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Our scale and good-step count after each update. */
function ourTrace(options: GradScalerOptions, flags: boolean[]): Array<[number, number]> {
  const scaler = new GradScaler(options);
  return flags.map((skipped) => {
    scaler.update(skipped);
    return [scaler.scale, scaler.stateDict().goodSteps];
  });
}

const random = new Random(17);
const flagCases: Array<{ name: string; options: GradScalerOptions; flags: boolean[]; exact: boolean }> = [
  // PyTorch's defaults (2^16, x2, x0.5, 2000): growth only after 2000 clean steps in a row
  { name: 'defaults', options: {}, flags: Array.from({ length: 4600 }, (_, i) => i === 300 || i === 4400), exact: true },
  { name: 'interval 2', options: { initScale: 8, growthInterval: 2 }, flags: [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0].map(Boolean), exact: true },
  {
    name: 'interval 1: every clean step grows',
    options: { initScale: 1, growthFactor: 4, backoffFactor: 0.125, growthInterval: 1 },
    flags: [0, 0, 1, 0, 1, 1, 0, 0, 0].map(Boolean),
    exact: true,
  },
  // factors that are not powers of two: PyTorch keeps the scale in float32, we keep a double
  {
    name: 'x1.5 / x0.3, interval 3',
    options: { initScale: 65536, growthFactor: 1.5, backoffFactor: 0.3, growthInterval: 3 },
    flags: Array.from({ length: 80 }, () => random.next() < 0.25),
    exact: false,
  },
];

torch.describe('GradScaler follows PyTorch’s GradScaler (ShardedGradScaler’s CPU update, PyTorch 1.13)', () => {
  let traces: Array<Array<[number, number]>>;
  beforeAll(() => {
    assertPresent(torch);
    const input = flagCases.map((c) => ({ options: c.options, flags: c.flags }));
    traces = JSON.parse(withJsonFile(input, (file) => runPython(PYTHON_PRELUDE + UPDATE_RULE, [file])));
  });

  test.each(flagCases.map((c, i) => [c.name, c, i] as const))('scale and growth tracker after each update: %s', (_name, c, i) => {
    const expected = traces[i];
    const ours = ourTrace(c.options, c.flags);
    expect(ours).toHaveLength(expected.length);
    // the sequence really exercises growth and backoff
    const scales = new Set(expected.map(([scale]) => scale));
    expect(scales.size).toBeGreaterThan(2);
    ours.forEach(([scale, goodSteps], k) => {
      const [torchScale, tracker] = expected[k];
      const error = Math.abs(scale - torchScale) / torchScale;
      // float32 keeps the scale to 2^-24 per multiplication; 80 updates stay well under 1e-5
      if (goodSteps !== tracker || !(c.exact ? scale === torchScale : error < 1e-5)) {
        throw new Error(`update ${k} (${c.flags[k] ? 'inf' : 'finite'}): ours scale ${scale}, good steps ${goodSteps}; PyTorch ${torchScale}, ${tracker}`);
      }
    });
  });

  test('trainStep with loss scaling: the scale it uses, skipped steps leave the weights and Adam alone, as scaler.step skips optimizer.step()', async () => {
    assertPresent(torch);
    // fp16 autocast needs CUDA, but the loss scaling around it does not: the native step scales
    // the loss by the scaler's scale, unscales the gradients, and skips the update on inf/NaN on
    // the CPU too (the branch a CUDA step takes with a fused kernel). So trainStep is called as on
    // a GPU (the features report device 'cuda', so amp: 'fp16' is accepted) and the native step
    // runs on the CPU without autocast; everything else, the scaler included, is the real thing.
    // Overflow is made by features of 1e35: the loss stays finite, its gradient times 2^16 does not.
    const makeModel = (): Model => {
      manualSeed(11);
      return createModel('resnet18', { numClasses: 3 });
    };
    const reference = makeModel();
    const weight = Array.from(reference.namedParameters().get('fc.weight')!.toTypedArray() as Float32Array);
    const bias = Array.from(reference.namedParameters().get('fc.bias')!.toTypedArray() as Float32Array);
    reference.dispose();
    manualSeed(12);
    const batch = (scale: number, labels: number[]) => ({
      features: Array.from(randn([labels.length, 512]).toTypedArray() as Float32Array, (v) => v * scale),
      labels,
    });
    const scenarios = [
      {
        options: { growthInterval: 2 },
        batches: [1, 1e35, 1, 1, 1, 1e35, 1, 1, 1].map((scale, i) => batch(scale, [i % 3, (i + 1) % 3, (i + 2) % 3, i % 3])),
        explicit: true,
      },
      // no scaler passed: trainStep keeps one per optimizer, with PyTorch's defaults
      { options: {}, batches: [1e35, 1, 1e35, 1].map((scale, i) => batch(scale, [0, 1, 2, i % 3])), explicit: false },
    ];
    const expected = JSON.parse(
      withJsonFile({ weight, bias, scenarios }, (file) => runPython(PYTHON_PRELUDE + TRAINING_LOOP, [file, String(getNumThreads())])),
    ) as Array<Array<{ lossScale: number; skipped: boolean; loss: number; scale: number; tracker: number; weight: number[]; bias: number[] }>>;

    const addon = native();
    const realTrainStep = addon.trainStep.bind(addon);
    const seen: Array<Pick<NativeStepOptions, 'amp' | 'lossScale'>> = [];
    const spy = jest.spyOn(addon, 'trainStep').mockImplementation((model, optimizer, images, labels, options) => {
      seen.push({ amp: options.amp, lossScale: options.lossScale });
      return realTrainStep(model, optimizer, images, labels, { ...options, amp: 'none' });
    });
    try {
      for (const [s, scenario] of scenarios.entries()) {
        const model = makeModel();
        const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-3 });
        const scaler = new GradScaler(scenario.options);
        const fc = () => ({
          weight: model.namedParameters().get('fc.weight')! as Tensor,
          bias: model.namedParameters().get('fc.bias')! as Tensor,
        });
        seen.length = 0;
        let skippedSteps = 0;
        for (const [k, b] of scenario.batches.entries()) {
          const want = expected[s][k];
          const features = tensor(new Float32Array(b.features), [b.labels.length, 512]);
          Object.defineProperty(features, 'device', { value: 'cuda' });
          const labels = tensor(new BigInt64Array(b.labels.map(BigInt)));
          const before = Buffer.from(fc().weight.native.toBytes());
          const result = await trainStep(model, optimizer, features, labels, { features: true, amp: 'fp16', ...(scenario.explicit ? { scaler } : {}) });
          const where = `scenario ${s} step ${k}`;
          expect({ where, ...seen[k] }).toEqual({ where, amp: 'fp16', lossScale: want.lossScale });
          expect({ where, skipped: result.skipped === true }).toEqual({ where, skipped: want.skipped });
          expect(Math.abs(result.loss - want.loss) / Math.abs(want.loss)).toBeLessThan(1e-5);
          if (want.skipped) {
            skippedSteps++;
            expect(Buffer.from(fc().weight.native.toBytes()).equals(before)).toBe(true);
          }
          if (scenario.explicit) {
            const state = { where, scale: scaler.scale, goodSteps: scaler.stateDict().goodSteps };
            expect(state).toEqual({ where, scale: want.scale, goodSteps: want.tracker });
          }
          // the same weights as PyTorch after every step: a skipped step that still moved Adam's
          // moments or step count would show in the next applied step
          expect(relativeError(fc().weight.toTypedArray() as Float32Array, want.weight)).toBeLessThan(1e-5);
          expect(relativeError(fc().bias.toTypedArray() as Float32Array, want.bias)).toBeLessThan(1e-5);
        }
        expect(skippedSteps).toBe(2);
        expect(new Set(expected[s].map((step) => step.lossScale)).size).toBeGreaterThan(1);
        model.dispose();
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe('GradScaler state and validation', () => {
  test('stateDict survives JSON and the restored scaler continues exactly as the original', () => {
    const options = { initScale: 1024, growthFactor: 3, backoffFactor: 0.25, growthInterval: 3 };
    const flags = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0].map(Boolean);
    const full = ourTrace(options, flags);
    for (const at of [0, 2, 3, 5, 6, 9]) {
      const original = new GradScaler(options);
      for (const f of flags.slice(0, at)) original.update(f);
      const state = JSON.parse(JSON.stringify(original.stateDict()));
      expect(state).toEqual({ scale: original.scale, goodSteps: original.stateDict().goodSteps });
      const restored = new GradScaler(options);
      restored.loadStateDict(state);
      const rest = flags.slice(at).map((f) => {
        restored.update(f);
        return [restored.scale, restored.stateDict().goodSteps];
      });
      expect(rest).toEqual(full.slice(at));
    }
    // a restored good-step count matters: two more clean steps grow the scale only if it was kept
    const a = new GradScaler({ initScale: 4, growthInterval: 3 });
    a.update(false);
    const b = new GradScaler({ initScale: 4, growthInterval: 3 });
    b.loadStateDict(a.stateDict());
    b.update(false);
    b.update(false);
    expect(b.scale).toBe(8);
  });

  test.each([
    [() => new GradScaler({ initScale: 0 }), 'Expected number between 1e-30 and 1e+30 for initScale but received 0 of type number'],
    [() => new GradScaler({ growthFactor: 0.5 }), 'Expected number between 1 and 1000 for growthFactor but received 0.5 of type number'],
    [() => new GradScaler({ backoffFactor: 2 }), 'Expected number between 0.000001 and 1 for backoffFactor but received 2 of type number'],
    [() => new GradScaler({ growthInterval: 0 }), 'Expected positive integer for growthInterval but received 0 of type number'],
    [() => new GradScaler({ growthInterval: 1.5 }), 'Expected positive integer for growthInterval but received 1.5 of type number'],
    [
      () => new GradScaler({ initscale: 1 } as never),
      "Unknown option 'initscale' in GradScaler options (did you mean 'initScale'?); known: initScale, growthFactor, backoffFactor, growthInterval",
    ],
    [() => new GradScaler('x' as never), "Expected object for options but received 'x' of type string"],
    [() => new GradScaler().loadStateDict({ scale: -1, goodSteps: 0 }), 'Expected number between 1e-30 and 1e+30 for scale but received -1 of type number'],
  ])('misuse is a TypeError that says what was expected (%#)', (make, message) => {
    expect(make).toThrow(message);
    expect(make).toThrow(TypeError);
  });
});
