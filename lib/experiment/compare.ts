// The seed's results table: method, top-1, top-5, mean per-class accuracy, epochs, wall time.
// Rows are the report's own ComparisonRow (plus run and arch), so the HTML table takes them as they are.
import type { ComparisonRow } from '../report/html';
import { pct } from '../utils/format';
import type { PhaseResult } from './results';

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

export function comparisonRows(results: PhaseResult[]): RunComparisonRow[] {
  return results.map((r) => ({
    run: r.run,
    method: METHOD[r.phase] ?? r.phase,
    arch: r.arch,
    top1: r.test.top1,
    top5: r.test.top5,
    meanPerClassAccuracy: r.test.meanPerClass,
    epochs: r.epochs,
    wallTimeSeconds: r.wallSeconds,
  }));
}

export function comparisonMarkdown(rows: RunComparisonRow[]): string {
  const lines = [
    '| method | arch | top-1 | top-5 | mean per-class | epochs | wall time | run |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.method} | ${r.arch} | ${pct(r.top1)} | ${pct(r.top5)} | ${pct(r.meanPerClassAccuracy)} | ${r.epochs} | ${r.wallTimeSeconds.toFixed(1)} s | ${r.run} |`),
  ];
  return lines.join('\n');
}
