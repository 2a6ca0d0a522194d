// The seed's results table: method, top-1, top-5, mean per-class accuracy, epochs, wall time.
import type { PhaseResult } from './trainer';

export interface ComparisonRow {
  run: string;
  method: string;
  arch: string;
  top1: number;
  top5: number;
  meanPerClass: number;
  epochs: number;
  wallSeconds: number;
}

const METHOD: Record<string, string> = {
  feature_extract: 'feature extraction (frozen backbone)',
  finetune: 'fine-tuning (all layers)',
  scratch: 'from scratch',
};

export function comparisonRows(results: PhaseResult[]): ComparisonRow[] {
  return results.map((r) => ({
    run: r.run,
    method: METHOD[r.phase] ?? r.phase,
    arch: r.arch,
    top1: r.test.top1,
    top5: r.test.top5,
    meanPerClass: r.test.meanPerClass,
    epochs: r.epochs,
    wallSeconds: r.wallSeconds,
  }));
}

export function comparisonMarkdown(rows: ComparisonRow[]): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    '| method | arch | top-1 | top-5 | mean per-class | epochs | wall time | run |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.method} | ${r.arch} | ${pct(r.top1)} | ${pct(r.top5)} | ${pct(r.meanPerClass)} | ${r.epochs} | ${r.wallSeconds.toFixed(1)} s | ${r.run} |`),
  ];
  return lines.join('\n');
}
