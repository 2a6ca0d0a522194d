// JPEG images: walks the marker segments, then mutates SOF dimensions and fields, segment
// lengths, the scan, or adds APPn junk.
import { writeUInt } from './bytes';
import { generic } from './generic';
import type { Rng } from './rng';

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

export function mutateJpeg(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
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
