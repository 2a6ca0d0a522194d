import { Random } from '../../lib/data/random';
import { nearestNeighbourPurity, pca, symmetricEigen, trustworthiness, tsne } from '../../lib/report/tsne';

/** `clusters` Gaussian blobs in `dims` dimensions, centres ~N(0, spread²), points ~N(centre, 1). */
function blobs(clusters: number, perCluster: number, dims: number, spread: number, seed: number) {
  const rng = new Random(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dims }, () => rng.normal() * spread));
  const data = new Float32Array(clusters * perCluster * dims);
  const labels: number[] = [];
  for (let c = 0; c < clusters; c++) {
    for (let i = 0; i < perCluster; i++) {
      const row = c * perCluster + i;
      labels.push(c);
      for (let j = 0; j < dims; j++) data[row * dims + j] = centres[c][j] + rng.normal();
    }
  }
  return { data, labels };
}

describe('tsne', () => {
  const { data, labels } = blobs(5, 60, 50, 3, 7);

  test('separates well-separated clusters, deterministically for a seed', () => {
    const y = tsne(data, { dims: 50, seed: 42, iterations: 600 });
    expect(y).toBeInstanceOf(Float64Array);
    expect(y).toHaveLength(300 * 2);
    for (const v of y) expect(Number.isFinite(v)).toBe(true);
    expect(nearestNeighbourPurity(y, labels, 10)).toBeGreaterThan(0.9);
    expect(trustworthiness(data, y, 5, { high: 50 })).toBeGreaterThan(0.9);

    const again = tsne(data, { dims: 50, seed: 42, iterations: 600 });
    expect(again).toEqual(y);
    const other = tsne(data, { dims: 50, seed: 43, iterations: 600 });
    expect(other).not.toEqual(y);
  });

  test('with PCA first (input wider than pcaDims) and number[][] input', () => {
    const wide = blobs(4, 40, 120, 3, 11);
    const rows = Array.from({ length: 160 }, (_, i) => Array.from(wide.data.subarray(i * 120, (i + 1) * 120)));
    const progress: Array<[number, number]> = [];
    const y = tsne(rows, { seed: 1, iterations: 400, perplexity: 20, pcaDims: 10, onProgress: (it, kl) => progress.push([it, kl]) });
    expect(nearestNeighbourPurity(y, wide.labels, 8)).toBeGreaterThan(0.9);
    expect(progress.map((p) => p[0])).toEqual([50, 100, 150, 200, 250, 300, 350, 400]);
    // KL falls once exaggeration stops (its value during exaggeration is not comparable).
    expect(progress[7][1]).toBeLessThan(progress[5][1] + 1e-9);
    expect(progress[7][1]).toBeGreaterThan(0);
  });

  test('validates input', () => {
    expect(() => tsne(new Float32Array(10), {})).toThrow(/Expected dims/);
    expect(() => tsne(new Float32Array(10), { dims: 3 })).toThrow(/multiple of dims/);
    expect(() => tsne([[1, 2], [3]], {})).toThrow(/data\[1\]/);
    expect(() => tsne([[1, 2], [3, 4], [5, 6]], { perplexity: 30 })).toThrow(/perplexity/);
    expect(() => tsne(data, { dims: 50, seed: -1 })).toThrow(/seed/);
    expect(() => tsne(data, { dims: 50, perplexty: 5 } as never)).toThrow(/did you mean 'perplexity'/);
    expect(() => tsne([[NaN, 1], [1, 2]], { perplexity: 1 })).toThrow(/finite number/);
  });
});

describe('PCA helpers', () => {
  test('symmetric eigen-decomposition', () => {
    const a = new Float64Array([4, 1, 0, 1, 3, 0, 0, 0, 1]);
    const { values, vectors } = symmetricEigen(a, 3);
    const sorted = Array.from(values).sort((x, y) => y - x);
    expect(sorted[0]).toBeCloseTo((7 + Math.sqrt(5)) / 2, 10);
    expect(sorted[1]).toBeCloseTo((7 - Math.sqrt(5)) / 2, 10);
    expect(sorted[2]).toBeCloseTo(1, 10);
    for (let e = 0; e < 3; e++) {
      for (let r = 0; r < 3; r++) {
        let av = 0;
        for (let c = 0; c < 3; c++) av += a[r * 3 + c] * vectors[c * 3 + e];
        expect(av).toBeCloseTo(values[e] * vectors[r * 3 + e], 10);
      }
    }
  });

  test('pca recovers the dominant directions of centred data', () => {
    const rng = new Random(5);
    const n = 400, d = 30;
    const x = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      const a = rng.normal() * 10, b = rng.normal() * 5;
      for (let j = 0; j < d; j++) x[i * d + j] = (j === 3 ? a : 0) + (j === 17 ? b : 0) + rng.normal() * 0.1;
    }
    const means = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) means[j] += x[i * d + j] / n;
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] -= means[j];
    const out = pca({ x, n, d }, 2, new Random(1));
    expect(out.d).toBe(2);
    // First component is ±column 3, second ±column 17.
    let c0 = 0, c1 = 0, n0 = 0, n1 = 0, m0 = 0, m1 = 0;
    for (let i = 0; i < n; i++) {
      c0 += out.x[2 * i] * x[i * d + 3]; n0 += out.x[2 * i] ** 2; m0 += x[i * d + 3] ** 2;
      c1 += out.x[2 * i + 1] * x[i * d + 17]; n1 += out.x[2 * i + 1] ** 2; m1 += x[i * d + 17] ** 2;
    }
    expect(Math.abs(c0) / Math.sqrt(n0 * m0)).toBeGreaterThan(0.999);
    expect(Math.abs(c1) / Math.sqrt(n1 * m1)).toBeGreaterThan(0.999);
  });
});

describe('embedding quality measures', () => {
  test('purity and trustworthiness on known layouts', () => {
    // Two lines of points far apart, labelled by line.
    const pts = [...Array.from({ length: 10 }, (_, i) => [i, 0]), ...Array.from({ length: 10 }, (_, i) => [i, 100])];
    const labels = [...new Array(10).fill(0), ...new Array(10).fill(1)];
    expect(nearestNeighbourPurity(pts, labels, 3)).toBe(1);
    const mixed = labels.map((_, i) => i % 2);
    // Alternating labels along each line: the two nearest neighbours are the other label, except
    // at the 4 line ends, whose second neighbour (two steps along) shares the label: 4 × 0.5 / 20.
    expect(nearestNeighbourPurity(pts, mixed, 2)).toBeCloseTo(0.1, 12);
  });

  test('trustworthiness: 1 for an identical embedding, lower for a shuffled one', () => {
    const rng = new Random(2);
    const high = Array.from({ length: 60 }, () => [rng.normal(), rng.normal(), rng.normal()]);
    const same = high.map((p) => [p[0], p[1], p[2]]);
    expect(trustworthiness(high, same, 5)).toBeCloseTo(1, 12);
    const shuffled = rng.shuffle(high.map((p) => [p[0], p[1]]));
    expect(trustworthiness(high, shuffled, 5)).toBeLessThan(0.75);
    expect(() => trustworthiness(high, same, 40)).toThrow(/k/);
  });
});
