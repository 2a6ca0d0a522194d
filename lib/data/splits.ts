// Seeded, deterministic train/val/test splits, and the manifest that pins them to a file.
//
// Two protocols, both drawn per class:
//   - 'per-class' (the standard Caltech-101 protocol: Zeiler & Fergus 2014, DeCAF, VGG): each
//     class's images are shuffled; the first `trainPerClass` (default 30) are the training images,
//     the next up to `testPerClass` (default 50; null = all the rest) test; anything beyond is
//     unused. `valPerClass` (default 0, as the protocol has none) carves a validation part out of
//     the training images (the last valPerClass of them), so the test images stay the same and
//     training gets fewer. Small classes:
//       * train takes min(trainPerClass, n), except that a class with n <= trainPerClass and
//         n >= 2 leaves one image for test (when testPerClass > 0): train n-1, test 1;
//       * validation never takes the last training image: min(valPerClass, train - 1);
//       * a class with a single image puts it in train.
//   - 'ratio' (stratified): each class is divided train/val/test by the given fractions
//     (e.g. 0.7/0.15/0.15, summing to 1), counts by largest remainder so they add up to n
//     (ties go to train, then test, then val); then every part with a positive fraction gets at
//     least one image when the class has enough (train first, then test, then val), taken from
//     the largest part.
// Each class is shuffled with its own stream derived from (seed, class name), so a class's split
// does not depend on which other classes are present (e.g. with or without BACKGROUND_Google).
// Within each part samples are ordered by label, then by their order in the dataset scan.
//
// The manifest (JSON) stores format, version, seed, protocol, classes and every part's files as
// paths relative to the class-folder root ('accordion/image_0001.jpg') with labels, so a later
// `test` run evaluates exactly the same images. Loading it checks it against the scanned dataset
// and says precisely what differs.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { invalid, knownKeys, nonNegativeInteger, numberInRange, plainObject } from '../utils/validate';
import type { Sample } from './caltech101';
import { deriveSeed, Random, validateSeed } from './random';

export const MANIFEST_FORMAT = 'finetorch-split';
export const MANIFEST_VERSION = 1;

export interface PerClassProtocol {
  kind: 'per-class';
  trainPerClass: number;
  valPerClass: number;
  /** null: every remaining image. */
  testPerClass: number | null;
}

export interface RatioProtocol {
  kind: 'ratio';
  train: number;
  val: number;
  test: number;
}

export type SplitProtocol = PerClassProtocol | RatioProtocol;

export type SplitProtocolInput =
  | ({ kind: 'per-class' } & Partial<Omit<PerClassProtocol, 'kind'>>)
  | ({ kind: 'ratio' } & Partial<Omit<RatioProtocol, 'kind'>>);

export const PARTS = ['train', 'val', 'test'] as const;
export type PartName = (typeof PARTS)[number];

/** What a split needs from a dataset scan. */
export interface SplittableDataset {
  root: string;
  classes: string[];
  samples: Sample[];
}

export interface Split {
  seed: number;
  protocol: SplitProtocol;
  /** Folder the class folders live in; manifest paths are relative to it. */
  root: string;
  classes: string[];
  train: Sample[];
  val: Sample[];
  test: Sample[];
}

export interface SplitManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  seed: number;
  protocol: SplitProtocol;
  classes: string[];
  counts: Record<PartName, number>;
  parts: Record<PartName, { path: string; label: number }[]>;
}

/** Fills defaults and validates a protocol description. */
export function normalizeProtocol(input: Extract<SplitProtocolInput, { kind: 'per-class' }>): PerClassProtocol;
export function normalizeProtocol(input: Extract<SplitProtocolInput, { kind: 'ratio' }>): RatioProtocol;
export function normalizeProtocol(input?: SplitProtocolInput): SplitProtocol;
export function normalizeProtocol(input: SplitProtocolInput = { kind: 'per-class' }): SplitProtocol {
  const o = plainObject('protocol', input);
  if (o.kind === 'per-class') {
    knownKeys('per-class protocol', o, ['kind', 'trainPerClass', 'valPerClass', 'testPerClass']);
    const trainPerClass = o.trainPerClass === undefined ? 30 : nonNegativeInteger('trainPerClass', o.trainPerClass);
    if (trainPerClass === 0) throw invalid('positive integer', 'trainPerClass', 0);
    return {
      kind: 'per-class',
      trainPerClass,
      valPerClass: o.valPerClass === undefined ? 0 : nonNegativeInteger('valPerClass', o.valPerClass),
      testPerClass: o.testPerClass === undefined ? 50 : o.testPerClass === null ? null : nonNegativeInteger('testPerClass', o.testPerClass),
    };
  }
  if (o.kind === 'ratio') {
    knownKeys('ratio protocol', o, ['kind', 'train', 'val', 'test']);
    const train = o.train === undefined ? 0.7 : numberInRange('train', o.train, 0, 1);
    const val = o.val === undefined ? (o.test === undefined && o.train === undefined ? 0.15 : 0) : numberInRange('val', o.val, 0, 1);
    const test = o.test === undefined ? Math.max(0, Math.round((1 - train - val) * 1e12) / 1e12) : numberInRange('test', o.test, 0, 1);
    if (Math.abs(train + val + test - 1) > 1e-9) {
      throw new TypeError(`Expected train + val + test to sum to 1 for ratio protocol but received ${train} + ${val} + ${test} = ${train + val + test}`);
    }
    if (train === 0) throw invalid('number above 0', 'train', train);
    return { kind: 'ratio', train, val, test };
  }
  throw invalid(`one of 'per-class', 'ratio'`, 'protocol.kind', o.kind);
}

/** Splits a dataset with a seeded, per-class shuffle. See the file comment for the exact rules. */
export function splitDataset(dataset: SplittableDataset, protocolInput: SplitProtocolInput = { kind: 'per-class' }, seed = 0): Split {
  validateSeed('seed', seed);
  const protocol = normalizeProtocol(protocolInput);
  const byClass: number[][] = dataset.classes.map(() => []);
  dataset.samples.forEach((s, i) => {
    if (!Number.isInteger(s.label) || s.label < 0 || s.label >= dataset.classes.length) {
      throw new RangeError(`Sample '${s.path}' has label ${s.label}, outside 0..${dataset.classes.length - 1}`);
    }
    byClass[s.label].push(i);
  });

  const chosen: Record<PartName, number[]> = { train: [], val: [], test: [] };
  byClass.forEach((indices, label) => {
    const order = new Random(deriveSeed(seed, dataset.classes[label])).shuffle(indices.slice());
    const counts = protocol.kind === 'per-class' ? perClassCounts(order.length, protocol) : ratioCounts(order.length, protocol);
    let at = 0;
    for (const part of PARTS) {
      chosen[part].push(...order.slice(at, at + counts[part]));
      at += counts[part];
    }
  });

  const take = (idx: number[]): Sample[] =>
    idx
      .sort((a, b) => dataset.samples[a].label - dataset.samples[b].label || a - b)
      .map((i) => ({ path: dataset.samples[i].path, label: dataset.samples[i].label }));
  return {
    seed,
    protocol,
    root: dataset.root,
    classes: dataset.classes.slice(),
    train: take(chosen.train),
    val: take(chosen.val),
    test: take(chosen.test),
  };
}

/** How many of a class's n images go to each part under the per-class protocol. */
export function perClassCounts(n: number, p: PerClassProtocol): Record<PartName, number> {
  const keepTest = p.testPerClass === null || p.testPerClass > 0;
  let train = Math.min(p.trainPerClass, n);
  if (keepTest && n >= 2 && n <= p.trainPerClass) train = n - 1;
  const test = Math.min(p.testPerClass ?? Infinity, n - train);
  const val = Math.min(p.valPerClass, Math.max(0, train - 1));
  return { train: train - val, val, test };
}

/** How many of a class's n images go to each part under the ratio protocol. */
export function ratioCounts(n: number, p: RatioProtocol): Record<PartName, number> {
  const order: PartName[] = ['train', 'test', 'val']; // tie-break and minimum-one priority
  const fix = (x: number): number => Math.round(x * 1e9) / 1e9; // 20 * 0.7 is 13.999999999999998
  const exact = { train: fix(n * p.train), val: fix(n * p.val), test: fix(n * p.test) };
  const counts = { train: Math.floor(exact.train), val: Math.floor(exact.val), test: Math.floor(exact.test) };
  let left = n - counts.train - counts.val - counts.test;
  const byRemainder = order
    .map((part, rank) => ({ part, rank, r: exact[part] - counts[part] }))
    .sort((a, b) => b.r - a.r || a.rank - b.rank);
  for (const { part } of byRemainder) {
    if (left <= 0) break;
    counts[part]++;
    left--;
  }
  for (const part of order) {
    if (p[part] > 0 && counts[part] === 0) {
      const donor = order.filter((q) => q !== part).sort((a, b) => counts[b] - counts[a])[0];
      if (counts[donor] > 1) {
        counts[donor]--;
        counts[part]++;
      }
    }
  }
  return counts;
}

/** Images per class in each part: counts[part][label]. */
export function splitCounts(split: Split): Record<PartName, number[]> {
  const out = {} as Record<PartName, number[]>;
  for (const part of PARTS) {
    out[part] = new Array<number>(split.classes.length).fill(0);
    for (const s of split[part]) out[part][s.label]++;
  }
  return out;
}

/** The manifest of a split: relative POSIX paths, labels, and everything needed to check it later. */
export function toManifest(split: Split): SplitManifest {
  const rel = (p: string): string => {
    const r = path.relative(split.root, p);
    if (r.startsWith('..') || path.isAbsolute(r)) throw new Error(`'${p}' is outside the dataset root '${split.root}'`);
    return r.split(path.sep).join('/');
  };
  const parts = {} as SplitManifest['parts'];
  const counts = {} as SplitManifest['counts'];
  for (const part of PARTS) {
    parts[part] = split[part].map((s) => ({ path: rel(s.path), label: s.label }));
    counts[part] = parts[part].length;
  }
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, seed: split.seed, protocol: split.protocol, classes: split.classes.slice(), counts, parts };
}

/** Writes the manifest (one sample per line, so diffs stay readable), atomically. */
export async function saveSplitManifest(split: Split, file: string): Promise<void> {
  const m = toManifest(split);
  const lines: string[] = ['{'];
  lines.push(`  "format": ${JSON.stringify(m.format)},`);
  lines.push(`  "version": ${m.version},`);
  lines.push(`  "seed": ${m.seed},`);
  lines.push(`  "protocol": ${JSON.stringify(m.protocol)},`);
  lines.push(`  "classes": ${JSON.stringify(m.classes)},`);
  lines.push(`  "counts": ${JSON.stringify(m.counts)},`);
  lines.push('  "parts": {');
  PARTS.forEach((part, i) => {
    const entries = m.parts[part].map((e) => `      ${JSON.stringify(e)}`);
    const body = entries.length ? `[\n${entries.join(',\n')}\n    ]` : '[]';
    lines.push(`    ${JSON.stringify(part)}: ${body}${i < PARTS.length - 1 ? ',' : ''}`);
  });
  lines.push('  }', '}', '');
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await fsp.writeFile(tmp, lines.join('\n'));
  await fsp.rename(tmp, file);
}

/** Reads and validates a manifest file's structure (not yet against a dataset). */
export async function readSplitManifest(file: string): Promise<SplitManifest> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read split manifest '${file}': ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`Split manifest '${file}' is not valid JSON: ${(e as Error).message}`);
  }
  const bad = (why: string): Error => new Error(`Split manifest '${file}' is malformed: ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('expected a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.format !== MANIFEST_FORMAT) throw bad(`format is ${JSON.stringify(m.format)}, expected "${MANIFEST_FORMAT}"`);
  if (m.version !== MANIFEST_VERSION) {
    throw bad(`version ${JSON.stringify(m.version)} is not supported (this finetorch reads version ${MANIFEST_VERSION})`);
  }
  try {
    validateSeed('seed', m.seed);
  } catch (e) {
    throw bad((e as Error).message);
  }
  let protocol: SplitProtocol;
  try {
    protocol = normalizeProtocol(m.protocol as SplitProtocolInput);
  } catch (e) {
    throw bad(`protocol: ${(e as Error).message}`);
  }
  if (!Array.isArray(m.classes) || m.classes.length === 0 || !m.classes.every((c) => typeof c === 'string')) {
    throw bad('classes must be a non-empty array of strings');
  }
  const classes = m.classes as string[];
  if (new Set(classes).size !== classes.length) throw bad('classes contain duplicates');
  if (typeof m.parts !== 'object' || m.parts === null) throw bad('parts missing');
  const partsIn = m.parts as Record<string, unknown>;
  const parts = {} as SplitManifest['parts'];
  const seen = new Map<string, PartName>();
  for (const part of PARTS) {
    const list = partsIn[part];
    if (!Array.isArray(list)) throw bad(`parts.${part} must be an array`);
    parts[part] = list.map((e, i) => {
      const entry = e as { path?: unknown; label?: unknown };
      if (typeof entry !== 'object' || entry === null || typeof entry.path !== 'string' || entry.path.length === 0) {
        throw bad(`parts.${part}[${i}] needs a path`);
      }
      if (!Number.isInteger(entry.label) || (entry.label as number) < 0 || (entry.label as number) >= classes.length) {
        throw bad(`parts.${part}[${i}] (${entry.path}) has label ${JSON.stringify(entry.label)}, outside 0..${classes.length - 1}`);
      }
      const norm = path.posix.normalize(entry.path);
      if (norm.startsWith('../') || norm === '..' || path.posix.isAbsolute(norm)) {
        throw bad(`parts.${part}[${i}] path '${entry.path}' leaves the dataset folder`);
      }
      const other = seen.get(norm);
      if (other) throw bad(`'${entry.path}' appears twice (in ${other} and ${part})`);
      seen.set(norm, part);
      return { path: norm, label: entry.label as number };
    });
  }
  const counts = {} as SplitManifest['counts'];
  for (const part of PARTS) counts[part] = parts[part].length;
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, seed: m.seed as number, protocol, classes, counts, parts };
}

/**
 * Loads a manifest and checks it against a scanned dataset: same classes in the same order, every
 * listed file present with the same label. Throws one Error listing every kind of mismatch.
 */
export async function loadSplitManifest(file: string, dataset: SplittableDataset): Promise<Split> {
  const m = await readSplitManifest(file);
  return manifestToSplit(m, dataset, file);
}

export function manifestToSplit(m: SplitManifest, dataset: SplittableDataset, source = 'the split manifest'): Split {
  const problems: string[] = [];
  const classesMatch = m.classes.length === dataset.classes.length && m.classes.every((c, i) => c === dataset.classes[i]);
  if (!classesMatch) {
    const inData = new Set(dataset.classes);
    const inManifest = new Set(m.classes);
    const onlyManifest = m.classes.filter((c) => !inData.has(c));
    const onlyData = dataset.classes.filter((c) => !inManifest.has(c));
    let line = `classes differ: the manifest has ${m.classes.length}, the dataset ${dataset.classes.length}`;
    if (onlyManifest.length) line += `; only in the manifest: ${list(onlyManifest)}`;
    if (onlyData.length) line += `; only in the dataset: ${list(onlyData)}`;
    if (!onlyManifest.length && !onlyData.length) line += '; same names in a different order';
    if ([...onlyManifest, ...onlyData].includes('BACKGROUND_Google')) {
      line += ' (was the dataset scanned with a different includeBackground setting?)';
    }
    problems.push(line);
  }

  const labelOf = new Map<string, number>();
  for (const s of dataset.samples) labelOf.set(toRelative(dataset.root, s.path), s.label);
  const missing: string[] = [];
  const relabelled: string[] = [];
  const out: Record<PartName, Sample[]> = { train: [], val: [], test: [] };
  for (const part of PARTS) {
    for (const e of m.parts[part]) {
      const label = labelOf.get(e.path);
      if (label === undefined) missing.push(e.path);
      else if (classesMatch && label !== e.label) {
        relabelled.push(`${e.path} (${m.classes[e.label]} in the manifest, ${dataset.classes[label]} in the dataset)`);
      }
      out[part].push({ path: path.join(dataset.root, ...e.path.split('/')), label: e.label });
    }
  }
  if (missing.length) {
    const total = PARTS.reduce((n, p) => n + m.parts[p].length, 0);
    problems.push(`${missing.length} of ${total} listed files are not in the dataset (missing, unreadable or skipped): ${list(missing)}`);
  }
  if (relabelled.length) problems.push(`${relabelled.length} files have a different class: ${list(relabelled)}`);
  if (problems.length) {
    throw new Error(
      `${source} does not match the dataset at '${dataset.root}':\n  - ${problems.join('\n  - ')}\n` +
        'Point at the dataset the split was made from, or make a new split (a new manifest).',
    );
  }
  return { seed: m.seed, protocol: m.protocol, root: dataset.root, classes: m.classes.slice(), ...out };
}

function toRelative(root: string, p: string): string {
  return path.relative(root, p).split(path.sep).join('/');
}

function list(items: string[], max = 5): string {
  return items.slice(0, max).join(', ') + (items.length > max ? `, ... (${items.length - max} more)` : '');
}
