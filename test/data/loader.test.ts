import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DataLoader, EVAL_DECODE, evalTransform, ImageCache, scanDataset, splitDataset, TRAIN_DECODE, trainTransform } from '../../lib';
import { caltech101Prerequisite } from '../helpers/caltech101-dir';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

let dir: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-loader-'));
  await createSyntheticDataset(dir, { classes: 4, perClass: 10, size: 40, seed: 1 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function collect(loader: DataLoader, epoch: number) {
  const batches = [];
  for await (const batch of loader.epoch(epoch)) {
    batches.push({ shape: batch.images.shape, labels: batch.labels.toArray(), indices: batch.indices, sum: (batch.images.toTypedArray() as Float32Array).reduce((a, b) => a + b, 0) });
  }
  return batches;
}

describe('DataLoader', () => {
  test('every sample once per epoch, labels right, seeded shuffle that changes per epoch, dropLast', async () => {
    const scan = await scanDataset(dir, { warn: () => undefined });
    const cache = new ImageCache({ decode: TRAIN_DECODE });
    const loader = new DataLoader(scan.samples, { batchSize: 16, transform: trainTransform({ size: 32 }), cache, seed: 3 });
    expect(loader.length).toBe(3);
    const first = await collect(loader, 0);
    expect(first.map((b) => b.shape)).toEqual([[16, 3, 32, 32], [16, 3, 32, 32], [8, 3, 32, 32]]);
    const seen = first.flatMap((b) => b.indices).sort((a, b) => a - b);
    expect(seen).toEqual(scan.samples.map((_, i) => i));
    for (const b of first) b.indices.forEach((i, k) => expect(b.labels[k]).toBe(scan.samples[i].label));
    // determinism: same seed and epoch, same batches (order and augmentation)
    expect(await collect(loader, 0)).toEqual(first);
    const second = await collect(loader, 1);
    expect(second.map((b) => b.indices)).not.toEqual(first.map((b) => b.indices));
    expect(cache.stats.decodes).toBe(40); // decoded once, whatever the number of epochs
    const dropping = new DataLoader(scan.samples, { batchSize: 16, transform: trainTransform({ size: 32 }), cache, dropLast: true });
    expect((await collect(dropping, 0)).map((b) => b.shape[0])).toEqual([16, 16]);
  });

  test('evaluation order is fixed and unshuffled', async () => {
    const scan = await scanDataset(dir, { warn: () => undefined });
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 6, testPerClass: 4 }, 0);
    const loader = new DataLoader(split.test, { batchSize: 5, transform: evalTransform({ size: 32 }), cache: new ImageCache({ decode: { ...EVAL_DECODE, resize: 36, centerCrop: 32 } }) });
    expect(loader.shuffle).toBe(false);
    const batches = await collect(loader, 0);
    expect(batches.flatMap((b) => b.indices)).toEqual(split.test.map((_, i) => i));
    expect(await collect(loader, 5)).toEqual(batches);
  });

  test('an image deleted or corrupted after the scan is skipped with one warning', async () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-loader-bad-'));
    await createSyntheticDataset(copy, { classes: 2, perClass: 4, size: 32, seed: 2 });
    const scan = await scanDataset(copy, { warn: () => undefined });
    fs.writeFileSync(scan.samples[1].path, Buffer.from('not an image any more'));
    fs.rmSync(scan.samples[5].path);
    const warnings: string[] = [];
    const loader = new DataLoader(scan.samples, { batchSize: 4, transform: evalTransform({ size: 24 }), cache: new ImageCache({ decode: { resize: 24, centerCrop: 24 } }), warn: (m) => warnings.push(m) });
    const batches = await collect(loader, 0);
    expect(batches.map((b) => b.shape[0])).toEqual([3, 3]);
    await collect(loader, 1);
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toContain(scan.samples[1].path);
    fs.rmSync(copy, { recursive: true, force: true });
  });

  test('options are validated', () => {
    const cache = new ImageCache();
    expect(() => new DataLoader([], { batchSize: 0, transform: evalTransform(), cache })).toThrow('Expected positive integer for batchSize but received 0 of type number');
    expect(() => new DataLoader([], { batchSize: 2, transform: evalTransform(), cache: {} as never })).toThrow('Expected ImageCache for cache');
  });
});

const real = caltech101Prerequisite('the real-data loader tests');
real.describe('DataLoader on real Caltech-101 images ($CALTECH101_DIR)', () => {
  test('grayscale, tiny and huge images all come out as normalised 3-channel batches', async () => {
    const scan = await scanDataset(real.root, { warn: () => undefined });
    const pick = scan.samples.filter((s) => /car_side|Faces_easy/.test(s.path)).slice(0, 12);
    const loader = new DataLoader(pick, { batchSize: 12, transform: trainTransform(), cache: new ImageCache({ decode: TRAIN_DECODE }), seed: 0 });
    const [batch] = await collect(loader, 0);
    expect(batch.shape).toEqual([12, 3, 224, 224]);
    expect(Number.isFinite(batch.sum)).toBe(true);
  });
});
