// The table's statistics against scipy: a table of scipy 1.10 values computed once (always
// checked), and fresh scipy runs on random inputs where /usr/bin/python3 has scipy.
import { spawnSync } from 'child_process';
import { Random } from '../../lib/data/random';
import { mcnemarExact, pairedComparison, spread, studentTQuantile } from '../../lib/experiment/statistics';
import { prerequisite } from '../helpers/prerequisite';

// scipy.stats.t.ppf(0.975, df), scipy.stats.t.interval, scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue
const T975: Array<[number, number]> = [[1, 12.706204736432095], [2, 4.302652729911275], [3, 3.182446305284263], [4, 2.7764451051977987], [9, 2.2621571627409915], [29, 2.045229642132703]];
const MCNEMAR: Array<[number, number, number]> = [[0, 0, 1], [3, 10, 0.09228515625], [10, 3, 0.09228515625], [25, 25, 1], [1, 0, 1], [40, 61, 0.04604406692934279], [200, 250, 0.0207918002476078]];

test('Student-t quantiles and the 95% interval of a mean equal scipy', () => {
  for (const [df, q] of T975) expect(studentTQuantile(0.975, df)).toBeCloseTo(q, 9);
  expect(studentTQuantile(0.025, 4)).toBeCloseTo(-2.7764451051977987, 9);
  const s = spread([0.712, 0.745, 0.698]);
  expect(s.mean).toBeCloseTo(0.7183333333333333, 12);
  expect(s.std).toBeCloseTo(0.024131583730317707, 12);
  expect(s.interval![0]).toBeCloseTo(0.6583871561423359, 9);
  expect(s.interval![1]).toBeCloseTo(0.7782795105243306, 9);
  expect(spread([0.5])).toEqual({ n: 1, mean: 0.5, std: 0, interval: null });
  expect(() => spread([])).toThrow('at least one value');
});

test("McNemar's exact p-values equal scipy's binomtest", () => {
  for (const [b, c, p] of MCNEMAR) expect(mcnemarExact(b, c)).toBeCloseTo(p, 12);
});

test('the paired comparison counts discordant images per seed and brackets the difference', () => {
  // seed 0: 10 images, first right on 8, second on 5, 4 only-first, 1 only-second; seed 1: 4 images, all agree
  const first = [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [1, 0, 1, 0]].map((r) => r.map(Boolean));
  const second = [[1, 1, 1, 1, 0, 0, 0, 0, 1, 0], [1, 0, 1, 0]].map((r) => r.map(Boolean));
  const c = pairedComparison(first, second, { resamples: 4000, seed: 3 });
  expect(c).toMatchObject({ count: 14, onlyFirst: 4, onlySecond: 1, p: mcnemarExact(4, 1) });
  expect(c.difference).toBeCloseTo(3 / 14, 12);
  expect(c.interval[0]).toBeLessThan(c.difference);
  expect(c.interval[1]).toBeGreaterThan(c.difference);
  expect(c.interval[0]).toBeGreaterThanOrEqual(-4 / 14);
  expect(() => pairedComparison([[true]], [[true, false]])).toThrow('same test images');
});

test('the bootstrap interval of a large paired sample matches the normal approximation', () => {
  const random = new Random(11);
  const first = [Array.from({ length: 2000 }, () => random.next() < 0.8)];
  const second = [first[0].map((f) => (random.next() < 0.15 ? !f : f))];
  const c = pairedComparison(first, second, { resamples: 1500, seed: 5 });
  const n = c.count;
  const se = Math.sqrt((c.onlyFirst + c.onlySecond) / n - c.difference ** 2) / Math.sqrt(n);
  expect(c.interval[0]).toBeCloseTo(c.difference - 1.96 * se, 2);
  expect(c.interval[1]).toBeCloseTo(c.difference + 1.96 * se, 2);
});

const scipy = prerequisite(
  'scipy reference',
  spawnSync('/usr/bin/python3', ['-c', 'import scipy.stats'], { encoding: 'utf8' }).status === 0
    ? null
    : '/usr/bin/python3 has no scipy (apt-get install python3-scipy); the scipy table above still runs',
);

scipy.test('random inputs: intervals and p-values equal a fresh scipy run', () => {
  const random = new Random(7);
  const samples = Array.from({ length: 20 }, () => Array.from({ length: 2 + random.int(8) }, () => random.next()));
  const pairs = Array.from({ length: 20 }, () => [random.int(60), random.int(60)]);
  const script = `
import json, sys, numpy as np, scipy.stats as st
inp = json.load(sys.stdin)
out = {'intervals': [list(st.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=np.std(v, ddof=1) / np.sqrt(len(v)))) for v in inp['samples']],
       'p': [st.binomtest(min(b, c), b + c, 0.5).pvalue if b + c > 0 else 1.0 for b, c in inp['pairs']]}
print(json.dumps(out))`;
  const result = spawnSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify({ samples, pairs }), encoding: 'utf8' });
  expect(result.stderr).toBe('');
  const reference = JSON.parse(result.stdout) as { intervals: number[][]; p: number[] };
  samples.forEach((v, i) => {
    const s = spread(v);
    expect(s.interval![0]).toBeCloseTo(reference.intervals[i][0], 9);
    expect(s.interval![1]).toBeCloseTo(reference.intervals[i][1], 9);
  });
  pairs.forEach(([b, c], i) => expect(mcnemarExact(b, c)).toBeCloseTo(reference.p[i], 10));
});
