// Byte-level helpers every mutator shares: "interesting" integers (boundaries, overflows, huge
// claims) and little/big-endian writers for the header fields they get written into.
import type { Rng } from './rng';

export const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff];
const INTERESTING_16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x3fff, 0x4000];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 0x3fff * 0x3fff, 100000000];
const INTERESTING_64: bigint[] = [
  0n, 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 64n - 1n, 2n ** 62n, 2n ** 32n, 2n ** 32n - 1n, 100n * 2n ** 30n, 2n ** 40n, 2n ** 53n + 1n,
];

export function interestingValue(rng: Rng, width: 1 | 2 | 4 | 8): bigint {
  if (rng.chance(0.15)) return BigInt(rng.int(256)) * (width > 1 ? BigInt(rng.int(256)) : 1n);
  switch (width) {
    case 1: return BigInt(rng.pick(INTERESTING_8));
    case 2: return BigInt(rng.pick(INTERESTING_16));
    case 4: return BigInt(rng.pick(INTERESTING_32));
    case 8: return rng.pick(INTERESTING_64);
  }
}

export function writeUInt(buf: Buffer, at: number, width: 1 | 2 | 4 | 8, value: bigint, bigEndian = false): void {
  if (at < 0 || at + width > buf.length) return;
  const v = BigInt.asUintN(width * 8, value);
  for (let i = 0; i < width; i++) {
    const byte = Number((v >> BigInt(8 * i)) & 0xffn);
    buf[bigEndian ? at + width - 1 - i : at + i] = byte;
  }
}

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v & 0xffff);
  return b;
}
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
export function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return b;
}
