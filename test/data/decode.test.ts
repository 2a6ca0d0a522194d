import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  centerCropAxis,
  decodeImage,
  decodeMany,
  DecodeError,
  EVAL_DECODE,
  normalizeDecodeOptions,
  resizedSize,
  roundHalfEven,
  SOURCE_TRAIN_DECODE,
  TRAIN_DECODE,
  type DecodedImage,
} from '../../lib/data/decode';
import { decodeBmp } from '../../lib/data/bmp';
import { Random } from '../../lib/data/random';
import { Transform } from '../../lib/data/transforms';
import { createSyntheticDataset, type SyntheticDataset } from '../helpers/synthetic-dataset';

let tmp: string;
let ds: SyntheticDataset;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'finetorch-decode-'));
  ds = await createSyntheticDataset(path.join(tmp, 'data'), { classes: 6, perClass: 2, size: 40 });
});
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

const pixel = (img: DecodedImage, x: number, y: number): number[] => {
  const o = (y * img.width + x) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
};

async function solid(file: string, width: number, height: number, rgb: [number, number, number]): Promise<string> {
  await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
  return file;
}

describe('torchvision size arithmetic', () => {
  test('Resize(int): shorter side to size, longer int(size * long / short)', () => {
    expect(resizedSize(300, 197, 256)).toEqual([389, 256]); // int(256 * 300 / 197) = int(389.85)
    expect(resizedSize(197, 300, 256)).toEqual([256, 389]);
    expect(resizedSize(3481, 2955, 256)).toEqual([301, 256]);
    expect(resizedSize(80, 120, 256)).toEqual([256, 384]);
    expect(resizedSize(100, 100, 256)).toEqual([256, 256]);
  });

  test("CenterCrop offsets use Python's round-half-to-even", () => {
    expect(roundHalfEven(0.5)).toBe(0);
    expect(roundHalfEven(1.5)).toBe(2);
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(2.4)).toBe(2);
    expect(roundHalfEven(2.6)).toBe(3);
    expect(centerCropAxis(389, 224)).toEqual({ offset: 82, extent: 224, padBefore: 0, padAfter: 0 }); // round(82.5) = 82
    expect(centerCropAxis(387, 224)).toEqual({ offset: 82, extent: 224, padBefore: 0, padAfter: 0 }); // round(81.5) = 82
    expect(centerCropAxis(256, 224)).toEqual({ offset: 16, extent: 224, padBefore: 0, padAfter: 0 });
    expect(centerCropAxis(100, 224)).toEqual({ offset: 0, extent: 100, padBefore: 62, padAfter: 62 });
    expect(centerCropAxis(101, 224)).toEqual({ offset: 0, extent: 101, padBefore: 61, padAfter: 62 });
  });

  test('options are validated sharp-style and defaults filled', () => {
    expect(normalizeDecodeOptions()).toEqual({
      resize: 256, maxShorterSide: null, centerCrop: null, kernel: 'linear', fastShrinkOnLoad: false, autoOrient: true, iccProfile: 'ignore',
    });
    expect(() => normalizeDecodeOptions({ resize: 0 })).toThrow('Expected positive integer for resize but received 0 of type number');
    expect(() => normalizeDecodeOptions({ kernel: 'bilinear' as never })).toThrow(/Expected one of 'nearest', 'linear'.* for kernel but received 'bilinear' of type string/);
    expect(() => normalizeDecodeOptions({ centreCrop: 224 } as never)).toThrow(/did you mean 'centerCrop'/);
    expect(() => normalizeDecodeOptions({ maxShorterSide: 512 })).toThrow('Expected resize null with maxShorterSide 512 (a cap on the decoded size) but received resize 256');
    expect(() => normalizeDecodeOptions({ resize: null, maxShorterSide: -1 })).toThrow('Expected positive integer for maxShorterSide but received -1 of type number');
  });
});

describe('decodeImage', () => {
  test('train: shorter side 256, aspect kept, 3 channels', async () => {
    for (const file of [ds.files.circle[0], ds.files.circle[1], ds.files.Stripes[0]]) {
      const meta = await sharp(file).metadata();
      const img = await decodeImage(file, TRAIN_DECODE);
      expect([img.width, img.height]).toEqual(resizedSize(meta.width, meta.height, 256));
      expect(Math.min(img.width, img.height)).toBe(256);
      expect(img.data.length).toBe(img.width * img.height * 3);
    }
  });

  test('RandomResizedCrop training decode: the decoded size, a shorter side over 512 reduced to 512, crops drawn on that', async () => {
    expect(SOURCE_TRAIN_DECODE).toEqual({ resize: null, maxShorterSide: 512, centerCrop: null });
    const ramp = async (file: string, width: number, height: number) => {
      const data = Buffer.alloc(width * height * 3);
      for (let i = 0; i < width * height; i++) data.set([(i % width) % 256, Math.floor(i / width) % 256, (i * 7) % 256], i * 3);
      await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(file);
      return file;
    };
    // under the cap: the original pixels, untouched
    const small = await ramp(path.join(tmp, 'ramp-300x200.png'), 300, 200);
    const kept = await decodeImage(small, SOURCE_TRAIN_DECODE);
    expect([kept.width, kept.height]).toEqual([300, 200]);
    expect(kept.data.equals((await decodeImage(small, { resize: null })).data)).toBe(true);
    // over it: exactly the Resize(512) decode, shorter side 512, torchvision's longer side
    for (const [width, height] of [[1200, 800], [700, 520], [600, 1500]]) {
      const big = await ramp(path.join(tmp, `ramp-${width}x${height}.png`), width, height);
      const capped = await decodeImage(big, SOURCE_TRAIN_DECODE);
      expect([capped.width, capped.height]).toEqual(resizedSize(width, height, 512));
      expect(capped.data.equals((await decodeImage(big, { resize: 512 })).data)).toBe(true);
      // RandomResizedCrop's boxes are drawn on the capped grid and cover it
      const transform = new Transform({ size: 64, randomResizedCrop: true });
      const random = new Random(3);
      const boxes = Array.from({ length: 200 }, () => transform.sample(capped, random).slice(0, 4));
      for (const [x, y, w, h] of boxes) expect(x >= 0 && y >= 0 && x + w <= capped.width && y + h <= capped.height).toBe(true);
      expect(Math.max(...boxes.map(([x, , w]) => x + w))).toBeGreaterThan(0.9 * capped.width);
      expect(Math.max(...boxes.map(([, y, , h]) => y + h))).toBeGreaterThan(0.9 * capped.height);
    }
    // the cap is a setting of its own
    const custom = await decodeImage(small, { resize: null, maxShorterSide: 100 });
    expect([custom.width, custom.height]).toEqual([150, 100]);
  });

  test('eval: exactly 224x224', async () => {
    const img = await decodeImage(ds.files.cross[0], EVAL_DECODE);
    expect([img.width, img.height, img.data.length]).toEqual([224, 224, 224 * 224 * 3]);
  });

  test('grayscale JPEG becomes 3 equal channels', async () => {
    const file = ds.files[ds.grayscaleClass!][0];
    expect((await sharp(file).metadata()).channels).toBe(1);
    const img = await decodeImage(file, { resize: null });
    expect(img.data.length).toBe(img.width * img.height * 3);
    let unequal = 0;
    for (let i = 0; i < img.data.length; i += 3) if (img.data[i + 1] !== img.data[i] || img.data[i + 2] !== img.data[i]) unequal++;
    expect(unequal).toBe(0);
  });

  test('EXIF orientation 6 is applied: dimensions swap, left side ends up on top', async () => {
    // stored 40x20: left half red, right half blue; orientation 6 = display rotated 90 degrees clockwise
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const file = path.join(tmp, 'rotated.jpg');
    await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
    expect((await sharp(file).metadata()).orientation).toBe(6);
    const upright = await decodeImage(file, { resize: null });
    expect([upright.width, upright.height]).toEqual([20, 40]);
    expect(pixel(upright, 10, 5)[0]).toBeGreaterThan(200); // red on top
    expect(pixel(upright, 10, 35)[2]).toBeGreaterThan(200); // blue below
    const resized = await decodeImage(file, { resize: 64 });
    expect([resized.width, resized.height]).toEqual([64, 128]);
    const cropped = await decodeImage(file, { resize: 64, centerCrop: 32 });
    expect([cropped.width, cropped.height]).toEqual([32, 32]);
    const asStored = await decodeImage(file, { resize: null, autoOrient: false });
    expect([asStored.width, asStored.height]).toEqual([40, 20]);
  });

  test('alpha is dropped without blending, also through a resize (PIL convert("RGB"))', async () => {
    const raw = Buffer.alloc(30 * 20 * 4);
    for (let i = 0; i < 30 * 20; i++) raw.set([200, 100, 50, i % 2 === 0 ? 0 : 255], i * 4);
    const file = path.join(tmp, 'alpha.png');
    await sharp(raw, { raw: { width: 30, height: 20, channels: 4 } }).png().toFile(file);
    for (const options of [{ resize: null }, { resize: 64 }, { resize: 8 }, EVAL_DECODE]) {
      const img = await decodeImage(file, options);
      let wrong = 0;
      for (let i = 0; i < img.data.length; i += 3) if (img.data[i] !== 200 || img.data[i + 1] !== 100 || img.data[i + 2] !== 50) wrong++;
      expect(wrong).toBe(0);
    }
  });

  test("enlarging matches PIL's bilinear resampling exactly on a ramp", async () => {
    // PIL: Image.fromarray(row).resize((16, 1), BILINEAR) for row [10,0,0,0,255,255,255,200]
    const row = [10, 0, 0, 0, 255, 255, 255, 200];
    const pil = [10, 8, 3, 0, 0, 0, 0, 64, 191, 255, 255, 255, 255, 241, 214, 200];
    const raw = Buffer.alloc(8 * 8 * 3);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) raw.fill(row[x], (y * 8 + x) * 3, (y * 8 + x) * 3 + 3);
    const file = path.join(tmp, 'ramp.png');
    await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(file);
    const img = await decodeImage(file, { resize: 16 });
    for (const y of [0, 7, 15]) expect(Array.from({ length: 16 }, (_, x) => pixel(img, x, y)[0])).toEqual(pil);
  });

  test('centre crop larger than the image pads with zeros like torchvision', async () => {
    const file = await solid(path.join(tmp, 'small.png'), 20, 10, [90, 90, 90]);
    const img = await decodeImage(file, { resize: null, centerCrop: 16 });
    expect([img.width, img.height]).toEqual([16, 16]);
    expect(pixel(img, 8, 0)).toEqual([0, 0, 0]); // padded rows: (16 - 10) // 2 = 3 above
    expect(pixel(img, 8, 2)).toEqual([0, 0, 0]);
    expect(pixel(img, 8, 3)).toEqual([90, 90, 90]);
    expect(pixel(img, 8, 12)).toEqual([90, 90, 90]);
    expect(pixel(img, 8, 13)).toEqual([0, 0, 0]);
  });

  test('tiny and non-JPEG inputs: 1x1 PNG, GIF, WebP, TIFF, BMP', async () => {
    const one = await solid(path.join(tmp, 'one.png'), 1, 1, [1, 2, 3]);
    expect(await decodeImage(one, { resize: null })).toEqual({ data: Buffer.from([1, 2, 3]), width: 1, height: 1 });
    const big = await decodeImage(one, EVAL_DECODE);
    expect([big.width, big.height]).toEqual([224, 224]);
    for (const fmt of ['gif', 'webp', 'tiff'] as const) {
      const file = path.join(tmp, `img.${fmt}`);
      await sharp({ create: { width: 12, height: 9, channels: 3, background: '#808080' } }).toFormat(fmt).toFile(file);
      const img = await decodeImage(file, { resize: 18 });
      expect([img.width, img.height]).toEqual([24, 18]);
    }
  });

  test('BMP (which libvips cannot read) through the built-in reader', async () => {
    const bmpFile = path.join(tmp, 'img.bmp');
    await fsp.writeFile(bmpFile, makeBmp24(3, 2, [[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [4, 5, 6], [7, 8, 9]]));
    const img = await decodeImage(bmpFile, { resize: null });
    expect([img.width, img.height]).toEqual([3, 2]);
    expect([...img.data]).toEqual([255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => decodeBmp(Buffer.from('BM nope'))).toThrow(/Unsupported or corrupt BMP/);
  });

  test('zero-byte, truncated and garbage JPEGs are DecodeErrors naming the file', async () => {
    const good = await fsp.readFile(ds.files.square[0]);
    const cases: [string, Buffer, RegExp][] = [
      ['zero.jpg', Buffer.alloc(0), /empty file/],
      ['truncated.jpg', good.subarray(0, Math.floor(good.length / 2)), /./],
      ['garbage.jpg', Buffer.concat([good.subarray(0, 4), Buffer.alloc(500, 0x5a)]), /./],
      ['text.jpg', Buffer.from('not an image at all'), /not an image/],
    ];
    for (const [name, bytes, why] of cases) {
      const file = path.join(tmp, name);
      await fsp.writeFile(file, bytes);
      const err = await decodeImage(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).path).toBe(file);
      expect((err as DecodeError).message).toContain(`Cannot decode '${file}'`);
      expect((err as DecodeError).reason).toMatch(why);
    }
    await expect(decodeImage(path.join(tmp, 'absent.jpg'))).rejects.toThrow(/unreadable \(ENOENT\)/);
  });
});

describe('decodeMany', () => {
  test('keeps order, skips broken files with one warning, strict throws', async () => {
    const bad = path.join(tmp, 'cut.jpg');
    const good = await fsp.readFile(ds.files.square[1]);
    await fsp.writeFile(bad, good.subarray(0, good.length - 200));
    const files = [ds.files.circle[0], bad, ds.files.cross[1]];
    const warn = jest.fn();
    const { images, skipped } = await decodeMany(files, EVAL_DECODE, { concurrency: 2, warn });
    expect(images[0]?.width).toBe(224);
    expect(images[1]).toBeUndefined();
    expect(images[2]?.width).toBe(224);
    expect(skipped).toEqual([expect.objectContaining({ path: bad, kind: 'decode-failed' })]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/Skipped 1 of 3 entries while decoding \(1 failed to decode\): .*cut\.jpg/);
    await expect(decodeMany(files, EVAL_DECODE, { strict: true })).rejects.toThrow(/strict mode: 1 unusable entry while decoding:\n {2}.*cut\.jpg/);
  });

  test('never more than `concurrency` decodes in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const decoder = async (): Promise<DecodedImage> => {
      peak = Math.max(peak, ++inFlight);
      await new Promise(setImmediate); // still in flight while the pool starts the others
      inFlight--;
      return { data: Buffer.alloc(3), width: 1, height: 1 };
    };
    const files = Array.from({ length: 40 }, (_, i) => `f${i}`);
    const done: number[] = [];
    const { images } = await decodeMany(files, {}, { concurrency: 5, onProgress: (d) => done.push(d) }, decoder);
    expect(images).toHaveLength(40);
    expect(peak).toBe(5);
    expect(done[done.length - 1]).toBe(40);
  });
});

/** A bottom-up 24-bit BMP from top-down RGB pixels. */
function makeBmp24(width: number, height: number, rgb: number[][]): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + stride * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgb[y * width + x];
      const o = 54 + (height - 1 - y) * stride + x * 3;
      buf[o] = b;
      buf[o + 1] = g;
      buf[o + 2] = r;
    }
  }
  return buf;
}
