// MixUp and CutMix (lib/data/mix.ts, native/ops/mix_batch.h): given the same lam and box, the mixed
// images and soft targets equal a Python transcription of torchvision's references/classification
// RandomMixup / RandomCutmix forward; CutMix's box and lam correction follow the reference; the
// seeded Beta sampler has Beta's mean and variance; a seed fixes the draws.
import { BatchMix, cutmixBox, manualSeed, Random, randn, tensor, Transform, type MixDraw, type Tensor } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

const labels = (v: number[]) => tensor(new BigInt64Array(v.map(BigInt)));
const values = (t: Tensor) => Array.from(t.toTypedArray() as Float32Array);

// RandomMixup.forward / RandomCutmix.forward from torchvision's references/classification/transforms.py
// (v0.14), with lam and (r_x, r_y) passed in instead of drawn
const REFERENCE = `import json, math, sys, torch
import torch.nn.functional as F
x = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float32).view(json.loads(sys.argv[2]))
y = torch.tensor(json.loads(sys.argv[3]))
num_classes, kind, lambda_param = int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
batch = x.clone()
target = F.one_hot(y, num_classes=num_classes).to(dtype=batch.dtype)
batch_rolled = batch.roll(1, 0)
target_rolled = target.roll(1, 0)
box = None
if kind == 'mixup':
    batch_rolled.mul_(1.0 - lambda_param)
    batch.mul_(lambda_param).add_(batch_rolled)
else:
    H, W = batch.shape[-2:]
    r_x, r_y = torch.tensor(int(sys.argv[7])), torch.tensor(int(sys.argv[8]))
    r = 0.5 * math.sqrt(1.0 - lambda_param)
    r_w_half = int(r * W)
    r_h_half = int(r * H)
    x1 = int(torch.clamp(r_x - r_w_half, min=0))
    y1 = int(torch.clamp(r_y - r_h_half, min=0))
    x2 = int(torch.clamp(r_x + r_w_half, max=W))
    y2 = int(torch.clamp(r_y + r_h_half, max=H))
    batch[:, :, y1:y2, x1:x2] = batch_rolled[:, :, y1:y2, x1:x2]
    lambda_param = float(1.0 - (x2 - x1) * (y2 - y1) / (W * H))
    box = [x1, y1, x2, y2]
target_rolled.mul_(1.0 - lambda_param)
target.mul_(lambda_param).add_(target_rolled)
print(json.dumps({'images': batch.flatten().tolist(), 'targets': target.flatten().tolist(), 'lam': lambda_param, 'box': box}))`;

describe('BatchMix', () => {
  torch.test('mixed images and soft targets equal torchvision reference RandomMixup / RandomCutmix for the same lam and box', async () => {
    assertPresent(torch);
    manualSeed(5);
    const shape = [5, 3, 8, 10]; // H != W, so swapped axes cannot pass
    const y = [0, 2, 1, 2, 3];
    const mix = new BatchMix({ mixupAlpha: 0.2, cutmixAlpha: 1, numClasses: 4 });
    const cases: Array<{ kind: 'mixup' | 'cutmix'; lam: number; rx?: number; ry?: number }> = [
      { kind: 'mixup', lam: 0.3172 },
      { kind: 'mixup', lam: 0.9 },
      { kind: 'cutmix', lam: 0.4419, rx: 7, ry: 2 },
      { kind: 'cutmix', lam: 0.05, rx: 0, ry: 7 },
    ];
    const worst = { images: 0, targets: 0 };
    for (const c of cases) {
      const images = randn(shape);
      const before = values(images);
      const draw: MixDraw = c.kind === 'mixup' ? { kind: 'mixup', lam: c.lam, box: null } : cutmixBox(c.lam, 10, 8, c.rx!, c.ry!);
      const ref = JSON.parse(
        runPython(REFERENCE, [JSON.stringify(before), JSON.stringify(shape), JSON.stringify(y), '4', c.kind, String(c.lam), String(c.rx ?? 0), String(c.ry ?? 0)]),
      ) as { images: number[]; targets: number[]; lam: number; box: number[] | null };
      expect(draw.box).toEqual(ref.box);
      expect(draw.lam).toBe(ref.lam);
      const { images: mixed, targets } = await mix.apply(images, labels(y), draw);
      expect(mixed).toBe(images); // in place, as the reference
      expect(targets.shape).toEqual([5, 4]);
      expect(targets.dtype).toBe('float32');
      const ours = values(mixed);
      worst.images = Math.max(worst.images, ...ours.map((v, k) => Math.abs(v - ref.images[k])));
      worst.targets = Math.max(worst.targets, ...values(targets).map((v, k) => Math.abs(v - ref.targets[k])));
      // the mixing did something
      expect(ours.some((v, k) => v !== before[k])).toBe(true);
    }
    console.log(`MixUp/CutMix vs torchvision reference: max |diff| images ${worst.images}, targets ${worst.targets}`);
    expect(worst.images).toBeLessThanOrEqual(1e-7);
    expect(worst.targets).toBeLessThanOrEqual(1e-7);
  });

  test('channels-last batches (the loader\'s NHWC memory) mix to the same values as NCHW ones', async () => {
    const random = new Random(4);
    const images = Array.from({ length: 3 }, () => ({ data: Buffer.from(Array.from({ length: 6 * 6 * 3 }, () => random.int(256))), width: 6, height: 6 }));
    const mix = new BatchMix({ mixupAlpha: 1, cutmixAlpha: 1, numClasses: 3 });
    for (const draw of [cutmixBox(0.5, 6, 6, 2, 3), { kind: 'mixup', lam: 0.37, box: null } as MixDraw]) {
      const mixed = await Promise.all(
        [false, true].map(async (channelsLast) => {
          const t = new Transform({ size: 6, channelsLast });
          const batch = await t.apply(images, images.map((image) => t.sample(image)));
          return values((await mix.apply(batch, labels([0, 1, 2]), draw)).images);
        }),
      );
      expect(mixed[1]).toEqual(mixed[0]);
    }
  });

  test('CutMix box: half sides int(r * W), int(r * H) with r = 0.5 sqrt(1 - lam), clamped; lam = 1 - area / (W H)', () => {
    // r = 0.4: half sides 8 and 4 around (10, 5)
    expect(cutmixBox(0.36, 20, 10, 10, 5)).toEqual({ kind: 'cutmix', box: [2, 1, 18, 9], lam: 1 - (16 * 8) / 200 });
    expect(cutmixBox(0, 10, 10, 0, 9)).toEqual({ kind: 'cutmix', box: [0, 4, 5, 10], lam: 1 - 30 / 100 });
    expect(cutmixBox(1, 10, 10, 3, 3)).toEqual({ kind: 'cutmix', box: [3, 3, 3, 3], lam: 1 });
  });

  test('Beta sampler: mean and variance of Beta(a, b), values in [0, 1], Gamma means', () => {
    const random = new Random(1);
    for (const [a, b] of [[0.2, 0.2], [1, 1], [2, 5], [0.5, 3]]) {
      const n = 20000;
      const draws = Array.from({ length: n }, () => random.beta(a, b));
      const mean = draws.reduce((s, v) => s + v, 0) / n;
      const variance = draws.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
      const expectedMean = a / (a + b);
      const expectedVariance = (a * b) / ((a + b) ** 2 * (a + b + 1));
      expect(draws.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(Math.abs(mean - expectedMean)).toBeLessThan(0.02);
      expect(Math.abs(variance / expectedVariance - 1)).toBeLessThan(0.1);
    }
    for (const shape of [0.3, 1, 4.5]) {
      const n = 20000;
      const mean = Array.from({ length: n }, () => random.gamma(shape)).reduce((s, v) => s + v, 0) / n;
      expect(Math.abs(mean / shape - 1)).toBeLessThan(0.06);
    }
    expect(() => random.gamma(0)).toThrow('Expected positive finite number for shape but received 0');
  });

  test('sample: one of the two per batch at even odds when both are on; seeded; bounds', () => {
    const both = new BatchMix({ mixupAlpha: 0.2, cutmixAlpha: 1, numClasses: 10 });
    const random = new Random(2);
    const draws = Array.from({ length: 2000 }, () => both.sample(32, 24, random));
    const mixups = draws.filter((d) => d.kind === 'mixup').length;
    expect(Math.abs(mixups / 2000 - 0.5)).toBeLessThan(0.05);
    for (const d of draws) {
      expect(d.lam >= 0 && d.lam <= 1).toBe(true);
      if (d.kind === 'cutmix') {
        const [x1, y1, x2, y2] = d.box!;
        expect(x1 >= 0 && y1 >= 0 && x1 <= x2 && y1 <= y2 && x2 <= 32 && y2 <= 24).toBe(true);
        expect(d.lam).toBeCloseTo(1 - ((x2 - x1) * (y2 - y1)) / (32 * 24), 12);
      } else expect(d.box).toBeNull();
    }
    expect(new BatchMix({ mixupAlpha: 0.4, numClasses: 3 }).sample(8, 8, new Random(1)).kind).toBe('mixup');
    expect(new BatchMix({ cutmixAlpha: 0.4, numClasses: 3 }).sample(8, 8, new Random(1)).kind).toBe('cutmix');
    expect(both.sample(32, 24, new Random(9))).toEqual(both.sample(32, 24, new Random(9)));
    expect(new BatchMix({ numClasses: 3 }).enabled).toBe(false);
  });

  test('inputs are checked before any native work', async () => {
    const mix = new BatchMix({ mixupAlpha: 1, numClasses: 3 });
    const images = randn([2, 3, 4, 4]);
    await expect(mix.apply(images, labels([0, 3]), { kind: 'mixup', lam: 0.5, box: null })).rejects.toThrow('Expected labels between 0 and 2 but received 3 at index 1');
    await expect(mix.apply(images, labels([0, 1]), { kind: 'mixup', lam: 1.5, box: null })).rejects.toThrow('Expected number between 0 and 1 for lam but received 1.5');
    await expect(mix.apply(images, labels([0, 1]), { kind: 'cutmix', lam: 0.5, box: [0, 0, 5, 2] })).rejects.toThrow('Expected box [x1, y1, x2, y2] of integers inside 4x4');
    expect(() => new BatchMix({ mixupAlpha: -1, numClasses: 3 })).toThrow('Expected number between 0 and 1000000 for mixupAlpha but received -1');
  });
});
