// The fuzzer's seeded random numbers: every input gets its own stream, seeded by hash32 of
// (run seed, format, index), so a recorded --seed reproduces the same inputs. The generator step
// (mulberry32) and the hash (FNV-1a) are lib/data/random's; the seeding and draws here are the fuzzer's.
import { hashString, mulberry32 } from '../../lib/data/random';

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    const step = mulberry32(this.s);
    this.s = step.state;
    return step.value / 4294967296;
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

/** FNV-1a of a string's UTF-16 code units (lib's hashString): seeds each input's stream. */
export const hash32 = hashString;
