// Every run ends with pictures: curves, the confusion matrix, the worst-confused pairs, gradient
// norms per layer, a t-SNE of the test set's penultimate features, and report.html holding them.
// `finetorch report <run…>` regenerates all of it from the saved logs and checkpoint.
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { ImageCache } from '../data/cache';
import { EVAL_DECODE } from '../data/decode';
import { DataLoader } from '../data/loader';
import { evalTransform } from '../data/transforms';
import {
  confusionMatrixChart,
  gradientNormChart,
  lineChart,
  scatterChart,
  worstConfusions,
  worstConfusionsChart,
  type LineSeries,
} from '../report/charts';
import { writeReport, type ReportImage } from '../report/html';
import { readMetrics, type EpochMetrics, type GradNormRecord } from '../report/metrics-log';
import { EventWriter } from '../report/tensorboard';
import { tsne } from '../report/tsne';
import { cat, type Tensor } from '../tensor';
import { clippedInterval, compareRuns, comparisonRows, formatPair, formatSpread, selectionNote } from './compare';
import { readResults } from './results';
import type { PruningSummary } from './pruning-schedule';
import { loadRun, loadRunSplit } from './runs';

export interface RunReportOptions {
  /** t-SNE of the test features (default true); capped at `tsnePoints` images. */
  tsne?: boolean;
  tsnePoints?: number;
  /** Misclassified test images shown (default 24). */
  misclassified?: number;
  /** Runs drawn dashed on the curves for comparison (e.g. the scratch run). */
  overlay?: string[];
  log?: (line: string) => void;
}

function epochRecords(runDir: string): EpochMetrics[] {
  const file = path.join(runDir, 'logs', 'metrics.jsonl');
  return fs.existsSync(file) ? (readMetrics(file).filter((r) => r.kind === 'metrics') as EpochMetrics[]) : [];
}

function curve(records: EpochMetrics[], split: 'train' | 'val' | 'test', metric: 'loss' | 'top1', name: string, dashed = false): LineSeries {
  return { name, dashed, points: records.filter((r) => r.split === split).map((r) => [r.epoch, metric === 'top1' ? r.top1 * 100 : r.loss] as [number, number]) };
}

/** The held-out curve: validation, or (no validation part) the test figures watched per epoch. */
function heldOutCurve(records: EpochMetrics[], metric: 'loss' | 'top1', prefix = '', dashed = false): LineSeries {
  const validated = records.some((r) => r.split === 'val');
  return curve(records, validated ? 'val' : 'test', metric, `${prefix}${validated ? 'val' : 'test (monitoring only, not used for selection)'}`, dashed);
}

/** Writes the PNGs and report.html of one run folder; returns the report's path. */
export async function writeRunReport(runDir: string, options: RunReportOptions = {}): Promise<string> {
  const log = options.log ?? (() => undefined);
  const results = readResults(runDir);
  const config = YAML.parse(fs.readFileSync(path.join(runDir, 'config.yaml'), 'utf8'));
  const pictures = path.join(runDir, 'pictures');
  fs.mkdirSync(pictures, { recursive: true });
  const images: ReportImage[] = [];
  const save = async (name: string, caption: string, png: Promise<Buffer>) => {
    const file = path.join(pictures, name);
    fs.writeFileSync(file, await png);
    images.push({ caption, file });
    return file;
  };

  // curves: this run solid, overlays (e.g. scratch) dashed
  const own = epochRecords(runDir);
  const others = (options.overlay ?? []).map((dir) => ({ name: path.basename(dir), records: epochRecords(dir) }));
  for (const metric of ['loss', 'top1'] as const) {
    const series = [curve(own, 'train', metric, 'train'), heldOutCurve(own, metric)];
    for (const o of others) series.push(heldOutCurve(o.records, metric, `${o.name} `, true));
    await save(`${metric === 'loss' ? 'loss' : 'accuracy'}.png`, metric === 'loss' ? 'Loss per epoch' : 'Top-1 accuracy per epoch (%)', lineChart({
      title: `${results.run}: ${metric === 'loss' ? 'cross-entropy loss' : 'top-1 accuracy (%)'}`,
      xLabel: 'epoch',
      yLabel: metric === 'loss' ? 'loss' : 'top-1 %',
      series: series.filter((s) => s.points.length > 0),
    }));
  }

  const split = fs.existsSync(path.join(runDir, 'split.json')) ? JSON.parse(fs.readFileSync(path.join(runDir, 'split.json'), 'utf8')) : undefined;
  const classNames: string[] = split?.classes ?? results.test.perClass.map((p) => p.className);
  await save('confusion.png', 'Confusion matrix on the test set (rows: true class, normalised)', confusionMatrixChart({ matrix: results.confusion, classNames, title: `${results.run}: confusion matrix` }));
  const worst = worstConfusions(results.confusion, classNames, 15);
  if (worst.length > 0) await save('worst-confusions.png', 'The most confused class pairs', worstConfusionsChart(worst, { title: 'most confused (true → predicted)' }));

  const gradients = fs.existsSync(path.join(runDir, 'logs', 'metrics.jsonl'))
    ? (readMetrics(path.join(runDir, 'logs', 'metrics.jsonl')).filter((r) => r.kind === 'grad_norm') as GradNormRecord[])
    : [];
  if (gradients.length > 0) {
    const layers: Record<string, number[]> = {};
    for (const name of Object.keys(gradients[0].norms).filter((n) => n.endsWith('weight'))) layers[name] = gradients.map((g) => g.norms[name] ?? NaN);
    await save('gradient-norms.png', 'Gradient norm per layer over training (log scale)', gradientNormChart({ steps: gradients.map((g) => g.step), layers, title: 'gradient L2 norm per layer' }));
  }

  if (options.tsne ?? true) {
    try {
      const file = await tsnePicture(runDir, pictures, options.tsnePoints ?? 1000, log);
      if (file) images.push({ caption: 't-SNE of the penultimate features of the test set, coloured by class', file });
    } catch (error) {
      log(`t-SNE skipped: ${(error as Error).message}`);
    }
  }

  // the confusion matrix in TensorBoard too
  const events = new EventWriter(path.join(runDir, 'logs'));
  const confusionPng = fs.readFileSync(path.join(pictures, 'confusion.png'));
  events.addImage('confusion_matrix', confusionPng, confusionPng.readUInt32BE(16), confusionPng.readUInt32BE(20), results.epochs);
  events.close();

  const misclassified = results.predictions
    .filter((p) => p.predicted !== p.label)
    .sort((a, b) => b.probability - a.probability)
    .slice(0, options.misclassified ?? 24)
    .map((p) => ({ file: path.join(split?.root ?? config.data.root, p.file), trueClass: classNames[p.label], predictedClass: classNames[p.predicted], confidence: p.probability }))
    .filter((m) => fs.existsSync(m.file));
  const report = path.join(runDir, 'report.html');
  writeReport(report, {
    title: `finetorch run ${results.run}`,
    config,
    comparison: comparisonRows([results]).map(({ run, arch, ...row }) => row),
    images,
    perClassAccuracy: results.test.perClass.map((p) => ({ className: p.className, accuracy: p.accuracy, count: p.count })),
    misclassified,
    notes: [
      `${results.test.count} test images; ${
        results.bestValTop1 === null
          ? `selection: the final weights after ${results.epochs} epochs (no validation part; the per-epoch test figures were watched, never used to choose)`
          : `selection: the best epoch by validation top-1 (${(results.bestValTop1 * 100).toFixed(1)}%)`
      }; phase-1 feature cache ${results.featureCache ? 'used' : 'not used'}.`,
      ...(results.pruning ? [pruningNote(results.pruning)] : []),
    ],
  });
  log(`report: ${report}`);
  return report;
}

function pruningNote(p: PruningSummary): string {
  const sparsity = p.layers.map((l) => l.sparsity);
  const mean = sparsity.reduce((a, b) => a + b, 0) / Math.max(1, sparsity.length);
  return (
    `pruning: ${p.method}, ${(p.amount * 100).toFixed(1)}% in ${p.steps} round(s) of ${(p.roundAmount * 100).toFixed(1)}% each (${p.schedule}); ` +
    `${p.parameters.remaining.toLocaleString('en')} of ${p.parameters.dense.toLocaleString('en')} parameters left; ` +
    `per-layer sparsity ${(Math.min(...sparsity) * 100).toFixed(1)}-${(Math.max(...sparsity) * 100).toFixed(1)}% (mean ${(mean * 100).toFixed(1)}%, ${p.layers.length} layers; results.json lists each)`
  );
}

async function tsnePicture(runDir: string, pictures: string, maxPoints: number, log: (line: string) => void): Promise<string | undefined> {
  const run = await loadRun(runDir);
  try {
    const split = await loadRunSplit(run);
    const samples = split.test.slice(0, maxPoints);
    if (samples.length < 5) return undefined;
    const decode = { ...EVAL_DECODE, resize: run.config.resize, centerCrop: run.config.image_size };
    const loader = new DataLoader(samples, { batchSize: 32, transform: evalTransform({ size: run.config.image_size }), cache: new ImageCache({ decode }) });
    const parts: Tensor[] = [];
    for await (const batch of loader.epoch(0)) {
      parts.push(await run.model.features(batch.images));
      batch.images.dispose();
      batch.labels.dispose();
    }
    const features = await cat(parts);
    const values = features.toTypedArray() as Float32Array;
    for (const t of [...parts, features]) t.dispose();
    const t0 = Date.now();
    const embedding = tsne(values, { dims: run.model.featureDim, seed: 0, perplexity: Math.min(30, Math.floor((samples.length - 1) / 3)) });
    log(`t-SNE of ${samples.length} test images in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const file = path.join(pictures, 'tsne.png');
    fs.writeFileSync(file, await scatterChart({ points: embedding, labels: samples.map((s) => s.label), classNames: run.classes, title: 't-SNE of penultimate features (test set)' }));
    return file;
  } finally {
    run.model.dispose();
  }
}

/** A report comparing runs: the table over methods (mean ± std over seeds), the paired tests, the held-out curves. */
export async function writeComparisonReport(runDirs: string[], outDir: string): Promise<string> {
  const results = runDirs.map((d) => readResults(d));
  fs.mkdirSync(outDir, { recursive: true });
  const images: ReportImage[] = [];
  for (const metric of ['top1', 'loss'] as const) {
    const series: LineSeries[] = runDirs.map((dir, i) => heldOutCurve(epochRecords(dir), metric, `${results[i].run} `, results[i].phase === 'scratch'));
    const file = path.join(outDir, `compare-${metric}.png`);
    fs.writeFileSync(file, await lineChart({ title: `held-out ${metric === 'top1' ? 'top-1 (%)' : 'loss'} per epoch`, xLabel: 'epoch', yLabel: metric, series: series.filter((s) => s.points.length) }));
    images.push({ caption: `${metric === 'top1' ? 'Top-1 accuracy' : 'Loss'} per epoch on the validation part, or on the test part watched only when there is none (scratch dashed)`, file });
  }
  const comparison = compareRuns(results);
  const last = results[results.length - 1];
  const report = path.join(outDir, 'compare.html');
  const detail = (s: { n: number; std: number; interval: [number, number] | null }) =>
    s.interval ? `± ${(s.std * 100).toFixed(1)} · 95% CI ${clippedInterval(s.interval).join('–')} (${s.n} seeds)` : undefined;
  writeReport(report, {
    title: 'finetorch comparison',
    config: { runs: runDirs },
    comparison: comparison.methods.map((m) => ({
      method: `${m.method} (${m.recipe})`,
      top1: m.top1.mean,
      top5: m.top5.mean,
      meanPerClassAccuracy: m.meanPerClassAccuracy.mean,
      epochs: m.epochs,
      wallTimeSeconds: m.wallSeconds,
      spread: { top1: detail(m.top1), top5: detail(m.top5), meanPerClassAccuracy: detail(m.meanPerClassAccuracy) },
    })),
    images,
    perClassAccuracy: last.test.perClass.map((p) => ({ className: p.className, accuracy: p.accuracy, count: p.count })),
    notes: [
      ...comparison.pairs.map(formatPair),
      selectionNote(comparison.methods),
      `Top-1 per method: ${comparison.methods.map((m) => `${m.recipe} ${formatSpread(m.top1)}`).join('; ')}.`,
      `Per-class accuracy shown for ${last.run}.`,
    ],
  });
  return report;
}
