// Format-blind mutations (bit flips, overwrites, interesting integers, truncation, chunk
// insertion/deletion/duplication, splicing two seeds): the fallback of every format's mutator.
import { INTERESTING_8, interestingValue, writeUInt } from './bytes';
import type { Rng } from './rng';

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

export function generic(rng: Rng, input: Buffer, others: readonly Buffer[], rounds = rng.range(1, 3)): Buffer {
  let out = input;
  for (let i = 0; i < rounds; i++) out = rng.weighted(genericMutators)(rng, out, others.length ? others : [input]);
  return out;
}
