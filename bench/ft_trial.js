'use strict';
// One finetorch trial of `npm run bench`, run in its own process by bench/run.js. Argument: one
// JSON spec. Prints one line "BENCH_RESULT {json}" on stdout; progress goes to stderr.
//
// Kinds (bench/py_trial.py does the same work with PyTorch):
//   step      in-memory batch: trainStep (SGD, momentum 0.9) or evalStep img/s; with amp 'bf16'
//             in the spec, under bf16 autocast (the step's `amp` option)
//   epoch     DataLoader (ImageCache + trainTransform) feeding trainStep; then in-memory steps
//             in the same process (pipeline efficiency)
//   loader    decode throughput (loadImageCache), first (decoding) and cached loader epochs
//   features  train(config) of a feature_extract phase, end to end (feature cache)
//   drift     RSS over many train steps (full network, or the head on cached features)
//   augment   per-image cost of the native augmentation on one thread: the crop/flip/jitter/
//             normalise kernels alone, with each policy (TrivialAugmentWide, RandAugment,
//             AutoAugment), and each policy op alone on size² images (finetorch only)
const fs = require('fs');
const os = require('os');
const path = require('path');
const ft = require('../dist/lib');

const log = (line) => process.stderr.write(`${line}\n`);

function statusMB(field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function randomLabels(n, numClasses, state = { x: 12345 }) {
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    state.x = (state.x * 1103515245 + 12345) % 2147483648;
    out[i] = BigInt(state.x % numClasses);
  }
  return ft.tensor(out, [n]);
}

/** A batch of images [N, 3, size, size]: randn, or channels-last via the loader's own native transform. */
async function makeImages(batch, size, channelsLast) {
  if (!channelsLast) return ft.randn([batch, 3, size, size]);
  const images = [];
  for (let i = 0; i < batch; i++) {
    const data = Buffer.alloc(size * size * 3);
    for (let j = 0; j < data.length; j++) data[j] = (j * 7919 + i * 104729) & 255;
    images.push({ data, width: size, height: size });
  }
  const transform = ft.evalTransform({ size, channelsLast: true });
  return transform.apply(images, images.map((im) => transform.sample(im)));
}

async function runSteps(fn, warmup, steps, imagesPerStep) {
  for (let i = 0; i < warmup; i++) await fn();
  const times = [];
  const before = process.resourceUsage();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = now();
    await fn();
    times.push(now() - t0);
  }
  const after = process.resourceUsage();
  const cpu = process.cpuUsage(cpu0);
  const total = times.reduce((a, b) => a + b, 0);
  return {
    imgPerSec: (steps * imagesPerStep) / total,
    stepSeconds: times,
    medianStepSeconds: median(times),
    // page faults and CPU per timed step (whole process, all threads)
    minorFaultsPerStep: (after.minorPageFault - before.minorPageFault) / steps,
    // context switches per step (whole process): waits on the compute thread and thread-pool handoffs
    voluntaryCtxSwitchesPerStep: (after.voluntaryContextSwitches - before.voluntaryContextSwitches) / steps,
    involuntaryCtxSwitchesPerStep: (after.involuntaryContextSwitches - before.involuntaryContextSwitches) / steps,
    userCpuPerStep: cpu.user / 1e6 / steps,
    systemCpuPerStep: cpu.system / 1e6 / steps,
    coresUsed: (cpu.user + cpu.system) / 1e6 / total,
  };
}

async function kindStep(s) {
  const numClasses = s.numClasses ?? 101;
  const model = ft.createModel(s.arch, { numClasses });
  const images = await makeImages(s.batch, s.size, s.channelsLast === true);
  const labels = randomLabels(s.batch, numClasses);
  // channels-last weights too, where this finetorch has Model.channelsLast() (PyTorch's model.to(memory_format))
  let layout = 'contiguous';
  if (s.channelsLast) {
    layout = 'channels-last batch';
    if (typeof model.channelsLast === 'function') {
      await model.channelsLast(true);
      layout = 'channels-last batch + weights';
    }
  }
  // conv algorithm: the library API's default (direct) unless the spec asks (the trainer's choice)
  if (s.convAlgorithm) await model.convAlgorithm(s.convAlgorithm);
  // mixed precision around forward + loss, as torch.autocast in bench/py_trial.py
  const options = s.amp ? { amp: s.amp } : {};
  let fn;
  if (s.mode === 'train') {
    model.train();
    const opt = ft.createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
    fn = () => ft.trainStep(model, opt, images, labels, options);
  } else {
    model.eval();
    fn = () => ft.evalStep(model, images, labels, options);
  }
  return { ...(await runSteps(fn, s.warmup, s.steps, s.batch)), layout, amp: s.amp ?? 'none', convAlgorithm: s.convAlgorithm ?? 'direct' };
}

function readFiles(s) {
  return JSON.parse(fs.readFileSync(s.filesJson, 'utf8'));
}

async function kindEpoch(s) {
  const samples = readFiles(s);
  // the layout `finetorch train` uses unless told otherwise (configs/base.yaml), or the spec's
  const defaults = ft.resolveConfig({});
  const channelsLast = s.channelsLast ?? defaults.channels_last;
  const model = ft.createModel('resnet18', { numClasses: s.numClasses });
  if (channelsLast) await model.channelsLast(true);
  // and its convolutions, as the trainer chooses them (conv_algorithm auto: Winograd where available)
  const convAlgorithm = s.convAlgorithm ?? (ft.convAlgorithmFor ? ft.convAlgorithmFor(defaults.conv_algorithm, 'cpu') : 'direct');
  if (model.convAlgorithm) await model.convAlgorithm(convAlgorithm);
  model.train();
  const opt = ft.createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
  const x = await makeImages(s.batch, s.size, channelsLast);
  const y = randomLabels(s.batch, s.numClasses);
  // mixed precision of every step (the config's amp), as torch.autocast in bench/py_trial.py
  const stepOptions = s.amp ? { amp: s.amp } : {};
  for (let i = 0; i < s.warmup; i++) await ft.trainStep(model, opt, x, y, stepOptions);
  const cache = new ft.ImageCache({ decode: ft.TRAIN_DECODE });
  const loader = new ft.DataLoader(samples, {
    batchSize: s.batch,
    transform: ft.trainTransform({ size: s.size, channelsLast }),
    cache,
    shuffle: true,
    seed: 0,
    prefetch: s.prefetch ?? 2,
  });
  const epochs = [];
  for (let e = 0; e < s.epochs; e++) {
    const t0 = now();
    let seen = 0;
    let wait = 0;
    let tw = now();
    for await (const batch of loader.epoch(e)) {
      wait += now() - tw;
      await ft.trainStep(model, opt, batch.images, batch.labels, stepOptions);
      seen += batch.images.shape[0];
      batch.images.dispose();
      batch.labels.dispose();
      tw = now();
    }
    const dt = now() - t0;
    epochs.push({ seconds: dt, images: seen, imgPerSec: seen / dt, waitSeconds: wait, decoded: cache.size });
    log(`ft epoch ${e}: ${seen} images in ${dt.toFixed(2)} s (${(seen / dt).toFixed(1)} img/s, ${wait.toFixed(2)} s waiting for data)`);
  }
  const inMemory = await runSteps(() => ft.trainStep(model, opt, x, y, stepOptions), 0, s.inMemSteps, s.batch);
  return { epochs, inMemory, cacheMB: cache.byteLength / 2 ** 20, layout: channelsLast ? 'channels-last (finetorch train default)' : 'contiguous', amp: s.amp ?? 'none', convAlgorithm };
}

async function kindLoader(s) {
  const samples = readFiles(s);
  // decode only: sharp, shorter side 256, every file once (the loader's first epoch does this)
  let t0 = now();
  const loaded = await ft.loadImageCache(samples.map((x) => x.path), { decode: ft.TRAIN_DECODE, warn: log });
  const decodeSeconds = now() - t0;
  loaded.cache.clear();
  // the loader: first epoch decodes (fresh cache), later epochs augment cached pixels
  const cache = new ft.ImageCache({ decode: ft.TRAIN_DECODE });
  const loader = new ft.DataLoader(samples, { batchSize: s.batch, transform: ft.trainTransform({ size: s.size }), cache, shuffle: true, seed: 0 });
  const epochs = [];
  for (let e = 0; e < s.epochs; e++) {
    t0 = now();
    let seen = 0;
    for await (const batch of loader.epoch(e)) {
      seen += batch.images.shape[0];
      batch.images.dispose();
      batch.labels.dispose();
    }
    const dt = now() - t0;
    epochs.push({ seconds: dt, images: seen, imgPerSec: seen / dt });
    log(`ft loader epoch ${e}: ${seen} images in ${dt.toFixed(2)} s (${(seen / dt).toFixed(1)} img/s)`);
  }
  return { decodeImgPerSec: samples.length / decodeSeconds, decodeSeconds, epochs, uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' };
}

async function kindFeatures(s) {
  const out = fs.mkdtempSync(path.join(s.tmpDir, 'ft-features-'));
  const config = ft.resolveConfig({
    overrides: {
      arch: 'resnet18', weights: 'none', phase: 'feature_extract', epochs: s.epochs, batch_size: s.batch,
      optimizer: 'adam', learning_rate: s.lr, weight_decay: s.weightDecay, image_size: s.size, resize: s.resize,
      'data.root': s.root, 'data.train_per_class': s.trainPerClass, 'data.test_per_class': s.testPerClass,
      threads: s.threads, seed: 0, output_dir: out, run_name: 'fe', quiet: true, report: false,
    },
  });
  const t0 = now();
  const events = [];
  const [result] = await ft.train(config, { log: (line) => events.push({ at: now() - t0, line }) });
  const totalSeconds = now() - t0;
  // where the time went: until the feature cache is ready, the epochs (train + validate + checkpoints), the test
  const cacheReady = events.find((e) => /feature cache:/.test(e.line));
  const testLine = events.find((e) => /test: top-1/.test(e.line));
  const breakdown = cacheReady && testLine
    ? { untilFeatureCacheSeconds: cacheReady.at, epochsSeconds: testLine.at - cacheReady.at, headTrainSeconds: result.trainSeconds, afterTestSeconds: totalSeconds - testLine.at }
    : undefined;
  // hand the exact split to the PyTorch side
  const scan = await ft.scanDataset(s.root, { warn: () => undefined });
  const manifest = JSON.parse(fs.readFileSync(path.join(result.runDir, 'split.json'), 'utf8'));
  const abs = (part) => manifest.parts[part].map((e) => ({ path: path.join(scan.root, e.path), label: e.label }));
  fs.writeFileSync(s.splitOut, JSON.stringify({ root: scan.root, classes: manifest.classes, train: abs('train'), val: abs('val'), test: abs('test') }));
  const checkpointsMB = ['best.pth', 'last.pth'].reduce((a, f) => a + fs.statSync(path.join(result.runDir, 'checkpoints', f)).size, 0) / 2 ** 20;
  fs.rmSync(out, { recursive: true, force: true });
  return {
    totalSeconds, breakdown, log: events.map((e) => `${e.at.toFixed(2)} ${e.line}`), wallSeconds: result.wallSeconds, trainSeconds: result.trainSeconds, featureCache: result.featureCache,
    epochs: result.epochs, trainImages: manifest.counts.train, testImages: manifest.counts.test, checkpointsMB,
  };
}

async function kindDrift(s) {
  const numClasses = s.numClasses ?? 101;
  const model = ft.createModel(s.arch, { numClasses });
  let features;
  let featureLabels;
  if (s.headOnly) {
    model.freeze({ except: [model.headPrefix] });
    model.eval();
    // the trainer's feature cache: one tensor of features, batches picked with indexSelect
    features = ft.randn([s.cacheRows, model.featureDim]);
    featureLabels = randomLabels(s.cacheRows, numClasses);
  } else {
    model.train();
  }
  const opt = ft.createOptimizer(model, { type: 'adam', lr: 1e-4 });
  const samples = [];
  const t0 = now();
  const state = { x: 7 };
  let done = 0;
  for (let step = 1; step <= s.steps; step++) {
    // a loaded machine can make tiny OpenMP steps crawl: stop at maxSeconds and say how far it got
    if (s.maxSeconds && now() - t0 > s.maxSeconds && step > s.warmupSteps + s.sampleEvery) break;
    let images;
    let labels;
    if (s.headOnly) {
      const at = (step * s.batch) % (s.cacheRows - s.batch);
      const index = Array.from({ length: s.batch }, (_, i) => at + i);
      images = await ft.indexSelect(features, index);
      labels = await ft.indexSelect(featureLabels, index);
    } else {
      images = ft.randn([s.batch, 3, s.size, s.size]);
      labels = randomLabels(s.batch, numClasses, state);
    }
    await ft.trainStep(model, opt, images, labels, { features: s.headOnly === true });
    images.dispose();
    labels.dispose();
    done = step;
    if (step % s.sampleEvery === 0 || step === 1) {
      samples.push({ step, rssMB: statusMB('VmRSS'), heapMB: process.memoryUsage().heapUsed / 2 ** 20, seconds: now() - t0 });
    }
  }
  const after = samples.find((x) => x.step >= s.warmupSteps) ?? samples[0];
  const last = samples[samples.length - 1];
  const tail = samples.filter((x) => x.step >= after.step).map((x) => x.rssMB);
  return {
    samples,
    driftMB: last.rssMB - after.rssMB,
    fromStep: after.step,
    toStep: last.step,
    maxMinusStartMB: Math.max(...tail) - after.rssMB,
    stepsDone: done,
    stepsPerSec: done / (now() - t0),
  };
}

/** Milliseconds per image of `fn` over `count` images: the median of `repeats` timed runs after one warm-up. */
async function msPerImage(fn, count, repeats) {
  await fn();
  const times = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = now();
    await fn();
    times.push(((now() - t0) * 1000) / count);
  }
  return median(times);
}

async function kindAugment(s) {
  // photo-sized sources with smooth content plus noise (the ops' costs do not depend on content
  // much, but Equalize/AutoContrast's tables and the crops' sizes do vary with it)
  const images = Array.from({ length: s.images }, (_, i) => {
    const width = 341 + (i % 3) * 40;
    const height = 256;
    const data = Buffer.alloc(width * height * 3);
    let x = 12345 + i;
    for (let j = 0; j < data.length; j++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      data[j] = ((j / 3) % width) * 0.5 + ((x >> 16) & 63);
    }
    return { data, width, height };
  });
  const rows = {};
  const variants = [['base', 'none'], ['trivial_augment_wide', 'trivial_augment_wide'], ['rand_augment', 'rand_augment'], ['auto_augment', 'auto_augment']];
  for (const [name, policy] of variants) {
    const t = ft.trainTransform({ size: s.size, threads: 1, augmentPolicy: policy });
    const random = new ft.Random(1);
    const params = images.map((im) => t.sample(im, random));
    rows[name] = await msPerImage(async () => (await t.apply(images, params)).dispose(), images.length, s.repeats);
    log(`ft augment ${name}: ${rows[name].toFixed(3)} ms/img`);
  }
  // each op alone on size² images at a mid magnitude (TrivialAugmentWide's bin 15, positive)
  const square = images.map((im) => ({ data: im.data.subarray(0, s.size * s.size * 3), width: s.size, height: s.size }));
  const space = ft.policySpace('trivial_augment_wide', s.size, s.size);
  const ops = {};
  for (const op of ft.POLICY_OPS) {
    const entry = space.find((e) => e.op === op);
    const magnitude = entry && entry.magnitudes ? entry.magnitudes[15] : op === 'Rotate' ? 45 : 0;
    const steps = square.map(() => [{ op, magnitude }]);
    ops[op] = await msPerImage(() => ft.applyPolicySteps(square, steps), square.length, s.repeats);
  }
  // the copy in and out of applyPolicySteps, measured with Identity, is not part of the op
  log(`ft augment ops (ms/img at ${s.size}², incl. Identity's copy ${ops.Identity.toFixed(3)}): ${Object.entries(ops).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
  return { msPerImage: rows, opMsPerImage: ops, images: images.length, size: s.size };
}

// int8 static quantization (issue 19): ResNet-18 calibrated on the timed batch itself, then the
// int8 forward and, in the same process, the float forward it came from, contiguous and with
// channels-last weights (logits only, all three)
async function kindInt8(s) {
  const model = ft.createModel(s.arch, { numClasses: s.numClasses }).eval();
  const x = ft.randn([s.batch, 3, s.size, s.size]);
  const quantized = await ft.QuantizedModel.quantize(model, [x]);
  const forward = (m) => async () => (await m.forward(x)).dispose();
  const int8 = await runSteps(forward(quantized), s.warmup, s.steps, s.batch);
  const fp32 = await runSteps(forward(model), s.warmup, s.steps, s.batch);
  // the float model at its fastest too: channels-last weights (as the trainer computes)
  await model.channelsLast(true);
  const fp32ChannelsLast = await runSteps(forward(model), s.warmup, s.steps, s.batch);
  return { ...int8, fp32ImgPerSec: fp32.imgPerSec, fp32ChannelsLastImgPerSec: fp32ChannelsLast.imgPerSec, engine: quantized.engine };
}

// structured channel pruning (issue 19): ResNet-18's eval forward dense, then with `amount` of
// each block's inner channels removed (shrink.shrinkChannels), in one process; parameters and the
// saved weights' size of both
async function kindShrink(s) {
  const model = ft.createModel(s.arch, { numClasses: s.numClasses }).eval();
  const x = ft.randn([s.batch, 3, s.size, s.size]);
  const forward = async () => (await model.forward(x)).dispose();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-bench-shrink-'));
  const measure = async (name) => {
    const speed = await runSteps(forward, s.warmup, s.steps, s.batch);
    let parameters = 0;
    for (const t of model.namedParameters().values()) parameters += t.shape.reduce((a, b) => a * b, 1);
    const file = path.join(dir, `${name}.pth`);
    await ft.saveWeights(file, model.stateDict());
    return { imgPerSec: speed.imgPerSec, parameters, fileBytes: fs.statSync(file).size };
  };
  try {
    const dense = await measure('dense');
    await ft.shrink.shrinkChannels(model, { amount: s.amount });
    const shrunk = await measure('shrunk');
    return { ...shrunk, dense, amount: s.amount };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const KINDS = { int8: kindInt8, shrink: kindShrink, step: kindStep, epoch: kindEpoch, loader: kindLoader, features: kindFeatures, drift: kindDrift, augment: kindAugment };

// bench/ddp_trial.js builds its ranks' batches and timings with the same helpers
module.exports = { now, median, randomLabels, makeImages };
if (require.main !== module) return;

(async () => {
  const spec = JSON.parse(process.argv[2]);
  ft.setNumThreads(spec.threads);
  ft.manualSeed(spec.seed ?? 0);
  const result = await KINDS[spec.kind](spec);
  result.threads = ft.getNumThreads();
  result.torchVersion = ft.runtimeInfo().torchVersion;
  result.mallocTuned = Boolean(process.env.MALLOC_ARENA_MAX || process.env.GLIBC_TUNABLES);
  const cpu = process.cpuUsage();
  result.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  result.peakRssMB = statusMB('VmHWM');
  result.rssMB = statusMB('VmRSS');
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
})().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
