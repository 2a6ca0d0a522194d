// RandomErasing (lib/data/transforms.ts, native/ops/random_erasing.h): with the boxes injected the
// batch equals torchvision 0.14's F.erase on the normalised tensor, in both memory layouts, to the
// bit; the drawn boxes keep RandomErasing.get_params's bounds, p holds, and a seed fixes the draws.
import { DataLoader, deriveSeed, ImageCache, Random, Transform, type DecodedImage, type Tensor } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch/torchvision reference', torchPythonUnavailableReason());

function noiseImage(width: number, height: number, seed: number): DecodedImage {
  const random = new Random(seed);
  return { data: Buffer.from(Array.from({ length: width * height * 3 }, () => random.int(256))), width, height };
}

const values = (t: Tensor) => Array.from(t.toTypedArray() as Float32Array);

describe('RandomErasing', () => {
  torch.test('injected boxes: the batch is torchvision F.erase (value 0) of the normalised batch, NCHW and channels-last', async () => {
    assertPresent(torch);
    const size = 16;
    const images = [noiseImage(20, 18, 1), noiseImage(16, 16, 2), noiseImage(24, 17, 3), noiseImage(19, 21, 4)];
    // x, y, width, height: a box, none, a full-height strip, one touching the corner
    const boxes = Int32Array.from([3, 2, 5, 7, 0, 0, 0, 0, 0, 0, 4, 16, 10, 12, 6, 4]);
    for (const channelsLast of [false, true]) {
      const t = new Transform({ size, channelsLast });
      const params = images.map((image) => t.sample(image));
      const plain = await t.apply(images, params);
      const erased = await t.apply(images, params, boxes);
      expect(erased.shape).toEqual([4, 3, size, size]);
      const reference = JSON.parse(
        runPython(
          `import json, sys, torch
import torchvision.transforms.functional as F
x = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float32).view(4, 3, ${size}, ${size})
boxes = json.loads(sys.argv[2])
out = []
for n in range(4):
    j, i, w, h = boxes[4 * n: 4 * n + 4]
    img = x[n]
    if w > 0:
        # RandomErasing.forward with value=0: v = torch.tensor([0])[:, None, None]
        img = F.erase(img, i, j, h, w, torch.tensor([0])[:, None, None])
    out.append(img)
print(json.dumps(torch.stack(out).flatten().tolist()))`,
          [JSON.stringify(values(plain)), JSON.stringify(Array.from(boxes))],
        ),
      ) as number[];
      const ours = values(erased);
      expect(ours.length).toBe(reference.length);
      let mismatches = 0;
      for (let k = 0; k < ours.length; k++) if (Math.fround(reference[k]) !== ours[k]) mismatches++;
      expect({ channelsLast, mismatches }).toEqual({ channelsLast, mismatches: 0 });
      // the boxes did erase something (the comparison is not vacuous)
      expect(values(plain).filter((v, k) => v !== ours[k]).length).toBeGreaterThan(3 * (35 + 64 + 24) * 0.9);
    }
  });

  test('an erase box outside the output, or of the wrong length, is refused before any native work', async () => {
    const t = new Transform({ size: 8 });
    const image = noiseImage(8, 8, 5);
    const params = [t.sample(image)];
    await expect(t.apply([image], params, Int32Array.from([4, 0, 5, 2]))).rejects.toThrow('Expected erase box 0 inside the 8x8 output but received x 4, y 0, width 5, height 2');
    await expect(t.apply([image], params, Int32Array.from([0, 0, 1]))).rejects.toThrow('Expected Int32Array of 4 values');
    expect(() => new Transform({ randomErasing: 1.5 })).toThrow('Expected number between 0 and 1 for randomErasing but received 1.5');
    expect(() => new Transform({ randomErasing: { probability: 0.5, scale: [0.5, 0.1] } })).toThrow('randomErasing.scale');
  });

  test("drawn boxes keep RandomErasing.get_params's bounds: area in scale, aspect in ratio (after rounding), strictly inside", () => {
    const size = 32;
    const scale = [0.02, 0.33];
    const ratio = [0.3, 3.3];
    const t = new Transform({ size, randomErasing: 1 });
    const boxes = t.sampleErasures(3000, new Random(7))!;
    const heights: number[] = [];
    for (let i = 0; i < boxes.length; i += 4) {
      const [x, y, w, h] = boxes.subarray(i, i + 4);
      if (w === 0) continue;
      heights.push(h);
      expect(w >= 1 && h >= 1 && w < size && h < size && x >= 0 && y >= 0 && x + w <= size && y + h <= size).toBe(true);
      // h = round(sqrt(A r)), w = round(sqrt(A / r)): some A in scale * size² and r in ratio give them
      const area = [(h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)];
      const aspect = [(h - 0.5) / (w + 0.5), (h + 0.5) / (w - 0.5)];
      expect(area[1] >= scale[0] * size * size && area[0] <= scale[1] * size * size).toBe(true);
      expect(aspect[1] >= ratio[0] && aspect[0] <= ratio[1]).toBe(true);
    }
    // p = 1: every image is erased but for the rare ten failed tries
    expect(heights.length).toBeGreaterThan(0.97 * 3000);
    // the aspect spans the range: tall and wide boxes both occur
    expect(boxes.some((_, i) => i % 4 === 3 && boxes[i] > 2 * boxes[i - 1])).toBe(true);
    expect(boxes.some((_, i) => i % 4 === 2 && boxes[i] > 2 * boxes[i + 1])).toBe(true);
  });

  test('tiny outputs: a side rounded to 0 draws an empty box, and the batch applies (found by the API fuzzer)', async () => {
    for (const size of [1, 2, 3]) {
      const t = new Transform({ size, randomErasing: { probability: 1, ratio: [0.01, 100] } });
      const boxes = t.sampleErasures(500, new Random(size))!;
      for (let i = 0; i < boxes.length; i += 4) {
        const [x, y, w, h] = boxes.subarray(i, i + 4);
        expect(w === 0 ? [x, y, h] : [w > 0 && h > 0, x + w <= size && y + h <= size]).toEqual(w === 0 ? [0, 0, 0] : [true, true]);
      }
      const image = noiseImage(8, 8, size);
      const batch = await t.apply([image, image], [t.sample(image, new Random(1)), t.sample(image, new Random(2))], boxes.subarray(0, 8));
      expect(batch.shape).toEqual([2, 3, size, size]);
      batch.dispose();
    }
  });

  test('p is respected, and a seed fixes the draws', () => {
    const count = 4000;
    for (const p of [0.1, 0.5]) {
      const boxes = new Transform({ size: 32, randomErasing: p }).sampleErasures(count, new Random(11))!;
      const erased = boxes.filter((_, i) => i % 4 === 2 && boxes[i] > 0).length;
      // binomial standard deviation at p = 0.5 is 0.008: a generous 0.04 band
      expect(Math.abs(erased / count - p)).toBeLessThan(0.04);
    }
    expect(new Transform({ size: 32 }).sampleErasures(8, new Random(1))).toBeNull();
    const t = new Transform({ size: 32, randomErasing: 0.5 });
    expect(t.sampleErasures(64, new Random(3))).toEqual(t.sampleErasures(64, new Random(3)));
    expect(t.sampleErasures(64, new Random(3))).not.toEqual(t.sampleErasures(64, new Random(4)));
  });

  test('in the loader: erasing is drawn after the crops, so turning it on changes only the erased boxes', async () => {
    const images = Array.from({ length: 6 }, (_, i) => noiseImage(24, 20, 20 + i));
    const cache = new ImageCache({ decoder: async (p: string) => images[Number(p)] });
    const samples = images.map((_, i) => ({ path: String(i), label: i % 2 }));
    const batch = async (randomErasing: number) => {
      const transform = new Transform({ size: 16, randomResizedCrop: true, horizontalFlip: true, randomErasing });
      const loader = new DataLoader(samples, { batchSize: 6, transform, cache, shuffle: false, seed: 9 });
      for await (const b of loader.epoch(0)) return values(b.images);
      throw new Error('no batch');
    };
    const [plain, erased] = [await batch(0), await batch(1)];
    const boxes = new Transform({ size: 16, randomErasing: 1 });
    // the expected boxes: the loader's per-batch stream, past the crop and flip draws
    const random = new Random(deriveSeed(9, 'augment:0:0'));
    const crops = new Transform({ size: 16, randomResizedCrop: true, horizontalFlip: true });
    images.forEach((image) => crops.sample(image, random));
    const expected = boxes.sampleErasures(6, random)!;
    for (let n = 0; n < 6; n++) {
      const [x, y, w, h] = expected.subarray(n * 4, n * 4 + 4);
      for (let c = 0; c < 3; c++) {
        for (let row = 0; row < 16; row++) {
          for (let col = 0; col < 16; col++) {
            const k = ((n * 3 + c) * 16 + row) * 16 + col;
            const inside = col >= x && col < x + w && row >= y && row < y + h;
            expect(erased[k]).toBe(inside ? 0 : plain[k]);
          }
        }
      }
    }
  });
});
