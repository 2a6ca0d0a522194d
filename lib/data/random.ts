// Small seeded pseudo-random numbers for splits and synthetic data.
//
// Not for cryptography. The generator is mulberry32 (32-bit state, period 2^32), seeded through
// a splitmix32-style mix so that neighbouring seeds (0, 1, 2, ...) give unrelated streams.
// The sequence for a seed is part of the split manifest's contract: changing this file changes
// which images a given seed selects, so keep it stable (and bump the manifest version if not).

import { invalid } from '../utils/validate';

/** Largest seed accepted (seeds are unsigned 32-bit integers). */
export const MAX_SEED = 0xffffffff;

export function validateSeed(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_SEED) {
    throw invalid(`integer between 0 and ${MAX_SEED}`, name, value);
  }
  return value;
}

/** splitmix32-style finaliser: a bijection on uint32 with good avalanche. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of a string; stable across platforms. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * One mulberry32 step: advances a uint32 state and returns the new state with the next uint32
 * output. Shared by Random and the fuzzer's Rng (scripts/fuzz/rng.ts), which seed it differently.
 */
export function mulberry32(state: number): { state: number; value: number } {
  const next = (state + 0x6d2b79f5) >>> 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return { state: next, value: (t ^ (t >>> 14)) >>> 0 };
}

/** Derives an independent seed for a named sub-stream (e.g. one per class). */
export function deriveSeed(seed: number, name: string): number {
  return mix32((mix32(seed) ^ hashString(name)) >>> 0);
}

export class Random {
  private state: number;

  constructor(seed: number) {
    validateSeed('seed', seed);
    this.state = mix32(seed);
  }

  /** Next uint32. */
  nextUint32(): number {
    const step = mulberry32(this.state);
    this.state = step.state;
    return step.value;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw invalid('integer between 1 and 2^32', 'n', n);
    const limit = 4294967296 - (4294967296 % n); // accept values below the largest multiple of n
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /**
   * Gamma(shape, 1) by Marsaglia and Tsang's squeeze method; a shape below 1 is boosted to shape + 1
   * and scaled by U^(1 / shape).
   */
  gamma(shape: number): number {
    if (typeof shape !== 'number' || !(shape > 0) || !Number.isFinite(shape)) throw invalid('positive finite number', 'shape', shape);
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(1 - this.next(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const t = 1 + c * x;
      if (t <= 0) continue;
      const v = t * t * t;
      const u = 1 - this.next(); // in (0, 1]
      if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b) as X / (X + Y) of two Gamma draws (as torch's Dirichlet sampler draws it). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    // tiny shapes can underflow both draws: then the mass sits at the ends, in proportion a : b
    if (x + y === 0) return this.next() < a / (a + b) ? 1 : 0;
    return x / (x + y);
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}
