'use strict';
// One rank of the bench's `ddp` group (`npm run bench -- --ddp`), started by bench/run.js once per
// rank with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Argument: one JSON
// spec. Every rank prints one line "BENCH_RESULT {json}" on stdout (rank 0's carries the figures);
// progress goes to stderr.
//
// In one process group, one after another (in the spec's order of `phases`), on the same model:
//   reducer   trainStep with DDP's Reducer (bucketed all-reduce overlapping backward)
//   flat      trainStep with flat buckets all-reduced after backward (no overlap)
//   none      trainStep without gradient averaging: the compute the ranks do, communication free
// then `group.allReduce` of one flat float32 tensor as large as the model's gradients.
//
// Step time: every timed step starts after a barrier, so all ranks start it together, and each
// rank times its own trainStep; the step's time is the slowest rank's (one max all-reduce of the
// per-step times after the timed steps, so no collective of the bench's own runs inside them).
// The barrier itself is outside the timed window. The global batch over the step time is the
// global img/s, as `ft_trial.js` counts one process's img/s.
const fs = require('fs');
const ft = require('../dist/lib');
const { now, median, randomLabels, makeImages } = require('./ft_trial');

const spec = JSON.parse(process.argv[2]);
const rank = Number(process.env.RANK);
const worldSize = Number(process.env.WORLD_SIZE);
const log = (line) => process.stderr.write(`rank ${rank}: ${line}\n`);

function statusMB(field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Each step's time on the slowest rank, given this rank's own. */
async function slowestRank(group, times) {
  const all = ft.tensor(Float64Array.from(times), [times.length]);
  await group.allReduce(all, 'max');
  const out = Array.from(all.toTypedArray());
  all.dispose();
  return out;
}

function summary(times, imagesPerStep) {
  const total = times.reduce((a, b) => a + b, 0);
  return { stepSeconds: times, meanStepSeconds: total / times.length, medianStepSeconds: median(times), imgPerSec: (times.length * imagesPerStep) / total };
}

async function timedSteps(group, step, warmup, steps) {
  for (let i = 0; i < warmup; i++) await step();
  const times = [];
  for (let i = 0; i < steps; i++) {
    await group.barrier();
    const t0 = now();
    await step();
    times.push(now() - t0);
  }
  return slowestRank(group, times);
}

(async () => {
  ft.setNumThreads(spec.threads);
  ft.manualSeed(spec.seed ?? 0);
  const group = await ft.ProcessGroup.init({
    rank, worldSize, localRank: rank, localWorldSize: worldSize, masterAddr: process.env.MASTER_ADDR ?? '127.0.0.1', masterPort: Number(process.env.MASTER_PORT),
    timeoutSeconds: spec.timeoutSeconds ?? 120, backend: 'gloo',
  });
  // the trainer's finetune phase: every layer trained, channels-last weights and batch
  const model = ft.createModel(spec.arch, { numClasses: spec.numClasses });
  await model.channelsLast(true);
  model.train();
  await group.broadcastModel(model);
  const optimizer = ft.createOptimizer(model, { type: 'sgd', lr: 0.01, momentum: 0.9 });
  const images = await makeImages(spec.batchPerRank, spec.size, true);
  const labels = randomLabels(spec.batchPerRank, spec.numClasses, { x: 12345 + rank });
  const globalBatch = spec.batchPerRank * worldSize;
  const gradientValues = [...model.namedParameters()].reduce((n, [, t]) => n + t.shape.reduce((a, b) => a * b, 1), 0);

  const phases = {};
  for (const phase of spec.phases) {
    const sync = phase === 'none' ? null : await group.gradientSync(model, { flatBuckets: phase === 'flat', bucketCapMb: spec.bucketCapMb ?? 25 });
    const options = sync ? { gradientSync: sync } : {};
    const times = await timedSteps(group, () => ft.trainStep(model, optimizer, images, labels, options), spec.warmup, spec.steps);
    phases[phase] = { mode: sync ? sync.mode : 'none', ...summary(times, globalBatch) };
    log(`${phase} (${phases[phase].mode}): ${phases[phase].imgPerSec.toFixed(1)} img/s global, median step ${(phases[phase].medianStepSeconds * 1000).toFixed(1)} ms`);
    if (sync) sync.dispose();
  }

  // the all-reduce the gradients cost, in one piece: a float32 tensor of the gradients' size
  const flat = ft.randn([gradientValues]);
  for (let i = 0; i < spec.allReduce.warmup; i++) await group.allReduce(flat);
  const allReduceTimes = await timedSteps(group, () => group.allReduce(flat), 0, spec.allReduce.repeats);
  flat.dispose();
  const allReduce = { bytes: gradientValues * 4, values: gradientValues, seconds: allReduceTimes, medianSeconds: median(allReduceTimes) };
  log(`all-reduce of ${(allReduce.bytes / 1e6).toFixed(1)} MB: median ${(allReduce.medianSeconds * 1000).toFixed(1)} ms`);

  await group.barrier();
  group.dispose();
  const cpu = process.cpuUsage();
  const result = {
    rank, worldSize, threads: ft.getNumThreads(), globalBatch, batchPerRank: spec.batchPerRank, size: spec.size, phases, allReduce,
    // the headline of the trial in run.js's progress line: the Reducer's global img/s
    imgPerSec: (phases.reducer ?? Object.values(phases)[0]).imgPerSec,
    torchVersion: ft.runtimeInfo().torchVersion, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssMB: statusMB('VmHWM'), rssMB: statusMB('VmRSS'),
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
})().catch((error) => {
  process.stderr.write(`rank ${rank}: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
