// The CUDA checks and the GPU benchmark, run by scripts/gpu-check.sh on a GPU machine (plain Node,
// no jest there): parity of forward/backward GPU vs CPU, fp16 AMP close to fp32, a short run whose
// loss falls, then ResNet-18 batch 256 at 224² with AMP + channels_last, img/s next to PyTorch's,
// and the loader's rate against the step rate (the GPU must not starve).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, createOptimizer, createSyntheticDataset, DataLoader, evalStep, ImageCache, manualSeed, randn, runtimeInfo,
  scanDataset, setCudnnBenchmark, tensor, trainStep, trainTransform, TRAIN_DECODE, loadImageCache,
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

async function parity(): Promise<void> {
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
  check('forward GPU vs CPU', logits < 1e-3, `max relative error ${logits.toExponential(2)}`);
  const lossCpu = (await cpu.backward(x, y)).loss;
  const lossGpu = (await gpu.backward(xg, yg)).loss;
  const grads = cpu.namedGradients();
  let worst = 0;
  for (const [name, g] of gpu.namedGradients()) worst = Math.max(worst, maxRelative(grads.get(name)!.toTypedArray() as Float32Array, g.toTypedArray() as Float32Array));
  check('backward GPU vs CPU', Math.abs(lossCpu - lossGpu) < 1e-3 && worst < 1e-2, `loss ${lossCpu.toFixed(5)} vs ${lossGpu.toFixed(5)}, worst gradient relative error ${worst.toExponential(2)}`);
  cpu.dispose();
  gpu.dispose();
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

async function benchmark(steps: number): Promise<{ finetorch: number; pytorch: number | null; loader: number }> {
  setCudnnBenchmark(true);
  manualSeed(3);
  const batch = 256;
  const model = createModel('resnet18', { numClasses: 1000 });
  await model.to('cuda');
  await model.channelsLast(true);
  model.train();
  const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
  const x = await randn([batch, 3, 224, 224]).to('cuda');
  const y = await labels(Array.from({ length: batch }, (_, i) => i % 1000)).to('cuda');
  for (let i = 0; i < 10; i++) await trainStep(model, optimizer, x, y, { amp: 'fp16' });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) await trainStep(model, optimizer, x, y, { amp: 'fp16' });
  const finetorch = (batch * steps) / (Number(process.hrtime.bigint() - t0) / 1e9);
  model.dispose();

  const python = process.env.FINETORCH_PYTHON ?? 'python3';
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

  // loader: decode-once cache + native augmentation, batches of 256 at 224²
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-gpu-loader-'));
  await createSyntheticDataset(dir, { classes: 8, perClass: 160, size: 256, seed: 1 });
  const scan = await scanDataset(dir, { warn: () => undefined });
  const cache = (await loadImageCache(scan.samples.map((s) => s.path), { decode: TRAIN_DECODE })).cache;
  const loader = new DataLoader(scan.samples, { batchSize: batch, transform: trainTransform({ pinMemory: true, channelsLast: true }), cache, seed: 0, prefetch: 4 });
  let images = 0;
  const t1 = process.hrtime.bigint();
  for await (const b of loader.epoch(1)) {
    images += b.images.shape[0];
    b.images.dispose();
    b.labels.dispose();
  }
  const loaderRate = images / (Number(process.hrtime.bigint() - t1) / 1e9);
  fs.rmSync(dir, { recursive: true, force: true });
  return { finetorch, pytorch, loader: loaderRate };
}

async function main(): Promise<number> {
  const info = runtimeInfo();
  console.log(`libtorch ${info.torchVersion}, CUDA ${info.cudaAvailable ? `available, ${info.cudaDeviceCount} device(s)` : 'NOT available'}, cuDNN ${info.cudnnAvailable}`);
  if (!info.cudaAvailable) {
    console.log('FAIL  no CUDA device visible to libtorch');
    return 1;
  }
  await parity();
  await ampAndTraining();
  const steps = Number(process.env.GPU_BENCH_STEPS ?? 30);
  const bench = await benchmark(steps);
  const ratio = bench.pytorch ? bench.finetorch / bench.pytorch : NaN;
  check('ResNet-18 train, batch 256, 224², AMP fp16 + channels_last: finetorch ÷ PyTorch ≥ 0.95', !(ratio < 0.95), `${bench.finetorch.toFixed(0)} vs ${bench.pytorch?.toFixed(0) ?? '?'} img/s = ${ratio.toFixed(3)}`);
  check('loader keeps the GPU fed (loader img/s ≥ step img/s)', bench.loader >= bench.finetorch, `loader ${bench.loader.toFixed(0)} img/s (${os.cpus().length} cores) vs step ${bench.finetorch.toFixed(0)} img/s`);
  const table = [
    '| figure | finetorch | PyTorch | ratio |',
    '|---|---:|---:|---:|',
    `| ResNet-18 train img/s, batch 256, 224², AMP fp16, channels_last | ${bench.finetorch.toFixed(0)} | ${bench.pytorch?.toFixed(0) ?? 'n/a'} | ${ratio.toFixed(3)} |`,
    `| loader img/s (decode-once cache + native augmentation, CPU) vs step img/s | ${bench.loader.toFixed(0)} | | ${(bench.loader / bench.finetorch).toFixed(2)} |`,
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
