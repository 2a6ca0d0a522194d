// A minimal zip reader: the central directory (no ZIP64, no multi-disk, no encryption) and one
// entry at a time out of it, stored or deflated, streamed to a file with its CRC-32 and size
// checked. Enough to take `101_ObjectCategories.tar.gz` out of Caltech's `caltech-101.zip`.
import { createReadStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream';
import { createInflateRaw } from 'node:zlib';

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipError extends Error {
  readonly code = 'ERR_ZIP';
  constructor(message: string, readonly archive: string) {
    super(message);
    this.name = 'ZipError';
  }
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

let crcTable: Uint32Array | undefined;

/** CRC-32 (the zip/gzip one), continuing from `crc`. */
export function crc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function readAt(handle: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

/** The entries of a zip file's central directory. */
export async function listZip(archive: string): Promise<ZipEntry[]> {
  const handle = await fsp.open(archive, 'r');
  try {
    const { size } = await handle.stat();
    const tailLength = Math.min(size, 22 + 0xffff);
    const tail = await readAt(handle, size - tailLength, tailLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd === -1) throw new ZipError(`'${archive}' is not a zip file (no end of central directory record)`, archive);
    const disk = tail.readUInt16LE(eocd + 4);
    const cdDisk = tail.readUInt16LE(eocd + 6);
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (disk !== 0 || cdDisk !== 0) throw new ZipError(`'${archive}' is a multi-disk zip, which is not supported`, archive);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new ZipError(`'${archive}' is a ZIP64 archive, which is not supported`, archive);
    }
    if (cdOffset + cdSize > size) throw new ZipError(`'${archive}' is truncated or corrupt (central directory out of range)`, archive);
    const cd = await readAt(handle, cdOffset, cdSize);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) {
        throw new ZipError(`'${archive}' has a corrupt central directory (entry ${i})`, archive);
      }
      const flags = cd.readUInt16LE(p + 8);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      if (p + 46 + nameLength > cd.length) throw new ZipError(`'${archive}' has a corrupt central directory (entry ${i})`, archive);
      const rawName = cd.subarray(p + 46, p + 46 + nameLength);
      entries.push({
        name: rawName.toString(flags & 0x800 ? 'utf8' : 'latin1'),
        flags,
        method: cd.readUInt16LE(p + 10),
        crc32: cd.readUInt32LE(p + 16),
        compressedSize: cd.readUInt32LE(p + 20),
        size: cd.readUInt32LE(p + 24),
        localHeaderOffset: cd.readUInt32LE(p + 42),
      });
      p += 46 + nameLength + extraLength + commentLength;
    }
    return entries;
  } finally {
    await handle.close();
  }
}

/** Writes one entry's bytes to `dest` (overwriting it), checking its size and CRC-32. */
export async function extractZipEntry(archive: string, entry: ZipEntry, dest: string): Promise<void> {
  if (entry.flags & 0x1) throw new ZipError(`'${entry.name}' in '${archive}' is encrypted, which is not supported`, archive);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new ZipError(`'${entry.name}' in '${archive}' uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`, archive);
  }
  const handle = await fsp.open(archive, 'r');
  let dataStart: number;
  try {
    const { size } = await handle.stat();
    const local = await readAt(handle, entry.localHeaderOffset, 30);
    if (local.length < 30 || local.readUInt32LE(0) !== LOCAL) {
      throw new ZipError(`'${archive}' is corrupt: no local header for '${entry.name}'`, archive);
    }
    dataStart = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataStart + entry.compressedSize > size) throw new ZipError(`'${archive}' is truncated inside '${entry.name}'`, archive);
  } finally {
    await handle.close();
  }
  if (entry.method === 0 && entry.compressedSize !== entry.size) {
    throw new ZipError(`'${archive}' is corrupt: stored entry '${entry.name}' has differing sizes`, archive);
  }

  const out = await fsp.open(dest, 'w', 0o644);
  let crc = 0;
  let written = 0;
  if (entry.compressedSize > 0) {
    const raw = createReadStream(archive, { start: dataStart, end: dataStart + entry.compressedSize - 1 });
    const source = entry.method === 8 ? pipeline(raw, createInflateRaw(), () => undefined) : raw;
    try {
      for await (const chunk of source) {
        const buf = chunk as Buffer;
        written += buf.length;
        if (written > entry.size) throw new ZipError(`'${entry.name}' in '${archive}' inflates to more than its declared ${entry.size} bytes`, archive);
        crc = crc32(buf, crc);
        await out.write(buf);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code?.startsWith('Z_')) {
        throw new ZipError(`'${entry.name}' in '${archive}' is corrupt (${(error as Error).message})`, archive);
      }
      throw error;
    } finally {
      source.destroy();
      await out.close();
    }
  } else {
    await out.close();
  }
  if (written !== entry.size) throw new ZipError(`'${entry.name}' in '${archive}' has ${written} bytes, not the declared ${entry.size}`, archive);
  if (crc !== entry.crc32) {
    throw new ZipError(`'${entry.name}' in '${archive}' is corrupt: CRC-32 ${crc.toString(16)} instead of ${entry.crc32.toString(16)}`, archive);
  }
}
