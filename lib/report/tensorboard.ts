// TensorBoard event files written from TypeScript: scalars, histograms and images.
//
// The file is a TFRecord stream. Each record is
//     uint64 length (LE) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// and each `data` is a serialised tensorflow.Event (tensorflow/core/util/event.proto). The first
// record carries file_version "brain.Event:2". Only the handful of protobuf messages needed here are
// encoded, by hand (field numbers below mirror event.proto / summary.proto / histogram.proto).
//
// Records are appended with synchronous writes as they are added, so TensorBoard sees them while
// training runs; flush() and close() fsync so the bytes are on disk when they return.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { AppendFile } from '../utils/append-file';
import { finiteNumber, invalid, nonEmptyString, nonNegativeInteger, positiveInteger } from '../utils/validate';
import { maskedCrc32c } from './crc32c';

export const FILE_VERSION = 'brain.Event:2';

// ---------------------------------------------------------------------------------------------
// A minimal protobuf writer

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/** Appends protobuf fields to a growable buffer. Only what event.proto needs. */
export class ProtoWriter {
  private buf = Buffer.allocUnsafe(64);
  private pos = 0;

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Unsigned varint of a non-negative integer up to 2^53 (or a bigint up to 2^64 - 1). */
  varint(value: number | bigint): this {
    this.reserve(10);
    if (typeof value === 'bigint') {
      let v = BigInt.asUintN(64, value);
      while (v >= 0x80n) {
        this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      this.buf[this.pos++] = Number(v);
      return this;
    }
    if (value < 0) return this.varint(BigInt(value)); // two's complement, ten bytes, as protobuf does
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  private tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  uint64(field: number, value: number | bigint): this {
    return this.tag(field, WIRE_VARINT).varint(value);
  }

  /** int32/int64 fields: negative values take ten bytes (no zigzag; that is sint32). */
  int64(field: number, value: number | bigint): this {
    return this.uint64(field, value);
  }

  double(field: number, value: number): this {
    this.tag(field, WIRE_FIXED64);
    this.reserve(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.reserve(4);
    this.buf.writeFloatLE(value, this.pos);
    this.pos += 4;
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH).varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  packedDoubles(field: number, values: ArrayLike<number>): this {
    this.tag(field, WIRE_LENGTH).varint(values.length * 8);
    this.reserve(values.length * 8);
    for (let i = 0; i < values.length; i++) {
      this.buf.writeDoubleLE(values[i], this.pos);
      this.pos += 8;
    }
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

// ---------------------------------------------------------------------------------------------
// Records

/** Frames one serialised Event as a TFRecord (length, its CRC, data, its CRC). */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Right edge of each bucket; the last may be +Infinity-like (TensorBoard uses `max` for it). */
  bucketLimits: ArrayLike<number>;
  /** Count in each bucket; same length as bucketLimits. */
  buckets: ArrayLike<number>;
}

/**
 * Buckets `values` into `bins` equal-width buckets between their min and max, in the layout
 * TensorBoard expects (bucket i spans (bucketLimits[i-1], bucketLimits[i]], the first starting at
 * min). Non-finite values are rejected: a NaN in weights is a bug to report, not to histogram.
 */
export function histogramFromValues(values: ArrayLike<number>, bins = 30): Histogram {
  positiveInteger('bins', bins);
  const n = values.length;
  if (n === 0) throw invalid('a non-empty array of numbers', 'values', values);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid('finite number', `values[${i}]`, v);
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSquares += v * v;
  }
  if (min === max) {
    return { min, max, num: n, sum, sumSquares, bucketLimits: [max], buckets: [n] };
  }
  const width = (max - min) / bins;
  const bucketLimits = new Float64Array(bins);
  for (let b = 0; b < bins; b++) bucketLimits[b] = min + width * (b + 1);
  bucketLimits[bins - 1] = max;
  const buckets = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    let b = Math.ceil((values[i] - min) / width) - 1;
    if (b < 0) b = 0;
    if (b >= bins) b = bins - 1;
    buckets[b]++;
  }
  return { min, max, num: n, sum, sumSquares, bucketLimits, buckets };
}

function isHistogram(v: unknown): v is Histogram {
  return typeof v === 'object' && v !== null && 'bucketLimits' in v && 'buckets' in v;
}

function checkHistogram(h: Histogram): Histogram {
  for (const key of ['min', 'max', 'num', 'sum', 'sumSquares'] as const) finiteNumber(`histogram.${key}`, h[key]);
  if (h.bucketLimits.length !== h.buckets.length) {
    throw new TypeError(
      `Expected histogram.buckets to have the length of histogram.bucketLimits (${h.bucketLimits.length}) but received ${h.buckets.length}`,
    );
  }
  return h;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Reads width, height and the Image.colorspace (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) from a PNG. */
export function pngInfo(png: Uint8Array): { width: number; height: number; colorspace: number } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (b.length < 33 || !b.subarray(0, 8).equals(PNG_SIGNATURE) || b.toString('latin1', 12, 16) !== 'IHDR') {
    throw invalid('a PNG-encoded Buffer', 'png', png);
  }
  const colourType = b[25];
  const colorspace = colourType === 0 ? 1 : colourType === 4 ? 2 : colourType === 6 ? 4 : 3;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), colorspace };
}

// ---------------------------------------------------------------------------------------------
// The writer

function eventFileName(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'localhost';
  return `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${host}`;
}

function checkWallTime(wallTime: number | undefined): number {
  return wallTime === undefined ? Date.now() / 1000 : finiteNumber('wallTime', wallTime);
}

/**
 * Writes one TensorBoard event file in `logDir` (created if missing). Point TensorBoard at the
 * directory (`tensorboard --logdir <parent>`), one sub-directory per run.
 */
export class EventWriter {
  readonly logDir: string;
  readonly file: string;
  private readonly out: AppendFile;

  constructor(logDir: string) {
    this.logDir = nonEmptyString('logDir', logDir);
    fs.mkdirSync(logDir, { recursive: true });
    // Two writers started in the same second in the same directory must not share a file.
    const base = eventFileName();
    let file = path.join(logDir, base);
    let fd: number | undefined;
    for (let attempt = 0; fd === undefined; attempt++) {
      try {
        fd = fs.openSync(file, 'wx', 0o644);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 1000) throw error;
        file = path.join(logDir, `${base}.${process.pid}.${attempt + 1}`);
      }
    }
    this.file = file;
    this.out = new AppendFile(file, fd, 'EventWriter');
    this.writeEvent(Date.now() / 1000, 0, (e) => e.string(3, FILE_VERSION));
  }

  get closed(): boolean {
    return this.out.closed;
  }

  private writeEvent(wallTime: number, step: number, body: (event: ProtoWriter) => void): void {
    if (this.out.closed) throw new Error(`EventWriter for ${this.file} is closed`);
    const event = new ProtoWriter().double(1, wallTime).int64(2, step);
    body(event);
    this.out.write(frameRecord(event.finish()));
  }

  private writeValue(step: number, wallTime: number | undefined, value: (v: ProtoWriter) => void): void {
    nonNegativeInteger('step', step);
    const time = checkWallTime(wallTime);
    this.writeEvent(time, step, (e) => e.message(5, (summary) => summary.message(1, value)));
  }

  /**
   * A scalar (TensorBoard's Scalars tab). NaN and ±Infinity are written as they are, so a diverging
   * loss shows up rather than vanishing.
   */
  addScalar(tag: string, value: number, step: number, wallTime?: number): void {
    nonEmptyString('tag', tag);
    if (typeof value !== 'number') throw invalid('number', 'value', value);
    this.writeValue(step, wallTime, (v) => v.string(1, tag).float(2, value));
  }

  /**
   * A histogram (Histograms and Distributions tabs), from raw values (bucketed into 30 equal-width
   * buckets; use histogramFromValues for another count) or from ready buckets.
   */
  addHistogram(tag: string, values: ArrayLike<number> | Histogram, step: number, wallTime?: number): void {
    nonEmptyString('tag', tag);
    let h: Histogram;
    if (isHistogram(values)) h = checkHistogram(values);
    else if (typeof values === 'object' && values !== null && typeof values.length === 'number') {
      h = histogramFromValues(values);
    } else throw invalid('an array of numbers or a histogram object', 'values', values);
    this.writeValue(step, wallTime, (v) =>
      v.string(1, tag).message(5, (histo) =>
        histo
          .double(1, h.min)
          .double(2, h.max)
          .double(3, h.num)
          .double(4, h.sum)
          .double(5, h.sumSquares)
          .packedDoubles(6, h.bucketLimits)
          .packedDoubles(7, h.buckets),
      ),
    );
  }

  /** A PNG image (Images tab). width and height must match the PNG's own. */
  addImage(tag: string, png: Buffer, width: number, height: number, step: number, wallTime?: number): void {
    nonEmptyString('tag', tag);
    if (!Buffer.isBuffer(png)) throw invalid('Buffer', 'png', png);
    positiveInteger('width', width);
    positiveInteger('height', height);
    const info = pngInfo(png);
    if (info.width !== width || info.height !== height) {
      throw new TypeError(
        `Expected width and height to match the PNG's ${info.width}x${info.height} but received ${width}x${height}`,
      );
    }
    this.writeValue(step, wallTime, (v) =>
      v.string(1, tag).message(4, (image) =>
        image.int64(1, height).int64(2, width).int64(3, info.colorspace).bytes(4, png),
      ),
    );
  }

  /** Makes everything written so far durable (fsync). */
  flush(): void {
    this.out.flush();
  }

  /** Flushes and closes the file. Further adds throw; closing twice is harmless. */
  close(): void {
    this.out.close();
  }
}
