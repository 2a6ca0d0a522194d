// Decoded-image cache files: magic, a uint32 header length, a JSON header, then pixels. Mutates
// the length, the header's JSON and the image sizes it claims.
import { u32, writeUInt } from './bytes';
import { generic } from './generic';
import { mutateJsonText } from './json';
import type { Rng } from './rng';

export function mutateCache(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
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
