// int8 static quantization against PyTorch's eager mode: speed (ResNet-18, 112², batch 32) and,
// with real images, top-1 of the float model, finetorch int8 and PyTorch int8 on the same weights
// and calibration images.
//   npx tsc -p . && node bench/int8.js [--threads N] [--iterations N] [--epochs N] [--skip-accuracy]
// Real images: CALTECH101_DIR (or ../shared/data/caltech101-mini beside the checkout); without
// them the accuracy part is skipped. PyTorch runs as a child process per allocator (glibc
// tunables, and jemalloc where Debian's libjemalloc2 is installed, as bench/run.js's expert).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const ft = require('../dist/lib');
const { resolveConfig } = require('../dist/lib/experiment/config');
const { train } = require('../dist/lib/experiment/trainer');
const { loadRun, loadRunSplit } = require('../dist/lib/experiment/runs');
const { spreadIndices } = require('../dist/lib/experiment/quantize-run');
const { DataLoader } = require('../dist/lib/data/loader');
const { ImageCache } = require('../dist/lib/data/cache');
const { EVAL_DECODE } = require('../dist/lib/data/decode');
const { evalTransform } = require('../dist/lib/data/transforms');

const PYTHON = process.env.FT_BENCH_PYTHON || '/usr/bin/python3';
const REFERENCE = path.join(__dirname, '..', 'test', 'helpers', 'quantized-reference.py');
const ALLOCATORS = [
  { label: 'glibc tunables', env: { MALLOC_ARENA_MAX: '1', GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296' } },
  { label: 'jemalloc', library: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', env: { MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' } },
].filter((a) => !a.library || fs.existsSync(a.library));

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const threads = flag('threads', os.cpus().length);
const iterations = flag('iterations', 10);
// 60 epochs: the model gets 93% of its training images right, where an int8 error would show
const epochs = flag('epochs', 60);

function python(args, env = {}) {
  const clean = { ...process.env };
  for (const k of ['MALLOC_ARENA_MAX', 'GLIBC_TUNABLES', 'MALLOC_CONF', 'LD_PRELOAD', 'PYTHONPATH', 'PYTHONHOME']) delete clean[k];
  const r = spawnSync(PYTHON, [REFERENCE, ...args], { env: { ...clean, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`PyTorch reference failed: ${r.stderr}`);
}

async function medianSpeed(forward, x) {
  for (let i = 0; i < 2; i++) (await forward(x)).dispose();
  const times = [];
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    (await forward(x)).dispose();
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  return x.shape[0] / times[Math.floor(times.length / 2)];
}

async function speed(dir) {
  const model = ft.createModel('resnet18', { numClasses: 101 }).eval();
  const x = ft.randn([32, 3, 112, 112]);
  const quantized = await ft.QuantizedModel.quantize(model, [x]);
  const figures = { engine: quantized.engine, threads };
  figures.finetorchFp32 = await medianSpeed((b) => model.forward(b), x);
  figures.finetorchInt8 = await medianSpeed((b) => quantized.forward(b), x);
  await ft.saveWeights(path.join(dir, 'speed.pth'), model.stateDict());
  await ft.saveTorchFile(path.join(dir, 'speed-inputs.pth'), { calibration: [x], time: x, time_iterations: iterations });
  for (const a of ALLOCATORS) {
    const out = path.join(dir, `speed-${a.label}.pth`);
    python([path.join(dir, 'speed.pth'), path.join(dir, 'speed-inputs.pth'), out, quantized.engine, 'histogram', String(threads)], {
      ...a.env,
      ...(a.library ? { LD_PRELOAD: a.library } : {}),
    });
    const [int8, fp32] = (await ft.loadTorchFile(out)).value.get('speed').toTypedArray();
    figures[`pytorchInt8 (${a.label})`] = int8;
    figures[`pytorchFp32 (${a.label})`] = fp32;
  }
  quantized.dispose();
  model.dispose();
  return figures;
}

function top1(logits, labels, n) {
  const rows = logits.toTypedArray();
  let correct = 0;
  labels.forEach((label, i) => {
    const row = rows.subarray(i * n, (i + 1) * n);
    let best = 0;
    for (let c = 1; c < n; c++) if (row[c] > row[best]) best = c;
    if (best === label) correct++;
  });
  return correct;
}

async function accuracy(dir, root) {
  // a ResNet-18 trained from scratch on the real images (no pretrained weights needed offline)
  const config = resolveConfig({
    overrides: {
      arch: 'resnet18', phase: 'scratch', weights: 'none', image_size: 64, resize: 73, batch_size: 32, epochs, device: 'cpu', quiet: true, report: false,
      'data.root': root, 'data.train_per_class': 6, 'data.test_per_class': 2, output_dir: path.join(dir, 'runs'), run_name: 'int8-accuracy',
    },
  });
  const [result] = await train(config, { log: () => undefined });
  ft.setNumThreads(threads);
  const run = await loadRun(result.runDir);
  const split = await loadRunSplit(run);
  const n = run.classes.length;
  const decode = { ...EVAL_DECODE, resize: run.config.resize, centerCrop: run.config.image_size };
  const loader = (samples) => new DataLoader(samples, { batchSize: 32, transform: evalTransform({ size: run.config.image_size }), cache: new ImageCache({ decode }) });
  const collect = async (samples, order) => {
    const batches = [];
    for await (const b of loader(samples).epoch(0, order)) batches.push(b);
    return batches;
  };
  const calibration = (await collect(split.train, spreadIndices(split.train.length, 128))).map((b) => b.images);
  const sets = { test: await collect(split.test), train: await collect(split.train) };
  const figures = { classes: n, calibrationImages: 128, epochs };
  for (const observer of ['histogram', 'minmax']) {
    const quantized = await ft.QuantizedModel.quantize(run.model, calibration, { observer });
    const evalBatches = [...sets.test, ...sets.train];
    await ft.saveWeights(path.join(dir, 'trained.pth'), run.model.stateDict());
    await ft.saveTorchFile(path.join(dir, 'accuracy-inputs.pth'), { calibration, eval: evalBatches.map((b) => b.images) });
    const out = path.join(dir, `accuracy-${observer}.pth`);
    python([path.join(dir, 'trained.pth'), path.join(dir, 'accuracy-inputs.pth'), out, quantized.engine, observer, String(threads)]);
    const ref = (await ft.loadTorchFile(out)).value;
    let i = 0;
    for (const [name, batches] of Object.entries(sets)) {
      const counts = { images: 0, fp32: 0, finetorchInt8: 0, pytorchInt8: 0, pytorchFp32: 0, int8Agreement: 0 };
      for (const b of batches) {
        const labels = b.labels.toArray();
        counts.images += labels.length;
        const fp32 = await run.model.forward(b.images);
        const int8 = await quantized.forward(b.images);
        counts.fp32 += top1(fp32, labels, n);
        counts.finetorchInt8 += top1(int8, labels, n);
        counts.pytorchInt8 += top1(ref.get('eval_logits')[i], labels, n);
        counts.pytorchFp32 += top1(ref.get('eval_float_logits')[i], labels, n);
        // same top-1 class from both int8 models
        const argmax = (t) => labels.map((_, r) => { const row = t.toTypedArray().subarray(r * n, (r + 1) * n); let best = 0; for (let c = 1; c < n; c++) if (row[c] > row[best]) best = c; return best; });
        const a = argmax(int8);
        const p = argmax(ref.get('eval_logits')[i]);
        counts.int8Agreement += a.filter((v, r) => v === p[r]).length;
        i++;
      }
      const pct = (k) => `${((100 * counts[k]) / counts.images).toFixed(2)}%`;
      figures[`${observer} ${name} (${counts.images} images)`] =
        `fp32 ${pct('fp32')} (PyTorch fp32 ${pct('pytorchFp32')}), finetorch int8 ${pct('finetorchInt8')}, PyTorch int8 ${pct('pytorchInt8')}, int8 top-1 agreement ${pct('int8Agreement')}`;
    }
    quantized.dispose();
  }
  run.model.dispose();
  return figures;
}

(async () => {
  ft.setNumThreads(threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-int8-bench-'));
  try {
    console.log('speed (img/s, median of', iterations, 'forwards, ResNet-18 112² batch 32):', JSON.stringify(await speed(dir), null, 1));
    const beside = path.resolve(__dirname, '..', '..', 'shared', 'data', 'caltech101-mini');
    const root = process.env.CALTECH101_DIR || (fs.existsSync(beside) ? beside : undefined);
    if (process.argv.includes('--skip-accuracy')) return;
    if (!root) console.log('accuracy: skipped (set CALTECH101_DIR)');
    else console.log('accuracy (top-1):', JSON.stringify(await accuracy(dir, root), null, 1));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
