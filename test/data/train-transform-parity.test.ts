// RandomResizedCrop against torchvision on real Caltech-101 images: the training decode
// (SOURCE_TRAIN_DECODE: the decoded size, shorter side capped at 512) and our crop + resize, with
// the same crop parameters (i, j, h, w) given to torchvision's F.resized_crop on the PIL image
// (PIL crop, then resize BILINEAR), which is what RandomResizedCrop does with get_params' draw.
// Reference: Debian's /usr/bin/python3 (torchvision 0.14, PIL). Needs CALTECH101_DIR; skipped with
// a message otherwise, a failure where CI is set (test/helpers/prerequisite.ts).
//
// Bound: byte-exact for images under the cap (their decode is the original: sharp/libvips decodes
// these JPEGs to PIL's bytes, and the crop + resize is PIL's to the bit). An image over the cap is
// compared with PIL's Resize(512) of it, which is what the crop is drawn on, within the bound of the
// eval-transform parity test (test/data/eval-transform-parity.test.ts): mean absolute difference
// below 0.3 per value (0-255) over all crops, below 2.5 for the worst image.
// Measured (caltech101-mini, 29 images, 116 crops): the 112 crops of the 28 images under the cap
// byte-exact; MAD 0.027 overall, 0.77 for the 3481x2955 image over it.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeImage, SOURCE_TRAIN_DECODE, type DecodedImage } from '../../lib/data/decode';
import { mapPool } from '../../lib/data/pool';
import { Random } from '../../lib/data/random';
import { Transform } from '../../lib/data/transforms';
import { caltech101Dir } from '../helpers/caltech101-dir';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { findTorchPython, torchPythonUnavailableReason, TORCH_PYTHON } from '../helpers/python';

const real = caltech101Dir();
const SCRIPT = path.join(__dirname, 'torchvision_resized_crop.py');
const SIZE = 224;
const CAP = SOURCE_TRAIN_DECODE.maxShorterSide!;

const parity = prerequisite(
  'real Caltech-101 images ($CALTECH101_DIR) and torchvision for the RandomResizedCrop parity test',
  real.skip ?? (findTorchPython() ? null : torchPythonUnavailableReason()),
);

/** [x, y, w, h] as the transform takes it. */
type Box = [number, number, number, number];

interface Item {
  path: string;
  image: DecodedImage;
  boxes: Box[];
}

interface Reference {
  width: number;
  height: number;
  crops: Buffer[];
}

function torchvisionReference(items: Item[]): Reference[] {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-rrc-parity-')), 'ref.bin');
  try {
    const request = {
      size: SIZE,
      cap: CAP,
      items: items.map((it) => ({ path: it.path, boxes: it.boxes.map(([x, y, w, h]) => [y, x, h, w]) })),
    };
    const { PYTHONHOME: _h, PYTHONPATH: _p, ...env } = process.env;
    execFileSync(TORCH_PYTHON, [SCRIPT, out], { input: JSON.stringify(request), stdio: ['pipe', 'pipe', 'inherit'], env });
    const bytes = fs.readFileSync(out);
    const n = SIZE * SIZE * 3;
    let at = 0;
    const refs = items.map((it) => {
      const width = bytes.readUInt32LE(at);
      const height = bytes.readUInt32LE(at + 4);
      at += 8;
      const crops = it.boxes.map(() => bytes.subarray(at, (at += n)));
      return { width, height, crops };
    });
    expect(at).toBe(bytes.length);
    return refs;
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

/** Our crop + resize of each box as uint8 (mean 0, std 1: the float is byte / 255). */
async function ours(transform: Transform, image: DecodedImage, boxes: Box[]): Promise<Buffer[]> {
  const t = await transform.apply(boxes.map(() => image), boxes.map((b) => [...b, 0, 1, 1, 1, 0, 0, 1, 2, 3]));
  const v = t.toTypedArray() as Float32Array;
  t.dispose();
  const plane = SIZE * SIZE;
  // NCHW values to HWC bytes
  return boxes.map((_, k) => {
    const out = Buffer.alloc(plane * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < plane; p++) out[p * 3 + c] = Math.round(v[(k * 3 + c) * plane + p] * 255);
    return out;
  });
}

parity.describe('RandomResizedCrop parity with torchvision (F.resized_crop on PIL)', () => {
  beforeAll(() => assertPresent(parity));
  const categories = real.categories ?? '';
  // The first image of every fourth folder, plus the archive's extremes: 80 px wide, 92 px high,
  // grayscale (all of car_side), and 3481x2955 (over the cap).
  const paths = (() => {
    if (parity.missing) return [];
    const folders = fs.readdirSync(categories).sort();
    const picked = folders.filter((_, i) => i % 4 === 0).map((c) => path.join(categories, c, fs.readdirSync(path.join(categories, c)).sort()[0]));
    const extremes = ['flamingo/image_0002.jpg', 'ceiling_fan/image_0021.jpg', 'car_side/image_0001.jpg', 'BACKGROUND_Google/image_0273.jpg']
      .map((r) => path.join(categories, r))
      .filter((p) => fs.existsSync(p) && !picked.includes(p));
    return [...picked, ...extremes];
  })();

  test(`crop boxes drawn on the decoded image and resized once to ${SIZE}²: byte-exact or within the eval-transform bound`, async () => {
    const transform = new Transform({ size: SIZE, randomResizedCrop: true, mean: [0, 0, 0], std: [1, 1, 1] });
    const items: Item[] = await mapPool(
      paths,
      async (p, index) => {
        const image = await decodeImage(p, SOURCE_TRAIN_DECODE);
        const random = new Random(1000 + index);
        // three RandomResizedCrop draws and the whole image
        const boxes = [0, 1, 2].map(() => transform.sample(image, random).slice(0, 4) as Box);
        boxes.push([0, 0, image.width, image.height]);
        return { path: p, image, boxes };
      },
      { concurrency: 4 },
    );
    const refs = torchvisionReference(items);
    let sum = 0;
    let count = 0;
    let exact = 0;
    let worst = { mad: 0, file: '' };
    const inexactUnderCap: string[] = [];
    let overCap = 0;
    for (const [k, item] of items.entries()) {
      const { width, height } = item.image;
      // the boxes live on the decoded grid: the original image's, or PIL's Resize(512) of it
      expect([width, height]).toEqual([refs[k].width, refs[k].height]);
      const capped = Math.min(width, height) === CAP;
      if (capped) overCap++;
      const mine = await ours(transform, item.image, item.boxes);
      let imageSum = 0;
      mine.forEach((m, b) => {
        const ref = refs[k].crops[b];
        let s = 0;
        for (let q = 0; q < m.length; q++) s += Math.abs(m[q] - ref[q]);
        if (s === 0) exact++;
        else if (!capped) inexactUnderCap.push(`${path.relative(categories, item.path)} box ${item.boxes[b].join(',')} of ${width}x${height}: MAD ${(s / m.length).toFixed(3)}`);
        imageSum += s;
        sum += s;
        count += m.length;
      });
      const mad = imageSum / (mine.length * mine[0].length);
      if (mad > worst.mad) worst = { mad, file: item.path };
    }
    const mad = sum / count;
    const crops = items.length * 4;
    console.log(
      `RandomResizedCrop parity over ${items.length} real images (${overCap} over the ${CAP} cap), ${crops} crops: ` +
        `${exact} byte-exact, MAD ${mad.toFixed(4)} per value (0-255), ` +
        `worst image ${worst.mad.toFixed(3)}${worst.file ? ` (${path.relative(categories, worst.file)})` : ''}`,
    );
    // small, grayscale and over-the-cap images are all in the set
    expect(overCap).toBeGreaterThan(0);
    expect(items.some((i) => Math.min(i.image.width, i.image.height) < SIZE)).toBe(true);
    // under the cap the image is the original (sharp's JPEG decode is PIL's, byte for byte), so
    // every crop, the whole-image box (= PIL's resize of the whole image) included, is exact
    expect(inexactUnderCap).toEqual([]);
    // over the cap, sharp's reduction to 512 differs from PIL's Resize(512) as in the eval transform
    expect(mad).toBeLessThan(0.3);
    expect(worst.mad).toBeLessThan(2.5);
  });
});
