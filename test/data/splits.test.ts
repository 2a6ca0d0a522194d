import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scanDataset, type DatasetScan } from '../../lib/data/caltech101';
import { Random, deriveSeed } from '../../lib/data/random';
import {
  loadSplitManifest,
  perClassCounts,
  ratioCounts,
  readSplitManifest,
  saveSplitManifest,
  splitCounts,
  splitDataset,
  normalizeProtocol,
  type Split,
} from '../../lib/data/splits';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

/** A fake dataset: class i has sizes[i] images (no files needed for splitting). */
function fakeDataset(sizes: number[], root = '/data/101_ObjectCategories'): DatasetScan {
  const classes = sizes.map((_, i) => `class_${String(i).padStart(2, '0')}`);
  const samples = sizes.flatMap((n, label) =>
    Array.from({ length: n }, (_, j) => ({ path: path.join(root, classes[label], `image_${String(j + 1).padStart(4, '0')}.jpg`), label })),
  );
  return { root, layout: 'caltech101', classes, samples, skipped: [] };
}

const paths = (s: Split, part: 'train' | 'val' | 'test'): string[] => s[part].map((x) => x.path);

describe('Random', () => {
  test('same seed, same stream; different seed, different stream', () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
  });

  test('the stream is pinned (manifests depend on it)', () => {
    const r = new Random(0);
    expect(Array.from({ length: 3 }, () => r.nextUint32())).toEqual([2673918951, 1525398398, 1851933717]);
    expect(deriveSeed(0, 'accordion')).toBe(1308629193);
  });

  test('int() is uniform enough and in range', () => {
    const r = new Random(7);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) counts[r.int(6)]++;
    for (const c of counts) expect(c).toBeGreaterThan(850);
    for (const c of counts) expect(c).toBeLessThan(1150);
  });

  test('seeds are validated', () => {
    expect(() => new Random(-1)).toThrow('Expected integer between 0 and 4294967295 for seed but received -1 of type number');
    expect(() => new Random(1.5)).toThrow(/for seed but received 1.5 of type number/);
  });
});

describe('per-class (standard) protocol', () => {
  const ds = fakeDataset([60, 45, 31, 30, 12, 2, 1]);

  test('defaults: 30 train per class, the rest for test capped at 50, no val', () => {
    const split = splitDataset(ds, { kind: 'per-class' }, 0);
    expect(split.protocol).toEqual({ kind: 'per-class', trainPerClass: 30, valPerClass: 0, testPerClass: 50 });
    const c = splitCounts(split);
    expect(c.train).toEqual([30, 30, 30, 29, 11, 1, 1]);
    expect(c.test).toEqual([30, 15, 1, 1, 1, 1, 0]);
    expect(c.val).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  test('the test cap and validation images', () => {
    const big = fakeDataset([120, 40, 33]);
    const c = splitCounts(splitDataset(big, { kind: 'per-class', trainPerClass: 30, valPerClass: 5, testPerClass: 50 }, 1));
    // validation is carved out of the 30 training images; the test part is what it is without one
    expect(c.train).toEqual([25, 25, 25]);
    expect(c.val).toEqual([5, 5, 5]);
    expect(c.test).toEqual([50, 10, 3]);
    const without = splitDataset(big, { kind: 'per-class', trainPerClass: 30, testPerClass: 50 }, 1);
    const withVal = splitDataset(big, { kind: 'per-class', trainPerClass: 30, valPerClass: 5, testPerClass: 50 }, 1);
    expect(withVal.test).toEqual(without.test);
    expect([...withVal.train, ...withVal.val].sort((a, b) => a.path.localeCompare(b.path))).toEqual([...without.train].sort((a, b) => a.path.localeCompare(b.path)));
    const all = splitCounts(splitDataset(big, { kind: 'per-class', testPerClass: null }, 1));
    expect(all.test).toEqual([90, 10, 3]);
  });

  test('small-class rule in numbers', () => {
    const p = normalizeProtocol({ kind: 'per-class' });
    expect(perClassCounts(1, p)).toEqual({ train: 1, val: 0, test: 0 });
    expect(perClassCounts(2, p)).toEqual({ train: 1, val: 0, test: 1 });
    expect(perClassCounts(30, p)).toEqual({ train: 29, val: 0, test: 1 });
    expect(perClassCounts(31, p)).toEqual({ train: 30, val: 0, test: 1 });
    expect(perClassCounts(800, p)).toEqual({ train: 30, val: 0, test: 50 });
    const noTest = normalizeProtocol({ kind: 'per-class', testPerClass: 0, valPerClass: 3 });
    expect(perClassCounts(20, noTest)).toEqual({ train: 17, val: 3, test: 0 });
    expect(perClassCounts(35, noTest)).toEqual({ train: 27, val: 3, test: 0 });
    expect(perClassCounts(3, normalizeProtocol({ kind: 'per-class', valPerClass: 5 }))).toEqual({ train: 1, val: 1, test: 1 });
  });

  test('deterministic for a seed, different for another, parts disjoint and within their class', () => {
    const a = splitDataset(ds, { kind: 'per-class' }, 123);
    const b = splitDataset(ds, { kind: 'per-class' }, 123);
    const c = splitDataset(ds, { kind: 'per-class' }, 124);
    expect(b).toEqual(a);
    expect(paths(c, 'train')).not.toEqual(paths(a, 'train'));
    const train = new Set(paths(a, 'train'));
    expect(paths(a, 'test').some((p) => train.has(p))).toBe(false);
    for (const part of ['train', 'test'] as const) {
      for (const s of a[part]) expect(s.path).toContain(`/${a.classes[s.label]}/`);
    }
  });

  test("a class's split does not depend on the other classes", () => {
    const withExtra = fakeDataset([60, 45, 31, 30, 12, 2, 1, 50]);
    const a = splitDataset(ds, { kind: 'per-class' }, 5);
    const b = splitDataset(withExtra, { kind: 'per-class' }, 5);
    expect(paths(b, 'train').filter((p) => !p.includes('class_07'))).toEqual(paths(a, 'train'));
  });

  test('protocol options are validated', () => {
    expect(() => splitDataset(ds, { kind: 'per-class', trainPerClass: 0 }, 0)).toThrow(
      'Expected positive integer for trainPerClass but received 0 of type number',
    );
    expect(() => splitDataset(ds, { kind: 'per-class', trainPerclass: 3 } as never, 0)).toThrow(/did you mean 'trainPerClass'/);
    expect(() => splitDataset(ds, { kind: 'bogus' } as never, 0)).toThrow(/Expected one of 'per-class', 'ratio' for protocol.kind/);
  });
});

describe('ratio (stratified) protocol', () => {
  test('0.7/0.15/0.15 per class, counts add up', () => {
    const ds = fakeDataset([100, 20, 7, 3, 2, 1]);
    const split = splitDataset(ds, { kind: 'ratio', train: 0.7, val: 0.15, test: 0.15 }, 9);
    const c = splitCounts(split);
    expect(c.train).toEqual([70, 14, 5, 1, 1, 1]);
    expect(c.val).toEqual([15, 3, 1, 1, 0, 0]);
    expect(c.test).toEqual([15, 3, 1, 1, 1, 0]);
    const sizes = [100, 20, 7, 3, 2, 1];
    sizes.forEach((n, i) => expect(c.train[i] + c.val[i] + c.test[i]).toBe(n));
  });

  test('largest remainder and minimum-one rules', () => {
    const p = normalizeProtocol({ kind: 'ratio', train: 0.8, test: 0.2 });
    expect(p).toEqual({ kind: 'ratio', train: 0.8, val: 0, test: 0.2 });
    expect(ratioCounts(10, p)).toEqual({ train: 8, val: 0, test: 2 });
    expect(ratioCounts(3, p)).toEqual({ train: 2, val: 0, test: 1 });
    expect(ratioCounts(1, p)).toEqual({ train: 1, val: 0, test: 0 });
    expect(normalizeProtocol({ kind: 'ratio' })).toEqual({ kind: 'ratio', train: 0.7, val: 0.15, test: 0.15 });
  });

  test('ratios must sum to 1', () => {
    expect(() => normalizeProtocol({ kind: 'ratio', train: 0.7, val: 0.2, test: 0.2 })).toThrow(/sum to 1/);
  });

  test('deterministic per seed', () => {
    const ds = fakeDataset([40, 40]);
    const a = splitDataset(ds, { kind: 'ratio' }, 1);
    expect(splitDataset(ds, { kind: 'ratio' }, 1)).toEqual(a);
    expect(paths(splitDataset(ds, { kind: 'ratio' }, 2), 'test')).not.toEqual(paths(a, 'test'));
  });
});

describe('split manifest', () => {
  let tmp: string;
  let scan: DatasetScan;
  beforeAll(async () => {
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'finetorch-split-'));
    const ds = await createSyntheticDataset(path.join(tmp, 'data'), { classes: 4, perClass: 6, size: 16, extras: { background: 2 } });
    scan = await scanDataset(ds.root, { warn: () => undefined });
  });
  afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

  test('round trip gives the same split, with relative POSIX paths in the file', async () => {
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 3, valPerClass: 1 }, 77);
    const file = path.join(tmp, 'out', 'split.json');
    await saveSplitManifest(split, file);
    const text = await fsp.readFile(file, 'utf8');
    expect(text).toContain('"path":"Stripes/image_');
    expect(text).not.toContain(tmp);
    const m = await readSplitManifest(file);
    expect(m.counts).toEqual({ train: 8, val: 4, test: 12 });
    const back = await loadSplitManifest(file, scan);
    expect(back).toEqual(split);
  });

  test('the same split loads against the category folder path too', async () => {
    const split = splitDataset(scan, { kind: 'ratio' }, 1);
    const file = path.join(tmp, 'ratio.json');
    await saveSplitManifest(split, file);
    const again = await scanDataset(scan.root, { warn: () => undefined });
    expect(await loadSplitManifest(file, again)).toEqual(split);
  });

  test('a dataset with different classes is refused with a clear message', async () => {
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 3 }, 1);
    const file = path.join(tmp, 'classes.json');
    await saveSplitManifest(split, file);
    const withBg = await scanDataset(scan.root, { includeBackground: true, warn: () => undefined });
    await expect(loadSplitManifest(file, withBg)).rejects.toThrow(
      /does not match the dataset[\s\S]*classes differ: the manifest has 4, the dataset 5; only in the dataset: BACKGROUND_Google \(was the dataset scanned with a different includeBackground/,
    );
  });

  test('missing files and changed labels are listed', async () => {
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 3 }, 1);
    const file = path.join(tmp, 'files.json');
    await saveSplitManifest(split, file);
    const gone = split.test[0].path;
    const fewer = { ...scan, samples: scan.samples.filter((s) => s.path !== gone) };
    await expect(loadSplitManifest(file, fewer)).rejects.toThrow(
      new RegExp(`1 of 24 listed files are not in the dataset \\(missing, unreadable or skipped\\): ${path.relative(scan.root, gone)}`),
    );
    const swapped = { ...scan, samples: scan.samples.map((s) => (s.path === gone ? { ...s, label: (s.label + 1) % 4 } : s)) };
    await expect(loadSplitManifest(file, swapped)).rejects.toThrow(/1 files have a different class: .* \(\w+ in the manifest, \w+ in the dataset\)/);
  });

  test('malformed manifests are explained', async () => {
    const file = path.join(tmp, 'bad.json');
    await fsp.writeFile(file, '{"format":"finetorch-split","version":99}');
    await expect(readSplitManifest(file)).rejects.toThrow(/version 99 is not supported/);
    await fsp.writeFile(file, '{ not json');
    await expect(readSplitManifest(file)).rejects.toThrow(/is not valid JSON/);
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 3 }, 1);
    await saveSplitManifest(split, file);
    const m = JSON.parse(await fsp.readFile(file, 'utf8'));
    m.parts.test.push(m.parts.train[0]);
    await fsp.writeFile(file, JSON.stringify(m));
    await expect(readSplitManifest(file)).rejects.toThrow(/appears twice \(in train and test\)/);
    m.parts.test.pop();
    m.parts.test.push({ path: '../../etc/passwd', label: 0 });
    await fsp.writeFile(file, JSON.stringify(m));
    await expect(readSplitManifest(file)).rejects.toThrow(/leaves the dataset folder/);
  });
});
