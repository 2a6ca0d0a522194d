// PNG images: IHDR dimensions and fields, chunk lengths and data (CRCs kept valid so that the
// decoder itself must cope), truncation, extra chunks and decompression bombs.
import * as zlib from 'zlib';
import { crc32 } from '../../lib/download/zip';
import { writeUInt } from './bytes';
import { generic } from './generic';
import type { Rng } from './rng';
import { deflateBomb } from './zip';

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

export function mutatePng(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
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
