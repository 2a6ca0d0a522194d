// Tests on the real Caltech-101 images, when CALTECH101_DIR points at a folder holding
// 101_ObjectCategories or at that folder itself (the full archive or the 8-per-class mini copy).
// Never copy those images into the project.

import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { BACKGROUND_CLASS, countPerClass, scanDataset } from '../../lib/data/caltech101';
import { decodeImage, decodeMany, EVAL_DECODE, resizedSize, TRAIN_DECODE } from '../../lib/data/decode';
import { splitCounts, splitDataset } from '../../lib/data/splits';
import { caltech101Prerequisite } from '../helpers/caltech101-dir';

const real = caltech101Prerequisite('the real-data tests');
const ROOT = real.root;

real.describe('real Caltech-101 images (CALTECH101_DIR)', () => {
  const categories = real.categories;
  const img = (rel: string): string => path.join(categories, rel);

  test('101 classes in code-unit order, background excluded, every file found', async () => {
    const warn = jest.fn();
    const scan = await scanDataset(ROOT, { warn });
    expect(scan.root).toBe(categories);
    expect(scan.classes).toHaveLength(101);
    expect(scan.classes.slice(0, 6)).toEqual(['Faces', 'Faces_easy', 'Leopards', 'Motorbikes', 'accordion', 'airplanes']);
    expect(scan.classes[100]).toBe('yin_yang');
    const folders = fs.readdirSync(categories).filter((c) => c !== BACKGROUND_CLASS);
    expect(scan.classes).toEqual([...folders].sort());
    const counts = countPerClass(scan.samples, scan.classes.length);
    scan.classes.forEach((c, i) => expect(counts[i]).toBe(fs.readdirSync(path.join(categories, c)).length));
    expect(scan.skipped).toEqual([]);
    expect(warn).not.toHaveBeenCalled();
  });

  test('includeBackground: 102 classes, and the extension-less BACKGROUND_Google/tmp is an image', async () => {
    const scan = await scanDataset(ROOT, { includeBackground: true });
    expect(scan.classes).toHaveLength(102);
    expect(scan.classes[0]).toBe(BACKGROUND_CLASS);
    expect(scan.samples).toContainEqual({ path: img('BACKGROUND_Google/tmp'), label: 0 });
    const tmpImage = await decodeImage(img('BACKGROUND_Google/tmp'), EVAL_DECODE);
    expect([tmpImage.width, tmpImage.height]).toEqual([224, 224]);
  });

  test('car_side is single-channel grayscale and decodes to 3 equal channels', async () => {
    const file = img('car_side/image_0001.jpg');
    expect((await sharp(file).metadata()).channels).toBe(1);
    const out = await decodeImage(file, TRAIN_DECODE);
    expect(Math.min(out.width, out.height)).toBe(256);
    expect(out.data.length).toBe(out.width * out.height * 3);
    let unequal = 0;
    for (let i = 0; i < out.data.length; i += 3) if (out.data[i] !== out.data[i + 1] || out.data[i] !== out.data[i + 2]) unequal++;
    expect(unequal).toBe(0);
  });

  test.each([
    ['flamingo/image_0002.jpg', 'narrowest (80 px wide)'],
    ['ceiling_fan/image_0021.jpg', 'lowest (92 px high)'],
    ['electric_guitar/image_0049.jpg', 'next lowest (97 px high)'],
    ['BACKGROUND_Google/image_0273.jpg', 'largest (3481x2955)'],
  ])('%s, the %s, decodes for train and eval', async (rel) => {
    const file = img(rel);
    const meta = await sharp(file).metadata();
    const train = await decodeImage(file, TRAIN_DECODE);
    expect([train.width, train.height]).toEqual(resizedSize(meta.width, meta.height, 256));
    const evalImage = await decodeImage(file, EVAL_DECODE);
    expect([evalImage.width, evalImage.height, evalImage.data.length]).toEqual([224, 224, 224 * 224 * 3]);
  });

  test('a per-class split and a batch decode of its test images work end to end', async () => {
    const scan = await scanDataset(ROOT);
    const split = splitDataset(scan, { kind: 'per-class', trainPerClass: 5, testPerClass: 3 }, 0);
    const c = splitCounts(split);
    expect(c.train.every((n) => n === 5)).toBe(true);
    expect(c.test.every((n) => n === 3)).toBe(true);
    const some = split.test.slice(0, 24).map((s) => s.path);
    const { images, skipped } = await decodeMany(some, EVAL_DECODE, { concurrency: 8 });
    expect(skipped).toEqual([]);
    expect(images.every((i) => i && i.width === 224 && i.height === 224)).toBe(true);
  });
});
