// metrics.jsonl: one JSON object per line, appended as training goes, read back for charts.
//
// JSON has no NaN or Infinity; a diverging loss is exactly the number one wants to keep, so
// non-finite numbers are written as the strings "NaN", "Infinity" and "-Infinity" and turned back
// into numbers by readMetrics. A crash can leave a torn last line; the reader drops it (and only
// it: a malformed line in the middle of the file is an error naming the line).

import * as fs from 'node:fs';
import * as path from 'node:path';

import { AppendFile } from '../utils/append-file';
import {
  finiteNumber,
  invalid,
  nonEmptyString,
  nonNegativeInteger,
  oneOf,
  plainObject,
} from '../utils/validate';

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** Metrics of one split at one point of training (usually the end of an epoch). */
export interface EpochMetrics {
  kind: 'metrics';
  /** Training phase, e.g. 'head' (frozen backbone), 'finetune', 'scratch'. */
  phase: string;
  /** Epoch within the phase, from 1. */
  epoch: number;
  /** Global optimiser step. */
  step: number;
  split: Split;
  loss: number;
  /** Accuracies in [0, 1]. */
  top1: number;
  top5?: number;
  /** Learning rate (of the first parameter group when there are several). */
  lr?: number;
  imagesPerSecond?: number;
  /** Unix time in seconds (fractional). */
  time: number;
}

/** Gradient L2 norms per layer (or parameter) at one step. */
export interface GradNormRecord {
  kind: 'grad_norm';
  phase?: string;
  step: number;
  norms: Record<string, number>;
  time: number;
}

export type MetricsRecord = EpochMetrics | GradNormRecord;

/** What MetricsLog.log accepts: `kind` defaults to 'metrics' and `time` to now. */
export type EpochMetricsInput = Omit<EpochMetrics, 'kind' | 'time'> & { kind?: 'metrics'; time?: number };
export type GradNormInput = Omit<GradNormRecord, 'time'> & { time?: number };

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function encodeNumber(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

const NUMERIC_KEYS = ['loss', 'top1', 'top5', 'lr', 'imagesPerSecond'];

function decodeNumber(value: unknown): unknown {
  return typeof value === 'string' && Object.hasOwn(NON_FINITE, value) ? NON_FINITE[value] : value;
}

/** Turns "NaN"/"Infinity" back into numbers in the numeric fields only (a phase may be called "NaN"). */
function reviveNumbers(record: Record<string, unknown>): void {
  for (const key of NUMERIC_KEYS) if (key in record) record[key] = decodeNumber(record[key]);
  const norms = record.norms;
  if (typeof norms === 'object' && norms !== null) {
    const n = norms as Record<string, unknown>;
    for (const key of Object.keys(n)) n[key] = decodeNumber(n[key]);
  }
}

function metricNumber(name: string, value: unknown): number {
  // NaN and ±Infinity are legitimate measurements (a diverged loss); anything else must be a number.
  if (typeof value !== 'number') throw invalid('number', name, value);
  return value;
}

function optionalMetric(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : metricNumber(name, value);
}

function checkEpochMetrics(input: EpochMetricsInput): EpochMetrics {
  const record: EpochMetrics = {
    kind: 'metrics',
    phase: nonEmptyString('phase', input.phase),
    epoch: nonNegativeInteger('epoch', input.epoch),
    step: nonNegativeInteger('step', input.step),
    split: oneOf('split', input.split, SPLITS),
    loss: metricNumber('loss', input.loss),
    top1: metricNumber('top1', input.top1),
    time: input.time === undefined ? Date.now() / 1000 : finiteNumber('time', input.time),
  };
  const top5 = optionalMetric('top5', input.top5);
  const lr = optionalMetric('lr', input.lr);
  const ips = optionalMetric('imagesPerSecond', input.imagesPerSecond);
  if (top5 !== undefined) record.top5 = top5;
  if (lr !== undefined) record.lr = lr;
  if (ips !== undefined) record.imagesPerSecond = ips;
  return record;
}

function checkGradNorms(input: GradNormInput): GradNormRecord {
  const norms = plainObject('norms', input.norms);
  for (const [layer, value] of Object.entries(norms)) metricNumber(`norms['${layer}']`, value);
  const record: GradNormRecord = {
    kind: 'grad_norm',
    step: nonNegativeInteger('step', input.step),
    norms: { ...(norms as Record<string, number>) },
    time: input.time === undefined ? Date.now() / 1000 : finiteNumber('time', input.time),
  };
  if (input.phase !== undefined) record.phase = nonEmptyString('phase', input.phase);
  return record;
}

/** Appends records to `<logDir>/metrics.jsonl` (created if missing; an existing file is extended). */
export class MetricsLog {
  readonly file: string;
  private readonly out: AppendFile;

  constructor(logDir: string, fileName = 'metrics.jsonl') {
    nonEmptyString('logDir', logDir);
    nonEmptyString('fileName', fileName);
    fs.mkdirSync(logDir, { recursive: true });
    this.file = path.join(logDir, fileName);
    this.out = new AppendFile(this.file, fs.openSync(this.file, 'a', 0o644), 'MetricsLog');
  }

  /** Appends one record as one line; returns the record as written (with kind and time filled). */
  log(record: EpochMetricsInput | GradNormInput): MetricsRecord {
    if (this.out.closed) throw new Error(`MetricsLog for ${this.file} is closed`);
    plainObject('record', record);
    const full = record.kind === 'grad_norm' ? checkGradNorms(record) : checkEpochMetrics(record as EpochMetricsInput);
    this.out.write(Buffer.from(`${JSON.stringify(full, encodeNumber)}\n`, 'utf8'));
    return full;
  }

  /** Makes everything logged so far durable (fsync). */
  flush(): void {
    this.out.flush();
  }

  /** Flushes and closes the file. Further logs throw; closing twice is harmless. */
  close(): void {
    this.out.close();
  }
}

/** Reads a metrics.jsonl file. Lines without `kind` are taken as 'metrics' records. */
export function readMetrics(file: string): MetricsRecord[] {
  nonEmptyString('file', file);
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const records: MetricsRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      // A torn final line (a crash mid-append) has no trailing newline: drop it.
      if (i === lines.length - 1 && !text.endsWith('\n')) break;
      throw new Error(`${file}:${i + 1}: not valid JSON (${(error as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error(`${file}:${i + 1}: expected a JSON object`);
    }
    const record = parsed as Record<string, unknown>;
    reviveNumbers(record);
    records.push((record.kind === undefined ? { kind: 'metrics', ...record } : record) as unknown as MetricsRecord);
  }
  return records;
}

export type MetricName = 'loss' | 'top1' | 'top5' | 'lr' | 'imagesPerSecond';

/**
 * One curve for lineChart: [x, metric] points of the 'metrics' records of `split`.
 * `phases` picks the phases and lays them end to end in that order on a running epoch axis (so
 * `['head', 'finetune']` is the two-phase curve and `['scratch']` a curve to overlay on it);
 * by default all phases, in the order they first appear. With `x: 'step'` x is the global step.
 */
export function metricSeries(
  records: readonly MetricsRecord[],
  metric: MetricName,
  filter: { split: Split; phases?: readonly string[]; x?: 'epoch' | 'step' },
): Array<[number, number]> {
  oneOf('metric', metric, ['loss', 'top1', 'top5', 'lr', 'imagesPerSecond'] as const);
  plainObject('filter', filter);
  oneOf('filter.split', filter.split, SPLITS);
  const x = oneOf('filter.x', filter.x ?? 'epoch', ['epoch', 'step'] as const);
  const epochsOf = new Map<string, number>();
  for (const r of records) {
    if (r.kind === 'metrics') epochsOf.set(r.phase, Math.max(epochsOf.get(r.phase) ?? 0, r.epoch));
  }
  const phases = filter.phases ?? [...epochsOf.keys()];
  if (!Array.isArray(phases)) throw invalid('an array of phase names', 'filter.phases', phases);
  // Offset of each phase on the running-epoch axis: the number of epochs of the phases before it.
  const offsets = new Map<string, number>();
  let offset = 0;
  for (const phase of phases) {
    offsets.set(phase, offset);
    offset += epochsOf.get(phase) ?? 0;
  }
  const points: Array<[number, number]> = [];
  for (const r of records) {
    if (r.kind !== 'metrics' || r.split !== filter.split || !offsets.has(r.phase)) continue;
    const y = r[metric];
    if (y === undefined) continue;
    points.push([x === 'step' ? r.step : offsets.get(r.phase)! + r.epoch, y]);
  }
  return points;
}
