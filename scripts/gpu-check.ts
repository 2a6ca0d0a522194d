// The CUDA checks and the GPU benchmark, run by scripts/gpu-check.sh on a GPU machine (plain Node,
// no jest there): parity of forward/backward GPU vs CPU, fp16 AMP close to fp32, a short run whose
// loss falls, then ResNet-18 batch 256 at 224² with AMP + channels_last, img/s next to PyTorch's,
// and the loader's rate against the step rate (the GPU must not starve).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, createOptimizer, createSyntheticDataset, DataLoader, evalStep, loadCheckpoint, loadPretrained, loadTorchFile, manualSeed,
  randn, resolveConfig, runtimeInfo, saveWeights, scanDataset, setAllowTF32, setCudnnBenchmark, setNumThreads, tensor, train, trainStep, trainTransform,
  SOURCE_TRAIN_DECODE, loadImageCache, Tensor,
} from '../lib';

const failures: string[] = [];
function check(name: string, ok: boolean, detail: string): void {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}: ${detail}`);
  if (!ok) failures.push(name);
}

const labels = (values: number[]) => tensor(new BigInt64Array(values.map(BigInt)));

function maxRelative(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  a.forEach((v, i) => ((diff = Math.max(diff, Math.abs(v - b[i]))), (scale = Math.max(scale, Math.abs(v)))));
  return diff / (scale || 1);
}

// GPU vs CPU with exact float32 (TF32 off) must agree closely; with PyTorch's default TF32
// convolutions the gradients differ more (reported, not checked).
async function parity(): Promise<void> {
  setAllowTF32({ conv: false, matmul: false });
  try {
    // gradients sum over batch × pixels in another order (and cuDNN's own algorithms): an H200
    // gave 8.6e-7 on the logits and 1.8e-3 on conv1.weight's gradient, the largest reduction
    await parityOnce('(TF32 off)', 1e-5, 5e-3);
  } finally {
    setAllowTF32({ conv: true, matmul: false });
  }
  await parityOnce('(TF32 convolutions, PyTorch default; for information)', Infinity, Infinity);
}

async function parityOnce(label: string, forwardTolerance: number, gradientTolerance: number): Promise<void> {
  manualSeed(1);
  const cpu = createModel('resnet18', { numClasses: 10 }).eval();
  const gpu = createModel('resnet18', { numClasses: 10 }).eval();
  await gpu.loadStateDict(cpu.stateDict());
  await gpu.to('cuda');
  const x = randn([4, 3, 224, 224]);
  const y = labels([1, 3, 5, 7]);
  const xg = await x.to('cuda');
  const yg = await y.to('cuda');
  const logits = maxRelative((await cpu.forward(x)).toTypedArray() as Float32Array, (await gpu.forward(xg)).toTypedArray() as Float32Array);
  check(`forward GPU vs CPU ${label}`, logits < forwardTolerance, `max relative error ${logits.toExponential(2)}`);
  const lossCpu = (await cpu.backward(x, y)).loss;
  const lossGpu = (await gpu.backward(xg, yg)).loss;
  const grads = cpu.namedGradients();
  let worst = 0;
  let worstName = '';
  for (const [name, g] of gpu.namedGradients()) {
    const e = maxRelative(grads.get(name)!.toTypedArray() as Float32Array, g.toTypedArray() as Float32Array);
    if (e > worst) [worst, worstName] = [e, name];
  }
  check(`backward GPU vs CPU ${label}`, Math.abs(lossCpu - lossGpu) < 1e-3 && worst < gradientTolerance,
    `loss ${lossCpu.toFixed(6)} vs ${lossGpu.toFixed(6)}, worst gradient relative error ${worst.toExponential(2)} (${worstName})`);
  cpu.dispose();
  gpu.dispose();
}

const python = process.env.FINETORCH_PYTHON ?? 'python3';
// GPU_CHECK_DEVICE=cpu: a dry run of the device-independent checks here, before spending GPU time
const DEVICE = process.env.GPU_CHECK_DEVICE ?? 'cuda';

// The machine's PyTorch (2.x) writes a torchvision ResNet-18 .pth, an input and its logits; finetorch
// (built against that same libtorch) loads them on the CPU and must give the same logits; then
// finetorch saves the weights and that PyTorch loads them with weights_only=True, strict.
async function torch2Files(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-torch2-'));
  const script = `
import sys, torch, torchvision
torch.set_num_threads(4); torch.manual_seed(0)
m = torchvision.models.resnet18(num_classes=7).eval()
x = torch.randn(2, 3, 96, 96)
with torch.no_grad(): logits = m(x)
torch.save(m.state_dict(), sys.argv[1] + '/resnet18.pth')
torch.save({'x': x, 'logits': logits}, sys.argv[1] + '/io.pth')
print(torch.__version__, torchvision.__version__)`;
  const made = spawnSync(python, ['-c', script, dir], { encoding: 'utf8' });
  if (made.status !== 0) return check('torch 2.x .pth files', false, `PyTorch failed: ${made.stderr.split('\n').slice(-3).join(' ')}`);
  setNumThreads(4);
  const model = createModel('resnet18', { numClasses: 7 }).eval();
  const loaded = await loadPretrained(model, path.join(dir, 'resnet18.pth'));
  const io = (await loadTorchFile(path.join(dir, 'io.pth'))).value as Map<string, unknown>;
  const wrap = (v: unknown) => (v instanceof Tensor ? v : new Tensor(v as never));
  const x = wrap(io.get('x'));
  const expected = wrap(io.get('logits')).toTypedArray() as Float32Array;
  const logits = (await model.forward(x)).toTypedArray() as Float32Array;
  const err = maxRelative(expected, logits);
  check(`torch ${made.stdout.trim()} .pth loads; CPU logits vs PyTorch`, loaded.missingKeys.length === 0 && err < 1e-5, `max relative error ${err.toExponential(2)}`);
  await saveWeights(path.join(dir, 'back.pth'), model.stateDict());
  const back = spawnSync(python, ['-c', `
import sys, torch, torchvision
m = torchvision.models.resnet18(num_classes=7)
print(m.load_state_dict(torch.load(sys.argv[1], weights_only=True), strict=True))`, path.join(dir, 'back.pth')], { encoding: 'utf8' });
  check('finetorch .pth loads in torch 2.x (weights_only, strict)', back.status === 0, (back.stdout + back.stderr).trim().split('\n').slice(-1)[0]);
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

// Optimizer state keyed by pointer (libtorch 2.x) survives stateDict → loadStateDict on the GPU.
async function optimizerState(): Promise<void> {
  manualSeed(4);
  const model = createModel('resnet18', { numClasses: 3 });
  await model.to(DEVICE);
  model.train();
  const x = await randn([8, 3, 64, 64]).to(DEVICE);
  const y = await labels([0, 1, 2, 0, 1, 2, 0, 1]).to(DEVICE);
  const a = createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
  for (let i = 0; i < 2; i++) await trainStep(model, a, x, y);
  const saved = a.stateDict();
  const b = createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
  b.loadStateDict(saved);
  const again = b.stateDict();
  let same = saved.state.size === again.state.size && saved.state.size > 0;
  for (const [i, fields] of saved.state) {
    const t = fields.get('momentum_buffer') as Tensor;
    const u = again.state.get(i)?.get('momentum_buffer') as Tensor | undefined;
    if (!u || maxRelative(t.toTypedArray() as Float32Array, u.toTypedArray() as Float32Array) !== 0) same = false;
  }
  check(`SGD momentum state round-trips on ${DEVICE}`, same, `${saved.state.size} parameter states`);
  model.dispose();
}

// The trainer end to end on the GPU: two-stage (feature cache, then finetune) with AMP and
// channels_last, and a resumed scratch run.
async function trainerRuns(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-gpu-train-'));
  await createSyntheticDataset(path.join(dir, 'data'), { classes: 4, perClass: 14, size: 64, seed: 5 });
  const weights = path.join(dir, 'pretrained.pth');
  const stand = createModel('resnet18');
  await saveWeights(weights, stand.stateDict());
  stand.dispose();
  const config = (o: Record<string, unknown>) => resolveConfig({ overrides: {
    arch: 'resnet18', device: DEVICE, amp: DEVICE === 'cuda' ? true : 'bf16', channels_last: true, image_size: 48, resize: 56, batch_size: 8, quiet: true, report: false,
    'data.root': path.join(dir, 'data'), 'data.train_per_class': 10, 'data.test_per_class': 4, output_dir: path.join(dir, 'runs'),
    learning_rate: 5e-3, finetune_lr: 1e-3, ...o,
  } });
  const quiet = { log: () => undefined };
  const [fe, ft] = await train(config({ phase: 'two-stage', weights, run_name: 'two', epochs: 4 }), quiet);
  check(`two-stage on ${DEVICE} (AMP, channels_last)`, fe.featureCache && ft.test.count === 16, `feature_extract top-1 ${(fe.test.top1 * 100).toFixed(1)}%, finetune top-1 ${(ft.test.top1 * 100).toFixed(1)}%`);
  const short = config({ phase: 'scratch', weights: 'none', run_name: 'resumed', epochs: 1 });
  const [first] = await train(short, quiet);
  const [resumed] = await train({ ...short, epochs: 2 }, { ...quiet, resumeDir: first.runDir });
  const ckpt = await loadCheckpoint(resumed.checkpoints.last);
  check(`resume on ${DEVICE}`, resumed.epochs === 2 && ckpt.epoch === 2, `resumed run ended at epoch ${ckpt.epoch}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function ampAndTraining(): Promise<void> {
  manualSeed(2);
  const model = createModel('resnet18', { numClasses: 4 });
  await model.to('cuda');
  await model.channelsLast(true);
  const x = await randn([32, 3, 128, 128]).to('cuda');
  const y = await labels(Array.from({ length: 32 }, (_, i) => i % 4)).to('cuda');
  model.eval();
  const fp32 = (await evalStep(model, x, y)).loss;
  const fp16 = (await evalStep(model, x, y, { amp: 'fp16' })).loss;
  const bf16 = (await evalStep(model, x, y, { amp: 'bf16' })).loss;
  check('AMP loss close to fp32', Math.abs(fp16 - fp32) / fp32 < 0.01 && Math.abs(bf16 - fp32) / fp32 < 0.03, `fp32 ${fp32.toFixed(5)}, fp16 ${fp16.toFixed(5)}, bf16 ${bf16.toFixed(5)}`);
  model.train();
  const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-3 });
  const losses: number[] = [];
  for (let i = 0; i < 30; i++) losses.push((await trainStep(model, optimizer, x, y, { amp: 'fp16' })).loss);
  check('short fp16 training run', losses[29] < losses[0] * 0.5, `loss ${losses[0].toFixed(3)} → ${losses[29].toFixed(3)}`);
  model.dispose();
}

async function benchmark(steps: number): Promise<{ finetorch: number; finetorchPerParameter: number; pytorch: number | null; loader: number; pytorchLoader: number | null }> {
  setCudnnBenchmark(true);
  manualSeed(3);
  const batch = 256;
  const model = createModel('resnet18', { numClasses: 1000 });
  await model.to('cuda');
  await model.channelsLast(true);
  model.train();
  const x = await randn([batch, 3, 224, 224]).to('cuda');
  const y = await labels(Array.from({ length: batch }, (_, i) => i % 1000)).to('cuda');
  // SGD as the default does it on a GPU (foreach), then libtorch's per-parameter step: what foreach buys
  const rate = async (foreach: boolean): Promise<number> => {
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9, foreach });
    for (let i = 0; i < 10; i++) await trainStep(model, optimizer, x, y, { amp: 'fp16' });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) await trainStep(model, optimizer, x, y, { amp: 'fp16' });
    return (batch * steps) / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const finetorch = await rate(true);
  const finetorchPerParameter = await rate(false);
  model.dispose();

  const script = `
import sys, time, torch, torchvision
torch.backends.cudnn.benchmark = True
torch.manual_seed(3)
m = torchvision.models.resnet18(num_classes=1000).cuda().to(memory_format=torch.channels_last).train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
scaler = torch.cuda.amp.GradScaler()
x = torch.randn(256, 3, 224, 224, device='cuda').to(memory_format=torch.channels_last)
y = torch.arange(256, device='cuda') % 1000
def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=torch.float16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    return loss.item()
for _ in range(10): step()
torch.cuda.synchronize(); t = time.time()
for _ in range(int(sys.argv[1])): step()
torch.cuda.synchronize()
print(256 * int(sys.argv[1]) / (time.time() - t))`;
  const py = spawnSync(python, ['-c', script, String(steps)], { encoding: 'utf8' });
  const pytorch = py.status === 0 ? Number(py.stdout.trim().split('\n').pop()) : null;
  if (pytorch === null) console.log(`PyTorch side failed: ${py.stderr.split('\n').slice(-3).join(' ')}`);

  // loader: decode-once cache + native augmentation (every core), batches of 256 at 224², the
  // second epoch; next to torchvision ImageFolder + DataLoader(num_workers=cores, pin_memory) with
  // the same augmentation on the same JPEGs
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-gpu-loader-'));
  await createSyntheticDataset(dir, { classes: 8, perClass: 384, size: 300, seed: 1 });
  const scan = await scanDataset(dir, { warn: () => undefined });
  const cache = (await loadImageCache(scan.samples.map((s) => s.path), { decode: SOURCE_TRAIN_DECODE })).cache;
  const loader = new DataLoader(scan.samples, { batchSize: batch, transform: trainTransform({ pinMemory: true, channelsLast: true }), cache, seed: 0, prefetch: 2 });
  let loaderRate = 0;
  for (let epoch = 0; epoch < 2; epoch++) {
    let images = 0;
    const t1 = process.hrtime.bigint();
    for await (const b of loader.epoch(epoch)) {
      images += b.images.shape[0];
      b.images.dispose();
      b.labels.dispose();
    }
    loaderRate = images / (Number(process.hrtime.bigint() - t1) / 1e9);
  }
  const pyLoader = spawnSync(python, ['-c', `
import sys, time, os, torch, torchvision.transforms as T
from torchvision.datasets import ImageFolder
tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ColorJitter(0.1, 0.1, 0.1), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = ImageFolder(sys.argv[1], transform=tf)
dl = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, num_workers=os.cpu_count(), pin_memory=True, persistent_workers=True)
for epoch in range(2):
    t = time.time(); n = 0
    for x, y in dl: n += x.shape[0]
    rate = n / (time.time() - t)
print(rate)`, dir], { encoding: 'utf8' });
  const pytorchLoader = pyLoader.status === 0 ? Number(pyLoader.stdout.trim().split('\n').pop()) : null;
  if (pytorchLoader === null) console.log(`PyTorch loader failed: ${pyLoader.stderr.split('\n').slice(-3).join(' ')}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return { finetorch, finetorchPerParameter, pytorch, loader: loaderRate, pytorchLoader };
}

async function main(): Promise<number> {
  const info = runtimeInfo();
  console.log(`libtorch ${info.torchVersion}, CUDA ${info.cudaAvailable ? `available, ${info.cudaDeviceCount} device(s)` : 'NOT available'}, cuDNN ${info.cudnnAvailable}`);
  if (DEVICE === 'cpu') {
    for (const fn of [torch2Files, optimizerState, trainerRuns]) await fn();
    return failures.length ? 1 : 0;
  }
  if (!info.cudaAvailable) {
    console.log('FAIL  no CUDA device visible to libtorch');
    return 1;
  }
  // each check on its own, so one failure does not hide the others
  for (const [name, fn] of [['torch 2.x files', torch2Files], ['parity', parity], ['AMP', ampAndTraining], ['optimizer state', optimizerState], ['trainer', trainerRuns]] as const) {
    try {
      await fn();
    } catch (error) {
      check(name, false, `threw ${(error as Error).stack ?? error}`);
    }
  }
  const steps = Number(process.env.GPU_BENCH_STEPS ?? 30);
  const bench = await benchmark(steps);
  const ratio = bench.pytorch ? bench.finetorch / bench.pytorch : NaN;
  check('ResNet-18 train, batch 256, 224², AMP fp16 + channels_last: finetorch ÷ PyTorch ≥ 0.95', !(ratio < 0.95), `${bench.finetorch.toFixed(0)} vs ${bench.pytorch?.toFixed(0) ?? '?'} img/s = ${ratio.toFixed(3)}`);
  const loaderRatio = bench.pytorchLoader ? bench.loader / bench.pytorchLoader : NaN;
  check('loader ≥ torchvision ImageFolder + DataLoader(num_workers=cores), same augmentation', !(loaderRatio < 1),
    `${bench.loader.toFixed(0)} vs ${bench.pytorchLoader?.toFixed(0) ?? '?'} img/s = ${loaderRatio.toFixed(2)} (${os.cpus().length} cores; the GPU step takes ${bench.finetorch.toFixed(0)} img/s)`);
  const table = [
    '| figure | finetorch | PyTorch | ratio |',
    '|---|---:|---:|---:|',
    `| ResNet-18 train img/s, batch 256, 224², AMP fp16, channels_last | ${bench.finetorch.toFixed(0)} | ${bench.pytorch?.toFixed(0) ?? 'n/a'} | ${ratio.toFixed(3)} |`,
    `| the same, SGD per parameter (foreach: false) | ${bench.finetorchPerParameter.toFixed(0)} | | ${bench.pytorch ? (bench.finetorchPerParameter / bench.pytorch).toFixed(3) : 'n/a'} |`,
    `| loader img/s, 224² RandomResizedCrop + flip + ColorJitter, ${os.cpus().length} cores | ${bench.loader.toFixed(0)} | ${bench.pytorchLoader?.toFixed(0) ?? 'n/a'} | ${loaderRatio.toFixed(2)} |`,
  ].join('\n');
  console.log(`\n${table}`);
  if (process.env.OUT) fs.writeFileSync(path.join(process.env.OUT, 'gpu-check.json'), JSON.stringify({ info, bench, ratio, failures }, null, 1));
  console.log(failures.length ? `\n${failures.length} check(s) failed: ${failures.join('; ')}` : '\nall GPU checks passed');
  return failures.length ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
