// The training script, read top to bottom like pytorch/examples' imagenet main.py: runPhase sets
// up the run folder, data, model and optimizer, then runs trainOneEpoch / validate /
// saveCheckpoint each epoch, then tests the best weights. What differs between the phases
// (feature_extract, finetune, scratch) is decided once, in phases.ts; two-stage is train() running
// feature_extract then finetune from its best.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { scanDataset } from '../data/caltech101';
import { BatchMix } from '../data/mix';
import { deriveSeed, Random } from '../data/random';
import { DistributedFailure, type GradientSync, type ProcessGroup } from '../distributed/process-group';
import { distributedShard, evaluationShard } from '../distributed/sampler';
import type { Split } from '../data/splits';
import { createModel, type ConvAlgorithm, type Model } from '../models/model';
import { loadPretrained } from '../models/weights';
import { getNumThreads, manualSeed, resolveDevice, runtimeInfo, setCudnnBenchmark, setNumThreads } from '../runtime';
import { resizeChannels, channelWidths } from '../models/shrink';
import { loadCheckpoint, loadCheckpointWeights, restoreCheckpoint, writeCheckpoints } from '../training/checkpoint';
import { createOptimizer, type Optimizer } from '../training/optimizer';
import { createScheduler, type LrScheduler } from '../training/schedulers';
import { trainStep } from '../training/steps';
import { tensor, type Tensor } from '../tensor';
import { pct } from '../utils/format';
import { imageBatches, ONE_PROCESS, type PhaseBatches, type SampleShards } from './batches';
import { ConfigError, type Config } from './config';
import { evaluate, type Evaluation, type LabelledBatches } from './evaluate';
import { buildFeatureCache } from './feature-cache';
import { AverageMeter, ProgressLine } from './meters';
import { chooseSplit, loadPhaseData } from './phase-data';
import { applyPlan, optimizerOptions, planPhase, schedulerConfig, type PhaseConfig, type PhasePlan } from './phases';
import { denseFigures, pruneRound, pruningSummary, roundAmount, roundStarts } from './pruning-schedule';
import { writeRunReport } from './report';
import { writeResults, type PhaseResult } from './results';
import { RunLog } from './run-log';
import { createRunFolder, runFolder, timestamp, type RunFolder } from './run-folder';

export interface RunHooks {
  /** Progress and summaries (default: stderr unless config.quiet). */
  log?: (line: string) => void;
  /** Aborting finishes the current step, writes `last`, and rejects with InterruptedError. */
  signal?: AbortSignal;
  /** Resolves 'imagenet' weights to a local file (the CLI downloads into the torch hub cache). */
  resolveImagenetWeights?: (arch: string) => Promise<string>;
  /** Continue this run folder from its last checkpoint. */
  resumeDir?: string;
  /**
   * For audits: rewrites every evaluation of the test part before the trainer sees it (e.g. to
   * invert or shuffle it), to show that no choice depends on test figures.
   */
  auditTestEvaluation?: (evaluation: Evaluation) => Evaluation;
  /**
   * A distributed run: this process's group (the CLI joins it from torchrun's environment). Each
   * rank trains on its shard of every epoch with DDP's gradient averaging; rank 0 writes.
   */
  group?: ProcessGroup;
}

export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(readonly lastCheckpoint: string) {
    super(`interrupted: the current step finished and ${lastCheckpoint} was written; continue with --resume`);
  }
}

/**
 * This process's part in the run. One process trains on every sample and writes every file; in a
 * distributed run each rank takes its shard of each epoch and only rank 0 writes.
 */
interface ProcessRole {
  shards: SampleShards;
  /** Writes checkpoints, logs and results. */
  writer: boolean;
  group?: ProcessGroup;
}
const SINGLE_PROCESS: ProcessRole = { shards: ONE_PROCESS, writer: true };

function processRole(group: ProcessGroup | undefined): ProcessRole {
  if (!group) return SINGLE_PROCESS;
  const shards: SampleShards = { train: distributedShard(group.rank, group.size), evaluation: (count) => evaluationShard(count, group.rank, group.size) };
  return { shards, writer: group.rank === 0, group };
}

/** Everything the epoch functions share, and the counters they advance. */
interface PhaseRun {
  config: PhaseConfig;
  plan: PhasePlan;
  folder: RunFolder;
  role: ProcessRole;
  device: string;
  split: Split;
  model: Model;
  optimizer: Optimizer;
  scheduler: LrScheduler;
  batches: PhaseBatches;
  /** Distributed runs: the trainable parameters' gradient averaging. */
  sync?: GradientSync;
  runLog?: RunLog;
  /** MixUp/CutMix of the training batches, or null when off (or the phase does not mix). */
  mix: BatchMix | null;
  hooks: RunHooks;
  log: (line: string) => void;
  startEpoch: number;
  step: number;
  bestValTop1: number;
  /** Without a validation part: the last epoch's test evaluation, which is the final test's (same weights). */
  finalTest?: Evaluation;
  /** config.prune at work: the epoch each round starts at, and the network's figures before pruning. */
  pruning?: { starts: number[]; dense: ReturnType<typeof denseFigures> };
}

/**
 * Runs the configured phase, or both stages of 'two-stage'; with `seeds`, the whole recipe once
 * per seed (its own split and head initialisation) into sibling run folders `<name>.seed<N>…`.
 */
export async function train(config: Config, hooks: RunHooks = {}): Promise<PhaseResult[]> {
  config = await agreedRunName(config, hooks.group);
  if (!config.seeds) return trainRecipe(config, hooks);
  const base = config.run_name ?? `${config.arch}-${config.phase}-${timestamp()}`;
  const results: PhaseResult[] = [];
  for (const seed of config.seeds) results.push(...(await trainRecipe({ ...config, seeds: null, seed, run_name: `${base}.seed${seed}` }, hooks)));
  return results;
}

async function trainRecipe(config: Config, hooks: RunHooks): Promise<PhaseResult[]> {
  if (config.phase !== 'two-stage') return [await runPhase({ ...config, phase: config.phase }, hooks)];
  const base = config.run_name ?? `${config.arch}-two-stage-${timestamp()}`;
  const first = await runPhase({ ...config, phase: 'feature_extract', run_name: `${base}.feature_extract` }, hooks);
  // phase 2 starts from phase 1's selected weights: its final ones, or its best by validation
  const second = await runPhase(
    { ...config, phase: 'finetune', run_name: `${base}.finetune`, init_checkpoint: first.checkpoints.best, epochs: config.finetune_epochs ?? config.epochs },
    hooks,
  );
  return [first, second];
}

/** Every rank names its run folders after rank 0's clock. */
async function agreedRunName<C extends Config | PhaseConfig>(config: C, group: ProcessGroup | undefined): Promise<C> {
  if (!group || config.run_name) return config;
  const phase = config.phase === 'two-stage' ? 'two-stage' : config.phase;
  return { ...config, run_name: await group.shareString('run_name', `${config.arch}-${phase}-${timestamp()}`) };
}

/** One phase: its own run folder with checkpoints/, logs/, config.yaml, split.json, results.json. */
export async function runPhase(config: PhaseConfig, hooks: RunHooks = {}): Promise<PhaseResult> {
  const group = hooks.group;
  try {
    return await runPhaseIn(await agreedRunName(config, group), hooks);
  } catch (error) {
    // a collective that failed, or this rank's own error: either way the run cannot go on; name
    // the rank that went away, if one did
    if (!group || group.disposed || error instanceof InterruptedError || error instanceof DistributedFailure) throw error;
    throw await group.explainFailure(error);
  }
}

async function runPhaseIn(config: PhaseConfig, hooks: RunHooks): Promise<PhaseResult> {
  const started = Date.now();
  // the thread count is process-wide: set for this phase, and the caller's put back after it;
  // the processes of a distributed run on one machine share its cores
  const callerThreads = getNumThreads();
  setNumThreads(config.threads ?? (hooks.group ? workerThreads(hooks.group) : Math.max(1, os.cpus().length)));
  manualSeed(config.seed);
  const run = await setUpPhase(config, hooks);
  try {
    let trainSeconds = 0;
    // last.pth after an epoch once checkpoint_interval seconds have passed (a 45 MB write costs more
    // than a whole epoch of head training on cached features), and always after a new best (best.pth
    // is a link to it) and after the final epoch
    let lastWrittenAt = Date.now();
    for (let epoch = run.startEpoch; epoch < config.epochs; epoch++) {
      // round 0 was pruned before the optimizer was built
      for (let round = 1; round < (run.pruning?.starts.length ?? 0); round++) if (run.pruning!.starts[round] === epoch) await nextPruningRound(run, round);
      const trained = await trainOneEpoch(run, epoch);
      trainSeconds += trained.seconds;
      const imagesPerSecond = trained.images / trained.seconds; // every rank's images
      // The validation part decides (best epoch, plateau). Without one nothing is chosen by
      // evaluation: the final weights are tested, and the test part is only watched for the curves.
      const val = run.batches.val ? await validate(run, run.batches.val(), run.split.val.length) : undefined;
      const watched = val ?? (await testEvaluation(run));
      if (!val && epoch + 1 === config.epochs) run.finalTest = watched;
      const heldOut: Record<string, string> = val ? { 'val top1': pct(val.top1) } : { 'test top1 (watched only)': pct(watched.top1) };
      trained.progress.finish({ loss: trained.loss.toFixed(4), top1: pct(trained.top1), ...heldOut, 'img/s': imagesPerSecond.toFixed(1) });
      const lr = run.optimizer.getLr(0);
      run.scheduler.step(run.scheduler.needsMetric ? (val ?? trained).top1 : undefined);
      const final = epoch + 1 === config.epochs;
      // pruning: the best epoch is chosen within the last round, at the final sparsity
      const selectable = !run.pruning || epoch >= run.pruning.starts[run.pruning.starts.length - 1];
      const isBest = val ? selectable && val.top1 > run.bestValTop1 : final;
      if (val && isBest) run.bestValTop1 = val.top1;
      if (isBest || final || (Date.now() - lastWrittenAt) / 1000 >= config.checkpoint_interval) {
        await saveCheckpoint(run, epoch + 1, isBest);
        lastWrittenAt = Date.now();
        run.log(`[${run.folder.name}] checkpoint: epoch ${epoch + 1} written to last.pth${isBest ? ' (best.pth: the same file)' : ''}`);
      }
      run.runLog?.epoch({
        phase: config.phase, epoch: epoch + 1, step: run.step, lr, imagesPerSecond, testMonitor: !val,
        train: { loss: trained.loss, top1: trained.top1, top5: trained.top5 },
        val: { loss: watched.loss, top1: watched.top1, top5: watched.top5 },
      });
    }
    return await testBestWeights(run, { wallStarted: started, trainSeconds });
  } finally {
    run.sync?.dispose();
    run.runLog?.close();
    run.batches.dispose();
    setNumThreads(callerThreads);
    run.optimizer.dispose();
    run.model.dispose();
  }
}

/** Run folder, split, model, optimizer, scheduler, loaders, resume, feature cache and logs. */
async function setUpPhase(config: PhaseConfig, hooks: RunHooks): Promise<PhaseRun> {
  const role = processRole(hooks.group);
  const group = role.group;
  // rank 0 speaks for the run; the other ranks only fail loudly
  const log = !role.writer ? () => undefined : (hooks.log ?? ((line: string) => (config.quiet ? undefined : process.stderr.write(`${line}\n`))));
  let device = resolveDevice(config.device);
  if (group && device === 'cuda') device = `cuda:${group.localRank}`;
  const plan = planPhase(config);
  const folder = role.writer ? createRunFolder(config, hooks.resumeDir) : runFolder(hooks.resumeDir ?? path.join(config.output_dir, config.run_name!));

  const scan = await scanDataset(config.data.root, { includeBackground: config.data.include_background, warn: log });
  // rank 0 chooses and saves the split; the others read it (or, without a shared folder, choose
  // the same one: it is a function of the seed)
  if (group && !role.writer) await group.barrier();
  const split = await chooseSplit(config, scan, folder.dir, log, role.writer);
  if (group && role.writer) await group.barrier();
  log(
    `[${folder.name}] ${config.phase} · ${config.arch} on ${device} · ${split.classes.length} classes · ` +
      `train ${split.train.length} / val ${split.val.length} / test ${split.test.length} images` +
      (split.val.length === 0
        ? ' (no validation part: the final weights are tested; per-epoch test figures are watched, never used to choose)'
        : ` (validation carved out of the training images: best epoch by validation top-1; this changes the protocol)`),
  );

  const model = await createPhaseModel(config, plan, split.classes.length, device, hooks, log);
  let pruning: PhaseRun['pruning'];
  try {
    pruning = await startPruning(config, model, folder, hooks, log);
  } catch (error) {
    model.dispose();
    throw error;
  }
  const optimizer = createOptimizer(model, optimizerOptions(config, plan, model));
  const scheduler = createScheduler(optimizer, schedulerConfig(config));
  try {
    const data = await loadPhaseData(split, config, plan, { channelsLast: config.channels_last, pinMemory: device.startsWith('cuda') }, log);
    const resumed = hooks.resumeDir ? await resume(folder, model, optimizer, scheduler, log) : { epoch: 0, step: 0, bestValTop1: -1 };
    if (group) {
      // the same starting weights everywhere, checked to be the same network, as DDP does
      await group.broadcastModel(model);
      const global = config.batch_size * group.size;
      log(
        `[${folder.name}] distributed: ${group.size} processes (${group.backend}), batch_size ${config.batch_size} per process: ` +
          `global batch ${global}; ${getNumThreads()} thread(s) per process; BatchNorm statistics per process; rank 0 writes`,
      );
    }
    if (plan.featureCacheRefused) log(`[${folder.name}] feature cache: ${plan.featureCacheRefused}`);
    let batches: PhaseBatches;
    if (plan.featureCache) {
      batches = await buildFeatureCache(model, data, config, device, folder.name, log, role.shards, group);
      // A head step on cached features is a few MFLOP: OpenMP's fork/join costs more than the work
      // (2 cores: 50 epochs of head training took 1.55 s with 2 threads, 0.40 s with 1).
      if (device === 'cpu') setNumThreads(1);
    } else {
      batches = imageBatches(data, device, role.shards);
    }
    // DDP's Reducer over what this phase trains (after freezing: the frozen parameters are not in it)
    const sync = group ? await group.gradientSync(model) : undefined;
    const { mixup_alpha: mixupAlpha, cutmix_alpha: cutmixAlpha } = config.augmentation;
    const mix = plan.mixBatches && !batches.features ? new BatchMix({ mixupAlpha, cutmixAlpha, numClasses: split.classes.length }) : null;
    return {
      config, plan, folder, role, device, split, model, optimizer, scheduler, batches, sync, hooks, log, mix: mix?.enabled ? mix : null,
      runLog: role.writer ? new RunLog(folder.logs) : undefined,
      startEpoch: resumed.epoch, step: resumed.step, bestValTop1: resumed.bestValTop1, pruning,
    };
  } catch (error) {
    optimizer.dispose();
    model.dispose();
    throw error;
  }
}

/**
 * Loads the selected weights (best.pth: the best epoch by validation, or the final one), tests them
 * and writes results.json and the report.
 */
async function testBestWeights(run: PhaseRun, time: { wallStarted: number; trainSeconds: number }): Promise<PhaseResult> {
  const { config, folder, split, model } = run;
  // final selection: the model already holds the tested weights, and the last epoch tested them
  let test = run.finalTest;
  if (!test) {
    if (run.role.writer) {
      if (fs.existsSync(folder.best)) await loadCheckpointWeights(await loadCheckpoint(folder.best), model);
      else await saveCheckpoint(run, config.epochs, true);
    }
    // rank 0 read the selected weights: every rank tests them
    if (run.role.group) await run.role.group.broadcastModel(model);
    test = await testEvaluation(run);
  }
  run.runLog?.test(config.phase, config.epochs, run.step, test);
  const wallSeconds = (Date.now() - time.wallStarted) / 1000;
  const { predictions, confusion, ...summary } = test;
  const result: PhaseResult = {
    run: folder.name, runDir: folder.dir, phase: config.phase, arch: config.arch, seed: config.seed, epochs: config.epochs, wallSeconds, trainSeconds: time.trainSeconds,
    selection: run.batches.val ? 'validation' : 'final', bestValTop1: run.batches.val ? run.bestValTop1 : null, featureCache: run.batches.features, test: summary, checkpoints: { best: folder.best, last: folder.last },
    ...(run.pruning ? { pruning: pruningSummary(model, config.prune, run.pruning.dense) } : {}),
  };
  run.log(`[${folder.name}] test: top-1 ${pct(test.top1)}  top-5 ${pct(test.top5)}  mean per-class ${pct(test.meanPerClass)}  (${test.count} images, ${wallSeconds.toFixed(1)} s)`);
  if (run.role.writer) {
    const files = predictions.map((p, i) => ({ ...p, file: path.relative(split.root, split.test[i].path) }));
    await writeResults(folder.dir, { ...result, confusion, predictions: files });
    if (config.report) await writeRunReport(folder.dir, { log: run.log });
  }
  return result;
}

/** The phase's network on its device and layout, with its starting weights, frozen as the plan says. */
async function createPhaseModel(config: PhaseConfig, plan: PhasePlan, numClasses: number, device: string, hooks: RunHooks, log: (line: string) => void): Promise<Model> {
  const model = createModel(config.arch, { numClasses, head: config.head, attention: config.attention });
  try {
    await initialiseWeights(model, config, plan, hooks, log);
    if (device.startsWith('cuda')) {
      await model.to(device);
      setCudnnBenchmark(true);
    }
    if (config.channels_last) await model.channelsLast(true);
    await model.convAlgorithm(convAlgorithmFor(config.conv_algorithm, device));
    applyPlan(model, plan);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * conv_algorithm as this process can honour it: 'auto' is Winograd on a CPU whose build and
 * hardware have it (runtimeInfo().winograd), direct elsewhere; an explicit 'winograd' that cannot
 * run is an error saying why. On CUDA the convolutions are cuDNN's whatever is chosen.
 */
export function convAlgorithmFor(choice: Config['conv_algorithm'], device: string): ConvAlgorithm {
  if (choice === 'direct' || device.startsWith('cuda')) return 'direct';
  const support = runtimeInfo().winograd;
  if (choice === 'auto') return support.available ? 'winograd' : 'direct';
  if (!support.available) throw new ConfigError(`conv_algorithm 'winograd' is not available: ${support.reason} (use conv_algorithm auto or direct)`);
  return 'winograd';
}

async function initialiseWeights(model: Model, config: PhaseConfig, plan: PhasePlan, hooks: RunHooks, log: (line: string) => void): Promise<void> {
  if (plan.init === 'checkpoint') {
    const checkpoint = await loadCheckpoint(config.init_checkpoint!);
    await loadCheckpointWeights(checkpoint, model);
    log(`weights: ${config.init_checkpoint} (the feature_extract phase's best)`);
    return;
  }
  if (plan.init === 'random') {
    log('weights: random initialisation (PyTorch defaults)');
    return;
  }
  let file = config.weights;
  if (file === 'imagenet') {
    if (!hooks.resolveImagenetWeights) throw new Error("weights 'imagenet' need a resolver (the CLI downloads them); pass a file path instead");
    file = await hooks.resolveImagenetWeights(config.arch);
  }
  const result = await loadPretrained(model, file);
  const attention = result.missingKeys.length ? `; new ${config.attention} attention layers, initialised: ${result.missingKeys.length} tensors` : '';
  log(`weights: ${file} (${result.format})${result.skippedKeys.length ? `; new head, not loaded: ${result.skippedKeys.join(', ')}` : ''}${attention}`);
}

/**
 * config.prune in a finetune phase: round 0 now, before the optimizer is built (pruning renames
 * weight -> weight_orig); resuming, a shrunk network takes last.pth's widths instead.
 */
async function startPruning(config: PhaseConfig, model: Model, folder: RunFolder, hooks: RunHooks, log: (line: string) => void): Promise<PhaseRun['pruning']> {
  if (config.prune.method === 'none' || config.phase !== 'finetune') return undefined;
  if (hooks.group) throw new Error('prune is not supported in distributed runs (each round would need the gradient averaging rebuilt)');
  const dense = denseFigures(model);
  const starts = roundStarts(config.prune, config.epochs);
  const resumedWidths = hooks.resumeDir && fs.existsSync(folder.last) ? (await loadCheckpoint(folder.last)).channelWidths : undefined;
  if (config.prune.method === 'l2_structured_shrink' && resumedWidths) {
    const current = channelWidths(model);
    if (Object.entries(resumedWidths).some(([name, width]) => current[name] !== width)) await resizeChannels(model, resumedWidths);
  } else {
    await pruneRound(model, config.prune);
  }
  log(
    `[${folder.name}] prune: ${config.prune.method}, ${(config.prune.amount * 100).toFixed(1)}% in ${config.prune.steps} round(s) ` +
      `(each ${(roundAmount(config.prune) * 100).toFixed(1)}% of what is left) at epochs ${starts.join(', ')}`,
  );
  return { starts, dense };
}

/**
 * The next pruning round. Masks change in place (the optimizer keeps its parameters); shrinking
 * changes shapes, so the optimizer is built again (its momentum restarts) with the learning
 * rates it had, and the scheduler continues from its state.
 */
async function nextPruningRound(run: PhaseRun, round: number): Promise<void> {
  const { config, model } = run;
  await pruneRound(model, config.prune);
  if (config.prune.method === 'l2_structured_shrink') {
    const old = run.optimizer;
    const optimizer = createOptimizer(model, optimizerOptions(config, run.plan, model));
    for (let g = 0; g < optimizer.groupCount; g++) optimizer.setLr(g, old.getLr(g));
    const scheduler = createScheduler(optimizer, schedulerConfig(config));
    scheduler.loadStateDict(run.scheduler.stateDict());
    old.dispose();
    run.optimizer = optimizer;
    run.scheduler = scheduler;
  }
  run.log(`[${run.folder.name}] prune: round ${round + 1}/${config.prune.steps}`);
}

/** Continues from last.pth: weights, optimizer, scheduler and RNG state, and the counters. */
async function resume(folder: RunFolder, model: Model, optimizer: Optimizer, scheduler: LrScheduler, log: (line: string) => void) {
  const checkpoint = await loadCheckpoint(folder.last);
  await restoreCheckpoint(checkpoint, { model, optimizer, scheduler });
  log(`[${folder.name}] resumed from ${folder.last}: epoch ${checkpoint.epoch}, step ${checkpoint.step}`);
  return { epoch: checkpoint.epoch, step: checkpoint.step, bestValTop1: checkpoint.bestMetric ?? -1 };
}

/** One pass over the training batches; stops the run with a clear error when it diverges. */
async function trainOneEpoch(run: PhaseRun, epoch: number) {
  const { config, model, optimizer, batches, folder } = run;
  const epochStart = Date.now();
  const losses = new AverageMeter('loss');
  const top1 = new AverageMeter('top1');
  const top5 = new AverageMeter('top5');
  const ranks = run.role.group?.size ?? 1;
  const progress = new ProgressLine(`[${folder.name}] epoch ${epoch + 1}/${config.epochs}`, batches.trainLength, { quiet: config.quiet || !run.role.writer });
  let done = 0;
  for await (const batch of batches.train(epoch)) {
    const targets = run.mix ? await mixBatch(run, run.mix, batch, epoch, done) : batch.labels;
    const result = await trainStep(model, optimizer, batch.images, targets, {
      labelSmoothing: config.label_smoothing,
      features: batches.features,
      gradStatsBins: run.step % 50 === 0 ? 30 : 0,
      amp: batches.features ? false : config.amp,
      gradientSync: run.sync,
    }).catch((error: Error) => {
      // a diverged run stops here; last.pth still holds the last good epoch
      throw new Error(`training stopped at step ${run.step + 1} (epoch ${epoch + 1}): ${error.message}; ${keptCheckpoint(folder)}`);
    });
    run.step++;
    losses.update(result.loss, result.count);
    top1.update(result.correct1 / result.count, result.count);
    top5.update(result.correct5 / result.count, result.count);
    if (result.gradStats) run.runLog?.gradients(config.phase, run.step, result.gradStats);
    batch.images.dispose();
    batch.labels.dispose();
    if (targets !== batch.labels) targets.dispose();
    done++;
    // the global rate: every rank trains as many images at about this pace
    const rate = (ranks * top1.count) / ((Date.now() - epochStart) / 1000);
    progress.update(done, { loss: losses.average.toFixed(4), top1: pct(top1.average), 'img/s': rate.toFixed(1) });
    if (await stopRequested(run)) {
      await saveCheckpoint(run, epoch, false);
      throw new InterruptedError(folder.last);
    }
  }
  const broken = await model.nonFinite({ trainableOnly: true });
  if (broken.length > 0) {
    throw new Error(
      `training stopped at step ${run.step} (epoch ${epoch + 1}): ${broken.length} parameter(s) became NaN/Inf ` +
        `(${broken.slice(0, 3).join(', ')}…); lower the learning rate; ${keptCheckpoint(folder)}`,
    );
  }
  const seconds = (Date.now() - epochStart) / 1000;
  if (!run.role.group) return { loss: losses.average, top1: top1.average, top5: top5.average, images: losses.count, seconds, progress };
  // the epoch's figures over every rank's images
  const sums = tensor(Float64Array.from([losses.sum, top1.sum, top5.sum, losses.count]), [4]);
  await run.role.group.allReduce(sums);
  const [loss, hits1, hits5, images] = sums.toTypedArray() as Float64Array;
  sums.dispose();
  return { loss: loss / images, top1: hits1 / images, top5: hits5 / images, images, seconds, progress };
}

/**
 * MixUp/CutMix of one training batch in place; returns its soft targets. In a distributed run each
 * rank mixes its own batch with its own draws (the rank is part of the seed), which is how DDP
 * users of torchvision's reference run it: the mixing sits in each process's collate_fn.
 */
async function mixBatch(run: PhaseRun, mix: BatchMix, batch: { images: Tensor; labels: Tensor }, epoch: number, index: number): Promise<Tensor> {
  const random = new Random(deriveSeed(run.config.seed, `mix:${run.role.group?.rank ?? 0}:${epoch}:${index}`));
  const [height, width] = batch.images.shape.slice(2);
  return (await mix.apply(batch.images, batch.labels, mix.sample(width, height, random))).targets;
}

/**
 * Ctrl-C (or the launcher's forwarded signal): every rank of a distributed run stops after the
 * same step, so rank 0 writes its checkpoint while the others wait, instead of a rank that
 * stopped first looking lost to the rest. One all-reduce of one number per step.
 */
async function stopRequested(run: PhaseRun): Promise<boolean> {
  const here = run.hooks.signal?.aborted === true;
  const group = run.role.group;
  if (!group) return here;
  const flag = tensor(Float32Array.of(here ? 1 : 0), [1]);
  await group.allReduce(flag, 'max');
  const anywhere = (flag.toTypedArray() as Float32Array)[0] > 0;
  flag.dispose();
  return anywhere;
}

/** Intra-op threads of a distributed worker: OMP_NUM_THREADS (our launcher sets it), else its share of the cores. */
function workerThreads(group: ProcessGroup): number {
  const omp = Number(process.env.OMP_NUM_THREADS);
  if (Number.isInteger(omp) && omp > 0) return omp;
  return Math.max(1, Math.floor(os.cpus().length / group.localWorldSize));
}

function keptCheckpoint(folder: RunFolder): string {
  return fs.existsSync(folder.last) ? `the last good checkpoint ${folder.last} is kept` : 'no checkpoint was written yet';
}

/** Loss, top-1/top-5, per-class accuracy and confusion matrix on validation or test batches. */
function validate(run: PhaseRun, batches: LabelledBatches, total: number): Promise<Evaluation> {
  return evaluate(run.model, batches, run.split.classes, { features: run.batches.features, group: run.role.group, total });
}

/** The test part's figures: for the report and the curves, never for a choice. */
async function testEvaluation(run: PhaseRun): Promise<Evaluation> {
  const test = await validate(run, run.batches.test(), run.split.test.length);
  return run.hooks.auditTestEvaluation ? run.hooks.auditTestEvaluation(test) : test;
}

/** last.pth (and best.pth, the same file, when this is the best epoch), from the writing process only. */
async function saveCheckpoint(run: PhaseRun, epoch: number, isBest: boolean): Promise<void> {
  if (!run.role.writer) return;
  const { model, optimizer, scheduler, step, bestValTop1, config } = run;
  await writeCheckpoints(run.folder.checkpoints, { model, optimizer, scheduler, epoch, step, bestMetric: bestValTop1, config, extra: { classes: run.split.classes } }, isBest);
}
