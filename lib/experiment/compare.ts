// The seed's results table: method, top-1, top-5, mean per-class accuracy, epochs, wall time; over
// several seeds, mean ± standard deviation and a 95% interval per method, and for each pair of
// methods a paired test on the same test images. Rows are the report's own ComparisonRow (plus
// run and arch), so the HTML table takes them as they are.
import type { ComparisonRow } from '../report/html';
import { pct } from '../utils/format';
import type { PhaseResult, RunResults, Selection } from './results';
import { pairedComparison, spread, type PairedComparison, type Spread } from './statistics';

export interface RunComparisonRow extends ComparisonRow {
  run: string;
  arch: string;
  top5: number;
  meanPerClassAccuracy: number;
  epochs: number;
  wallTimeSeconds: number;
}

const METHOD: Record<string, string> = {
  feature_extract: 'feature extraction (frozen backbone)',
  finetune: 'fine-tuning (all layers)',
  scratch: 'from scratch',
};

const methodName = (phase: string) => METHOD[phase] ?? phase;

/** One row per run. */
export function comparisonRows(results: PhaseResult[]): RunComparisonRow[] {
  return results.map((r) => ({
    run: r.run,
    method: methodName(r.phase),
    arch: r.arch,
    top1: r.test.top1,
    top5: r.test.top5,
    meanPerClassAccuracy: r.test.meanPerClass,
    epochs: r.epochs,
    wallTimeSeconds: r.wallSeconds,
  }));
}

/** One method: the runs of one recipe, one per seed (`name.seed3.finetune` → recipe `name.finetune`). */
export interface MethodSummary {
  recipe: string;
  method: string;
  arch: string;
  runs: RunResults[];
  seeds: number[];
  /** How each run's tested weights were chosen; undefined for runs written before it was recorded. */
  selection: Array<Selection | undefined>;
  top1: Spread;
  top5: Spread;
  meanPerClassAccuracy: Spread;
  epochs: number;
  wallSeconds: number;
}

export interface MethodPair {
  first: MethodSummary;
  second: MethodSummary;
  /** Null when the two have no seed with the same test images. */
  comparison: PairedComparison | null;
}

export interface Comparison {
  methods: MethodSummary[];
  pairs: MethodPair[];
}

export function recipeOf(run: string): string {
  return run.replace(/\.seed\d+(?=\.|$)/, '');
}

/** Groups runs by recipe, summarises each over its seeds, and compares every pair of recipes. */
export function compareRuns(results: RunResults[]): Comparison {
  const groups = new Map<string, RunResults[]>();
  for (const r of results) groups.set(recipeOf(r.run), [...(groups.get(recipeOf(r.run)) ?? []), r]);
  const methods = [...groups].map(([recipe, runs]): MethodSummary => ({
    recipe,
    method: methodName(runs[0].phase),
    arch: runs[0].arch,
    runs,
    seeds: runs.map((r) => r.seed ?? 0),
    // results.json written before the selection was recorded has none: said as unknown, not guessed
    selection: [...new Set(runs.map((r) => r.selection))],
    top1: spread(runs.map((r) => r.test.top1)),
    top5: spread(runs.map((r) => r.test.top5)),
    meanPerClassAccuracy: spread(runs.map((r) => r.test.meanPerClass)),
    epochs: runs[0].epochs,
    wallSeconds: runs.reduce((a, r) => a + r.wallSeconds, 0) / runs.length,
  }));
  const pairs: MethodPair[] = [];
  for (let i = 0; i < methods.length; i++) {
    for (let j = i + 1; j < methods.length; j++) pairs.push({ first: methods[i], second: methods[j], comparison: paired(methods[i], methods[j]) });
  }
  return { methods, pairs };
}

/** Per-image correctness of two methods, run against run of the same seed, image against the same file. */
function paired(a: MethodSummary, b: MethodSummary): PairedComparison | null {
  const first: boolean[][] = [];
  const second: boolean[][] = [];
  for (const runA of a.runs) {
    const runB = b.runs.find((r) => (r.seed ?? 0) === (runA.seed ?? 0));
    if (!runB) continue;
    const correctB = new Map(runB.predictions.map((p) => [p.file, p.predicted === p.label]));
    if (correctB.size !== runA.predictions.length || !runA.predictions.every((p) => correctB.has(p.file))) continue;
    first.push(runA.predictions.map((p) => p.predicted === p.label));
    second.push(runA.predictions.map((p) => correctB.get(p.file)!));
  }
  return first.length > 0 ? pairedComparison(first, second) : null;
}

function points(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}`;
}

/** `72.1%` for one run; `72.1 ± 1.3% (95% CI 69.0–75.2)` over seeds, the interval clipped to 0–100%. */
export function formatSpread(s: Spread): string {
  if (s.n < 2 || !s.interval) return pct(s.mean);
  const [lo, hi] = clippedInterval(s.interval);
  return `${(s.mean * 100).toFixed(1)} ± ${(s.std * 100).toFixed(1)}% (95% CI ${lo}–${hi})`;
}

/** An accuracy's interval in percent, clipped to what an accuracy can be. */
export function clippedInterval(interval: [number, number]): [string, string] {
  const clip = (x: number) => (Math.min(1, Math.max(0, x)) * 100).toFixed(1);
  return [clip(interval[0]), clip(interval[1])];
}

/** `fine-tuning − scratch: +14.4 points top-1 (95% CI 9.6..19.2, McNemar p = 0.0003; 624 paired test images, 3 seeds)`. */
export function formatPair(pair: MethodPair): string {
  const label = `${pair.first.recipe} − ${pair.second.recipe}`;
  const c = pair.comparison;
  if (!c) return `${label}: not paired (no seed with the same test images)`;
  const p = c.p < 1e-4 ? c.p.toExponential(1) : c.p.toPrecision(2);
  const seeds = pair.first.runs.filter((r) => pair.second.runs.some((o) => (o.seed ?? 0) === (r.seed ?? 0))).length;
  return `${label}: ${points(c.difference)} points top-1 (95% CI ${points(c.interval[0])}..${points(c.interval[1])}, McNemar p = ${p}; ${c.count} paired test images, ${seeds} seed${seeds === 1 ? '' : 's'})`;
}

export function selectionNote(methods: MethodSummary[]): string {
  const all = new Set(methods.flatMap((m) => m.selection));
  if (all.size === 1 && all.has('final')) return 'Selection: final weights (no validation part; the test images decided nothing).';
  if (all.size === 1 && all.has('validation')) return 'Selection: best epoch by validation top-1 (validation carved out of the training images).';
  if (all.has(undefined)) return 'Selection: not recorded for some runs (written by an older finetorch, which could pick the best epoch on the test images).';
  return 'Selection: mixed (see each run: final weights, or best epoch by validation top-1).';
}

/** The markdown table over methods, then one line per pair of methods and the selection rule. */
export function comparisonMarkdown(comparison: Comparison): string {
  const lines = [
    '| method | arch | seeds | top-1 | top-5 | mean per-class | epochs | wall time | runs |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
    ...comparison.methods.map(
      (m) =>
        `| ${m.method} | ${m.arch} | ${m.seeds.length} | ${formatSpread(m.top1)} | ${formatSpread(m.top5)} | ${formatSpread(m.meanPerClassAccuracy)} | ` +
        `${m.epochs} | ${m.wallSeconds.toFixed(1)} s | ${m.recipe} |`,
    ),
  ];
  if (comparison.pairs.length > 0) lines.push('', ...comparison.pairs.map(formatPair));
  lines.push('', selectionNote(comparison.methods));
  return lines.join('\n');
}
