import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel,
  createOptimizer,
  createScheduler,
  evalStep,
  getRngState,
  loadCheckpoint,
  manualSeed,
  Random,
  randn,
  restoreCheckpoint,
  setRngState,
  tensor,
  trainStep,
  writeCheckpoints,
  type Model,
  Tensor,
} from '../../lib';
import { resolveAmp } from '../../lib/training/steps';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const labels = (values: number[]) => tensor(new BigInt64Array(values.map(BigInt)));
const bytesOf = (t: Tensor) => Buffer.from(t.native.toBytes());
let scratch: string;
let rngState: Tensor; // the tests seed libtorch's generator; it is put back for the files after
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-steps-'));
  rngState = getRngState();
});
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
  setRngState(rngState);
});

function batches(count: number, size: number, classes: number, seed: number): Array<[Tensor, Tensor]> {
  manualSeed(seed);
  return Array.from({ length: count }, (_, i) => [randn([2, 3, size, size]), labels([i % classes, (i + 1) % classes])]);
}

describe('trainStep', () => {
  test('with a seed, two CPU runs give bit-identical losses', async () => {
    const run = async () => {
      manualSeed(42);
      const model = createModel('resnet18', { numClasses: 3 }).train();
      const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.05, momentum: 0.9 });
      const losses: number[] = [];
      for (const [x, y] of batches(3, 32, 3, 7)) losses.push((await trainStep(model, optimizer, x, y)).loss);
      model.dispose();
      return losses;
    };
    const first = await run();
    const second = await run();
    expect(second).toEqual(first);
    expect(new Set(first).size).toBe(3); // the steps really changed the model
  });

  test('resume from a checkpoint continues exactly like an uninterrupted run (dropout RNG, Adam, scheduler)', async () => {
    const data = batches(6, 64, 3, 3);
    const setup = () => {
      const model = createModel('alexnet', { numClasses: 3 }).train();
      const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-4, groups: [{ prefixes: ['classifier.6'], lr: 1e-3 }] });
      const scheduler = createScheduler(optimizer, { type: 'step', stepSize: 2, gamma: 0.5 });
      return { model, optimizer, scheduler };
    };
    const step = async (s: ReturnType<typeof setup>, i: number) => {
      const { loss } = await trainStep(s.model, s.optimizer, data[i][0], data[i][1]);
      s.scheduler.step();
      return loss;
    };
    manualSeed(5);
    const straight = setup();
    const init = new Map([...straight.model.stateDict()].map(([k, v]) => [k, v.clone()]));
    const expected: number[] = [];
    for (let i = 0; i < 6; i++) expected.push(await step(straight, i));

    manualSeed(5);
    const first = setup();
    await first.model.loadStateDict(init);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push(await step(first, i));
    const { last } = await writeCheckpoints(scratch, { ...first, epoch: 0, step: 3, bestMetric: 0.5, config: { lr: 1e-4 } }, true);
    for (let i = 3; i < 6; i++) await step(first, i); // the interrupted run goes on: must not leak into the resumed one
    manualSeed(999); // a different RNG state, to be replaced by the checkpoint's

    const resumed = setup();
    const checkpoint = await loadCheckpoint(last);
    expect(checkpoint).toMatchObject({ step: 3, bestMetric: 0.5, config: { lr: 1e-4 }, arch: 'alexnet' });
    await restoreCheckpoint(checkpoint, resumed);
    expect(resumed.optimizer.getLr(0)).toBeCloseTo(1e-3 * 0.5, 12); // the head's lr after 3 steps of StepLR(2, 0.5)
    for (let i = 3; i < 6; i++) losses.push(await step(resumed, i));
    expect(losses).toEqual(expected);
    const bestFile = path.join(scratch, 'best.pth');
    expect(fs.statSync(bestFile).ino).toBe(fs.statSync(last).ino); // one serialisation, two names
    await writeCheckpoints(scratch, { ...resumed, epoch: 1, step: 6, bestMetric: 0.5, config: {} }, false);
    expect((await loadCheckpoint(bestFile)).step).toBe(3); // replacing last.pth left best.pth alone
    expect((await loadCheckpoint(last)).step).toBe(6);
    expect(fs.readdirSync(scratch).filter((f) => f.includes('.tmp-'))).toEqual([]);
    for (const s of [straight, first, resumed]) s.model.dispose();
  });

  torch.test('PyTorch loads our checkpoint: torchvision takes its state_dict, values and all', async () => {
    assertPresent(torch);
    const dir = fs.mkdtempSync(path.join(scratch, 'torch-load-'));
    manualSeed(6);
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-4, groups: [{ prefixes: ['fc'], lr: 1e-3 }] });
    const scheduler = createScheduler(optimizer, { type: 'step', stepSize: 2, gamma: 0.5 });
    const [[x, y]] = batches(1, 32, 3, 8);
    await trainStep(model, optimizer, x, y); // running statistics and Adam state are not the initial ones
    const { last } = await writeCheckpoints(dir, { model, optimizer, scheduler, epoch: 0, step: 1, bestMetric: 0.5, config: {} }, true);
    const fc = Array.from(model.namedParameters().get('fc.weight')!.toTypedArray() as Float32Array).slice(0, 5);
    const runningVar = Array.from(model.stateDict().get('layer4.1.bn2.running_var')!.toTypedArray() as Float32Array).slice(0, 5);
    const out = JSON.parse(
      runPython(
        `import json, sys, torch, torchvision
# torch 1.13's weights_only unpickler lacks BINFLOAT (floats like best_metric); 2.x reads it
ck = torch.load(sys.argv[1])
m = torchvision.models.resnet18(num_classes=3)
result = m.load_state_dict(ck['state_dict'])
sd = m.state_dict()
print(json.dumps({'missing': result.missing_keys, 'unexpected': result.unexpected_keys, 'step': ck['step'],
                  'lrs': [g['lr'] for g in ck['optimizer']['param_groups']],
                  'fc': sd['fc.weight'].flatten()[:5].tolist(), 'running_var': sd['layer4.1.bn2.running_var'][:5].tolist(),
                  'batches': sd['layer4.1.bn2.num_batches_tracked'].item()}))`,
        [last],
      ),
    );
    const lrs = Array.from({ length: optimizer.groupCount }, (_, i) => optimizer.getLr(i));
    expect([...lrs].sort()).toEqual([1e-4, 1e-3]);
    expect(out).toEqual({ missing: [], unexpected: [], step: 1, lrs, fc, running_var: runningVar, batches: 1 });
    model.dispose();
  });

  test('a NaN loss stops the step with a clear error and leaves the parameters as they were', async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.1, momentum: 0.9 });
    const before = bytesOf(model.namedParameters().get('fc.weight')!);
    const poisoned = tensor(new Float32Array(2 * 3 * 32 * 32).fill(Number.NaN), [2, 3, 32, 32]);
    await expect(trainStep(model, optimizer, poisoned, labels([0, 1]))).rejects.toThrow(/loss is NaN: the step was not applied \(parameters unchanged\)/);
    expect(bytesOf(model.namedParameters().get('fc.weight')!).equals(before)).toBe(true);
    model.dispose();
  });

  test('two calls issued at once on one model run one after the other', async () => {
    const data = batches(2, 32, 3, 11);
    const run = async (together: boolean) => {
      manualSeed(1);
      const model = createModel('resnet18', { numClasses: 3 });
      const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.1 });
      let losses: number[];
      if (together) {
        losses = (await Promise.all(data.map(([x, y]) => trainStep(model, optimizer, x, y)))).map((r) => r.loss);
      } else {
        losses = [];
        for (const [x, y] of data) losses.push((await trainStep(model, optimizer, x, y)).loss);
      }
      model.dispose();
      return losses;
    };
    expect(await run(true)).toEqual(await run(false));
  });

  test('wrong labels or batch shapes are clear errors before any native work', async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.1 });
    const x = randn([2, 3, 32, 32]);
    await expect(trainStep(model, optimizer, x, labels([0, 3]))).rejects.toThrow('Expected labels between 0 and 2 but received 3 at index 1');
    await expect(trainStep(model, optimizer, x, labels([0]))).rejects.toThrow('Expected labels of shape [2] (one per image) but received [1]');
    await expect(trainStep(model, optimizer, randn([2, 32, 32]), labels([0, 1]))).rejects.toThrow('Expected images of shape [N, 3, H, W] but received [2, 32, 32]');
    await expect(trainStep(model, optimizer, x, labels([0, 1]), { labelSmoothing: 2 })).rejects.toThrow('Expected number between 0 and 1 for labelSmoothing but received 2');
    await expect(trainStep(model, optimizer, x, labels([0, 1]), { clip: 1 } as never)).rejects.toThrow("Unknown option 'clip' in step options");
    expect(model.namedGradients().size).toBe(0); // nothing ran
    model.dispose();
  });

  test('clipping and gradient statistics', async () => {
    manualSeed(3);
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0 });
    const [[x, y]] = batches(1, 32, 3, 5);
    const result = await trainStep(model, optimizer, x, y, { clipGradNorm: 0.01, gradStatsBins: 8 });
    const grads = model.namedGradients();
    let total = 0;
    for (const g of grads.values()) for (const v of g.toTypedArray() as Float32Array) total += v * v;
    expect(result.gradNorm).toBeGreaterThan(0.01);
    expect(Math.sqrt(total)).toBeCloseTo(0.01, 4); // clipped to the limit
    expect(result.gradStats).toHaveLength(62);
    const fc = result.gradStats!.find((s) => s.name === 'fc.weight')!;
    expect(fc.histogram.reduce((a, b) => a + b, 0)).toBe(3 * 512);
    expect(fc.min).toBeLessThanOrEqual(fc.max);
    model.dispose();
  });

  torch.test('label smoothing and class weights: the loss is torch.nn.functional.cross_entropy’s on the same logits', async () => {
    assertPresent(torch);
    manualSeed(3);
    const model = createModel('resnet18', { numClasses: 4 }).eval();
    // the head's own step (features in, as the phase-1 cache does): the same native loss as with images
    const features = await model.features(randn([6, 3, 32, 32]));
    const y = labels([0, 3, 1, 2, 3, 3]);
    const { logits } = await evalStep(model, features, undefined, { features: true, returnLogits: true });
    const cases: Array<{ labelSmoothing?: number; weights?: number[] }> = [
      {},
      { labelSmoothing: 0.1 },
      { weights: [1, 2, 0.5, 0.25] },
      { labelSmoothing: 0.1, weights: [1, 2, 0.5, 0.25] },
      { labelSmoothing: 0.35, weights: [0.2, 3, 1, 0.7] },
    ];
    const reference = JSON.parse(
      runPython(
        `import json, sys, torch
import torch.nn.functional as F
z = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float32).view(6, 4)
y = torch.tensor(json.loads(sys.argv[2]))
out = []
for c in json.loads(sys.argv[3]):
    w = torch.tensor(c['weights'], dtype=torch.float32) if 'weights' in c else None
    out.append(F.cross_entropy(z, y, weight=w, label_smoothing=c.get('labelSmoothing', 0.0)).item())
print(json.dumps(out))`,
        [JSON.stringify(Array.from(logits!.toTypedArray() as Float32Array)), JSON.stringify(y.toArray()), JSON.stringify(cases)],
      ),
    ) as number[];
    // every option changes PyTorch's loss, so ignoring one cannot pass
    expect(new Set(reference.map((v) => v.toFixed(4))).size).toBe(cases.length);
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0 });
    for (const [i, c] of cases.entries()) {
      const options = {
        features: true,
        ...(c.labelSmoothing === undefined ? {} : { labelSmoothing: c.labelSmoothing }),
        ...(c.weights === undefined ? {} : { classWeights: tensor(new Float32Array(c.weights)) }),
      };
      const evaluated = (await evalStep(model, features, y, options)).loss;
      const trained = (await trainStep(model, optimizer, features, y, options)).loss; // eval mode, lr 0: same logits
      for (const loss of [evaluated, trained]) {
        expect({ case: c, relativeError: Math.abs(loss - reference[i]) / reference[i] < 1e-6 }).toEqual({ case: c, relativeError: true });
      }
    }
    model.dispose();
  });
});

describe('trainStep with soft targets', () => {
  torch.test('probability targets: loss and gradients are cross_entropy’s (label smoothing, class weights); top-1 counts the dominant class', async () => {
    assertPresent(torch);
    manualSeed(4);
    const model = createModel('resnet18', { numClasses: 4 }).eval();
    const features = await model.features(randn([6, 3, 32, 32]));
    const { logits } = await evalStep(model, features, undefined, { features: true, returnLogits: true });
    // MixUp-like rows (two classes) and general distributions
    const random = new Random(8);
    const rows = Array.from({ length: 6 }, (_, n) => {
      const row = n < 3 ? [0, 0, 0, 0] : Array.from({ length: 4 }, () => random.next() + 0.05);
      if (n < 3) {
        const lam = random.uniform(0.55, 1);
        row[n] += lam;
        row[(n + 2) % 4] += 1 - lam;
      }
      const total = row.reduce((a, b) => a + b, 0);
      return row.map((v) => v / total);
    });
    const targets = tensor(Float32Array.from(rows.flat()), [6, 4]);
    const cases: Array<{ labelSmoothing?: number; weights?: number[] }> = [
      {},
      { labelSmoothing: 0.1 },
      { weights: [1, 2, 0.5, 0.25] },
      { labelSmoothing: 0.35, weights: [0.2, 3, 1, 0.7] },
    ];
    const reference = JSON.parse(
      runPython(
        `import json, sys, torch
import torch.nn.functional as F
z = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float32).view(6, 4).requires_grad_()
t = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float32).view(6, 4)
f = torch.tensor(json.loads(sys.argv[3]), dtype=torch.float32).view(6, -1)
out = []
for c in json.loads(sys.argv[4]):
    w = torch.tensor(c['weights'], dtype=torch.float32) if 'weights' in c else None
    loss = F.cross_entropy(z, t, weight=w, label_smoothing=c.get('labelSmoothing', 0.0))
    gz, = torch.autograd.grad(loss, z)
    out.append({'loss': loss.item(), 'weight': (gz.t() @ f).flatten().tolist(), 'bias': gz.sum(0).tolist()})
print(json.dumps(out))`,
        [JSON.stringify(Array.from(logits!.toTypedArray() as Float32Array)), JSON.stringify(rows.flat()), JSON.stringify(Array.from(features.toTypedArray() as Float32Array)), JSON.stringify(cases)],
      ),
    ) as Array<{ loss: number; weight: number[]; bias: number[] }>;
    expect(new Set(reference.map((r) => r.loss.toFixed(4))).size).toBe(cases.length);
    // the dominant class of each row, against the logits' first choice
    const z = logits!.toTypedArray() as Float32Array;
    const argmax = (v: ArrayLike<number>, n: number) => [0, 1, 2, 3].reduce((best, k) => (v[n * 4 + k] > v[n * 4 + best] ? k : best), 0);
    const hits = rows.filter((_, n) => argmax(z, n) === argmax(rows.flat(), n)).length;
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0 });
    const worst = { loss: 0, grad: 0 };
    for (const [i, c] of cases.entries()) {
      const result = await trainStep(model, optimizer, features, targets, {
        features: true,
        ...(c.labelSmoothing === undefined ? {} : { labelSmoothing: c.labelSmoothing }),
        ...(c.weights === undefined ? {} : { classWeights: tensor(new Float32Array(c.weights)) }),
      });
      worst.loss = Math.max(worst.loss, Math.abs(result.loss - reference[i].loss) / Math.abs(reference[i].loss));
      const grads = model.namedGradients();
      const relative = (ours: Tensor | undefined, theirs: number[]) => {
        const v = ours!.toTypedArray() as Float32Array;
        const scale = Math.max(...theirs.map(Math.abs));
        return Math.max(...theirs.map((t, k) => Math.abs(v[k] - t))) / scale;
      };
      worst.grad = Math.max(worst.grad, relative(grads.get('fc.weight'), reference[i].weight), relative(grads.get('fc.bias'), reference[i].bias));
      expect(result.correct1).toBe(hits);
      expect(result.count).toBe(6);
    }
    console.log(`soft-target cross-entropy vs PyTorch: loss relative error ${worst.loss.toExponential(2)}, gradients ${worst.grad.toExponential(2)}`);
    expect(worst.loss).toBeLessThan(1e-5);
    expect(worst.grad).toBeLessThan(1e-4);
    model.dispose();
  });

  test('soft targets must be float32 [N, numClasses]', async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0 });
    const x = randn([2, 3, 32, 32]);
    await expect(trainStep(model, optimizer, x, tensor(new Float32Array(8), [2, 4]))).rejects.toThrow(
      'Expected soft targets of shape [2, 3] and dtype float32 (class probabilities per image) but received [2, 4] float32',
    );
    await expect(trainStep(model, optimizer, x, tensor(new Float64Array(6), [2, 3]))).rejects.toThrow('received [2, 3] float64');
    model.dispose();
  });
});

describe('evalStep', () => {
  test('counts agree with the logits, top-5 >= top-1, and no graph or gradient is made', async () => {
    manualSeed(9);
    const model = createModel('resnet18', { numClasses: 10 }).eval();
    const x = randn([6, 3, 32, 32]);
    const y = labels([0, 1, 2, 3, 4, 5]);
    const result = await evalStep(model, x, y, { returnLogits: true });
    const z = result.logits!.toTypedArray() as Float32Array;
    let top1 = 0;
    let top5 = 0;
    y.toArray().forEach((label, i) => {
      const row = Array.from(z.subarray(i * 10, i * 10 + 10));
      const rank = row.filter((v) => v > row[label]).length;
      if (rank === 0) top1++;
      if (rank < 5) top5++;
    });
    expect(result).toMatchObject({ correct1: top1, correct5: top5, count: 6 });
    expect(result.correct5).toBeGreaterThanOrEqual(result.correct1);
    expect(result.logits!.requiresGrad).toBe(false);
    expect(model.namedGradients().size).toBe(0);
    model.dispose();
  });
});

describe('memory', () => {
  test('2000 train steps leave RSS flat (drift < 50 MB)', async () => {
    // head-only steps on cached features: the same native step, optimizer and autograd path,
    // fast enough for the suite (the full-network figure is in the benchmark)
    const model: Model = createModel('resnet18', { numClasses: 10 });
    model.freeze({ except: ['fc'] });
    const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-3 });
    const features = randn([32, 512]);
    const y = labels(Array.from({ length: 32 }, (_, i) => i % 10));
    for (let i = 0; i < 200; i++) await trainStep(model, optimizer, features, y, { features: true });
    const start = process.memoryUsage().rss;
    let peak = start;
    for (let i = 0; i < 2000; i++) {
      await trainStep(model, optimizer, features, y, { features: true, gradStatsBins: i % 100 === 0 ? 16 : 0 });
      if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    const drift = (Math.max(peak, process.memoryUsage().rss) - start) / 2 ** 20;
    console.log(`RSS drift over 2000 steps: ${drift.toFixed(1)} MB`);
    expect(drift).toBeLessThan(50);
    model.dispose();
  });
});

describe("amp: 'auto'", () => {
  test('resolves to fp16 on CUDA, bf16 on a CPU with bf16 in hardware, float32 on any other CPU', () => {
    expect(resolveAmp('auto', 'cuda:0', false)).toBe('fp16');
    expect(resolveAmp('auto', 'cpu', true)).toBe('bf16');
    expect(resolveAmp('auto', 'cpu', false)).toBe('none');
    // the explicit choices are not second-guessed
    expect(resolveAmp('bf16', 'cpu', false)).toBe('bf16');
    expect(resolveAmp(true, 'cpu', false)).toBe('bf16');
    expect(resolveAmp(false, 'cpu', true)).toBe('none');
    expect(() => resolveAmp('fp16', 'cpu', true)).toThrow(/Expected amp 'bf16', 'auto' or true on the CPU/);
    expect(() => resolveAmp('fp8' as never, 'cpu', true)).toThrow(/amp/);
  });

  test('on this CPU it runs what /proc/cpuinfo says: the same loss as that explicit choice, not the other', async () => {
    const flags = /^flags\s*:(.*)$/m.exec(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? '';
    const bf16InHardware = /\b(avx512_bf16|amx_bf16)\b/.test(flags);
    const model: Model = createModel('resnet18', { numClasses: 4 });
    model.eval();
    const images = randn([2, 3, 32, 32]);
    const y = labels([0, 3]);
    const lossWith = async (amp: 'auto' | 'bf16' | false) => (await evalStep(model, images, y, { amp })).loss;
    const [auto, bf16, float32] = [await lossWith('auto'), await lossWith('bf16'), await lossWith(false)];
    expect(bf16).not.toBe(float32); // the two precisions are told apart by the loss
    expect(auto).toBe(bf16InHardware ? bf16 : float32);
    model.dispose();
  });
});
