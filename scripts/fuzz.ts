// Mutation fuzzing of every file format finetorch reads, each input loaded in a child process.
//
//   node dist/scripts/fuzz.js --format all --count 10000 --seed 1 [--timeout-ms 5000]
//
// Formats and the loader each input goes to (all through the public API):
//   zip          .pth, torch >= 1.6 zip format     loadWeights
//   legacy       .pth, pre-1.6 torch.save format   loadWeights
//   safetensors  .safetensors                      loadWeights
//   checkpoint   finetorch checkpoint (.pth)       loadCheckpoint
//   jpeg, png    images                            decodeImage (eval and train decode settings, alternately)
//   yaml         experiment config                 resolveConfig({ config })
//   manifest     split manifest (JSON)             readSplitManifest
//   cache        decoded-image cache file          readCacheFile (never throws: ok:false is a rejection)
//
// Inputs are valid seeds changed by bit flips, byte overwrites, interesting integers, truncation,
// chunk insertion/deletion/duplication and splicing of two seeds, plus format-aware mutations:
// zip header fields (sizes, offsets, counts; 0xFFFFFFFF, 2^63, zip64 records), zip bombs (a deflated
// data.pkl that inflates to 2 GB, entries claiming huge uncompressed sizes, many central directory
// entries sharing one local file), pickles re-zipped with valid CRCs after opcode-aware mutations
// (BINUNICODE8/BINBYTES8/LONG4/FRAME lengths, storage element counts, sizes and strides), crafted
// pickles (nesting deeper than the limit, memo-shared DAGs that expand exponentially), legacy
// storage counts, safetensors header lengths and JSON fields (overlapping data ranges, huge shapes),
// JPEG SOF and PNG IHDR dimensions (with valid CRCs), PNG decompression bombs, YAML alias bombs and
// deep nesting, and JSON value replacement for manifests and cache headers.
//
// Each input is written to a temp file and loaded by a pool of long-lived worker processes (one
// input at a time each). Classification:
//   accepted   the loader returned
//   rejected   the loader threw an Error with a non-empty message (cache: returned ok:false)
//   crash      the worker died (signal or abnormal exit) while loading it; the worker is replaced
//   hang       no answer within --timeout-ms; the worker is killed and replaced
//   big-alloc  the worker's resident memory went over --rss-cap-mb (peak RSS after the input, and
//              polled while it runs), or the loader failed with an out-of-memory error (bad_alloc,
//              "not enough memory", JS heap exhaustion, ...): the input made it try to allocate
//              what it claimed instead of refusing it. Workers also run under an address-space
//              limit (--as-limit-mb, via prlimit) so that a claim of 100 GB fails loudly.
//   bad-error  rejected with something that is not an Error or has an empty message (or, for the
//              cache, thrown at all: readCacheFile promises never to throw for bad content)
// Anything but accepted/rejected is a finding: the input is saved to the findings folder (a temp
// folder unless --findings is given) with a .json describing it, and the exit status is 1.
//
// Options:
//   --format LIST      comma-separated formats, or 'all' (default)
//   --count N          inputs per format (default 10000; CI uses 300)
//   --seed S           the run's seed (default 1); input i of format f is a pure function of (S, f, i)
//   --timeout-ms MS    per-input time limit (default 5000)
//   --workers N        worker processes (default: CPU count)
//   --rss-cap-mb MB    resident memory cap per worker (default 1536)
//   --as-limit-mb MB   address-space limit per worker via prlimit (default 8192; 0 = none)
//   --findings DIR     where findings go (default: a new temp folder)
//   --json FILE        the report as JSON (default: DIR/fuzz-report.json)
//   --only F:I         generate and run only input I of format F, saving it to the findings folder
//   --replay FILE --format F   run one file through format F's loader
//   --quiet            no progress lines
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';

export const FORMATS = ['zip', 'legacy', 'safetensors', 'checkpoint', 'jpeg', 'png', 'yaml', 'manifest', 'cache'] as const;
export type FuzzFormat = (typeof FORMATS)[number];
export type Outcome = 'accepted' | 'rejected' | 'crash' | 'hang' | 'big-alloc' | 'bad-error';
const FINDINGS: readonly Outcome[] = ['crash', 'hang', 'big-alloc', 'bad-error'];

export interface FuzzOptions {
  formats?: readonly FuzzFormat[];
  count?: number;
  seed?: number;
  timeoutMs?: number;
  workers?: number;
  rssCapMb?: number;
  /** Address-space limit per worker through prlimit(1); 0 for none. */
  asLimitMb?: number;
  findingsDir?: string;
  jsonFile?: string;
  quiet?: boolean;
  /** Only these input indices (for --only). */
  indices?: readonly number[];
  /** How to start a worker: the script and its arguments after `node [nodeArgs]`. Default: this file --worker. */
  workerArgv?: readonly string[];
  /** Node flags for workers (before the script). */
  nodeArgs?: readonly string[];
  /** Progress and the table go here (default: process.stderr / process.stdout). */
  log?: (line: string) => void;
}

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

// ---------------------------------------------------------------------------------------------
// Randomness: a small seeded PRNG; every input has its own stream.

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    // mulberry32
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Picks a function by weight. */
  weighted<T>(choices: readonly [number, T][]): T {
    let total = 0;
    for (const [w] of choices) total += w;
    let r = this.next() * total;
    for (const [w, c] of choices) {
      if ((r -= w) < 0) return c;
    }
    return choices[choices.length - 1][1];
  }
}

export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Bytes.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff];
const INTERESTING_16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x3fff, 0x4000];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 0x3fff * 0x3fff, 100000000];
const INTERESTING_64: bigint[] = [
  0n, 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 64n - 1n, 2n ** 62n, 2n ** 32n, 2n ** 32n - 1n, 100n * 2n ** 30n, 2n ** 40n, 2n ** 53n + 1n,
];

function interestingValue(rng: Rng, width: 1 | 2 | 4 | 8): bigint {
  if (rng.chance(0.15)) return BigInt(rng.int(256)) * (width > 1 ? BigInt(rng.int(256)) : 1n);
  switch (width) {
    case 1: return BigInt(rng.pick(INTERESTING_8));
    case 2: return BigInt(rng.pick(INTERESTING_16));
    case 4: return BigInt(rng.pick(INTERESTING_32));
    case 8: return rng.pick(INTERESTING_64);
  }
}

function writeUInt(buf: Buffer, at: number, width: 1 | 2 | 4 | 8, value: bigint, bigEndian = false): void {
  if (at < 0 || at + width > buf.length) return;
  const v = BigInt.asUintN(width * 8, value);
  for (let i = 0; i < width; i++) {
    const byte = Number((v >> BigInt(8 * i)) & 0xffn);
    buf[bigEndian ? at + width - 1 - i : at + i] = byte;
  }
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v & 0xffff);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return b;
}

// ---------------------------------------------------------------------------------------------
// Generic mutations: any format.

type Mutator = (rng: Rng, input: Buffer, others: readonly Buffer[]) => Buffer;

const genericMutators: [number, Mutator][] = [
  [3, (rng, b) => { // bit flips
    const out = Buffer.from(b);
    if (!out.length) return out;
    for (let n = rng.range(1, 8); n > 0; n--) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  }],
  [3, (rng, b) => { // byte overwrites
    const out = Buffer.from(b);
    if (!out.length) return out;
    for (let n = rng.range(1, 6); n > 0; n--) out[rng.int(out.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_8) : rng.int(256);
    return out;
  }],
  [3, (rng, b) => { // an interesting integer somewhere, either endianness
    const out = Buffer.from(b);
    const width = rng.pick([1, 2, 4, 8] as const);
    writeUInt(out, rng.int(Math.max(1, out.length - width + 1)), width, interestingValue(rng, width), rng.chance(0.3));
    return out;
  }],
  [2, (rng, b) => b.subarray(0, rng.int(b.length + 1))], // truncation
  [1, (rng, b) => { // cut a chunk out
    const at = rng.int(b.length + 1);
    const n = rng.int(Math.min(64, b.length - at) + 1);
    return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
  }],
  [1, (rng, b) => { // insert random or repeated bytes
    const at = rng.int(b.length + 1);
    const ins = rng.chance(0.5) ? rng.bytes(rng.range(1, 32)) : Buffer.alloc(rng.range(1, 4096), rng.int(256));
    return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
  }],
  [1, (rng, b) => { // duplicate a chunk
    if (!b.length) return b;
    const from = rng.int(b.length);
    const chunk = b.subarray(from, from + rng.range(1, 256));
    const at = rng.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]);
  }],
  [2, (rng, b, others) => { // splice: the start of one seed, the rest of another
    const other = rng.pick(others);
    return Buffer.concat([b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1))]);
  }],
];

function generic(rng: Rng, input: Buffer, others: readonly Buffer[], rounds = rng.range(1, 3)): Buffer {
  let out = input;
  for (let i = 0; i < rounds; i++) out = rng.weighted(genericMutators)(rng, out, others.length ? others : [input]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pickles: an opcode walker (to find length fields and opcode boundaries) and a tiny writer.

interface PickleOp {
  pos: number;
  op: number;
  /** Where the length (counted ops) or value (fixed ops) field starts, and its width. */
  field?: { at: number; width: 1 | 2 | 4 | 8 };
  end: number;
}

const FIXED_ARG: Record<number, 1 | 2 | 4 | 8> = {
  0x80: 1, 0x95: 8, 0x4a: 4, 0x4b: 1, 0x4d: 2, 0x47: 8, 0x68: 1, 0x6a: 4, 0x71: 1, 0x72: 4, 0x82: 1, 0x83: 2, 0x84: 4,
};
const COUNTED_ARG: Record<number, 1 | 4 | 8> = {
  0x8a: 1, 0x8b: 4, 0x55: 1, 0x54: 4, 0x8c: 1, 0x58: 4, 0x8d: 8, 0x43: 1, 0x42: 4, 0x8e: 8, 0x96: 8,
};
const LINE_ARGS: Record<number, number> = { 0x49: 1, 0x46: 1, 0x4c: 1, 0x53: 1, 0x56: 1, 0x67: 1, 0x70: 1, 0x50: 1, 0x63: 2, 0x69: 2 };

/** The opcodes of the pickle starting at `start`, up to and including STOP (or until it breaks). */
export function pickleOps(buf: Buffer, start = 0): { ops: PickleOp[]; end: number } {
  const ops: PickleOp[] = [];
  let pos = start;
  while (pos < buf.length) {
    const op = buf[pos];
    const rec: PickleOp = { pos, op, end: pos + 1 };
    if (op in FIXED_ARG) {
      rec.field = { at: pos + 1, width: FIXED_ARG[op] };
      rec.end = pos + 1 + FIXED_ARG[op];
    } else if (op in COUNTED_ARG) {
      const w = COUNTED_ARG[op];
      if (pos + 1 + w > buf.length) return { ops, end: -1 };
      const n = w === 1 ? buf[pos + 1] : w === 4 ? buf.readInt32LE(pos + 1) : Number(buf.readBigUInt64LE(pos + 1));
      if (n < 0) return { ops, end: -1 };
      rec.field = { at: pos + 1, width: w };
      rec.end = pos + 1 + w + n;
    } else if (op in LINE_ARGS) {
      let at = pos + 1;
      for (let l = 0; l < LINE_ARGS[op]; l++) {
        const nl = buf.indexOf(0x0a, at);
        if (nl < 0) return { ops, end: -1 };
        at = nl + 1;
      }
      rec.end = at;
    }
    if (rec.end > buf.length) return { ops, end: -1 };
    ops.push(rec);
    pos = rec.end;
    if (op === 0x2e) return { ops, end: pos };
  }
  return { ops, end: -1 };
}

/** Emits protocol-2 opcodes the way torch.save writes them. */
export class PickleWriter {
  private parts: Buffer[] = [];
  raw(bytes: Buffer | string | number[]): this {
    this.parts.push(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes));
    return this;
  }
  proto(v = 2): this { return this.raw([0x80, v]); }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(Buffer.concat([Buffer.from([0x58]), u32(b.length), b]));
  }
  int(v: number | bigint): this {
    const n = BigInt(v);
    if (n >= 0n && n < 256n) return this.raw([0x4b, Number(n)]);
    if (n >= -(2n ** 31n) && n < 2n ** 31n) return this.raw(Buffer.concat([Buffer.from([0x4a]), u32(Number(BigInt.asUintN(32, n)))]));
    return this.raw(Buffer.concat([Buffer.from([0x8a, 8]), u64(n)]));
  }
  global(module: string, name: string): this { return this.raw(`c${module}\n${name}\n`); }
  mark(): this { return this.raw('('); }
  tuple(): this { return this.raw('t'); }
  emptyTuple(): this { return this.raw(')'); }
  emptyDict(): this { return this.raw('}'); }
  emptyList(): this { return this.raw(']'); }
  reduce(): this { return this.raw('R'); }
  setitems(): this { return this.raw('u'); }
  bool(v: boolean): this { return this.raw([v ? 0x88 : 0x89]); }
  stop(): Buffer { this.raw('.'); return Buffer.concat(this.parts); }
  ints(values: readonly (number | bigint)[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
}

export interface TensorSpec {
  name: string;
  key: string;
  storage?: string; // e.g. 'FloatStorage'
  numel: number | bigint;
  offset?: number | bigint;
  sizes: (number | bigint)[];
  strides: (number | bigint)[];
}

/** An OrderedDict of tensors as torch.save pickles a state_dict (protocol 2). */
export function stateDictPickle(tensors: readonly TensorSpec[], wrap?: (w: PickleWriter) => void): Buffer {
  const w = new PickleWriter().proto();
  wrap?.(w);
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const t of tensors) {
    w.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', t.storage ?? 'FloatStorage').str(t.key).str('cpu').int(t.numel).tuple().raw('Q');
    w.int(t.offset ?? 0).ints(t.sizes).ints(t.strides).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
    w.tuple().reduce();
  }
  w.setitems();
  return w.stop();
}

/** Nesting `depth` containers deep. */
function deepPickle(rng: Rng, depth: number): Buffer {
  const w = new PickleWriter().proto();
  switch (rng.int(4)) {
    case 0: // [[[...]]]: lists appended bottom-up
      for (let i = 0; i < depth; i++) w.emptyList();
      for (let i = 1; i < depth; i++) w.raw('a');
      break;
    case 1: // ((((...)))): MARK ... TUPLE
      for (let i = 0; i < depth; i++) w.mark();
      for (let i = 0; i < depth; i++) w.tuple();
      break;
    case 2: // {'a': {'a': ...}}
      for (let i = 0; i < depth; i++) w.emptyDict().str('a');
      w.int(1);
      for (let i = 0; i < depth; i++) w.raw('s');
      break;
    default: // marks that are never closed
      for (let i = 0; i < depth; i++) w.mark();
      w.int(1);
  }
  return w.stop();
}

/** A list that holds its predecessor twice, `levels` times: 2^levels values for anyone walking it. */
function dagBombPickle(levels: number, tensor: boolean): Buffer {
  const w = new PickleWriter().proto();
  if (tensor) {
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(1).tuple().raw('Q');
    w.int(0).ints([1]).ints([1]).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  } else {
    w.emptyList();
  }
  w.raw([0x71, 0]); // BINPUT 0
  for (let i = 0; i < levels; i++) {
    w.raw('0').mark().raw(Buffer.from([0x6a])).raw(u32(i)).raw(Buffer.from([0x6a])).raw(u32(i)).raw('l'); // POP, [m[i], m[i]]
    w.raw(Buffer.from([0x72])).raw(u32(i + 1)); // LONG_BINPUT i+1
  }
  // a state_dict-looking wrapper so that the checkpoint/state_dict code walks it too
  return Buffer.concat([Buffer.from([0x80, 0x02, 0x7d, 0x58]), u32(10), Buffer.from('state_dict'), w.stop().subarray(2, -1), Buffer.from('s.')]);
}

/** Pickles that claim far more bytes than they hold. */
function hugeLengthPickle(rng: Rng): Buffer {
  const op = rng.pick([0x8d, 0x8e, 0x96, 0x58, 0x42, 0x54, 0x8b, 0x95]);
  const width = op in COUNTED_ARG ? COUNTED_ARG[op] : 8;
  const value = width === 8 ? rng.pick([2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 100n * 2n ** 30n, 2n ** 32n]) : BigInt(rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 0x7ffffff0]));
  const head = Buffer.concat([Buffer.from([0x80, 0x04, op]), width === 8 ? u64(value) : u32(Number(value))]);
  return Buffer.concat([head, rng.bytes(rng.int(64)), Buffer.from('.')]);
}

const PICKLE_SNIPPETS: Buffer[] = [
  '(', ')', ']', '}', 'N', 'a', 'e', 's', 'u', 't', 'l', 'd', 'R', 'b', 'Q', '0', '1', '2', '.', '\x85', '\x86', '\x87', '\x88', '\x89',
  '\x94', 'q\x00', 'h\x00', 'h\x01', 'r\xff\xff\xff\xff', 'j\xff\xff\xff\xff', 'g0\n', 'p0\n', 'K\x01', 'J\xff\xff\xff\x7f', 'M\xff\xff',
  '\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f', '\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01', '\x8b\xff\xff\xff\x7f',
  'X\xff\xff\xff\xff', '\x8d\x00\x00\x00\x00\x00\x00\x00\x80', '\x8e\xff\xff\xff\xff\xff\xff\xff\xff', '\x95\xff\xff\xff\xff\xff\xff\xff\xff',
  'ccollections\nOrderedDict\n', 'ctorch._utils\n_rebuild_tensor_v2\n', 'ctorch._utils\n_rebuild_parameter\n', 'ctorch\nFloatStorage\n',
  'ctorch\nLongStorage\n', 'ctorch\nSize\n', 'c_codecs\nencode\n', 'c__builtin__\nbytes\n', 'cos\nsystem\n', 'cbuiltins\neval\n',
  '\x8c\x0bcollections\x8c\x0bOrderedDict\x93', '\x8c\x02os\x8c\x06system\x93', 'X\x07\x00\x00\x00storage', 'X\x03\x00\x00\x00cpu',
  'I00\n', 'I01\n', 'I99999999999999999999\n', 'L-9223372036854775808L\n', 'F1e309\n', 'Fnan\n', "S'\\x00'\n", 'Vx\\u00e9\n', 'P0\n',
  '\x8f', '\x90', '\x91', '\x97', '\x98', 'i__main__\nX\n', 'o', '\x81', '\x92',
].map((s) => Buffer.from(s, 'latin1'));

/** Opcode-aware mutation of one pickle. */
export function mutatePickle(rng: Rng, pkl: Buffer, others: readonly Buffer[]): Buffer {
  const { ops } = pickleOps(pkl);
  if (ops.length === 0) return generic(rng, pkl, others);
  const out = Buffer.from(pkl);
  const choice = rng.int(9);
  if (choice <= 1) {
    // a length or value field gets an interesting value
    const fielded = ops.filter((o) => o.field);
    if (fielded.length) {
      const o = rng.pick(fielded);
      writeUInt(out, o.field!.at, o.field!.width, interestingValue(rng, o.field!.width));
      return rng.chance(0.3) ? out.subarray(0, Math.min(out.length, o.end + rng.int(16))) : out;
    }
  }
  if (choice === 2) {
    // an integer argument (storage numel, offset, size, stride, memo index) becomes extreme
    const ints = ops.filter((o) => [0x4a, 0x4b, 0x4d, 0x8a].includes(o.op));
    if (ints.length) {
      const o = rng.pick(ints);
      const value = rng.pick([-1n, 0n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 40n, 2n ** 53n, 3n]);
      const w = new PickleWriter().int(value).stop().subarray(0, -1);
      return Buffer.concat([pkl.subarray(0, o.pos), w, pkl.subarray(o.end)]);
    }
  }
  if (choice === 3 || choice === 4) {
    // insert a snippet at an opcode boundary
    const at = rng.pick(ops).pos;
    const snippets = Array.from({ length: rng.range(1, 4) }, () => rng.pick(PICKLE_SNIPPETS));
    return Buffer.concat([pkl.subarray(0, at), ...snippets, pkl.subarray(at)]);
  }
  if (choice === 5) {
    // delete or duplicate a run of opcodes
    const i = rng.int(ops.length);
    const j = Math.min(ops.length - 1, i + rng.int(4));
    const run = pkl.subarray(ops[i].pos, ops[j].end);
    return rng.chance(0.5)
      ? Buffer.concat([pkl.subarray(0, ops[i].pos), pkl.subarray(ops[j].end)])
      : Buffer.concat([pkl.subarray(0, ops[j].end), run, run, pkl.subarray(ops[j].end)]);
  }
  if (choice === 6) {
    // swap a global for another (allowed or not)
    const globals = ops.filter((o) => o.op === 0x63);
    if (globals.length) {
      const o = rng.pick(globals);
      const g = rng.pick(PICKLE_SNIPPETS.filter((s) => s[0] === 0x63));
      return Buffer.concat([pkl.subarray(0, o.pos), g, pkl.subarray(o.end)]);
    }
  }
  if (choice === 7) {
    // a string argument changes (storage keys, dict keys, 'storage', 'cpu')
    const strs = ops.filter((o) => o.op === 0x58 || o.op === 0x8c);
    if (strs.length) {
      const o = rng.pick(strs);
      const text = Buffer.from(rng.pick(['', '../x', 'a/b', '0', '1', 'storage', 'cpu', 'cuda:0', '\u2603', 'x'.repeat(300), '\ud800']), 'utf8');
      const w = Buffer.concat([Buffer.from([0x58]), u32(text.length), text]);
      return Buffer.concat([pkl.subarray(0, o.pos), w, pkl.subarray(o.end)]);
    }
  }
  return generic(rng, pkl, others, 1);
}

/** A crafted pickle (deep, exponential, huge lengths, or a state_dict claiming too much). */
function craftedPickle(rng: Rng): Buffer {
  switch (rng.int(5)) {
    case 0: return deepPickle(rng, rng.pick([50, 999, 1000, 1001, 5000, 100000]));
    case 1: return dagBombPickle(rng.pick([16, 20, 22, 23, 24, 25, 40]), rng.chance(0.5));
    case 2: return hugeLengthPickle(rng);
    default: {
      // a state_dict whose tensors claim huge or overflowing storages, sizes and strides
      const big = (): bigint => rng.pick([2n ** 31n, 2n ** 40n, 2n ** 61n, 2n ** 62n, 2n ** 63n - 1n, 100n * 2n ** 30n, 0n, 1n]);
      const tensors: TensorSpec[] = Array.from({ length: rng.range(1, 3) }, (_, i) => ({
        name: `t${i}`,
        key: String(i),
        storage: rng.pick(['FloatStorage', 'DoubleStorage', 'LongStorage', 'ByteStorage', 'BoolStorage', 'HalfStorage']),
        numel: rng.chance(0.5) ? big() : 4n,
        offset: rng.chance(0.2) ? big() : 0n,
        sizes: rng.chance(0.5) ? [big(), big()] : [2n, 2n],
        strides: rng.chance(0.5) ? [big(), 1n] : [2n, 1n],
      }));
      return stateDictPickle(tensors);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Zip archives: a parser for the seeds and a writer that can lie in every field.

export interface ZipFile {
  name: string;
  data: Buffer; // uncompressed contents
  method?: 0 | 8;
  /** Raw compressed bytes to use instead of compressing `data`. */
  raw?: Buffer;
  claimUncompressed?: bigint;
  claimCompressed?: bigint;
  crc?: number;
  zip64?: boolean;
  /** Point this entry's central directory record at an earlier entry's local header. */
  sameLocalAs?: number;
}

interface ParsedZipEntry {
  name: string;
  cdOffset: number;
  localOffset: number;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  dataOffset: number;
}

export function parseZip(buf: Buffer): { entries: ParsedZipEntry[]; eocd: number } | undefined {
  const eocd = buf.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
  if (eocd < 0 || eocd + 22 > buf.length) return undefined;
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries: ParsedZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) return undefined;
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const localOffset = buf.readUInt32LE(p + 42);
    if (localOffset + 30 > buf.length) return undefined;
    const dataOffset = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    entries.push({
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
      cdOffset: p,
      localOffset,
      method: buf.readUInt16LE(p + 10),
      compressedSize: buf.readUInt32LE(p + 20),
      uncompressedSize: buf.readUInt32LE(p + 24),
      dataOffset,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, eocd };
}

export function zipFiles(buf: Buffer): ZipFile[] | undefined {
  const parsed = parseZip(buf);
  if (!parsed) return undefined;
  return parsed.entries.map((e) => {
    const raw = buf.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
    return { name: e.name, data: e.method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw) };
  });
}

export function buildZip(files: readonly ZipFile[], options: { zip64Eocd?: boolean; entryCount?: number } = {}): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  files.forEach((f, i) => {
    const name = Buffer.from(f.name, 'utf8');
    const method = f.method ?? 0;
    const body = f.raw ?? (method === 8 ? zlib.deflateRawSync(f.data) : f.data);
    const crc = f.crc ?? crc32(f.data);
    const uncompressed = f.claimUncompressed ?? BigInt(f.data.length);
    const compressed = f.claimCompressed ?? BigInt(body.length);
    const zip64 = f.zip64 || uncompressed > 0xfffffffen || compressed > 0xfffffffen;
    const localOffset = f.sameLocalAs !== undefined ? offsets[f.sameLocalAs] : offset;
    offsets.push(localOffset);
    const small = (v: bigint) => (zip64 ? 0xffffffff : Number(v));
    if (f.sameLocalAs === undefined) {
      const extra = zip64 ? Buffer.concat([u16(1), u16(16), u64(uncompressed), u64(compressed)]) : Buffer.alloc(0);
      const header = Buffer.concat([
        u32(0x04034b50), u16(zip64 ? 45 : 20), u16(0), u16(method), u16(0), u16(0x21), u32(crc), u32(small(compressed)),
        u32(small(uncompressed)), u16(name.length), u16(extra.length),
      ]);
      const local = Buffer.concat([header, name, extra, body]);
      locals.push(local);
      offset += local.length;
    }
    const extra = zip64 ? Buffer.concat([u16(1), u16(24), u64(uncompressed), u64(compressed), u64(localOffset)]) : Buffer.alloc(0);
    central.push(Buffer.concat([
      u32(0x02014b50), u16(zip64 ? 45 : 20), u16(zip64 ? 45 : 20), u16(0), u16(method), u16(0), u16(0x21), u32(crc),
      u32(small(compressed)), u32(small(uncompressed)), u16(name.length), u16(extra.length), u16(0), u16(0), u16(0), u32(0),
      u32(zip64 ? 0xffffffff : localOffset), name, extra,
    ]));
  });
  const cd = Buffer.concat(central);
  const count = options.entryCount ?? files.length;
  const parts = [...locals, cd];
  const cdOffset = offset;
  if (options.zip64Eocd) {
    const eocd64 = Buffer.concat([
      u32(0x06064b50), u64(44), u16(45), u16(45), u32(0), u32(0), u64(count), u64(count), u64(cd.length), u64(cdOffset),
    ]);
    const locator = Buffer.concat([u32(0x07064b50), u32(0), u64(cdOffset + cd.length), u32(1)]);
    parts.push(eocd64, locator, Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(0xffff), u16(0xffff), u32(0xffffffff), u32(0xffffffff), u16(0)]));
  } else {
    parts.push(Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(count), u16(count), u32(cd.length), u32(cdOffset), u16(0)]));
  }
  return Buffer.concat(parts);
}

/** Raw deflate of `head`, `total` bytes of `fill`, then `tail`, built without compressing `total` bytes. */
function deflateBomb(head: Buffer, fill: number, total: number, tail: Buffer): Buffer {
  const chunkSize = 1 << 20;
  const chunk = bombChunk(fill, chunkSize);
  const parts: Buffer[] = [zlib.deflateRawSync(head, { finishFlush: zlib.constants.Z_FULL_FLUSH })];
  const chunks = Math.floor(total / chunkSize);
  for (let i = 0; i < chunks; i++) parts.push(chunk);
  parts.push(zlib.deflateRawSync(Buffer.concat([Buffer.alloc(total - chunks * chunkSize, fill), tail])));
  return Buffer.concat(parts);
}
const bombChunks = new Map<string, Buffer>();
function bombChunk(fill: number, size: number): Buffer {
  const key = `${fill}:${size}`;
  let c = bombChunks.get(key);
  if (!c) {
    c = zlib.deflateRawSync(Buffer.alloc(size, fill), { level: 9, finishFlush: zlib.constants.Z_FULL_FLUSH });
    bombChunks.set(key, c);
  }
  return c;
}

let megabyte: Buffer | undefined;
function sharedMegabyte(): Buffer {
  megabyte ??= Buffer.alloc(1 << 20, 1);
  return megabyte;
}

const CD_FIELDS: [number, 1 | 2 | 4][] = [[4, 2], [6, 2], [8, 2], [10, 2], [16, 4], [20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [34, 2], [42, 4]];
const LOCAL_FIELDS: [number, 1 | 2 | 4][] = [[4, 2], [6, 2], [8, 2], [14, 4], [18, 4], [22, 4], [26, 2], [28, 2]];
const EOCD_FIELDS: [number, 1 | 2 | 4][] = [[4, 2], [6, 2], [8, 2], [10, 2], [12, 4], [16, 4], [20, 2]];

function pickleEntry(files: ZipFile[]): number {
  return files.findIndex((f) => f.name.endsWith('/data.pkl'));
}

/** Zip-aware mutations; `pickleMutator` changes data.pkl (which is then re-zipped with a valid CRC). */
function mutateZip(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const parsed = parseZip(seed);
  const files = zipFiles(seed);
  if (!parsed || !files) return generic(rng, seed, others);
  const pkl = pickleEntry(files);
  const prefix = files[0].name.split('/')[0];
  const choice = rng.weighted<string>([
    [30, 'pickle'], [8, 'crafted'], [12, 'field'], [4, 'storage'], [4, 'entries'], [3, 'zip64'], [2, 'deflate'],
    [1, 'bomb-deflate'], [1, 'bomb-claim'], [1, 'bomb-overlap'], [1, 'byteorder'],
  ]);
  switch (choice) {
    case 'pickle':
      if (pkl >= 0) files[pkl] = { ...files[pkl], data: mutatePickle(rng, files[pkl].data, others) };
      return buildZip(files);
    case 'crafted':
      if (pkl >= 0) files[pkl] = { ...files[pkl], data: craftedPickle(rng) };
      return buildZip(files);
    case 'field': {
      const out = Buffer.from(seed);
      const where = rng.int(3);
      if (where === 0) {
        const e = rng.pick(parsed.entries);
        const [off, width] = rng.pick(CD_FIELDS);
        writeUInt(out, e.cdOffset + off, width, interestingValue(rng, width));
      } else if (where === 1) {
        const e = rng.pick(parsed.entries);
        const [off, width] = rng.pick(LOCAL_FIELDS);
        writeUInt(out, e.localOffset + off, width, interestingValue(rng, width));
      } else {
        const [off, width] = rng.pick(EOCD_FIELDS);
        writeUInt(out, parsed.eocd + off, width, interestingValue(rng, width));
      }
      return out;
    }
    case 'storage': {
      // a storage record shorter or longer than its tensors need, or renamed
      const storages = files.map((f, i) => [f, i] as const).filter(([f]) => f.name.includes('/data/'));
      if (storages.length) {
        const [f, i] = rng.pick(storages);
        const data = rng.chance(0.5) ? f.data.subarray(0, rng.int(f.data.length + 1)) : Buffer.concat([f.data, rng.bytes(rng.int(64))]);
        files[i] = { ...f, data, name: rng.chance(0.2) ? `${prefix}/data/${rng.pick(['x', '../0', '', '0/1'])}` : f.name };
      }
      return buildZip(files);
    }
    case 'entries': {
      // drop, duplicate, reorder or rename entries
      const i = rng.int(files.length);
      const r = rng.int(4);
      if (r === 0) files.splice(i, 1);
      else if (r === 1) files.splice(i, 0, { ...files[i] });
      else if (r === 2) files.reverse();
      else files[i] = { ...files[i], name: rng.pick(['data.pkl', `${prefix}/version`, `${prefix}/data.pkl`, `${prefix}/.data/version`, '/', '', `${prefix}/${'x'.repeat(70000)}`]) };
      return buildZip(files, { entryCount: rng.chance(0.2) ? rng.pick([0, 0xffff, files.length + 1]) : undefined });
    }
    case 'zip64': {
      // zip64 records whose 64-bit fields claim absurd sizes
      const i = rng.int(files.length);
      files[i] = { ...files[i], zip64: true };
      if (rng.chance(0.7)) {
        const claim = rng.pick([2n ** 63n, 2n ** 64n - 1n, 100n * 2n ** 30n, 2n ** 33n, 2n ** 62n]);
        if (rng.chance(0.5)) files[i].claimUncompressed = claim;
        else files[i].claimCompressed = claim;
      }
      return buildZip(files, { zip64Eocd: rng.chance(0.5) });
    }
    case 'deflate': {
      // deflated (not stored) entries: torch never writes them, miniz reads them
      for (const f of files) if (rng.chance(0.5)) f.method = 8;
      return buildZip(files);
    }
    case 'bomb-deflate': {
      // data.pkl is a valid pickle holding a 2 GB string; deflated it is ~2 MB
      if (pkl < 0) return buildZip(files);
      const orig = files[pkl].data;
      const total = rng.pick([2 ** 31 - 64, 2 ** 30, 2 ** 32 + 2 ** 20]);
      const head = Buffer.concat([Buffer.from([0x80, 0x04, 0x8d]), u64(total)]);
      const tail = Buffer.concat([Buffer.from('0', 'latin1'), orig.subarray(2)]);
      const raw = deflateBomb(head, 0x61, total, tail);
      const claimed = BigInt(head.length + total + tail.length);
      files[pkl] = { ...files[pkl], method: 8, raw, claimUncompressed: claimed, crc: 0, zip64: claimed > 0xfffffffen };
      return buildZip(files);
    }
    case 'bomb-claim': {
      // an entry claims a huge uncompressed size (deflated, so its real size is not checked up front)
      const i = rng.chance(0.5) && pkl >= 0 ? pkl : rng.int(files.length);
      const claim = rng.pick([0xffffffffn, 0xfffffff0n, 2n ** 31n, 100n * 2n ** 30n, 2n ** 63n - 1n, 2n ** 36n]);
      files[i] = { ...files[i], method: 8, claimUncompressed: claim, zip64: claim > 0xfffffffen };
      return buildZip(files);
    }
    case 'bomb-overlap': {
      // many storages whose central directory records all point at one 1 MB local file
      const n = rng.pick([64, 1000, 3000]);
      const size = 1 << 20;
      const tensors: TensorSpec[] = Array.from({ length: n }, (_, i) => ({ name: `w${i}`, key: String(i), numel: size / 4, sizes: [size / 4], strides: [1] }));
      const shared: ZipFile = { name: `${prefix}/data/0`, data: sharedMegabyte(), crc: crc32(sharedMegabyte()) };
      const list: ZipFile[] = [
        { name: `${prefix}/data.pkl`, data: stateDictPickle(tensors) },
        shared,
        ...Array.from({ length: n - 1 }, (_, i) => ({ name: `${prefix}/data/${i + 1}`, data: shared.data, crc: shared.crc, sameLocalAs: 1 })),
        { name: `${prefix}/version`, data: Buffer.from('3\n') },
      ];
      return buildZip(list);
    }
    default: { // byteorder
      const i = files.findIndex((f) => f.name.endsWith('/byteorder'));
      const data = Buffer.from(rng.pick(['big', 'little\0', '', 'LITTLE']));
      if (i >= 0) files[i] = { ...files[i], data };
      else files.push({ name: `${prefix}/byteorder`, data });
      return buildZip(files);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Legacy torch.save files: magic, protocol, sys_info, main pickle, storage keys, then storages.

function legacyLayout(buf: Buffer): { ends: number[] } | undefined {
  const ends: number[] = [];
  let pos = 0;
  for (let i = 0; i < 5; i++) {
    const { end } = pickleOps(buf, pos);
    if (end < 0) return undefined;
    ends.push(end);
    pos = end;
  }
  return { ends };
}

function mutateLegacy(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const layout = legacyLayout(seed);
  if (!layout) return generic(rng, seed, others);
  const [, protoEnd, sysEnd, mainEnd, keysEnd] = layout.ends;
  const choice = rng.weighted<string>([[35, 'main'], [8, 'keys'], [15, 'count'], [10, 'crafted'], [4, 'sys'], [4, 'storage-bytes']]);
  const rebuild = (main: Buffer, keys = seed.subarray(mainEnd, keysEnd), rest = seed.subarray(keysEnd)) =>
    Buffer.concat([seed.subarray(0, sysEnd), main, keys, rest]);
  switch (choice) {
    case 'main': return rebuild(mutatePickle(rng, seed.subarray(sysEnd, mainEnd), others));
    case 'keys': return rebuild(seed.subarray(sysEnd, mainEnd), mutatePickle(rng, seed.subarray(mainEnd, keysEnd), others));
    case 'count': {
      // a storage's int64 element count claims too much (or too little)
      const out = Buffer.from(seed);
      // storages follow the keys: count, data, count, data... find the first count; others by walking
      // is not possible without knowing dtypes, so poke the first count or a random 8-byte slot
      const at = rng.chance(0.6) ? keysEnd : keysEnd + 8 * rng.int(Math.max(1, Math.floor((seed.length - keysEnd) / 8)));
      writeUInt(out, at, 8, rng.pick([2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 62n, 2n ** 40n, 100n * 2n ** 30n, 0n, 1n, 2n ** 32n]));
      return out;
    }
    case 'crafted': {
      // a main pickle naming storages with huge element counts, and counts to match
      const big = rng.pick([2n ** 40n, 2n ** 61n, 2n ** 62n, 2n ** 63n - 1n, 100n * 2n ** 30n, 2n ** 28n]);
      const main = stateDictPickle([{ name: 'w', key: '0', numel: big, sizes: [big], strides: [1] }]);
      const keys = new PickleWriter().proto().mark().str('0').raw('l').stop();
      return Buffer.concat([seed.subarray(0, sysEnd), rng.chance(0.3) ? craftedPickle(rng) : main, keys, u64(big), rng.bytes(rng.int(256))]);
    }
    case 'sys': return Buffer.concat([seed.subarray(0, protoEnd), mutatePickle(rng, seed.subarray(protoEnd, sysEnd), others), seed.subarray(sysEnd)]);
    default: return Buffer.concat([seed.subarray(0, keysEnd), generic(rng, seed.subarray(keysEnd), [])]);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON-ish values for safetensors headers, manifests and cache headers.

function interestingJson(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => 2 ** 53, () => 2 ** 53 + 2, () => -1, () => 1.5, () => 1e308, () => -0, () => 0, () => 2 ** 31, () => 2 ** 32 + 1, () => 65535,
    () => 65536, () => '', () => '../..', () => '/etc/passwd', () => 'x'.repeat(rng.pick([10, 1000, 100000])), () => null, () => true,
    () => [], () => ({}), () => [2 ** 40, 2 ** 40], () => Array.from({ length: 1000 }, () => 1), () => '\u0000', () => '\ud800',
    () => ({ __proto__: { polluted: 1 } }), () => JSON.parse('{"__proto__": {"x": 1}}'), () => ['a', 'b'], () => 'NaN',
  ])();
}

/** Replaces a random value somewhere inside `value` (in place where possible). */
function mutateJsonValue(rng: Rng, value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8 || rng.chance(0.15)) return interestingJson(rng);
  if (Array.isArray(value)) {
    if (value.length === 0 || rng.chance(0.1)) {
      value.push(interestingJson(rng));
      return value;
    }
    const r = rng.int(10);
    if (r === 0) value.splice(rng.int(value.length), 1);
    else if (r === 1) value.push(...Array.from({ length: rng.pick([2, 100, 20000]) }, () => value[rng.int(value.length)]));
    else {
      const i = rng.int(value.length);
      value[i] = mutateJsonValue(rng, value[i], depth + 1);
    }
    return value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 0 || rng.chance(0.1)) {
    obj[rng.pick(['x', '__proto__', 'constructor', 'toString', ''])] = interestingJson(rng);
    return obj;
  }
  const k = rng.pick(keys);
  if (rng.chance(0.1)) delete obj[k];
  else obj[k] = mutateJsonValue(rng, obj[k], depth + 1);
  return obj;
}

function deepJson(depth: number, open: string, close: string): string {
  return open.repeat(depth) + close.repeat(depth);
}

// ---------------------------------------------------------------------------------------------
// safetensors

function mutateSafetensors(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const headerLength = Number(seed.readBigUInt64LE(0));
  const data = seed.subarray(8 + headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(seed.toString('utf8', 8, 8 + headerLength));
  } catch {
    return generic(rng, seed, others);
  }
  const pack = (json: string, body = data): Buffer => Buffer.concat([u64(Buffer.byteLength(json)), Buffer.from(json), body]);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const choice = rng.weighted<string>([[10, 'length'], [30, 'field'], [8, 'overlap'], [5, 'many'], [4, 'deep'], [4, 'dims'], [4, 'text']]);
  switch (choice) {
    case 'length': {
      const out = Buffer.from(seed);
      writeUInt(out, 0, 8, rng.pick([2n ** 63n, 2n ** 64n - 1n, 0xffffffffn, 100n * 2n ** 20n - 1n, BigInt(headerLength + 1), BigInt(headerLength - 1), BigInt(seed.length), 0n, 2n]));
      return out;
    }
    case 'field': {
      const name = rng.pick(names);
      const entry = header[name] as Record<string, unknown>;
      const field = rng.pick(['dtype', 'shape', 'data_offsets', 'shape', 'data_offsets']);
      if (field === 'dtype') entry.dtype = rng.pick(['F32', 'F64', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'x', 7, null]);
      else if (rng.chance(0.5)) entry[field] = mutateJsonValue(rng, entry[field]);
      else entry[field] = rng.pick<unknown>([[2 ** 26, 2 ** 26, 4], [2 ** 53], [-1], [0, 2 ** 53], [1.5], [0, 2 ** 40], [2 ** 40, 2 ** 40 + 4], [], [0]]);
      return pack(JSON.stringify(header));
    }
    case 'overlap': {
      // many tensors sharing the same bytes: the data gets copied once per tensor
      const first = header[names[0]] as { dtype: string; shape: number[]; data_offsets: [number, number] };
      const copies = rng.pick([10, 1000, 5000]);
      const big = rng.chance(0.5) ? Buffer.alloc(1 << 20, 1) : data;
      const span = big === data ? first.data_offsets : [0, big.length];
      const unit = ({ F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as Record<string, number>)[first.dtype] ?? 1;
      const h: Record<string, unknown> = {};
      for (let i = 0; i < copies; i++) h[`t${i}`] = { dtype: first.dtype, shape: [(span[1] - span[0]) / unit], data_offsets: span };
      return pack(JSON.stringify(h), big);
    }
    case 'many': {
      const h: Record<string, unknown> = { ...header };
      for (let i = 0; i < rng.pick([100, 10000]); i++) h[`extra${i}`] = { dtype: 'U8', shape: [0], data_offsets: [0, 0] };
      return pack(JSON.stringify(h));
    }
    case 'deep': {
      const depth = rng.pick([1000, 100000, 1000000]);
      const json = rng.chance(0.5) ? `{"__metadata__": ${deepJson(depth, '[', ']')}}` : `{"a": ${deepJson(depth, '{"a":', '}').replace(/\{"a":\}/, '1')}}`;
      return pack(json);
    }
    case 'dims': {
      const name = rng.pick(names);
      const entry = header[name] as { shape: number[]; data_offsets: [number, number] };
      const n = rng.pick([64, 1000, 100000]);
      entry.shape = [...Array.from({ length: n }, () => 1), ...entry.shape];
      return pack(JSON.stringify(header));
    }
    default: {
      // the header text itself (keeps the length field right)
      const json = Buffer.from(JSON.stringify(header));
      return pack(generic(rng, json, []).toString('latin1'));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JPEG and PNG

function jpegSegments(buf: Buffer): { marker: number; at: number; length: number }[] {
  const segs: { marker: number; at: number; length: number }[] = [];
  let p = 2;
  while (p + 4 <= buf.length && buf[p] === 0xff) {
    const marker = buf[p + 1];
    if (marker === 0xd9 || marker === 0xda) {
      segs.push({ marker, at: p, length: marker === 0xda ? buf.readUInt16BE(p + 2) : 0 });
      break;
    }
    const length = buf.readUInt16BE(p + 2);
    segs.push({ marker, at: p, length });
    p += 2 + length;
  }
  return segs;
}

function mutateJpeg(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const segs = jpegSegments(seed);
  const sof = segs.find((s) => s.marker >= 0xc0 && s.marker <= 0xcf && s.marker !== 0xc4 && s.marker !== 0xc8 && s.marker !== 0xcc);
  const out = Buffer.from(seed);
  const choice = rng.weighted<string>([[12, 'dims'], [6, 'length'], [6, 'truncate-scan'], [4, 'sof'], [3, 'app'], [2, 'dims-valid']]);
  if (choice === 'dims' && sof) {
    const v = rng.pick([0, 1, 0xffff, 0x7fff, 0x3fff, 0x4000, 16384, 20000, 3000]);
    writeUInt(out, sof.at + (rng.chance(0.5) ? 5 : 7), 2, BigInt(v), true);
    return out;
  }
  if (choice === 'length' && segs.length) {
    const s = rng.pick(segs);
    writeUInt(out, s.at + 2, 2, BigInt(rng.pick([0, 1, 2, 0xffff, s.length + 1, s.length - 1])), true);
    return out;
  }
  if (choice === 'truncate-scan') {
    const sos = segs.find((s) => s.marker === 0xda);
    if (sos) return seed.subarray(0, sos.at + rng.int(seed.length - sos.at));
  }
  if (choice === 'sof' && sof) {
    // precision, component count, sampling factors, table ids
    const offsets = [4, 9, 11, 12, 13, 14, 15];
    writeUInt(out, sof.at + rng.pick(offsets), 1, BigInt(rng.pick([0, 1, 2, 3, 4, 5, 8, 12, 16, 0x11, 0x22, 0x44, 0xff])));
    return out;
  }
  if (choice === 'app') {
    // an extra APPn segment (EXIF/ICC-like junk, or one that claims more than the file has)
    const payload = rng.chance(0.5) ? Buffer.concat([Buffer.from('Exif\0\0MM\0*\0\0\0\x08'), rng.bytes(rng.int(200))]) : Buffer.concat([Buffer.from('ICC_PROFILE\0\x01\x01'), rng.bytes(rng.int(500))]);
    const seg = Buffer.concat([Buffer.from([0xff, rng.pick([0xe1, 0xe2, 0xed, 0xfe])]), Buffer.from([(payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
    return Buffer.concat([seed.subarray(0, 2), seg, seed.subarray(2)]);
  }
  if (choice === 'dims-valid' && sof) {
    // scale both sides together (keeps the scan decodable for a while before it runs out)
    const h = seed.readUInt16BE(sof.at + 5) * rng.pick([16, 100, 1000]);
    writeUInt(out, sof.at + 5, 2, BigInt(Math.min(h, 0xffff)), true);
    return out;
  }
  return generic(rng, seed, others);
}

function pngChunks(buf: Buffer): { type: string; at: number; length: number }[] {
  const chunks: { type: string; at: number; length: number }[] = [];
  let p = 8;
  while (p + 12 <= buf.length) {
    const length = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    chunks.push({ type, at: p, length });
    p += 12 + length;
  }
  return chunks;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function fixPngCrc(buf: Buffer, chunk: { at: number; length: number }): void {
  if (chunk.at + 12 + chunk.length > buf.length) return;
  buf.writeUInt32BE(crc32(buf.subarray(chunk.at + 4, chunk.at + 8 + chunk.length)), chunk.at + 8 + chunk.length);
}

/** A valid PNG of all-zero pixels, of any size, without compressing width*height bytes here. */
function pngBomb(width: number, height: number, colourType: number): Buffer {
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colourType] ?? 3;
  const raw = (width * channels + 1) * height;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = colourType;
  const body = deflateBomb(Buffer.alloc(0), 0, raw, Buffer.alloc(0));
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((raw % 65521) << 16) | 1) >>> 0); // adler32 of `raw` zero bytes
  const idat = Buffer.concat([Buffer.from([0x78, 0x01]), body, adler]);
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

function mutatePng(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const chunks = pngChunks(seed);
  const ihdr = chunks.find((c) => c.type === 'IHDR');
  const out = Buffer.from(seed);
  const choice = rng.weighted<string>([[12, 'dims'], [6, 'ihdr'], [5, 'length'], [6, 'data-fixed-crc'], [5, 'truncate'], [1, 'bomb'], [3, 'chunk']]);
  if (choice === 'dims' && ihdr) {
    const v = rng.pick([0, 1, 0x7fffffff, 0xffffffff, 0x3fff, 16384, 65535, 1000000, 2, 3]);
    writeUInt(out, ihdr.at + 8 + (rng.chance(0.5) ? 0 : 4), 4, BigInt(v), true);
    if (rng.chance(0.8)) fixPngCrc(out, ihdr);
    return out;
  }
  if (choice === 'ihdr' && ihdr) {
    writeUInt(out, ihdr.at + 8 + rng.range(8, 12), 1, BigInt(rng.pick([0, 1, 2, 3, 4, 6, 7, 8, 16, 255])));
    fixPngCrc(out, ihdr);
    return out;
  }
  if (choice === 'length' && chunks.length) {
    const c = rng.pick(chunks);
    writeUInt(out, c.at, 4, BigInt(rng.pick([0, 0x7fffffff, 0xffffffff, c.length + 1, c.length - 1, 1 << 30])), true);
    return out;
  }
  if (choice === 'data-fixed-crc' && chunks.length) {
    // corrupt a chunk's data but keep its CRC valid, so the decoder itself must cope
    const c = rng.pick(chunks.filter((x) => x.length > 0).length ? chunks.filter((x) => x.length > 0) : chunks);
    for (let n = rng.range(1, 6); n > 0 && c.length > 0; n--) out[c.at + 8 + rng.int(c.length)] = rng.int(256);
    fixPngCrc(out, c);
    return out;
  }
  if (choice === 'truncate') return seed.subarray(0, rng.int(seed.length));
  if (choice === 'bomb') {
    // valid, tiny on disk, huge decoded: the biggest sharp accepts, and extreme aspect ratios
    const [w, h] = rng.pick([[16383, 16383], [1, 16383], [16383, 1], [2, 100000], [100000, 2], [20000, 20000], [4000, 4000], [1, 65535], [3, 30000]] as [number, number][]);
    return pngBomb(w, h, rng.pick([0, 2, 6]));
  }
  if (choice === 'chunk') {
    const type = rng.pick(['iCCP', 'zTXt', 'tEXt', 'iTXt', 'eXIf', 'PLTE', 'tRNS', 'acTL', 'sPLT']);
    let data = rng.bytes(rng.int(100));
    if (type === 'iCCP' || type === 'zTXt') data = Buffer.concat([Buffer.from('x\0\0'), zlib.deflateSync(Buffer.alloc(rng.pick([100, 1 << 24]), 0))]);
    const at = ihdr ? ihdr.at + 12 + ihdr.length : 8;
    return Buffer.concat([seed.subarray(0, at), pngChunk(type, data), seed.subarray(at)]);
  }
  return generic(rng, seed, others);
}

// ---------------------------------------------------------------------------------------------
// YAML

const YAML_SCALARS = [
  '.inf', '-.inf', '.nan', '1e309', '0x7fffffff', '0o777', '-0', '9007199254740993', '~', 'null', '[]', '{}', '""', "'\\0'", '!!binary AAAA',
  '!!js/function "function(){}"', '!!python/object:os.system ["ls"]', '&a 1', '*a', '*undefined', '!!str', '!!int "x"', '? complex key',
  '|', '>-', '"\\u0000"', '"\\ud800"', 'true', 'yes', 'on', '2001-12-14t21:59:43.10-05:00', '!<tag:yaml.org,2002:set> {a}',
];

function yamlAliasBomb(levels: number, width: number): string {
  const lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i <= levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: width }, () => `*a${i - 1}`).join(', ')}]`);
  lines.push(`weights: *a${levels}`);
  return `${lines.join('\n')}\n`;
}

function mutateYaml(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const text = seed.toString('utf8');
  const lines = text.split('\n');
  const choice = rng.weighted<string>([[20, 'value'], [8, 'lines'], [6, 'snippet'], [2, 'bomb'], [2, 'deep'], [2, 'long'], [20, 'generic']]);
  switch (choice) {
    case 'value': {
      const idx = lines.map((l, i) => [l, i] as const).filter(([l]) => /:\s*\S/.test(l) && !l.trim().startsWith('#'));
      if (idx.length) {
        const [l, i] = rng.pick(idx);
        lines[i] = l.replace(/:\s*.*$/, `: ${rng.pick(YAML_SCALARS)}`);
      }
      return Buffer.from(lines.join('\n'));
    }
    case 'lines': {
      const i = rng.int(lines.length);
      const r = rng.int(4);
      if (r === 0) lines.splice(i, 1);
      else if (r === 1) lines.splice(i, 0, lines[rng.int(lines.length)]);
      else if (r === 2) lines[i] = `\t${lines[i]}`;
      else lines[i] = ` ${lines[i]}`;
      return Buffer.from(lines.join('\n'));
    }
    case 'snippet': {
      const snippet = rng.pick([
        '<<: *base', 'base: &base {arch: alexnet}\n<<: *base', '---\narch: resnet18', '%YAML 1.1\n---', '? [a, b]\n: c', 'data: !!set {a, b}',
        'arch: !!binary aGVsbG8=', '\ufeffarch: alexnet', 'unknown_key: 1', 'Arch: alexnet', 'data: {root: [1, 2]}', 'data:\n  root: null',
        'augmentation: [1, 2, 3]', 'seed: !!float 1', 'epochs: 1e400', `run_name: ${'x'.repeat(100000)}`, 'weights: &w x\nweights: *w',
      ]);
      lines.splice(rng.int(lines.length + 1), 0, snippet);
      return Buffer.from(lines.join('\n'));
    }
    case 'bomb': return Buffer.from(text + yamlAliasBomb(rng.pick([5, 9, 20]), rng.pick([4, 9])));
    case 'deep': {
      const depth = rng.pick([1000, 20000, 100000]);
      const deep = rng.chance(0.5) ? deepJson(depth, '[', ']') : deepJson(depth, '{a: ', '}').replace('{a: }', '1');
      return Buffer.from(`data: ${deep}\n${text}`);
    }
    case 'long': return Buffer.from(`${rng.pick(['run_name', 'xxx', 'weights'])}: "${'\\u00e9'.repeat(rng.pick([1000, 200000]))}"\n${text}`);
    default: return generic(rng, seed, others);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON files: split manifests and the image cache

function mutateJsonText(rng: Rng, text: string, others: readonly Buffer[]): Buffer {
  const choice = rng.weighted<string>([[30, 'value'], [4, 'deep'], [3, 'huge-array'], [15, 'generic']]);
  if (choice === 'value') {
    try {
      return Buffer.from(JSON.stringify(mutateJsonValue(rng, JSON.parse(text))));
    } catch {
      return generic(rng, Buffer.from(text), others);
    }
  }
  if (choice === 'deep') {
    const depth = rng.pick([1000, 100000, 1000000]);
    return Buffer.from(text.replace(/"parts"\s*:/, `"deep": ${deepJson(depth, '[', ']')}, "parts":`));
  }
  if (choice === 'huge-array') {
    const n = rng.pick([10000, 50000]);
    const entries = Array.from({ length: n }, (_, i) => `{"path":"a/${i}.jpg","label":0}`).join(',');
    return Buffer.from(text.replace(/"train"\s*:\s*\[/, `"train": [${entries},`));
  }
  return generic(rng, Buffer.from(text), others);
}

function mutateCache(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const headerLength = seed.readUInt32LE(8);
  const header = seed.subarray(12, 12 + headerLength).toString('utf8');
  const pixels = seed.subarray(12 + headerLength);
  const choice = rng.weighted<string>([[10, 'length'], [25, 'header'], [6, 'sizes'], [15, 'generic']]);
  const pack = (json: string, body = pixels) => Buffer.concat([seed.subarray(0, 8), u32(Buffer.byteLength(json)), Buffer.from(json), body]);
  if (choice === 'length') {
    const out = Buffer.from(seed);
    writeUInt(out, 8, 4, BigInt(rng.pick([0xffffffff, 0x7fffffff, 256 * 1024 * 1024, headerLength + 1, headerLength - 1, seed.length, 0])));
    return out;
  }
  if (choice === 'header') return pack(mutateJsonText(rng, header, []).toString('utf8'));
  if (choice === 'sizes') {
    // sizes that multiply past 2^32 or claim data that is not there
    try {
      const h = JSON.parse(header) as { entries: [string, number, number][]; dataBytes: number };
      const e = rng.pick(h.entries);
      e[1] = rng.pick([65535, 65536, 2 ** 31, 1, 0]);
      e[2] = rng.pick([65535, 65536, 2 ** 31, 1, 0]);
      if (rng.chance(0.5)) h.dataBytes = h.entries.reduce((n, x) => n + x[1] * x[2] * 3, 0);
      return pack(JSON.stringify(h));
    } catch {
      return generic(rng, seed, others);
    }
  }
  return generic(rng, seed, others);
}

// ---------------------------------------------------------------------------------------------
// Formats: seeds, mutation and (in the worker) loading.

interface FormatDef {
  ext: string;
  mutate: (rng: Rng, seed: Buffer, others: readonly Buffer[]) => Buffer;
}

const FORMAT_DEFS: Record<FuzzFormat, FormatDef> = {
  zip: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.75) ? mutateZip(rng, s, o) : generic(rng, s, o)) },
  legacy: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.75) ? mutateLegacy(rng, s, o) : generic(rng, s, o)) },
  safetensors: { ext: '.safetensors', mutate: (rng, s, o) => (rng.chance(0.7) ? mutateSafetensors(rng, s, o) : generic(rng, s, o)) },
  checkpoint: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.8) ? mutateZip(rng, s, o) : generic(rng, s, o)) },
  jpeg: { ext: '.jpg', mutate: (rng, s, o) => (rng.chance(0.5) ? mutateJpeg(rng, s, o) : generic(rng, s, o)) },
  png: { ext: '.png', mutate: (rng, s, o) => (rng.chance(0.6) ? mutatePng(rng, s, o) : generic(rng, s, o)) },
  yaml: { ext: '.yaml', mutate: mutateYaml },
  manifest: { ext: '.json', mutate: (rng, s, o) => mutateJsonText(rng, s.toString('utf8'), o) },
  cache: { ext: '.bin', mutate: mutateCache },
};

/** Fixed inputs of the cache loader (the key and file list its seeds were written for). */
export const CACHE_KEY = 'c0ffee'.repeat(10) + 'beef';
export const CACHE_FILES = ['/data/a/1.jpg', '/data/a/2.jpg', '/data/b/3.png', '/data/b/4.png'];

const SEED_DIR_CANDIDATES = [path.join(__dirname, '..', 'test', 'fuzz', 'seeds'), path.join(__dirname, '..', '..', 'test', 'fuzz', 'seeds')];

/** Makes every seed (valid files of each format) with finetorch's own writers, plus the committed torch.save seeds. */
export async function makeSeeds(dir: string, formats: readonly FuzzFormat[]): Promise<Record<FuzzFormat, Buffer[]>> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { tensor } = require('../lib/tensor') as typeof import('../lib/tensor');
  const { saveWeights } = require('../lib/models/weights') as typeof import('../lib/models/weights');
  const { saveCheckpoint } = require('../lib/training/checkpoint') as typeof import('../lib/training/checkpoint');
  const { saveSplitManifest, normalizeProtocol } = require('../lib/data/splits') as typeof import('../lib/data/splits');
  const { writeCacheFile } = require('../lib/data/cache') as typeof import('../lib/data/cache');
  const { normalizeDecodeOptions } = require('../lib/data/decode') as typeof import('../lib/data/decode');
  const { configsDir } = require('../lib/experiment/config') as typeof import('../lib/experiment/config');
  /* eslint-enable @typescript-eslint/no-require-imports */
  fs.mkdirSync(dir, { recursive: true });
  const seeds = {} as Record<FuzzFormat, Buffer[]>;
  const seedDir = SEED_DIR_CANDIDATES.find((d) => fs.existsSync(d));
  const committed = (prefix: string): Buffer[] =>
    seedDir ? fs.readdirSync(seedDir).filter((f) => f.startsWith(prefix)).sort().map((f) => fs.readFileSync(path.join(seedDir, f))) : [];
  const rng = new Rng(12345);
  const floats = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
  const stateDict = () => new Map([
    ['conv.weight', tensor(floats(8), [2, 1, 2, 2])],
    ['conv.bias', tensor(floats(2), [2])],
    ['bn.num_batches_tracked', tensor(BigInt64Array.from([5n]), [])],
    ['fc.weight', tensor(floats(6), [3, 2])],
    ['mask', tensor(Uint8Array.from([1, 0, 1]), [3], { dtype: 'bool' })],
    ['f64', tensor(Float64Array.from([1.5, -2]), [2])],
    ['i32', tensor(Int32Array.from([-7, 7]), [2])],
    ['empty', tensor(new Float32Array(0), [0, 3])],
  ]);
  const write = async (name: string, save: (file: string) => Promise<void>): Promise<Buffer> => {
    const file = path.join(dir, name);
    await save(file);
    return fs.readFileSync(file);
  };
  const want = new Set(formats);
  if (want.has('zip')) {
    seeds.zip = [await write('sd.pth', (f) => saveWeights(f, stateDict())), ...committed('zip-')];
    seeds.zip.push(await write('sd2.pth', (f) => saveWeights(f, new Map([['w', tensor(floats(3), [3])]]))));
  }
  if (want.has('legacy')) {
    seeds.legacy = committed('legacy-');
    if (!seeds.legacy.length) throw new Error('no legacy seeds: test/fuzz/seeds/legacy-*.pth (written by scripts/fuzz-make-seeds.py) are missing');
  }
  if (want.has('safetensors')) {
    seeds.safetensors = [
      await write('sd.safetensors', (f) => saveWeights(f, stateDict())),
      await write('one.safetensors', (f) => saveWeights(f, new Map([['module.w', tensor(floats(4), [2, 2])]]))),
    ];
  }
  if (want.has('checkpoint')) {
    const model = { arch: 'resnet18', numClasses: 3, head: 'linear', stateDict } as unknown as import('../lib/models/model').Model;
    const optimizer = {
      stateDict: () => ({
        state: new Map([[0, new Map<string, unknown>([['momentum_buffer', tensor(floats(2), [2])]])]]),
        param_groups: [{ lr: 0.1, momentum: 0.9, params: [0, 1] }],
        param_names: ['conv.weight', 'conv.bias'],
        type: 'sgd',
      }),
    } as unknown as import('../lib/training/optimizer').Optimizer;
    const scheduler = { stateDict: () => ({ scheduler: 'step', last_epoch: 3, step_size: 2 }) } as unknown as import('../lib/training/schedulers').LrScheduler;
    seeds.checkpoint = [
      await write('ckpt.pth', (f) => saveCheckpoint(f, { model, optimizer, scheduler, epoch: 3, step: 120, bestMetric: 0.5, config: { arch: 'resnet18', lr: 0.01 }, extra: { order: [3, 1, 2] } })),
      await write('ckpt-min.pth', (f) => saveCheckpoint(f, { model, epoch: 0, step: 0 })),
    ];
  }
  if (want.has('jpeg') || want.has('png')) {
    const noise = (w: number, h: number, channels: 1 | 3 | 4) => sharp(rng.bytes(w * h * channels), { raw: { width: w, height: h, channels } });
    if (want.has('jpeg')) {
      seeds.jpeg = [
        await noise(24, 16, 3).jpeg({ quality: 80 }).toBuffer(),
        await noise(17, 9, 1).jpeg({ progressive: true }).toBuffer(),
        await noise(33, 21, 3).jpeg({ chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer(),
        await noise(12, 300, 3).jpeg().toBuffer(),
        await noise(20, 20, 3).toColourspace('cmyk').jpeg().toBuffer(),
      ];
    }
    if (want.has('png')) {
      seeds.png = [
        await noise(16, 12, 3).png().toBuffer(),
        await noise(9, 7, 4).png().toBuffer(),
        await noise(20, 10, 1).png({ progressive: true }).toBuffer(),
        await noise(12, 12, 3).png({ palette: true, colours: 8 }).toBuffer(),
        await noise(8, 8, 3).toColourspace('rgb16').png().toBuffer(),
        await noise(3, 200, 3).png().toBuffer(),
      ];
    }
  }
  if (want.has('yaml')) {
    const configs = configsDir();
    const experiments = path.join(configs, 'experiments');
    seeds.yaml = [
      fs.readFileSync(path.join(configs, 'base.yaml')),
      ...fs.readdirSync(experiments).filter((f) => f.endsWith('.yaml')).sort().map((f) => fs.readFileSync(path.join(experiments, f))),
    ];
  }
  if (want.has('manifest')) {
    const sample = (cls: string, i: number, label: number) => ({ path: `/data/${cls}/${i}.jpg`, label });
    const split = (protocol: ReturnType<typeof normalizeProtocol>) => ({
      seed: 7, protocol, root: '/data', classes: ['cat', 'dog', 'ünïcode'],
      train: [sample('cat', 1, 0), sample('cat', 2, 0), sample('dog', 3, 1), sample('ünïcode', 9, 2)],
      val: [sample('dog', 4, 1)],
      test: [sample('cat', 5, 0), sample('dog', 6, 1)],
    });
    seeds.manifest = [
      await write('m1.json', (f) => saveSplitManifest(split(normalizeProtocol({ kind: 'per-class', trainPerClass: 2, valPerClass: 1, testPerClass: 1 })), f)),
      await write('m2.json', (f) => saveSplitManifest(split(normalizeProtocol({ kind: 'ratio', train: 0.6, val: 0.2, test: 0.2 })), f)),
    ];
  }
  if (want.has('cache')) {
    const image = (w: number, h: number) => ({ data: rng.bytes(w * h * 3), width: w, height: h });
    const decode = normalizeDecodeOptions({ resize: 8, centerCrop: null });
    seeds.cache = [
      await write('c1.bin', (f) => writeCacheFile(f, CACHE_KEY, decode, CACHE_FILES, [image(4, 3), image(2, 2), image(5, 1), image(3, 3)], [])),
      await write('c2.bin', (f) => writeCacheFile(f, CACHE_KEY, decode, CACHE_FILES, [image(6, 4), undefined, image(1, 1), undefined], [
        { path: CACHE_FILES[1], reason: 'truncated', kind: 'decode-failed' }, { path: CACHE_FILES[3], reason: 'not an image', kind: 'decode-failed' },
      ])),
    ];
  }
  return seeds;
}

/** Input `index` of `format`: a pure function of (seed, format, index) and the seeds. */
export function makeInput(format: FuzzFormat, index: number, runSeed: number, seeds: readonly Buffer[]): Buffer {
  const rng = new Rng(hash32(`${runSeed}:${format}:${index}`));
  const seed = rng.pick(seeds);
  return FORMAT_DEFS[format].mutate(rng, seed, seeds);
}

// ---------------------------------------------------------------------------------------------
// The worker: loads one input at a time, answers over IPC.

class CacheRejection extends Error {}

function disposeDeep(value: unknown, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  const t = value as { dispose?: () => void; disposed?: boolean; native?: unknown };
  if (typeof t.dispose === 'function' && t.native !== undefined) {
    if (!t.disposed) t.dispose();
    return;
  }
  if (value instanceof Map) for (const [k, v] of value) (disposeDeep(k, seen), disposeDeep(v, seen));
  else if (Array.isArray(value)) for (const v of value) disposeDeep(v, seen);
  else if (!Buffer.isBuffer(value) && !ArrayBuffer.isView(value)) for (const v of Object.values(value)) disposeDeep(v, seen);
}

/** Loads one input with its format's public loader; throws what the loader throws. */
export async function loadInput(format: FuzzFormat, file: string, index: number): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  switch (format) {
    case 'zip':
    case 'legacy':
    case 'safetensors': {
      const { loadWeights } = require('../lib/models/weights') as typeof import('../lib/models/weights');
      const loaded = await loadWeights(file);
      disposeDeep(loaded.stateDict);
      return;
    }
    case 'checkpoint': {
      const { loadCheckpoint } = require('../lib/training/checkpoint') as typeof import('../lib/training/checkpoint');
      disposeDeep(await loadCheckpoint(file));
      return;
    }
    case 'jpeg':
    case 'png': {
      const { decodeImage, EVAL_DECODE, TRAIN_DECODE } = require('../lib/data/decode') as typeof import('../lib/data/decode');
      await decodeImage(file, index % 2 ? TRAIN_DECODE : EVAL_DECODE);
      return;
    }
    case 'yaml': {
      const { resolveConfig } = require('../lib/experiment/config') as typeof import('../lib/experiment/config');
      resolveConfig({ config: file });
      return;
    }
    case 'manifest': {
      const { readSplitManifest } = require('../lib/data/splits') as typeof import('../lib/data/splits');
      await readSplitManifest(file);
      return;
    }
    case 'cache': {
      const { readCacheFile } = require('../lib/data/cache') as typeof import('../lib/data/cache');
      const read = await readCacheFile(file, CACHE_KEY, CACHE_FILES);
      if (!read.ok) throw new CacheRejection(read.why);
      return;
    }
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
}

interface LoadMessage {
  type: 'load';
  id: number;
  format: FuzzFormat;
  file: string;
  index: number;
}

interface ResultMessage {
  type: 'result';
  id: number;
  outcome: 'accepted' | 'rejected' | 'bad-error';
  message: string;
  rss: number;
  maxRss: number;
}

export function workerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  (require('../binding') as typeof import('../binding')).native(); // load libtorch before the first timed input
  /* eslint-enable @typescript-eslint/no-require-imports */
  sharp.cache(false); // libvips' operation cache would blur which input used the memory
  let done = 0;
  process.on('message', (msg: LoadMessage) => {
    if (msg?.type !== 'load') return;
    void (async () => {
      let outcome: ResultMessage['outcome'] = 'accepted';
      let message = '';
      try {
        await loadInput(msg.format, msg.file, msg.index);
      } catch (e) {
        if (e instanceof CacheRejection) {
          outcome = 'rejected';
          message = e.message;
        } else if (msg.format === 'cache') {
          outcome = 'bad-error';
          message = `readCacheFile threw (it must report bad content as ok:false): ${e instanceof Error ? e.stack : String(e)}`;
        } else if (!(e instanceof Error) || typeof e.message !== 'string' || e.message.trim() === '') {
          outcome = 'bad-error';
          message = `rejected with ${e instanceof Error ? `an Error with an empty message (${e.name})` : `a non-Error: ${String(e)}`}`;
        } else {
          outcome = 'rejected';
          message = `${e.name}: ${e.message}`;
        }
      }
      if (++done % 64 === 0) (global as { gc?: () => void }).gc?.();
      const result: ResultMessage = {
        type: 'result', id: msg.id, outcome, message: message.slice(0, 2000), rss: process.memoryUsage().rss,
        maxRss: process.resourceUsage().maxRSS * 1024,
      };
      process.send!(result);
    })();
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------
// The pool.

const OOM_MESSAGE = /bad_alloc|not enough memory|out of memory|allocation failed|Invalid array length|Invalid typed array length|Cannot create a string longer than|Array buffer allocation|ERR_BUFFER_TOO_LARGE|ERR_STRING_TOO_LONG|Reached heap limit|cannot allocate memory|ENOMEM/i;

interface TaskResult {
  outcome: Outcome;
  how: string;
  detail: string;
  ms: number;
  replace: boolean;
}

function readRss(pid: number): number {
  try {
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return Number(statm[1]) * 4096;
  } catch {
    return 0;
  }
}

function findPrlimit(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/bin'])) {
    const p = path.join(dir, 'prlimit');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

class Worker {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  stderr = '';
  tasks = 0;
  exited = false;
  private nextId = 0;

  constructor(command: string, args: string[]) {
    this.proc = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, FINETORCH_FUZZ_WORKER: '1' } });
    this.proc.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-8000);
    });
    this.proc.on('exit', () => (this.exited = true));
    this.proc.on('error', () => (this.exited = true));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start in 120 s: ${this.stderr}`)), 120000);
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== 'ready') return;
        clearTimeout(timer);
        this.proc.off('exit', onExit);
        this.proc.off('message', onMessage);
        resolve();
      };
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`worker exited while starting (${signal ?? `code ${code}`}): ${this.stderr.trim() || 'no output'}`));
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
    });
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  run(format: FuzzFormat, file: string, index: number, timeoutMs: number, rssCap: number): Promise<TaskResult> {
    const id = ++this.nextId;
    this.tasks++;
    const started = Date.now();
    const pid = this.proc.pid!;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: Omit<TaskResult, 'ms'>) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
        resolve({ ...r, ms: Date.now() - started });
      };
      // The deadline counts only time this process was responsive: while it was busy generating an
      // input for another worker, a worker's answer could not be received, so that time is not held
      // against the input.
      let last = Date.now();
      let stalled = 0;
      const poll = setInterval(() => {
        const now = Date.now();
        if (now - last > 250) stalled += now - last - 20;
        last = now;
        if (now - started - stalled > timeoutMs) {
          this.kill();
          finish({ outcome: 'hang', how: `no answer within ${timeoutMs} ms`, detail: this.stderr.slice(-2000), replace: true });
          return;
        }
        const rss = readRss(pid);
        if (rss > rssCap) {
          this.kill();
          finish({ outcome: 'big-alloc', how: `resident memory reached ${Math.round(rss / 2 ** 20)} MB while loading`, detail: '', replace: true });
        }
      }, 20);
      const onMessage = (m: ResultMessage) => {
        if (m?.type !== 'result' || m.id !== id) return;
        const peakMb = Math.round(m.maxRss / 2 ** 20);
        if (m.maxRss > rssCap) {
          finish({ outcome: 'big-alloc', how: `peak resident memory ${peakMb} MB (${m.outcome})`, detail: m.message, replace: true });
        } else if (m.outcome === 'rejected' && OOM_MESSAGE.test(m.message)) {
          finish({ outcome: 'big-alloc', how: 'failed to allocate what the file claims', detail: m.message, replace: m.rss > rssCap / 2 });
        } else {
          finish({ outcome: m.outcome, how: m.outcome === 'bad-error' ? 'improper rejection' : '', detail: m.message, replace: m.rss > rssCap / 2 });
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        const tail = this.stderr.slice(-3000);
        const oom = OOM_MESSAGE.test(tail);
        finish({
          outcome: oom ? 'big-alloc' : 'crash',
          how: `worker ${signal ? `killed by ${signal}` : `exited with code ${code}`}${oom ? ' (out of memory)' : ''}`,
          detail: tail,
          replace: true,
        });
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
      this.proc.send({ type: 'load', id, format, file, index } satisfies LoadMessage);
    });
  }
}

function newStats(): FormatStats {
  return { inputs: 0, accepted: 0, rejected: 0, crashes: 0, hangs: 0, bigAlloc: 0, badErrors: 0, workerMs: 0, slowest: [], topRejections: [], findings: [] };
}

function normalizeMessage(message: string, workDir: string): string {
  return message.split(workDir).join('<dir>').replace(/'[^']*\/in-[^']*'/g, "'<file>'").replace(/\d+/g, '#').slice(0, 110);
}

export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzReport> {
  const formats = options.formats ?? FORMATS;
  const count = options.count ?? 10000;
  const runSeed = options.seed ?? 1;
  const timeoutMs = options.timeoutMs ?? 5000;
  const workers = Math.max(1, options.workers ?? os.cpus().length);
  const rssCapMb = options.rssCapMb ?? 1536;
  const rssCap = rssCapMb * 2 ** 20;
  const prlimit = findPrlimit();
  const asLimitMb = prlimit ? options.asLimitMb ?? 8192 : 0;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const findingsDir = options.findingsDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fuzz-findings-'));
  fs.mkdirSync(findingsDir, { recursive: true });
  const jsonFile = options.jsonFile ?? path.join(findingsDir, 'fuzz-report.json');
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fuzz-'));
  const started = Date.now();
  const nodeArgs = ['--max-old-space-size=1024', '--expose-gc', ...(options.nodeArgs ?? [])];
  const workerArgv = options.workerArgv ?? [__filename, '--worker'];
  const command = asLimitMb > 0 ? prlimit! : process.execPath;
  const args = asLimitMb > 0 ? [`--as=${asLimitMb * 2 ** 20}`, process.execPath, ...nodeArgs, ...workerArgv] : [...nodeArgs, ...workerArgv];

  const stats: Partial<Record<FuzzFormat, FormatStats>> = {};
  const rejections = new Map<FuzzFormat, Map<string, number>>();
  let restarts = 0;
  try {
    const seeds = await makeSeeds(path.join(workDir, 'seeds'), formats);
    const tasks: { format: FuzzFormat; index: number }[] = [];
    for (const format of formats) {
      stats[format] = newStats();
      rejections.set(format, new Map());
      for (const index of options.indices ?? Array.from({ length: count }, (_, i) => i)) tasks.push({ format, index });
    }
    const perFormat = new Map<FuzzFormat, number>(formats.map((f) => [f, 0]));
    const formatStart = new Map<FuzzFormat, number>();
    let next = 0;
    let startFailures = 0;

    const startWorker = async (): Promise<Worker> => {
      for (;;) {
        const w = new Worker(command, args);
        try {
          await w.ready;
          startFailures = 0;
          return w;
        } catch (e) {
          w.kill();
          if (++startFailures >= 3) throw e;
        }
      }
    };

    const record = (format: FuzzFormat, index: number, input: Buffer, r: TaskResult) => {
      const s = stats[format]!;
      s.inputs++;
      s.workerMs += r.ms;
      switch (r.outcome) {
        case 'accepted': s.accepted++; break;
        case 'rejected': {
          s.rejected++;
          const key = normalizeMessage(r.detail, workDir);
          const m = rejections.get(format)!;
          m.set(key, (m.get(key) ?? 0) + 1);
          break;
        }
        case 'crash': s.crashes++; break;
        case 'hang': s.hangs++; break;
        case 'big-alloc': s.bigAlloc++; break;
        case 'bad-error': s.badErrors++; break;
      }
      s.slowest.push({ index, ms: r.ms, outcome: r.outcome, how: r.how || normalizeMessage(r.detail, workDir) });
      s.slowest.sort((a, b) => b.ms - a.ms);
      s.slowest.length = Math.min(s.slowest.length, 5);
      const save = FINDINGS.includes(r.outcome) || options.indices !== undefined;
      if (save) {
        const base = `${format}-${index}-${r.outcome}`;
        const file = path.join(findingsDir, base + FORMAT_DEFS[format].ext);
        fs.writeFileSync(file, input);
        const finding: Finding = { format, index, outcome: r.outcome, how: r.how, detail: r.detail.slice(0, 4000), file };
        fs.writeFileSync(path.join(findingsDir, `${base}.json`), JSON.stringify({ ...finding, seed: runSeed, ms: r.ms, bytes: input.length }, null, 2));
        if (FINDINGS.includes(r.outcome)) {
          s.findings.push(finding);
          log(`[fuzz] ${r.outcome.toUpperCase()}: ${format} #${index}: ${r.how} ${r.detail ? `(${r.detail.split('\n').slice(-3).join(' | ').slice(0, 300)})` : ''} -> ${file}`);
        }
      }
      const done = perFormat.get(format)! + 1;
      perFormat.set(format, done);
      const total = options.indices?.length ?? count;
      if (!options.quiet && (done === total || done % 2500 === 0)) {
        const f = (n: number) => String(n).padStart(5);
        log(`[fuzz] ${format.padEnd(11)} ${f(done)}/${total}  accepted ${f(s.accepted)}  rejected ${f(s.rejected)}  findings ${s.crashes + s.hangs + s.bigAlloc + s.badErrors}  ${((Date.now() - formatStart.get(format)!) / 1000).toFixed(1)} s`);
      }
    };

    let aborted = false;
    const loop = async (slot: number): Promise<void> => {
      let w: Worker;
      try {
        w = await startWorker();
      } catch (e) {
        aborted = true;
        throw e;
      }
      try {
        for (;;) {
          const task = aborted ? undefined : tasks[next++];
          if (!task) return;
          if (!formatStart.has(task.format)) formatStart.set(task.format, Date.now());
          const input = makeInput(task.format, task.index, runSeed, seeds[task.format]);
          const file = path.join(workDir, `in-${slot}-${task.format}-${task.index}${FORMAT_DEFS[task.format].ext}`);
          fs.writeFileSync(file, input);
          const r = await w.run(task.format, file, task.index, timeoutMs, rssCap);
          record(task.format, task.index, input, r);
          fs.rmSync(file, { force: true });
          if (r.replace || w.exited || w.tasks >= 3000) {
            w.kill();
            restarts++;
            try {
              w = await startWorker();
            } catch (e) {
              aborted = true;
              throw e;
            }
          }
        }
      } finally {
        w.kill();
      }
    };
    await Promise.all(Array.from({ length: Math.min(workers, tasks.length) }, (_, i) => loop(i)));
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  for (const format of formats) {
    const m = rejections.get(format);
    if (m) stats[format]!.topRejections = [...m].sort((a, b) => b[1] - a[1]).slice(0, 10);
  }
  const totals = { inputs: 0, accepted: 0, rejected: 0, crashes: 0, hangs: 0, bigAlloc: 0, badErrors: 0 };
  for (const s of Object.values(stats)) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s![k];
  const report: FuzzReport = {
    seed: runSeed, count, timeoutMs, rssCapMb, asLimitMb, workers, durationMs: Date.now() - started, findingsDir, jsonFile, formats: stats, totals,
    workerRestarts: restarts,
  };
  fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2));
  return report;
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

function parseArgs(argv: string[]): { options: FuzzOptions; replay?: string } {
  const options: FuzzOptions = {};
  let replay: string | undefined;
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${name} needs a value`);
    return v;
  };
  const int = (v: string, name: string, min = 0): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--format': {
        const v = value(i++, a);
        const list = v === 'all' ? [...FORMATS] : v.split(',').map((s) => s.trim());
        for (const f of list) if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`unknown format '${f}' (known: ${FORMATS.join(', ')}, all)`);
        options.formats = list as FuzzFormat[];
        break;
      }
      case '--count': options.count = int(value(i++, a), a, 1); break;
      case '--seed': options.seed = int(value(i++, a), a); break;
      case '--timeout-ms': options.timeoutMs = int(value(i++, a), a, 1); break;
      case '--workers': options.workers = int(value(i++, a), a, 1); break;
      case '--rss-cap-mb': options.rssCapMb = int(value(i++, a), a, 64); break;
      case '--as-limit-mb': options.asLimitMb = int(value(i++, a), a); break;
      case '--findings': options.findingsDir = value(i++, a); break;
      case '--json': options.jsonFile = value(i++, a); break;
      case '--quiet': options.quiet = true; break;
      case '--only': {
        const [f, idx] = value(i++, a).split(':');
        if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`--only wants FORMAT:INDEX, got '${argv[i]}'`);
        options.formats = [f as FuzzFormat];
        options.indices = [int(idx, a)];
        break;
      }
      case '--replay': replay = value(i++, a); break;
      case '-h':
      case '--help':
        throw new Error('usage: fuzz [--format all|zip,legacy,...] [--count N] [--seed S] [--timeout-ms MS] [--workers N] [--rss-cap-mb MB] [--as-limit-mb MB] [--findings DIR] [--json FILE] [--only FORMAT:INDEX] [--replay FILE --format F] [--quiet]');
      default: throw new Error(`unknown argument '${a}' (try --help)`);
    }
  }
  return { options, replay };
}

/** Runs one existing file through a worker (for findings). */
async function replayFile(file: string, format: FuzzFormat, options: FuzzOptions): Promise<number> {
  const prlimit = findPrlimit();
  const asLimitMb = prlimit ? options.asLimitMb ?? 8192 : 0;
  const nodeArgs = ['--max-old-space-size=1024', '--expose-gc'];
  const args = asLimitMb > 0 ? [`--as=${asLimitMb * 2 ** 20}`, process.execPath, ...nodeArgs, __filename, '--worker'] : [...nodeArgs, __filename, '--worker'];
  const w = new Worker(asLimitMb > 0 ? prlimit! : process.execPath, args);
  await w.ready;
  const r = await w.run(format, path.resolve(file), 0, options.timeoutMs ?? 5000, (options.rssCapMb ?? 1536) * 2 ** 20);
  w.kill();
  console.log(JSON.stringify({ file, format, ...r, detail: r.detail.slice(0, 3000) }, null, 2));
  return FINDINGS.includes(r.outcome) ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const { options, replay } = parsed;
  if (replay) {
    if (options.formats?.length !== 1) {
      console.error('--replay needs --format with one format');
      return 2;
    }
    return replayFile(replay, options.formats[0], options);
  }
  const report = await runFuzz(options);
  console.log(formatTable(report));
  const findings = report.totals.crashes + report.totals.hangs + report.totals.bigAlloc + report.totals.badErrors;
  console.log(`\nreport: ${report.jsonFile}`);
  console.log(findings ? `${findings} finding(s) saved in ${report.findingsDir}` : `no findings (findings folder: ${report.findingsDir})`);
  return findings ? 1 : 0;
}

if (require.main === module) {
  if (process.argv.includes('--worker')) {
    workerMain();
  } else {
    main(process.argv.slice(2)).then(
      (code) => (process.exitCode = code),
      (e) => {
        console.error(e instanceof Error ? e.stack : e);
        process.exitCode = 2;
      },
    );
  }
}
