import { evalTransform, Random, Transform, trainTransform, type DecodedImage, IMAGENET_MEAN, IMAGENET_STD } from '../../lib';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch/torchvision reference', torchPythonUnavailableReason());

/** Kolmogorov-Smirnov distance between the sample's empirical CDF and the uniform CDF on [lo, hi]. */
function ksUniform(sample: number[], lo: number, hi: number): number {
  const sorted = [...sample].sort((a, b) => a - b);
  let d = 0;
  sorted.forEach((v, i) => {
    const cdf = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
    d = Math.max(d, Math.abs((i + 1) / sorted.length - cdf), Math.abs(i / sorted.length - cdf));
  });
  return d;
}

function gradientImage(width: number, height: number): DecodedImage {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = (x * 255) / (width - 1);
      data[o + 1] = (y * 255) / (height - 1);
      data[o + 2] = (x * 7 + y * 13) % 256;
    }
  }
  return { data, width, height };
}

/** Back to 0-255 from a normalised [1, 3, H, W] output, as [c][y][x]. */
function denormalize(values: Float32Array, size: number): (c: number, y: number, x: number) => number {
  return (c, y, x) => (values[(c * size + y) * size + x] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
}

describe('Transform', () => {
  test('flip reverses the columns', async () => {
    const image = gradientImage(32, 32);
    const t = new Transform({ size: 32 });
    const plain = (await t.apply([image], [[0, 0, 32, 32, 0, 1, 1, 1, 0, 0, 1, 2, 3]])).toTypedArray() as Float32Array;
    const flipped = (await t.apply([image], [[0, 0, 32, 32, 1, 1, 1, 1, 0, 0, 1, 2, 3]])).toTypedArray() as Float32Array;
    const a = denormalize(plain, 32);
    const b = denormalize(flipped, 32);
    for (const [c, y, x] of [[0, 0, 0], [1, 5, 7], [2, 31, 31], [0, 17, 3]]) expect(b(c, y, x)).toBeCloseTo(a(c, y, 31 - x), 3);
  });

  test('normalisation: output = (x / 255 - mean) / std, NCHW or channels-last', async () => {
    const image = gradientImage(8, 8);
    const params = [[0, 0, 8, 8, 0, 1, 1, 1, 0, 0, 1, 2, 3]];
    const planar = await new Transform({ size: 8 }).apply([image], params);
    const values = planar.toTypedArray() as Float32Array;
    expect(planar.shape).toEqual([1, 3, 8, 8]);
    expect(values[0]).toBeCloseTo((image.data[0] / 255 - 0.485) / 0.229, 5);
    expect(values[64 + 9]).toBeCloseTo((image.data[9 * 3 + 1] / 255 - 0.456) / 0.224, 5);
    const last = await new Transform({ size: 8, channelsLast: true }).apply([image], params);
    expect(last.shape).toEqual([1, 3, 8, 8]);
    // the same logical values (toTypedArray reads them back in NCHW order)
    expect(last.toTypedArray()).toEqual(values);
  });

  describe('RandomResizedCrop boxes (sample() returns the box [x, y, w, h] the batch is cut from)', () => {
    const sizes: Array<[number, number]> = [[256, 960], [300, 256], [256, 256], [3481, 2955]];

    test('inside the image, area in scale and aspect in ratio up to rounding, varied, not all the whole image', () => {
      const scale: [number, number] = [0.08, 1];
      const ratio: [number, number] = [3 / 4, 4 / 3];
      const t = trainTransform();
      expect(t.randomResizedCrop).toEqual({ scale, ratio }); // torchvision's defaults
      const random = new Random(1);
      for (const [w, h] of sizes) {
        const boxes = Array.from({ length: 2000 }, () => t.sample({ width: w, height: h }, random).slice(0, 4));
        let whole = 0;
        let fallbacks = 0;
        for (const [x, y, cw, ch] of boxes) {
          expect(Number.isInteger(x) && Number.isInteger(y) && cw >= 1 && ch >= 1).toBe(true);
          expect(x >= 0 && y >= 0 && x + cw <= w && y + ch <= h).toBe(true);
          if (cw === w && ch === h) whole++;
          // torchvision's centre fallback (after 10 rejected draws): full width, h = round(w / 0.75)
          if (cw === w && ch === Math.round(w / ratio[0]) && y === Math.floor((h - ch) / 2) && w / h < ratio[0]) {
            fallbacks++;
            continue;
          }
          // w = round(sqrt(A s r)), h = round(sqrt(A s / r)): some s in scale and r in ratio fit within ±0.5 of each side
          expect((cw - 0.5) * (ch - 0.5)).toBeLessThanOrEqual(scale[1] * w * h);
          expect((cw + 0.5) * (ch + 0.5)).toBeGreaterThanOrEqual(scale[0] * w * h);
          expect((cw - 0.5) / (ch + 0.5)).toBeLessThanOrEqual(ratio[1]);
          expect((cw + 0.5) / (ch - 0.5)).toBeGreaterThanOrEqual(ratio[0]);
        }
        // a transform that returned the whole image (or one fixed box) would fail here
        expect(whole).toBeLessThan(boxes.length * 0.1);
        expect(new Set(boxes.map(([, , cw, ch]) => `${cw}x${ch}`)).size).toBeGreaterThan(100);
        const areas = boxes.map(([, , cw, ch]) => (cw * ch) / (w * h));
        expect(Math.min(...areas)).toBeLessThan(0.1);
        // (a 256×960 image holds at most a 256×341 box of aspect 3/4: 36% of its area)
        expect(Math.max(...areas)).toBeGreaterThan(w / h < ratio[0] ? 0.3 : 0.5);
        // positions: uniform over the free room on each axis, so both ends and the middle are hit
        for (const axis of [0, 1]) {
          const free = boxes.filter((b) => (axis === 0 ? w - b[2] : h - b[3]) >= 20).map((b) => b[axis] / (axis === 0 ? w - b[2] : h - b[3]));
          expect(free.length).toBeGreaterThan(1000);
          const mean = free.reduce((a, b) => a + b, 0) / free.length;
          expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
          expect(Math.min(...free)).toBeLessThan(0.02);
          expect(Math.max(...free)).toBeGreaterThan(0.98);
        }
        // 256×960 is narrower than 3/4: with the default scale about 3% of crops fall back
        if (w / h < ratio[0]) expect(fallbacks).toBeGreaterThan(0);
        else expect(fallbacks).toBe(0);
      }
    });

    test('with nothing rejected, the area fraction is uniform in scale and the aspect log-uniform in ratio', () => {
      // On 3481×2955 no draw of scale [0.08, 0.5] and ratio [3/4, 4/3] can exceed the image, so the
      // boxes show torchvision's sampling distributions undistorted (up to rounding to whole pixels).
      const scale: [number, number] = [0.08, 0.5];
      const ratio: [number, number] = [3 / 4, 4 / 3];
      const t = new Transform({ randomResizedCrop: { scale, ratio } });
      const random = new Random(2);
      const [w, h] = [3481, 2955];
      const n = 10000;
      const boxes = Array.from({ length: n }, () => t.sample({ width: w, height: h }, random));
      const areas = boxes.map(([, , cw, ch]) => (cw * ch) / (w * h));
      const logAspects = boxes.map(([, , cw, ch]) => Math.log(cw / ch));
      const [lo, hi] = [Math.log(ratio[0]), Math.log(ratio[1])];
      // Kolmogorov-Smirnov distance to the uniform CDFs; 2.69/sqrt(n) is the 1e-6 critical value.
      // Uniform in the ratio itself (not its log) would be about 0.07 away; a fixed scale, ~0.5.
      const critical = 2.69 / Math.sqrt(n);
      expect(ksUniform(areas, scale[0], scale[1])).toBeLessThan(critical);
      expect(ksUniform(logAspects, lo, hi)).toBeLessThan(critical);
      // and the test can tell the two apart: the same boxes are far from uniform in the ratio itself
      expect(ksUniform(boxes.map(([, , cw, ch]) => cw / ch), ratio[0], ratio[1])).toBeGreaterThan(2 * critical);
    });

    torch.test('equal torchvision’s RandomResizedCrop.get_params for the same random draws, fallback included', () => {
      // The generators differ (ours is seeded mulberry32, torch's is its own), so the draws are
      // scripted: both sides get the same uniforms in [0, 1) for their area and log-aspect draws
      // (torch.empty(1).uniform_ patched in Python) and one fraction f for both positions (randint(0, n)
      // -> floor(f * n)). Then the box, and how many draws it took, must be the same as
      // torchvision's own get_params for every image shape and option, including when all ten tries
      // fail and it falls back to the centre crop.
      const images: Array<[number, number]> = [[256, 960], [960, 256], [300, 256], [256, 256], [3481, 2955], [100, 400], [400, 100], [5, 3], [5, 100]];
      const configs: Array<{ scale: [number, number]; ratio: [number, number] }> = [
        { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
        { scale: [0.9, 1], ratio: [3 / 4, 4 / 3] },
        { scale: [0.5, 1], ratio: [0.5, 2] },
        { scale: [0.3, 0.3], ratio: [1, 1] },
        // on the 5×100 image every try fails and the fallback's height is 5 / 0.4 = 12.5: Python's
        // round() gives 12 (halves to even), Math.round 13
        { scale: [0.9, 1], ratio: [0.4, 2.5] },
      ];
      const random = new Random(3);
      const cases: Array<{ width: number; height: number; scale: [number, number]; ratio: [number, number]; u: number[]; f: number }> = [];
      for (const [width, height] of images) {
        for (const config of configs) {
          for (let k = 0; k < 40; k++) {
            cases.push({ width, height, ...config, u: Array.from({ length: 20 }, () => random.next()), f: random.next() });
          }
        }
      }
      const ours = cases.map((c) => {
        let used = 0;
        const scripted = {
          uniform: (lo: number, hi: number) => lo + (hi - lo) * c.u[used++],
          int: (n: number) => Math.floor(c.f * n),
          next: () => {
            throw new Error('unexpected draw');
          },
          shuffle: () => {
            throw new Error('unexpected draw');
          },
        } as unknown as Random;
        const box = new Transform({ randomResizedCrop: { scale: c.scale, ratio: c.ratio } }).sample({ width: c.width, height: c.height }, scripted);
        return [...box.slice(0, 4), used];
      });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-rrc-'));
      try {
        const file = path.join(dir, 'cases.json');
        fs.writeFileSync(file, JSON.stringify(cases));
        const theirs = JSON.parse(
          runPython(
            String.raw`import json, math, sys
import torch
import torchvision.transforms as T
cases = json.load(open(sys.argv[1]))
images = {(c['width'], c['height']): torch.zeros(1, 1, 1).expand(3, c['height'], c['width']) for c in cases}
state = {}
class Draw:
    def uniform_(self, lo, hi):
        u = state['u'][state['used']]
        state['used'] += 1
        return torch.tensor([float(lo) + (float(hi) - float(lo)) * u], dtype=torch.float64)
torch.empty = lambda *args, **kwargs: Draw()
torch.randint = lambda lo, hi, size: torch.tensor([lo + math.floor(state['f'] * (hi - lo))])
out = []
for c in cases:
    state.update(u=c['u'], f=c['f'], used=0)
    i, j, h, w = T.RandomResizedCrop.get_params(images[(c['width'], c['height'])], c['scale'], c['ratio'])
    out.append([j, i, w, h, state['used']])
print(json.dumps(out))`,
            [file],
          ),
        ) as number[][];
        const fallbacks = theirs.filter((b) => b[4] === 20).length;
        // the cases exercise both paths
        expect(fallbacks).toBeGreaterThan(100);
        expect(theirs.length - fallbacks).toBeGreaterThan(300);
        const mismatches = ours.flatMap((box, i) => (box.join() === theirs[i].join() ? [] : [{ case: cases[i], ours: box, torchvision: theirs[i] }]));
        expect(mismatches.slice(0, 3)).toEqual([]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  test('jitter factors stay within [1 - 0.1, 1 + 0.1], with a random order, and a seed repeats them', () => {
    const t = trainTransform();
    const a = new Random(7);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = t.sample({ width: 256, height: 256 }, a);
      for (const f of p.slice(5, 8)) {
        expect(f).toBeGreaterThanOrEqual(0.9);
        expect(f).toBeLessThanOrEqual(1.1);
      }
      expect([...p.slice(9, 13)].sort()).toEqual([0, 1, 2, 3]);
      seen.add(p.slice(9, 13).join());
    }
    expect(seen.size).toBeGreaterThan(10);
    const first = t.sample({ width: 256, height: 256 }, new Random(3));
    expect(t.sample({ width: 256, height: 256 }, new Random(3))).toEqual(first);
  });

  test('brightness scales pixel values; contrast and saturation keep a gray image gray', async () => {
    const gray: DecodedImage = { data: Buffer.alloc(4 * 4 * 3, 100), width: 4, height: 4 };
    const t = new Transform({ size: 4 });
    const out = (await t.apply([gray], [[0, 0, 4, 4, 0, 1.1, 1.1, 0.9, 0, 0, 1, 2, 3]])).toTypedArray() as Float32Array;
    const back = denormalize(out, 4);
    expect(back(0, 0, 0)).toBeCloseTo(110, 2);
    expect(back(2, 3, 3)).toBeCloseTo(110, 2);
  });

  test('a batch split over several threads is identical to one thread’s', async () => {
    const images = [gradientImage(90, 70), gradientImage(64, 64), gradientImage(120, 80)];
    const random = new Random(11);
    const t1 = trainTransform({ size: 48, threads: 1 });
    const t4 = trainTransform({ size: 48, threads: 4 });
    expect(trainTransform({ pinMemory: true }).threads).toBeGreaterThanOrEqual(1);
    const params = Array.from({ length: 9 }, (_, i) => t1.sample(images[i % 3], random));
    const batch = Array.from({ length: 9 }, (_, i) => images[i % 3]);
    const a = (await t1.apply(batch, params)).native.toBytes();
    const b = (await t4.apply(batch, params)).native.toBytes();
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
  });

  test('bad options are rejected', () => {
    expect(() => new Transform({ threads: 0 })).toThrow('Expected integer between 1 and 1024 for threads but received 0');
    expect(() => new Transform({ colorJitter: 2 })).toThrow('Expected number between 0 and 1 for colorJitter but received 2');
    expect(() => new Transform({ randomResizedCrop: { scale: [0.5, 0.1] } })).toThrow('randomResizedCrop.scale');
    expect(() => new Transform({ flip: true } as never)).toThrow("Unknown option 'flip'");
    expect(() => trainTransform().sample({ width: 10, height: 10 })).toThrow('pass a seeded Random');
  });

  torch.test('crop + resize equals torchvision’s resized_crop (PIL bilinear)', async () => {
    const image = gradientImage(300, 200);
    // downscale, the whole image, upscale, and one axis kept at 64 (PIL skips that pass)
    const boxes = [[10, 20, 150, 120], [0, 0, 300, 200], [100, 50, 40, 30], [7, 3, 64, 150], [20, 100, 250, 64]];
    const t = evalTransform({ size: 64 });
    const out = (await t.apply(boxes.map(() => image), boxes.map((b) => [...b, 0, 1, 1, 1, 0, 0, 1, 2, 3]))).toTypedArray() as Float32Array;
    const reference = JSON.parse(
      runPython(
        `import sys, json, numpy as np
from PIL import Image
import torchvision.transforms.functional as F
w, h = 300, 200
ys, xs = np.mgrid[0:h, 0:w]
img = np.stack([(xs * 255) / (w - 1), (ys * 255) / (h - 1), (xs * 7 + ys * 13) % 256], -1).astype(np.uint8)
pil = Image.fromarray(img)
out = []
for x, y, cw, ch in json.loads(sys.argv[1]):
    out.append(np.asarray(F.resized_crop(pil, y, x, ch, cw, [64, 64])).astype(float).tolist())
print(json.dumps(out))`,
        [JSON.stringify(boxes)],
      ),
    ) as number[][][][];
    let total = 0;
    let count = 0;
    let worst = 0;
    reference.forEach((img, n) => {
      const back = denormalize(out.subarray(n * 3 * 64 * 64, (n + 1) * 3 * 64 * 64), 64);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) for (let c = 0; c < 3; c++) {
        total += Math.abs(back(c, y, x) - img[y][x][c]);
        worst = Math.max(worst, Math.abs(back(c, y, x) - img[y][x][c]));
        count++;
      }
    });
    const mad = total / count;
    console.log(`crop+resize mean absolute difference from torchvision/PIL: ${mad.toFixed(4)} (0-255 scale)`);
    // PIL's fixed-point arithmetic, reproduced: equal but for float32 normalisation round-off
    expect(worst).toBeLessThan(1e-3);
  });

  torch.test('each ColorJitter adjustment equals torchvision’s on PIL images, to the byte', async () => {
    // a gradient plus random pixels (every hue/saturation corner case shows up in 64×64 random colours)
    const size = 64;
    const image = gradientImage(size, size);
    const noise = Buffer.alloc(size * size * 3);
    let seed = 12345;
    for (let i = 0; i < noise.length; i++) noise[i] = (seed = (seed * 1103515245 + 12345) % 2147483648) >> 16 & 255;
    const images = [image, { data: noise, width: size, height: size }];
    // [brightness, contrast, saturation, hue] and an order, one adjustment or several
    const cases = [
      [1.07, 1, 1, 0], [0.61, 1, 1, 0], [1, 1.33, 1, 0], [1, 0.7, 1, 0], [1, 1, 1.4, 0], [1, 1, 0.2, 0],
      [1, 1, 1, 0.05], [1, 1, 1, -0.05], [1, 1, 1, -0.5], [1, 1, 1, 0.37], [1.1, 0.9, 1.2, -0.08],
    ];
    const orders = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]];
    const jobs: Array<{ image: number; factors: number[]; order: number[] }> = [];
    for (let image = 0; image < 2; image++) for (const factors of cases) for (const order of orders) jobs.push({ image, factors, order });
    const t = new Transform({ size });
    const out = (await t.apply(jobs.map((j) => images[j.image]), jobs.map((j) => [0, 0, size, size, 0, ...j.factors, ...j.order]))).toTypedArray() as Float32Array;
    const reference = JSON.parse(
      runPython(
        `import sys, json, base64, numpy as np
from PIL import Image
import torchvision.transforms.functional as F
size = ${size}
images = [Image.fromarray(np.frombuffer(base64.b64decode(b), np.uint8).reshape(size, size, 3)) for b in json.loads(sys.argv[1])]
out = []
for job in json.loads(sys.argv[2]):
    img = images[job['image']]
    b, c, s, h = job['factors']
    for op in job['order']:
        if op == 0 and b != 1: img = F.adjust_brightness(img, b)
        if op == 1 and c != 1: img = F.adjust_contrast(img, c)
        if op == 2 and s != 1: img = F.adjust_saturation(img, s)
        if op == 3 and h != 0: img = F.adjust_hue(img, h)
    out.append(base64.b64encode(np.asarray(img).tobytes()).decode())
print(json.dumps(out))`,
        [JSON.stringify(images.map((i) => Buffer.from(i.data).toString('base64'))), JSON.stringify(jobs)],
      ),
    ) as string[];
    let mismatched = 0;
    let worst = 0;
    reference.forEach((b64, n) => {
      const expected = Buffer.from(b64, 'base64');
      const back = denormalize(out.subarray(n * 3 * size * size, (n + 1) * 3 * size * size), size);
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) {
        const diff = Math.abs(back(c, y, x) - expected[(y * size + x) * 3 + c]);
        worst = Math.max(worst, diff);
        if (diff > 0.01) mismatched++;
      }
    });
    expect({ mismatched, worst: worst < 1e-3 }).toEqual({ mismatched: 0, worst: true });
  });
});
