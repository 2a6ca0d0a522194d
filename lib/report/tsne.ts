// t-SNE (van der Maaten & Hinton, 2008), exact O(N²) version, seeded and deterministic.
//
//   1. optional PCA to `pcaDims` dimensions (randomised subspace iteration + Rayleigh-Ritz),
//   2. per point, a binary search for the Gaussian precision that gives the target perplexity,
//   3. P symmetrised, p_ij = (p_j|i + p_i|j) / 2N,
//   4. gradient descent on KL(P || Q), Student-t Q, with early exaggeration (×12 for the first
//      250 iterations), momentum 0.5 then 0.8 (switching when exaggeration ends, as bhtsne does),
//      and per-coordinate gains (+0.2 / ×0.8, floor 0.01).
//
// Everything is Float64Array and index arithmetic; the N×N matrices (P and the Student-t kernel)
// cost 16·N² bytes, 16 MB for N = 1000, which is why N is capped (subsample bigger sets: a t-SNE
// of a few thousand points shows the structure as well as one of all of them).

import { Random, validateSeed } from '../data/random';
import { finiteNumber, integerInRange, invalid, knownKeys, nonNegativeInteger, plainObject, positiveInteger } from '../utils/validate';

export const MAX_TSNE_POINTS = 5000;

export interface TsneOptions {
  /** Dimensions of each input point; needed for a flat Float32Array, checked for number[][]. */
  dims?: number;
  perplexity?: number;
  iterations?: number;
  seed?: number;
  learningRate?: number;
  /** Reduce to this many dimensions with PCA first when the input has more; 0 turns PCA off. */
  pcaDims?: number;
  earlyExaggeration?: number;
  exaggerationIterations?: number;
  /** Called every 50 iterations (and after the last) with the KL divergence of the embedding. */
  onProgress?: (iteration: number, kl: number) => void;
}

const TSNE_KEYS = [
  'dims', 'perplexity', 'iterations', 'seed', 'learningRate', 'pcaDims', 'earlyExaggeration',
  'exaggerationIterations', 'onProgress',
] as const;

export interface Rows {
  x: Float64Array;
  n: number;
  d: number;
}

/** Row-major copy of `data` as doubles, with its shape. */
export function toRows(name: string, data: unknown, dims?: number): Rows {
  if (Array.isArray(data)) {
    const n = data.length;
    if (n === 0) throw invalid('a non-empty array of points', name, data);
    const d = (data[0] as ArrayLike<number>)?.length;
    if (typeof d !== 'number' || d === 0) throw invalid('an array of non-empty number arrays', `${name}[0]`, data[0]);
    if (dims !== undefined && dims !== d) throw invalid(`points of ${dims} dimensions (dims)`, `${name}[0]`, data[0]);
    const x = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      const row = data[i] as ArrayLike<number>;
      if (typeof row !== 'object' || row === null || row.length !== d) throw invalid(`an array of ${d} numbers`, `${name}[${i}]`, row);
      for (let j = 0; j < d; j++) {
        const v = row[j];
        if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid('finite number', `${name}[${i}][${j}]`, v);
        x[i * d + j] = v;
      }
    }
    return { x, n, d };
  }
  if (data instanceof Float32Array || data instanceof Float64Array) {
    if (dims === undefined) throw new TypeError(`Expected dims (the length of one point) with a flat ${data.constructor.name} for ${name}`);
    positiveInteger('dims', dims);
    if (data.length === 0 || data.length % dims !== 0) {
      throw invalid(`a length that is a non-zero multiple of dims (${dims})`, name, data);
    }
    const x = Float64Array.from(data);
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) throw invalid('finite number', `${name}[${i}]`, x[i]);
    }
    return { x, n: data.length / dims, d: dims };
  }
  throw invalid('a Float32Array, Float64Array or array of number arrays', name, data);
}

// ---------------------------------------------------------------------------------------------
// PCA

/** Subtracts the column means in place. */
function centre({ x, n, d }: Rows): void {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] -= mean[j];
}

/** Orthonormalises the columns (each a Float64Array) in place, modified Gram-Schmidt. */
function orthonormalise(cols: Float64Array[], rng: Random): void {
  for (let c = 0; c < cols.length; c++) {
    const v = cols[c];
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        const u = cols[p];
        let dot = 0;
        for (let j = 0; j < v.length; j++) dot += u[j] * v[j];
        for (let j = 0; j < v.length; j++) v[j] -= dot * u[j];
      }
    }
    let norm = 0;
    for (let j = 0; j < v.length; j++) norm += v[j] * v[j];
    norm = Math.sqrt(norm);
    if (norm < 1e-12) {
      // Rank-deficient data: any direction orthogonal to the others will do.
      for (let j = 0; j < v.length; j++) v[j] = rng.normal();
      c--;
      continue;
    }
    for (let j = 0; j < v.length; j++) v[j] /= norm;
  }
}

/** Eigen-decomposition of a symmetric k×k matrix (row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(a: Float64Array, k: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(k * k);
  for (let i = 0; i < k; i++) v[i * k + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) off += m[p * k + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < k; p++) {
      for (let q = p + 1; q < k; q++) {
        const apq = m[p * k + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * k + q] - m[p * k + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < k; r++) {
          const mrp = m[r * k + p], mrq = m[r * k + q];
          m[r * k + p] = c * mrp - s * mrq;
          m[r * k + q] = s * mrp + c * mrq;
        }
        for (let r = 0; r < k; r++) {
          const mpr = m[p * k + r], mqr = m[q * k + r];
          m[p * k + r] = c * mpr - s * mqr;
          m[q * k + r] = s * mpr + c * mqr;
        }
        for (let r = 0; r < k; r++) {
          const vrp = v[r * k + p], vrq = v[r * k + q];
          v[r * k + p] = c * vrp - s * vrq;
          v[r * k + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  const values = new Float64Array(k);
  for (let i = 0; i < k; i++) values[i] = m[i * k + i];
  return { values, vectors: v }; // vectors[:, i] belongs to values[i]
}

/**
 * Projects centred rows onto their top `components` principal directions (randomised subspace
 * iteration with oversampling, then Rayleigh-Ritz). Exact enough for t-SNE's preprocessing.
 */
export function pca(rows: Rows, components: number, rng: Random, powerIterations = 4): Rows {
  const { x, n, d } = rows;
  const k = Math.min(components + 10, d, n);
  const out = Math.min(components, k);
  let cols = Array.from({ length: k }, () => {
    const c = new Float64Array(d);
    for (let j = 0; j < d; j++) c[j] = rng.normal();
    return c;
  });
  orthonormalise(cols, rng);
  const xq = new Float64Array(n * k); // X·Q, row-major n×k
  const project = () => {
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let c = 0; c < k; c++) {
        const q = cols[c];
        let s = 0;
        for (let j = 0; j < d; j++) s += x[off + j] * q[j];
        xq[i * k + c] = s;
      }
    }
  };
  for (let it = 0; it < powerIterations; it++) {
    project();
    const next = Array.from({ length: k }, () => new Float64Array(d)); // Xᵀ·(X·Q)
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let c = 0; c < k; c++) {
        const w = xq[i * k + c];
        if (w === 0) continue;
        const z = next[c];
        for (let j = 0; j < d; j++) z[j] += w * x[off + j];
      }
    }
    cols = next;
    orthonormalise(cols, rng);
  }
  project();
  // B = (XQ)ᵀ(XQ); its top eigenvectors rotate XQ onto the principal components.
  const b = new Float64Array(k * k);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      const v = xq[i * k + p];
      for (let q = p; q < k; q++) b[p * k + q] += v * xq[i * k + q];
    }
  }
  for (let p = 0; p < k; p++) for (let q = 0; q < p; q++) b[p * k + q] = b[q * k + p];
  const { values, vectors } = symmetricEigen(b, k);
  const order = Array.from({ length: k }, (_, i) => i).sort((i, j) => values[j] - values[i]).slice(0, out);
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < out; o++) {
      const e = order[o];
      let s = 0;
      for (let p = 0; p < k; p++) s += xq[i * k + p] * vectors[p * k + e];
      y[i * out + o] = s;
    }
  }
  return { x: y, n, d: out };
}

// ---------------------------------------------------------------------------------------------
// t-SNE

function squaredDistances({ x, n, d }: Rows, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    out[i * n + i] = 0;
    const oi = i * d;
    for (let j = i + 1; j < n; j++) {
      const oj = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) {
        const t = x[oi + k] - x[oj + k];
        s += t * t;
      }
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
}

/**
 * Conditional probabilities p_j|i with each row's Gaussian precision found by binary search so that
 * the row's perplexity (2^entropy, in nats here: e^H) matches `perplexity`. Written into `p`.
 */
function conditionalP(dist: Float64Array, n: number, perplexity: number, p: Float64Array): void {
  const target = Math.log(perplexity);
  for (let i = 0; i < n; i++) {
    const row = i * n;
    let dmin = Infinity, dsum = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const v = dist[row + j];
      if (v < dmin) dmin = v;
      dsum += v;
    }
    const spread = dsum / (n - 1) - dmin;
    let beta = spread > 0 ? 1 / spread : 1;
    let lo = 0, hi = Infinity;
    for (let it = 0; it < 200; it++) {
      let sum = 0, wsum = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) { p[row + j] = 0; continue; }
        const dd = dist[row + j] - dmin; // shifted for stability; cancels in the normalisation
        const e = Math.exp(-dd * beta);
        p[row + j] = e;
        sum += e;
        wsum += dd * e;
      }
      const h = Math.log(sum) + (beta * wsum) / sum;
      const diff = h - target;
      if (Math.abs(diff) < 1e-5) break;
      if (diff > 0) { // entropy too high: sharpen
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (beta + lo) / 2;
      }
    }
    let sum = 0;
    for (let j = 0; j < n; j++) sum += p[row + j];
    for (let j = 0; j < n; j++) p[row + j] /= sum;
  }
}

/**
 * 2-D embedding of `data` (n points) as a flat Float64Array [x0, y0, x1, y1, ...].
 * Deterministic for a given seed, input and options.
 */
export function tsne(data: Float32Array | Float64Array | number[][], options: TsneOptions = {}): Float64Array {
  plainObject('options', options);
  knownKeys('tsne options', options as Record<string, unknown>, TSNE_KEYS);
  const rows = toRows('data', data, options.dims);
  const n = rows.n;
  if (n > MAX_TSNE_POINTS) {
    throw new RangeError(`tsne is exact O(N²) and takes at most ${MAX_TSNE_POINTS} points but received ${n}; subsample first`);
  }
  const perplexity = options.perplexity ?? 30;
  finiteNumber('perplexity', perplexity);
  if (perplexity < 1 || perplexity >= n) {
    throw invalid(`number between 1 and the number of points minus one (${n - 1})`, 'perplexity', perplexity);
  }
  const iterations = options.iterations === undefined ? 1000 : integerInRange('iterations', options.iterations, 1, 100000);
  const seed = validateSeed('seed', options.seed ?? 0);
  const eta = options.learningRate ?? 200;
  if (typeof eta !== 'number' || !(eta > 0) || !Number.isFinite(eta)) throw invalid('positive number', 'learningRate', eta);
  const pcaDims = options.pcaDims === undefined ? 50 : nonNegativeInteger('pcaDims', options.pcaDims);
  const exaggeration = options.earlyExaggeration ?? 12;
  if (typeof exaggeration !== 'number' || !(exaggeration >= 1) || !Number.isFinite(exaggeration)) {
    throw invalid('number of at least 1', 'earlyExaggeration', exaggeration);
  }
  const exaggerationIterations =
    options.exaggerationIterations === undefined ? 250 : nonNegativeInteger('exaggerationIterations', options.exaggerationIterations);
  const onProgress = options.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('function', 'onProgress', onProgress);

  const rng = new Random(seed);
  centre(rows);
  const reduced = pcaDims > 0 && rows.d > pcaDims ? pca(rows, pcaDims, rng) : rows;

  // P: conditional, then symmetrised in place. `work` holds distances first, the kernel later.
  const work = new Float64Array(n * n);
  const P = new Float64Array(n * n);
  squaredDistances(reduced, work);
  conditionalP(work, n, perplexity, P);
  const norm = 1 / (2 * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = Math.max((P[i * n + j] + P[j * n + i]) * norm, 1e-12);
      P[i * n + j] = v;
      P[j * n + i] = v;
    }
  }

  const Y = new Float64Array(n * 2);
  for (let i = 0; i < 2 * n; i++) Y[i] = rng.normal() * 1e-4;
  const update = new Float64Array(n * 2);
  const gains = new Float64Array(n * 2).fill(1);
  const grad = new Float64Array(n * 2);
  const Q = work; // Student-t kernel 1 / (1 + |yi - yj|²), upper triangle

  for (let iter = 0; iter < iterations; iter++) {
    const exag = iter < exaggerationIterations ? exaggeration : 1;
    const momentum = iter < exaggerationIterations ? 0.5 : 0.8;
    // Kernel and its sum Z
    let z = 0;
    for (let i = 0; i < n; i++) {
      const yi0 = Y[2 * i], yi1 = Y[2 * i + 1];
      const row = i * n;
      for (let j = i + 1; j < n; j++) {
        const a = yi0 - Y[2 * j], b = yi1 - Y[2 * j + 1];
        const q = 1 / (1 + a * a + b * b);
        Q[row + j] = q;
        z += q;
      }
    }
    z *= 2;
    const invZ = 1 / z;
    // Gradient: 4 Σ_j (exag·p_ij − q_ij/Z) q_ij (y_i − y_j), accumulated over pairs once
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      const yi0 = Y[2 * i], yi1 = Y[2 * i + 1];
      const row = i * n;
      let gi0 = 0, gi1 = 0;
      for (let j = i + 1; j < n; j++) {
        const q = Q[row + j];
        const m = (exag * P[row + j] - q * invZ) * q;
        const a = m * (yi0 - Y[2 * j]), b = m * (yi1 - Y[2 * j + 1]);
        gi0 += a;
        gi1 += b;
        grad[2 * j] -= a;
        grad[2 * j + 1] -= b;
      }
      grad[2 * i] += gi0;
      grad[2 * i + 1] += gi1;
    }
    // Gains, momentum, step
    for (let k = 0; k < 2 * n; k++) {
      const g = 4 * grad[k];
      const u = update[k];
      let gain = (g > 0) !== (u > 0) ? gains[k] + 0.2 : gains[k] * 0.8;
      if (gain < 0.01) gain = 0.01;
      gains[k] = gain;
      update[k] = momentum * u - eta * gain * g;
      Y[k] += update[k];
    }
    // Re-centre
    let m0 = 0, m1 = 0;
    for (let i = 0; i < n; i++) { m0 += Y[2 * i]; m1 += Y[2 * i + 1]; }
    m0 /= n; m1 /= n;
    for (let i = 0; i < n; i++) { Y[2 * i] -= m0; Y[2 * i + 1] -= m1; }

    if (onProgress && ((iter + 1) % 50 === 0 || iter === iterations - 1)) {
      onProgress(iter + 1, klDivergence(P, Y, n));
    }
  }
  return Y;
}

/** KL(P || Q) of a 2-D embedding, P being the symmetrised joint probabilities. */
function klDivergence(P: Float64Array, Y: Float64Array, n: number): number {
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = Y[2 * i] - Y[2 * j], b = Y[2 * i + 1] - Y[2 * j + 1];
      z += 2 / (1 + a * a + b * b);
    }
  }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = Y[2 * i] - Y[2 * j], b = Y[2 * i + 1] - Y[2 * j + 1];
      const q = Math.max(1 / (1 + a * a + b * b) / z, 1e-300);
      const p = P[i * n + j];
      kl += 2 * p * Math.log(p / q);
    }
  }
  return kl;
}

// ---------------------------------------------------------------------------------------------
// Quality measures

/** For each point, the other points ordered nearest first (ties by index). */
function neighbourOrder(rows: Rows, i: number): Int32Array {
  const { x, n, d } = rows;
  const dist = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const t = x[i * d + k] - x[j * d + k];
      s += t * t;
    }
    dist[j] = s;
  }
  const order = new Int32Array(n - 1);
  for (let j = 0, o = 0; j < n; j++) if (j !== i) order[o++] = j;
  order.sort((a, b) => dist[a] - dist[b] || a - b);
  return order;
}

function checkK(k: number, n: number, limit: number): number {
  return integerInRange('k', k, 1, Math.max(1, Math.min(n - 1, limit)));
}

/**
 * Mean share of each point's k nearest neighbours (in `embedding`) that have its label: 1 when
 * every class forms its own tight cluster, about 1/classes for a random layout.
 */
export function nearestNeighbourPurity(
  embedding: Float64Array | Float32Array | number[][],
  labels: ArrayLike<number>,
  k = 10,
  dims = 2,
): number {
  const rows = toRows('embedding', embedding, Array.isArray(embedding) ? undefined : dims);
  if (typeof labels !== 'object' || labels === null || labels.length !== rows.n) {
    throw invalid(`an array of ${rows.n} labels`, 'labels', labels);
  }
  checkK(k, rows.n, rows.n - 1);
  let total = 0;
  for (let i = 0; i < rows.n; i++) {
    const order = neighbourOrder(rows, i);
    let same = 0;
    for (let t = 0; t < k; t++) if (labels[order[t]] === labels[i]) same++;
    total += same / k;
  }
  return total / rows.n;
}

/**
 * Trustworthiness (Venna & Kaski; as sklearn.manifold.trustworthiness): 1 minus a penalty for
 * points that are among the k nearest in the embedding without being among the k nearest in the
 * original space, weighted by how far down the original ranking they are. 1 is perfect; k < n/2.
 */
export function trustworthiness(
  high: Float32Array | Float64Array | number[][],
  low: Float32Array | Float64Array | number[][],
  k = 5,
  dims: { high?: number; low?: number } = {},
): number {
  const h = toRows('high', high, Array.isArray(high) ? undefined : dims.high);
  const l = toRows('low', low, Array.isArray(low) ? undefined : (dims.low ?? 2));
  if (h.n !== l.n) throw new TypeError(`Expected high and low to hold the same number of points but received ${h.n} and ${l.n}`);
  const n = h.n;
  checkK(k, n, Math.ceil(n / 2) - 1);
  const rank = new Int32Array(n);
  let penalty = 0;
  for (let i = 0; i < n; i++) {
    const hi = neighbourOrder(h, i);
    for (let r = 0; r < hi.length; r++) rank[hi[r]] = r + 1;
    const lo = neighbourOrder(l, i);
    for (let t = 0; t < k; t++) {
      const rr = rank[lo[t]];
      if (rr > k) penalty += rr - k;
    }
  }
  return 1 - (2 / (n * k * (2 * n - 3 * k - 1))) * penalty;
}
