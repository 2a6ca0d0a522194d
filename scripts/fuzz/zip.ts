// Zip archives (torch >= 1.6 .pth files and finetorch checkpoints): a parser for the seeds, a
// writer that can lie in every field, deflate bombs built without compressing gigabytes, and the
// zip-aware mutator (header fields, zip64 claims, overlapping entries, re-zipped pickle mutations).
import * as zlib from 'zlib';
import { crc32 } from '../../lib/download/zip';
import { interestingValue, u16, u32, u64, writeUInt } from './bytes';
import { generic } from './generic';
import { craftedPickle, mutatePickle, stateDictPickle, type TensorSpec } from './pickle';
import type { Rng } from './rng';

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
export function deflateBomb(head: Buffer, fill: number, total: number, tail: Buffer): Buffer {
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
export function mutateZip(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
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
