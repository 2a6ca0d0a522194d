// What a fuzz run reports: each input's outcome, per-format statistics and findings, the whole
// run's report (also written as JSON), and the table the CLI prints.
import type { FuzzFormat } from './formats';

export type Outcome = 'accepted' | 'rejected' | 'crash' | 'hang' | 'big-alloc' | 'bad-error';
export const FINDINGS: readonly Outcome[] = ['crash', 'hang', 'big-alloc', 'bad-error'];

export interface FormatStats {
  inputs: number;
  accepted: number;
  rejected: number;
  crashes: number;
  hangs: number;
  bigAlloc: number;
  badErrors: number;
  /** Wall time spent on this format's inputs, summed over workers (ms). */
  workerMs: number;
  slowest: { index: number; ms: number; outcome: Outcome; how: string }[];
  topRejections: [string, number][];
  findings: Finding[];
}

export interface Finding {
  format: FuzzFormat;
  index: number;
  outcome: Outcome;
  how: string;
  detail: string;
  file?: string;
}

export interface FuzzReport {
  seed: number;
  count: number;
  timeoutMs: number;
  rssCapMb: number;
  asLimitMb: number;
  workers: number;
  durationMs: number;
  findingsDir: string;
  jsonFile: string;
  formats: Partial<Record<FuzzFormat, FormatStats>>;
  totals: { inputs: number; accepted: number; rejected: number; crashes: number; hangs: number; bigAlloc: number; badErrors: number };
  workerRestarts: number;
}

export function newStats(): FormatStats {
  return { inputs: 0, accepted: 0, rejected: 0, crashes: 0, hangs: 0, bigAlloc: 0, badErrors: 0, workerMs: 0, slowest: [], topRejections: [], findings: [] };
}

export function formatTable(report: FuzzReport): string {
  const head = ['format', 'inputs', 'accepted', 'rejected', 'crashes', 'hangs', 'big-alloc', 'bad-error', 'time'];
  const rows: string[][] = [];
  for (const [format, s] of Object.entries(report.formats)) {
    rows.push([format, s!.inputs, s!.accepted, s!.rejected, s!.crashes, s!.hangs, s!.bigAlloc, s!.badErrors, `${(s!.workerMs / 1000).toFixed(1)}s`].map(String));
  }
  const t = report.totals;
  rows.push(['total', t.inputs, t.accepted, t.rejected, t.crashes, t.hangs, t.bigAlloc, t.badErrors, `${(report.durationMs / 1000).toFixed(1)}s wall`].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(0, -1).map(line), widths.map((w) => '-'.repeat(w)).join('  '), line(rows[rows.length - 1])].join('\n');
}
