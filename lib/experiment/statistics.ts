// The statistics behind a results table a reviewer accepts: mean ± standard deviation and a 95%
// Student-t interval over seeds, McNemar's exact test on paired per-image correctness, and a
// paired bootstrap interval for a difference in accuracy. Plain doubles, no dependencies; the
// tests check them against scipy.
import { Random } from '../data/random';

export interface Spread {
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  std: number;
  /** Two-sided 95% Student-t interval of the mean; null for fewer than two values. */
  interval: [number, number] | null;
}

export function spread(values: readonly number[], confidence = 0.95): Spread {
  const n = values.length;
  if (n === 0) throw new RangeError('Expected at least one value for a spread');
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  if (n < 2) return { n, mean, std, interval: null };
  const half = studentTQuantile(1 - (1 - confidence) / 2, n - 1) * (std / Math.sqrt(n));
  return { n, mean, std, interval: [mean - half, mean + half] };
}

/** McNemar's exact test: the two-sided binomial p-value of the discordant pairs (scipy.stats.binomtest). */
export function mcnemarExact(onlyFirstCorrect: number, onlySecondCorrect: number): number {
  const b = onlyFirstCorrect;
  const c = onlySecondCorrect;
  const n = b + c;
  if (n === 0) return 1;
  // two-sided at p = 1/2: every outcome no more likely than the observed one; by symmetry 2·P(X ≤ min)
  return Math.min(1, 2 * binomialCdf(Math.min(b, c), n));
}

export interface PairedComparison {
  /** Images compared (over all seeds). */
  count: number;
  /** Top-1 of the first minus top-1 of the second, in [−1, 1]. */
  difference: number;
  /** 95% paired-bootstrap interval of the difference (images resampled within each seed). */
  interval: [number, number];
  /** Images only the first got right, and only the second. */
  onlyFirst: number;
  onlySecond: number;
  /** McNemar's exact p-value. */
  p: number;
}

/**
 * Compares two methods on the same test images: `first[s][i]` and `second[s][i]` say whether image
 * i of seed s's test split was classified correctly. Seeds keep their own images (resampled
 * within, never across), so runs are only paired with the run of the same split.
 */
export function pairedComparison(first: readonly (readonly boolean[])[], second: readonly (readonly boolean[])[], options: { resamples?: number; seed?: number } = {}): PairedComparison {
  if (first.length !== second.length || first.some((f, s) => f.length !== second[s].length)) {
    throw new RangeError('Expected the two methods to be evaluated on the same test images, seed by seed');
  }
  let count = 0;
  let onlyFirst = 0;
  let onlySecond = 0;
  // per image: +1 only the first right, −1 only the second, 0 both or neither
  const deltas = first.map((f, s) =>
    f.map((correct, i) => {
      const delta = (correct ? 1 : 0) - (second[s][i] ? 1 : 0);
      count++;
      if (delta > 0) onlyFirst++;
      if (delta < 0) onlySecond++;
      return delta;
    }),
  );
  if (count === 0) throw new RangeError('Expected at least one test image to compare');
  const difference = (onlyFirst - onlySecond) / count;
  const random = new Random(options.seed ?? 0);
  const resamples = options.resamples ?? 2000;
  const estimates = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (const part of deltas) for (let k = 0; k < part.length; k++) sum += part[random.int(part.length)];
    estimates[r] = sum / count;
  }
  estimates.sort();
  const at = (q: number) => estimates[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return { count, difference, interval: [at(0.025), at(0.975)], onlyFirst, onlySecond, p: mcnemarExact(onlyFirst, onlySecond) };
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space (exact enough for n in the millions). */
function binomialCdf(k: number, n: number): number {
  let total = 0;
  const logHalfN = -n * Math.LN2;
  for (let i = 0; i <= k; i++) total += Math.exp(logChoose(n, i) + logHalfN);
  return Math.min(1, total);
}

function logChoose(n: number, k: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

/** Lanczos approximation (g = 7, 9 terms): ~15 significant digits for x > 0. */
function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The q-quantile of Student's t with `df` degrees of freedom (scipy.stats.t.ppf), by bisection on the CDF. */
export function studentTQuantile(q: number, df: number): number {
  if (!(q > 0 && q < 1) || !(df > 0)) throw new RangeError(`Expected 0 < q < 1 and df > 0 but received q ${q}, df ${df}`);
  if (q === 0.5) return 0;
  if (q < 0.5) return -studentTQuantile(1 - q, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < q) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function studentTCdf(t: number, df: number): number {
  const x = df / (df + t * t);
  const tail = 0.5 * regularizedBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** I_x(a, b) by its continued fraction (Numerical Recipes' betacf), swapped where it converges faster. */
function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaFraction(x, a, b)) / a;
  return 1 - (front * betaFraction(1 - x, b, a)) / b;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}
