// The embedded experiment behind `npm run demo`: no data, weights or network needed. A synthetic
// Caltech-style tree is split into "source" and "target" classes; a small-resolution ResNet-18 is
// pretrained on the source classes and saved as a torchvision-format .pth (standing in for the
// ImageNet weights); then the seed's comparison runs on the target classes, once per seed:
// feature_extract → finetune from those weights, against scratch with the same budget. No
// validation part (the standard protocol): every run tests its final weights.
import * as fs from 'fs';
import * as path from 'path';
import { createSyntheticDataset, SYNTHETIC_CLASS_NAMES } from '../data/synthetic';
import type { ProcessGroup } from '../distributed/process-group';
import { saveWeights } from '../models/weights';
import { loadCheckpoint } from '../training/checkpoint';
import { compareRuns, comparisonMarkdown, type MethodPair } from './compare';
import { resolveConfig, type Config } from './config';
import { writeComparisonReport, writeRunReport } from './report';
import { readResults, type PhaseResult } from './results';
import { train } from './trainer';

export interface DemoOptions {
  /** Where the data, weights and run folders go (default outputs/demo). */
  outputDir?: string;
  imagesPerClass?: number;
  /** Target-task training images per class (the rest are test images). */
  trainPerClass?: number;
  imageSize?: number;
  pretrainEpochs?: number;
  epochs?: number;
  seed?: number;
  /** Seeds of the target comparison (each its own split and head initialisation). Default 0, 1, 2. */
  seeds?: number[];
  /** Mixed precision of every run (the config's amp; default false). */
  amp?: Config['amp'];
  quiet?: boolean;
  log?: (line: string) => void;
  /**
   * Every training run distributed over this group (the demo under our launcher or torchrun). Rank
   * 0 makes the data and writes every file; the output folder is shared (one machine, or a shared
   * filesystem).
   */
  group?: ProcessGroup;
}

export interface DemoResult {
  pretrainedWeights: string;
  results: PhaseResult[];
  table: string;
  /** Fine-tuning against scratch on the same test images: the paired difference and McNemar's test. */
  fineTuneVsScratch: MethodPair;
  /** Fine-tuning's top-1 is higher than scratch's, and McNemar's p < 0.05. */
  fineTuneBeatsScratch: boolean;
  /** compare.html: the table and the curves of all runs. */
  comparisonReport: string;
  wallSeconds: number;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const { out, common, targetData, transfer: transferSettings, pretrainedWeights, hooks, writer, group, log } = await prepareDemo(options);

  // ---- the comparison on the target classes, once per seed --------------------------------------
  const epochs = options.epochs ?? 6;
  const seeds = options.seeds ?? [0, 1, 2];
  const transfer = await train(
    resolveConfig({ overrides: { ...common, ...targetData, ...transferSettings, seeds, run_name: 'target' } }),
    hooks,
  );
  const scratch = await train(
    resolveConfig({ overrides: { ...common, ...targetData, seeds, phase: 'scratch', weights: 'none', epochs: 2 * epochs, learning_rate: 2e-3, run_name: 'target.scratch' } }),
    hooks,
  );
  // rank 0 wrote every results.json
  await group?.barrier();
  const results = [...transfer, ...scratch];
  const comparison = compareRuns(results.map((r) => readResults(r.runDir)));
  const table = comparisonMarkdown(comparison);
  // each target run's report (the scratch run of the same seed overlaid), and the comparison page
  if (writer) {
    for (const r of results) {
      const sameSeed = scratch.find((s) => s.seed === r.seed)!;
      await writeRunReport(r.runDir, { overlay: r.phase === 'scratch' ? [] : [sameSeed.runDir], log });
    }
  }
  const comparisonReport = writer ? await writeComparisonReport(results.map((r) => r.runDir), out) : path.join(out, 'compare.html');
  const fineTuneVsScratch = comparison.pairs.find((p) => p.first.recipe === 'target.finetune' && p.second.recipe === 'target.scratch')!;
  const c = fineTuneVsScratch.comparison;
  return {
    pretrainedWeights,
    results,
    table,
    fineTuneVsScratch,
    fineTuneBeatsScratch: c !== null && c.difference > 0 && c.p < 0.05,
    comparisonReport,
    wallSeconds: (Date.now() - started) / 1000,
  };
}

/** What the demo's target runs share: the data, the pretrained stand-in weights, the run settings. */
export interface PreparedDemo {
  out: string;
  common: Record<string, unknown>;
  targetData: Record<string, unknown>;
  /** The two-stage fine-tuning recipe from the pretrained weights. */
  transfer: Record<string, unknown>;
  pretrainedWeights: string;
  hooks: { log: (line: string) => void; group?: ProcessGroup };
  writer: boolean;
  group?: ProcessGroup;
  log: (line: string) => void;
}

/** Makes the synthetic data and pretrains the "ImageNet" stand-in on the source classes. */
export async function prepareDemo(options: DemoOptions): Promise<PreparedDemo> {
  const out = path.resolve(options.outputDir ?? 'outputs/demo');
  // rank 0 speaks for a distributed demo
  const log = options.group && options.group.rank !== 0 ? () => undefined : (options.log ?? ((line: string) => process.stderr.write(`${line}\n`)));
  const perClass = options.imagesPerClass ?? 60;
  const imageSize = options.imageSize ?? 64;
  const seed = options.seed ?? 0;
  const group = options.group;
  const writer = !group || group.rank === 0;
  const hooks = { log, group };
  if (writer) {
    fs.rmSync(out, { recursive: true, force: true });
    await createDemoData(out, perClass, imageSize, seed, log);
  }
  await group?.barrier();
  const source = path.join(out, 'data', 'source');
  const target = path.join(out, 'data', 'target');

  const common = {
    arch: 'resnet18',
    image_size: imageSize,
    resize: Math.round(imageSize * 1.15),
    batch_size: 16,
    seed,
    device: 'cpu',
    output_dir: path.join(out, 'runs'),
    quiet: options.quiet ?? false,
    report: false, // written below, the fine-tuned run's with scratch overlaid
    'augmentation.color_jitter': 0.1,
    amp: options.amp ?? false,
  };

  // ---- "ImageNet" stand-in: pretrain on the source classes, save torchvision's format ---------
  const [pretrain] = await train(
    resolveConfig({
      overrides: {
        ...common, phase: 'scratch', weights: 'none', epochs: options.pretrainEpochs ?? 12, learning_rate: 2e-3,
        run_name: 'pretrain-source', 'data.root': source, 'data.train_per_class': Math.floor(perClass * 0.8), 'data.test_per_class': perClass,
      },
    }),
    hooks,
  );
  const pretrainedWeights = path.join(out, 'resnet18-source-pretrained.pth');
  if (writer) await saveWeights(pretrainedWeights, (await loadCheckpoint(pretrain.checkpoints.best)).stateDict);
  await group?.barrier();
  log(`demo: pretrained weights (torchvision format) in ${pretrainedWeights}, source test top-1 ${(pretrain.test.top1 * 100).toFixed(1)}%`);

  const targetData = { 'data.root': target, 'data.train_per_class': options.trainPerClass ?? 8, 'data.test_per_class': perClass };
  const epochs = options.epochs ?? 6;
  const transfer = { phase: 'two-stage', weights: pretrainedWeights, epochs, finetune_epochs: epochs, finetune_lr: 1e-4, head_lr: 1e-3, learning_rate: 1e-2 };
  return { out, common, targetData, transfer, pretrainedWeights, hooks, writer, group, log };
}

/** 4 source classes for "pretraining", 4 different target classes. */
async function createDemoData(out: string, perClass: number, imageSize: number, seed: number, log: (line: string) => void): Promise<void> {
  const all = path.join(out, 'data', 'all');
  await createSyntheticDataset(all, { classes: 8, perClass, size: Math.round(imageSize * 1.25), seed, layout: 'imagefolder', randomColours: true, extras: { grayscale: false } });
  const source = path.join(out, 'data', 'source');
  const target = path.join(out, 'data', 'target');
  SYNTHETIC_CLASS_NAMES.forEach((name, i) => fs.cpSync(path.join(all, name), path.join(i < 4 ? source : target, name), { recursive: true }));
  fs.rmSync(all, { recursive: true, force: true });
  log(`demo: synthetic data in ${path.join(out, 'data')} (source: ${SYNTHETIC_CLASS_NAMES.slice(0, 4).join(', ')}; target: ${SYNTHETIC_CLASS_NAMES.slice(4).join(', ')})`);
}
