// The event file is checked by a reader written here from the format's description, sharing no
// code with the writer: its own bit-at-a-time CRC-32C, its own protobuf decoding.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';

import { crc32c, maskedCrc32c } from '../../lib/report/crc32c';
import { EventWriter, histogramFromValues } from '../../lib/report/tensorboard';

// ---- independent reader -------------------------------------------------------------------------

function bitwiseCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function mask(crc: number): number {
  const rotated = ((crc >>> 15) | (crc << 17)) >>> 0;
  return (rotated + 0xa282ead8) % 2 ** 32;
}

function readRecords(file: string): Buffer[] {
  const bytes = fs.readFileSync(file);
  const records: Buffer[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const header = bytes.subarray(pos, pos + 8);
    const length = Number(header.readBigUInt64LE(0));
    expect(bytes.readUInt32LE(pos + 8)).toBe(mask(bitwiseCrc32c(header)));
    const data = bytes.subarray(pos + 12, pos + 12 + length);
    expect(data.length).toBe(length);
    expect(bytes.readUInt32LE(pos + 12 + length)).toBe(mask(bitwiseCrc32c(data)));
    records.push(data);
    pos += 12 + length + 4;
  }
  expect(pos).toBe(bytes.length);
  return records;
}

type Field = { wire: number; value: bigint | Buffer };

function decodeMessage(buf: Buffer): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    let value: bigint | Buffer;
    if (wire === 0) value = varint();
    else if (wire === 1) { value = buf.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = buf.subarray(pos, pos + 4); pos += 4; }
    else if (wire === 2) { const n = Number(varint()); value = buf.subarray(pos, pos + n); pos += n; }
    else throw new Error(`unexpected wire type ${wire}`);
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field)!.push({ wire, value });
  }
  expect(pos).toBe(buf.length);
  return fields;
}

function one(fields: Map<number, Field[]>, n: number, wire: number): Field['value'] | undefined {
  const list = fields.get(n);
  if (!list) return undefined;
  expect(list).toHaveLength(1);
  expect(list[0].wire).toBe(wire);
  return list[0].value;
}

const double = (f: Map<number, Field[]>, n: number) => (one(f, n, 1) as Buffer | undefined)?.readDoubleLE(0);
const packedDoubles = (b: Buffer) => Array.from({ length: b.length / 8 }, (_, i) => b.readDoubleLE(i * 8));

interface DecodedValue {
  tag: string;
  simple?: number;
  histo?: { min: number; max: number; num: number; sum: number; sumSquares: number; limits: number[]; buckets: number[] };
  image?: { height: number; width: number; colorspace: number; png: Buffer };
}

interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: DecodedValue[];
}

function decodeEvent(data: Buffer): DecodedEvent {
  const f = decodeMessage(data);
  const event: DecodedEvent = { wallTime: double(f, 1)!, step: Number(one(f, 2, 0) ?? 0n), values: [] };
  const version = one(f, 3, 2) as Buffer | undefined;
  if (version) event.fileVersion = version.toString('utf8');
  const summary = one(f, 5, 2) as Buffer | undefined;
  if (summary) {
    for (const v of decodeMessage(summary).get(1) ?? []) {
      const vf = decodeMessage(v.value as Buffer);
      const value: DecodedValue = { tag: (one(vf, 1, 2) as Buffer).toString('utf8') };
      const simple = one(vf, 2, 5) as Buffer | undefined;
      if (simple) value.simple = simple.readFloatLE(0);
      const image = one(vf, 4, 2) as Buffer | undefined;
      if (image) {
        const imf = decodeMessage(image);
        value.image = {
          height: Number(one(imf, 1, 0)),
          width: Number(one(imf, 2, 0)),
          colorspace: Number(one(imf, 3, 0)),
          png: one(imf, 4, 2) as Buffer,
        };
      }
      const histo = one(vf, 5, 2) as Buffer | undefined;
      if (histo) {
        const hf = decodeMessage(histo);
        value.histo = {
          min: double(hf, 1)!,
          max: double(hf, 2)!,
          num: double(hf, 3)!,
          sum: double(hf, 4)!,
          sumSquares: double(hf, 5)!,
          limits: packedDoubles(one(hf, 6, 2) as Buffer),
          buckets: packedDoubles(one(hf, 7, 2) as Buffer),
        };
      }
      event.values.push(value);
    }
  }
  return event;
}

// ---- tests --------------------------------------------------------------------------------------

describe('crc32c', () => {
  const ascii = (s: string) => Buffer.from(s, 'latin1');
  test.each([
    ['', 0x00000000],
    ['123456789', 0xe3069283],
    ['a', 0xc1d04330],
    ['The quick brown fox jumps over the lazy dog', 0x22620404],
  ])('%j', (input, expected) => {
    expect(crc32c(ascii(input))).toBe(expected);
  });

  test('RFC 3720 B.4 vectors', () => {
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
  });

  test('matches a bit-at-a-time implementation at every length and alignment, and chains', () => {
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff));
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= data.length; end += 13) {
        expect(crc32c(data.subarray(start, end))).toBe(bitwiseCrc32c(data.subarray(start, end)));
      }
    }
    expect(crc32c(data.subarray(100), crc32c(data.subarray(0, 100)))).toBe(crc32c(data));
  });

  test('masking is the TFRecord rotate-and-add', () => {
    const data = ascii('123456789');
    expect(maskedCrc32c(data)).toBe(mask(0xe3069283));
  });
});

describe('EventWriter', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-tb-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('writes an event file TensorBoard can read: scalars, histograms, images', async () => {
    const writer = new EventWriter(path.join(dir, 'run1'));
    expect(path.basename(writer.file)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/[^A-Za-z0-9._-]/g, '_').replace(/\./g, '\\.')}$`));
    const before = Date.now() / 1000;
    for (let step = 0; step < 5; step++) {
      writer.addScalar('loss/train', 2 / (step + 1), step, 1_700_000_000 + step);
      writer.addScalar('accuracy/val', step * 0.1, step);
    }
    const after = Date.now() / 1000;
    writer.addScalar('loss/diverged', NaN, 5);
    const values = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * (i % 7));
    writer.addHistogram('weights/fc', values, 3);
    writer.addHistogram('given', { min: 0, max: 3, num: 6, sum: 9, sumSquares: 17, bucketLimits: [1, 2, 3], buckets: [1, 2, 3] }, 4);
    const png = await sharp({ create: { width: 7, height: 5, channels: 3, background: { r: 200, g: 10, b: 30 } } }).png().toBuffer();
    writer.addImage('samples/first', png, 7, 5, 2);
    writer.flush();
    writer.close();
    writer.close(); // harmless
    expect(() => writer.addScalar('late', 1, 9)).toThrow(/closed/);

    const events = readRecords(writer.file).map(decodeEvent);
    expect(events[0].fileVersion).toBe('brain.Event:2');
    expect(events[0].values).toHaveLength(0);

    const scalars = events.flatMap((e) => e.values.filter((v) => v.simple !== undefined).map((v) => ({ ...v, step: e.step, wallTime: e.wallTime })));
    const train = scalars.filter((s) => s.tag === 'loss/train');
    expect(train.map((s) => s.step)).toEqual([0, 1, 2, 3, 4]);
    expect(train.map((s) => s.simple)).toEqual([2, 1, 2 / 3, 0.5, 0.4].map((v) => Math.fround(v)));
    expect(train.map((s) => s.wallTime)).toEqual([0, 1, 2, 3, 4].map((s) => 1_700_000_000 + s));
    const val = scalars.filter((s) => s.tag === 'accuracy/val');
    expect(val).toHaveLength(5);
    // no wall time given: the time of the call
    expect(val[0].wallTime).toBeGreaterThanOrEqual(before);
    expect(val[0].wallTime).toBeLessThanOrEqual(after);
    expect(scalars.find((s) => s.tag === 'loss/diverged')!.simple).toBeNaN();

    const histEvent = events.find((e) => e.values.some((v) => v.tag === 'weights/fc'))!;
    expect(histEvent.step).toBe(3);
    const h = histEvent.values[0].histo!;
    expect(h.num).toBe(1000);
    expect(h.buckets.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(h.limits).toHaveLength(h.buckets.length);
    expect(h.min).toBe(Math.min(...values));
    expect(h.max).toBe(Math.max(...values));
    expect(h.limits[h.limits.length - 1]).toBe(h.max);
    expect(h.sum).toBeCloseTo(values.reduce((a, b) => a + b, 0), 9);
    expect(h.sumSquares).toBeCloseTo(values.reduce((a, b) => a + b * b, 0), 6);
    for (let i = 1; i < h.limits.length; i++) expect(h.limits[i]).toBeGreaterThan(h.limits[i - 1]);
    // Every value falls in its bucket: (limits[i-1], limits[i]], the first starting at min.
    const recount = new Array(h.buckets.length).fill(0);
    for (const v of values) recount[h.limits.findIndex((l) => v <= l)]++;
    expect(recount).toEqual(h.buckets);

    const given = events.find((e) => e.values.some((v) => v.tag === 'given'))!.values[0].histo!;
    expect(given).toEqual({ min: 0, max: 3, num: 6, sum: 9, sumSquares: 17, limits: [1, 2, 3], buckets: [1, 2, 3] });

    const imageEvent = events.find((e) => e.values.some((v) => v.tag === 'samples/first'))!;
    expect(imageEvent.step).toBe(2);
    const image = imageEvent.values[0].image!;
    expect(image).toMatchObject({ width: 7, height: 5, colorspace: 3 });
    const meta = await sharp(image.png).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 7, height: 5 });
    const { data } = await sharp(image.png).raw().toBuffer({ resolveWithObject: true });
    expect([...data.subarray(0, 3)]).toEqual([200, 10, 30]);
  });

  test('large steps and big images survive the varint and length encodings', async () => {
    const writer = new EventWriter(dir);
    const big = 2 ** 40 + 3;
    writer.addScalar('s', 1.5, big);
    const png = await sharp({ create: { width: 300, height: 200, channels: 4, background: '#80808080' } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    expect(png.length).toBeGreaterThan(128 * 128);
    writer.addImage('img', png, 300, 200, 1);
    writer.close();
    const events = readRecords(writer.file).map(decodeEvent);
    expect(events[1].step).toBe(big);
    expect(events[2].values[0].image).toMatchObject({ width: 300, height: 200, colorspace: 4 });
    expect(events[2].values[0].image!.png.equals(png)).toBe(true);
  });

  test('two writers in the same directory and second get separate files', () => {
    const a = new EventWriter(dir);
    const b = new EventWriter(dir);
    expect(a.file).not.toBe(b.file);
    a.close();
    b.close();
    expect(fs.readdirSync(dir).filter((f) => f.includes('tfevents'))).toHaveLength(2);
  });

  test('records are readable after flush, before close', () => {
    const writer = new EventWriter(dir);
    writer.addScalar('x', 1, 0);
    writer.flush();
    expect(readRecords(writer.file).map(decodeEvent)).toHaveLength(2);
    writer.close();
  });

  test('rejects bad input in sharp style', async () => {
    const writer = new EventWriter(dir);
    expect(() => writer.addScalar('', 1, 0)).toThrow("Expected non-empty string for tag but received '' of type string");
    expect(() => writer.addScalar('t', '1' as unknown as number, 0)).toThrow(/Expected number for value/);
    expect(() => writer.addScalar('t', 1, -1)).toThrow(/Expected non-negative integer for step/);
    expect(() => writer.addScalar('t', 1, 0, NaN)).toThrow(/Expected finite number for wallTime/);
    expect(() => writer.addHistogram('h', [], 0)).toThrow(/non-empty array/);
    expect(() => writer.addHistogram('h', [1, NaN], 0)).toThrow(/values\[1\]/);
    expect(() => writer.addHistogram('h', { min: 0, max: 1, num: 1, sum: 1, sumSquares: 1, bucketLimits: [1, 2], buckets: [1] }, 0)).toThrow(/buckets/);
    expect(() => writer.addImage('i', Buffer.from('not a png at all, certainly not'), 1, 1, 0)).toThrow(/PNG-encoded Buffer/);
    const png = await sharp({ create: { width: 4, height: 3, channels: 3, background: 'red' } }).png().toBuffer();
    expect(() => writer.addImage('i', png, 3, 4, 0)).toThrow(/4x3/);
    writer.close();
    expect(() => new EventWriter('')).toThrow(/logDir/);
  });
});

describe('histogramFromValues', () => {
  test('constant values make one bucket', () => {
    expect(histogramFromValues([2, 2, 2])).toEqual({ min: 2, max: 2, num: 3, sum: 6, sumSquares: 12, bucketLimits: [2], buckets: [3] });
  });
  test('equal-width buckets with edges and extremes placed', () => {
    const h = histogramFromValues([0, 1, 2, 3, 4], 4);
    expect(Array.from(h.bucketLimits)).toEqual([1, 2, 3, 4]);
    expect(Array.from(h.buckets)).toEqual([2, 1, 1, 1]); // 0 and 1 in (min, 1]
  });
});
