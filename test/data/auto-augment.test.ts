import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  applyPolicySteps, AugmentPolicy, decodeImage, IMAGENET_MEAN, IMAGENET_POLICY, IMAGENET_STD, policySpace, POLICY_OPS, Random, Transform,
  type AugmentPolicyName, type DecodedImage, type PolicyStep,
} from '../../lib';
import { caltech101Dir } from '../helpers/caltech101-dir';
import { prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch/torchvision reference', torchPythonUnavailableReason());
const caltech = caltech101Dir();
const POLICIES: Array<Exclude<AugmentPolicyName, 'none'>> = ['trivial_augment_wide', 'rand_augment', 'auto_augment'];

function noiseImage(width: number, height: number, seed: number): DecodedImage {
  const random = new Random(seed);
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = random.int(256);
  return { data, width, height };
}

function gradientImage(width: number, height: number): DecodedImage {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = Math.floor((x * 255) / (width - 1));
      data[o + 1] = Math.floor((y * 255) / (height - 1));
      data[o + 2] = (x * 7 + y * 13) % 256;
    }
  }
  return { data, width, height };
}

/** Runs a Python script with a JSON file of inputs; returns its printed JSON. */
function python<T>(script: string, input: unknown): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-autoaug-'));
  try {
    const file = path.join(dir, 'input.json');
    fs.writeFileSync(file, JSON.stringify(input));
    return JSON.parse(runPython(script, [file])) as T;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A Random whose draws come from a list of uniforms: int(n) = floor(u * n), as the Python side patches torch. */
function scripted(uniforms: number[]): { random: Random; used: () => number } {
  let used = 0;
  const next = () => {
    if (used >= uniforms.length) throw new Error('script ran out of draws');
    return uniforms[used++];
  };
  const random = { next, int: (n: number) => Math.floor(next() * n) } as unknown as Random;
  return { random, used: () => used };
}

/** Every magnitude the three policies can pass for a width x height image, signed ones with both signs, plus edge cases. */
function magnitudesOf(op: (typeof POLICY_OPS)[number], width: number, height: number): number[] {
  const values = new Set<number>();
  for (const policy of POLICIES) {
    const entry = policySpace(policy, width, height).find((e) => e.op === op);
    if (!entry) continue;
    for (const m of entry.magnitudes ?? [0]) {
      values.add(m);
      if (entry.signed) values.add(-m);
    }
  }
  const extra: Partial<Record<(typeof POLICY_OPS)[number], number[]>> = {
    Rotate: [90, -90, 180, -180, 270, 360, 45, -0.3, 1e-9, 725],
    ShearX: [0.5, -1.5, 1e-3],
    ShearY: [0.5, -1.5, 1e-3],
    TranslateX: [3.7, -3.7, 0.4, -100, 1000],
    TranslateY: [3.7, -3.7, 0.4, -100, 1000],
    Brightness: [-1, 1.5, -0.5],
    Color: [-1, 1.5, -0.5],
    Contrast: [-1, 1.5, -0.5],
    Sharpness: [-1, 1.5, -0.5],
    Posterize: [0, 1, 3, 5, 7, 8],
    Solarize: [0, 0.5, 128, 255.5, 256],
  };
  for (const m of extra[op] ?? []) values.add(m);
  return [...values];
}

describe('augmentation policies: draws', () => {
  torch.test('augmentation spaces and the ImageNet policy equal torchvision’s (ops, order, float32 magnitudes, signs)', () => {
    const sizes: Array<[number, number]> = [[224, 224], [32, 32], [300, 200], [17, 999], [331, 128]];
    const theirs = python<{ spaces: Array<Array<[string, number[] | null, boolean]>>; imagenet: unknown }>(
      String.raw`import json, sys
from torchvision.transforms import autoaugment as A
sizes = json.load(open(sys.argv[1]))
def dump(space):
    return [[name, (m.tolist() if m.ndim > 0 else None), signed] for name, (m, signed) in space.items()]
spaces = [dump(A.TrivialAugmentWide()._augmentation_space(31))]
for w, h in sizes:
    spaces.append(dump(A.RandAugment()._augmentation_space(31, (h, w))))
    spaces.append(dump(A.AutoAugment()._augmentation_space(10, (h, w))))
imagenet = [[list(op) for op in sub] for sub in A.AutoAugment()._get_policies(A.AutoAugmentPolicy.IMAGENET)]
print(json.dumps({'spaces': spaces, 'imagenet': imagenet}))`,
      sizes,
    );
    const ours = [policySpace('trivial_augment_wide', 1, 1)];
    for (const [w, h] of sizes) ours.push(policySpace('rand_augment', w, h), policySpace('auto_augment', w, h));
    expect(ours.map((space) => space.map((e) => [e.op, e.magnitudes, e.signed]))).toEqual(theirs.spaces);
    expect(IMAGENET_POLICY).toEqual(theirs.imagenet);
  });

  torch.test('for the same draws, each policy picks the ops and signed magnitudes torchvision’s forward passes to _apply_op', () => {
    const random = new Random(5);
    const cases: Array<{ policy: string; numOps: number; magnitude: number; size: number; u: number[] }> = [];
    for (const policy of POLICIES) {
      for (let k = 0; k < 300; k++) {
        const numOps = policy === 'rand_augment' ? k % 5 : 2;
        const magnitude = policy === 'rand_augment' ? (k * 7) % 31 : 9;
        cases.push({ policy, numOps, magnitude, size: [224, 32, 97][k % 3], u: Array.from({ length: 12 }, () => random.next()) });
      }
    }
    const ours = cases.map((c) => {
      const { random: r, used } = scripted(c.u);
      const options = c.policy === 'rand_augment' ? { policy: c.policy as AugmentPolicyName, numOps: c.numOps, magnitude: c.magnitude } : { policy: c.policy as AugmentPolicyName };
      const steps = new AugmentPolicy(options).sample({ width: c.size, height: c.size }, r);
      return { steps: steps.map((s) => [s.op, s.magnitude]), used: used() };
    });
    const theirs = python<Array<{ steps: Array<[string, number]>; used: number }>>(
      String.raw`import json, math, sys
import torch
from PIL import Image
from torchvision.transforms import autoaugment as A
cases = json.load(open(sys.argv[1]))
state = {}
def draw():
    u = state['u'][state['used']]
    state['used'] += 1
    return u
real_randint = torch.randint
def randint(n, size, **kwargs):
    return torch.tensor([math.floor(draw() * n) for _ in range(size[0])])
def rand(size):
    return torch.tensor([draw() for _ in range(size[0])])
torch.randint = randint
torch.rand = rand
def record(img, op_name, magnitude, interpolation, fill):
    state['steps'].append([op_name, magnitude])
    return img
A._apply_op = record
out = []
for c in cases:
    state.update(u=c['u'], used=0, steps=[])
    img = Image.new('RGB', (c['size'], c['size']))
    if c['policy'] == 'trivial_augment_wide': t = A.TrivialAugmentWide()
    elif c['policy'] == 'rand_augment': t = A.RandAugment(num_ops=c['numOps'], magnitude=c['magnitude'])
    else: t = A.AutoAugment(A.AutoAugmentPolicy.IMAGENET)
    t(img)
    out.append({'steps': state['steps'], 'used': state['used']})
print(json.dumps(out))`,
      cases,
    );
    const mismatches = ours.flatMap((o, i) => (JSON.stringify(o) === JSON.stringify(theirs[i]) ? [] : [{ case: cases[i], ours: o, torchvision: theirs[i] }]));
    expect(mismatches.slice(0, 3)).toEqual([]);
    // the cases reach every op of every policy, both signs, and AutoAugment's skipped ops
    const seen = new Set(theirs.flatMap((t) => t.steps.map(([op, m]) => `${op}${m < 0 ? '-' : '+'}`)));
    for (const op of POLICY_OPS) expect(seen.has(`${op}+`)).toBe(true);
    expect(seen.has('Rotate-') && seen.has('ShearX-')).toBe(true);
    expect(theirs.some((t, i) => cases[i].policy === 'auto_augment' && t.steps.length < 2)).toBe(true);
  });

  test('TrivialAugmentWide: one op, uniform over its 14 ops, every bin and both signs reachable', () => {
    const policy = new AugmentPolicy({ policy: 'trivial_augment_wide' });
    const space = policySpace('trivial_augment_wide', 224, 224);
    const random = new Random(1);
    const n = 28000;
    const counts = new Map<string, number>();
    const reached = new Set<string>();
    let negative = 0;
    let signed = 0;
    let wrong = 0;
    for (let i = 0; i < n; i++) {
      const steps = policy.sample({ width: 224, height: 224 }, random);
      if (steps.length !== 1) wrong++;
      const [{ op, magnitude }] = steps;
      counts.set(op, (counts.get(op) ?? 0) + 1);
      reached.add(`${op}:${magnitude}`);
      const entry = space.find((e) => e.op === op)!;
      if (entry.signed) {
        signed++;
        if (magnitude < 0 || Object.is(magnitude, -0)) negative++;
      }
      if (!(entry.magnitudes ?? [0]).includes(Math.abs(magnitude))) wrong++;
    }
    expect(wrong).toBe(0);
    expect([...counts.keys()].sort()).toEqual(space.map((e) => e.op).sort());
    for (const c of counts.values()) expect(Math.abs(c / n - 1 / 14)).toBeLessThan(0.01);
    expect(Math.abs(negative / signed - 0.5)).toBeLessThan(0.02);
    // 31 bins x 2 signs for signed ops (the zero bin once: -0 and 0 print alike), 31 bins else, one for the rest
    const expected = space.reduce((sum, e) => sum + (e.magnitudes ? new Set(e.signed ? e.magnitudes.flatMap((m) => [m, -m]).map(String) : e.magnitudes.map(String)).size : 1), 0);
    expect(reached.size).toBe(expected);
  });

  test('RandAugment: exactly numOps ops, each uniform over 14 ops, all at the chosen bin', () => {
    for (const [numOps, magnitude] of [[2, 9], [4, 30], [1, 0]]) {
      const policy = new AugmentPolicy({ policy: 'rand_augment', numOps, magnitude });
      const space = policySpace('rand_augment', 160, 160);
      const random = new Random(2);
      const counts = new Map<string, number>();
      const n = 5000;
      let wrong = 0;
      for (let i = 0; i < n; i++) {
        const steps = policy.sample({ width: 160, height: 160 }, random);
        if (steps.length !== numOps) wrong++;
        for (const { op, magnitude: m } of steps) {
          counts.set(op, (counts.get(op) ?? 0) + 1);
          const entry = space.find((e) => e.op === op)!;
          if (Math.abs(m) !== (entry.magnitudes ? entry.magnitudes[magnitude] : 0)) wrong++;
        }
      }
      expect(wrong).toBe(0);
      expect(counts.size).toBe(14);
      for (const c of counts.values()) expect(Math.abs(c / (n * numOps) - 1 / 14)).toBeLessThan(0.015);
    }
  });

  test('AutoAugment: each (op, magnitude) appears as often as the ImageNet sub-policies’ probabilities say', () => {
    const policy = new AugmentPolicy({ policy: 'auto_augment' });
    const space = new Map(policySpace('auto_augment', 224, 224).map((e) => [e.op, e]));
    const expected = new Map<string, number>();
    let expectedEmpty = 0;
    for (const [[op1, p1, bin1], [op2, p2, bin2]] of IMAGENET_POLICY) {
      expectedEmpty += ((1 - p1) * (1 - p2)) / IMAGENET_POLICY.length;
      for (const [op, p, bin] of [[op1, p1, bin1], [op2, p2, bin2]] as const) {
        const entry = space.get(op)!;
        const m = bin !== null && entry.magnitudes ? entry.magnitudes[bin] : 0;
        const share = p / IMAGENET_POLICY.length / (entry.signed && m !== 0 ? 2 : 1);
        for (const value of entry.signed && m !== 0 ? [m, -m] : [m]) expected.set(`${op}:${value}`, (expected.get(`${op}:${value}`) ?? 0) + share);
      }
    }
    const random = new Random(3);
    const n = 40000;
    const counts = new Map<string, number>();
    let empty = 0;
    for (let i = 0; i < n; i++) {
      const steps = policy.sample({ width: 224, height: 224 }, random);
      if (steps.length === 0) empty++;
      for (const { op, magnitude } of steps) counts.set(`${op}:${magnitude === 0 ? 0 : magnitude}`, (counts.get(`${op}:${magnitude === 0 ? 0 : magnitude}`) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [key, share] of expected) expect(Math.abs((counts.get(key) ?? 0) / n - share)).toBeLessThan(0.006);
    expect(Math.abs(empty / n - expectedEmpty)).toBeLessThan(0.01);
  });

  test('a seed repeats the draws; no policy draws nothing and keeps the other parameters', () => {
    for (const policy of POLICIES) {
      const t = new Transform({ size: 64, randomResizedCrop: true, horizontalFlip: true, augmentPolicy: policy });
      const a = Array.from({ length: 50 }, () => t.sample({ width: 100, height: 80 }, new Random(9)));
      expect(a[0]).toHaveLength(22);
      expect(Array.from({ length: 50 }, () => t.sample({ width: 100, height: 80 }, new Random(9)))).toEqual(a);
      const many = new Random(10);
      expect(new Set(Array.from({ length: 50 }, () => t.sample({ width: 100, height: 80 }, many).slice(13).join())).size).toBeGreaterThan(10);
    }
    const plain = new Transform({ size: 64, randomResizedCrop: true, horizontalFlip: true });
    const withPolicy = new Transform({ size: 64, randomResizedCrop: true, horizontalFlip: true, augmentPolicy: 'rand_augment' });
    const p = plain.sample({ width: 100, height: 80 }, new Random(4));
    expect(p.slice(13)).toEqual(new Array(9).fill(0));
    expect(withPolicy.sample({ width: 100, height: 80 }, new Random(4)).slice(0, 13)).toEqual(p.slice(0, 13));
    expect(new Transform({ augmentPolicy: 'trivial_augment_wide' }).random).toBe(true);
  });

  test('bad options are rejected', () => {
    expect(() => new Transform({ augmentPolicy: 'randaugment' as never })).toThrow("Expected one of 'none', 'trivial_augment_wide', 'rand_augment', 'auto_augment' for policy but received 'randaugment'");
    expect(() => new AugmentPolicy({ policy: 'rand_augment', numOps: 5 })).toThrow('Expected integer between 0 and 4 for numOps but received 5');
    expect(() => new AugmentPolicy({ policy: 'rand_augment', magnitude: 31 })).toThrow('Expected integer between 0 and 30 for magnitude but received 31');
    expect(() => new AugmentPolicy({ policy: 'trivial_augment_wide', numOps: 2 })).toThrow("policy 'rand_augment' with numOps or magnitude");
    expect(() => new AugmentPolicy({ policy: 'auto_augment', bins: 3 } as never)).toThrow("Unknown option 'bins'");
  });
});

describe('augmentation policies: pixels', () => {
  const synthetic = [noiseImage(37, 23, 1), gradientImage(40, 40), noiseImage(30, 30, 2), gradientImage(29, 51)];
  let real: DecodedImage[] = [];
  beforeAll(async () => {
    if (caltech.skip !== undefined) {
      process.stderr.write(`auto-augment pixel parity on real images skipped: ${caltech.skip}; synthetic images only\n`);
      return;
    }
    const files = ['Faces', 'airplanes', 'Motorbikes', 'accordion']
      .map((c) => path.join(caltech.categories, c))
      .filter((d) => fs.existsSync(d))
      .map((d) => path.join(d, fs.readdirSync(d).filter((f) => f.endsWith('.jpg')).sort()[0]));
    real = await Promise.all(files.map((f, i) => decodeImage(f, i === 0 ? { resize: 48, centerCrop: 48 } : { resize: 44 + i * 5 })));
  });

  torch.test('every op at every reachable magnitude (and edge cases) equals torchvision’s _apply_op on PIL images, to the byte', async () => {
    const images = [...synthetic, ...real];
    if (caltech.skip === undefined) expect(real.length).toBeGreaterThanOrEqual(3);
    expect(images.some((im) => im.width !== im.height) && images.some((im) => im.width === im.height)).toBe(true);
    const cases: Array<{ image: number; op: string; magnitude: number }> = [];
    images.forEach((im, image) => {
      for (const op of POLICY_OPS) for (const magnitude of magnitudesOf(op, im.width, im.height)) cases.push({ image, op, magnitude });
    });
    const out = await applyPolicySteps(cases.map((c) => images[c.image]), cases.map((c) => [{ op: c.op, magnitude: c.magnitude } as PolicyStep]));
    const ours = out.map((im) => crypto.createHash('md5').update(im.data).digest('hex'));
    const theirs = python<string[]>(
      String.raw`import base64, hashlib, json, sys
import numpy as np
from PIL import Image
from torchvision.transforms import autoaugment as A, InterpolationMode
spec = json.load(open(sys.argv[1]))
images = [Image.frombytes('RGB', (im['width'], im['height']), base64.b64decode(im['data'])) for im in spec['images']]
out = []
for c in spec['cases']:
    img = A._apply_op(images[c['image']], c['op'], c['magnitude'], interpolation=InterpolationMode.NEAREST, fill=None)
    out.append(hashlib.md5(img.tobytes()).hexdigest())
print(json.dumps(out))`,
      { images: images.map((im) => ({ width: im.width, height: im.height, data: im.data.toString('base64') })), cases },
    );
    const mismatches = cases.filter((_, i) => ours[i] !== theirs[i]).map((c) => ({ ...c, size: `${images[c.image].width}x${images[c.image].height}` }));
    console.log(`policy ops vs torchvision/PIL: ${cases.length - mismatches.length}/${cases.length} byte-identical over ${images.length} images (${real.length} real)`);
    expect(mismatches.slice(0, 5)).toEqual([]);
    // the ops did something: most results differ from their input
    const changed = out.filter((im, i) => !im.data.equals(images[cases[i].image].data)).length;
    expect(changed).toBeGreaterThan(cases.length / 2);
  });

  torch.test('a chain of ops per image, in a batch, equals torchvision applying them in turn', async () => {
    const images = [...synthetic, ...real];
    const random = new Random(6);
    const policy = new AugmentPolicy({ policy: 'rand_augment', numOps: 4, magnitude: 20 });
    const steps = images.flatMap((im) => Array.from({ length: 10 }, () => policy.sample(im, random)));
    const batch = images.flatMap((im) => Array.from({ length: 10 }, () => im));
    const out = await applyPolicySteps(batch, steps);
    const theirs = python<string[]>(
      String.raw`import base64, hashlib, json, sys
from PIL import Image
from torchvision.transforms import autoaugment as A, InterpolationMode
spec = json.load(open(sys.argv[1]))
out = []
for im, steps in zip(spec['images'], spec['steps']):
    img = Image.frombytes('RGB', (im['width'], im['height']), base64.b64decode(im['data']))
    for s in steps:
        img = A._apply_op(img, s['op'], s['magnitude'], interpolation=InterpolationMode.NEAREST, fill=None)
    out.append(hashlib.md5(img.tobytes()).hexdigest())
print(json.dumps(out))`,
      { images: batch.map((im) => ({ width: im.width, height: im.height, data: im.data.toString('base64') })), steps },
    );
    expect(out.map((im) => crypto.createHash('md5').update(im.data).digest('hex'))).toEqual(theirs);
  });

  torch.test('Transform.apply: RandomResizedCrop, flip, the policy, ToTensor and Normalize as torchvision composes them', async () => {
    const images = [...synthetic.slice(0, 2), ...real.slice(0, 2)];
    const size = 32;
    const random = new Random(8);
    const jobs: Array<{ image: number; params: number[]; steps: PolicyStep[] }> = [];
    for (const policy of POLICIES) {
      const t = new Transform({ size, randomResizedCrop: true, horizontalFlip: true, augmentPolicy: policy });
      images.forEach((im, image) => {
        for (let k = 0; k < 4; k++) {
          const params = t.sample(im, random);
          const steps = Array.from({ length: params[13] }, (_, s) => ({ op: POLICY_OPS[params[14 + 2 * s]], magnitude: params[15 + 2 * s] }));
          jobs.push({ image, params, steps });
        }
      });
    }
    const out = (await new Transform({ size }).apply(jobs.map((j) => images[j.image]), jobs.map((j) => j.params))).toTypedArray() as Float32Array;
    const theirs = python<number[][]>(
      String.raw`import base64, json, sys
import numpy as np
from PIL import Image
import torchvision.transforms.functional as F
from torchvision.transforms import autoaugment as A, InterpolationMode
spec = json.load(open(sys.argv[1]))
images = [Image.frombytes('RGB', (im['width'], im['height']), base64.b64decode(im['data'])) for im in spec['images']]
out = []
for job in spec['jobs']:
    x, y, w, h, flip = job['params'][:5]
    img = F.resized_crop(images[job['image']], int(y), int(x), int(h), int(w), [spec['size'], spec['size']])
    if flip: img = F.hflip(img)
    for s in job['steps']:
        img = A._apply_op(img, s['op'], s['magnitude'], interpolation=InterpolationMode.NEAREST, fill=None)
    t = F.normalize(F.to_tensor(img), spec['mean'], spec['std'])
    out.append(t.flatten().tolist())
print(json.dumps(out))`,
      { images: images.map((im) => ({ width: im.width, height: im.height, data: im.data.toString('base64') })), jobs, size, mean: IMAGENET_MEAN, std: IMAGENET_STD },
    );
    let worst = 0;
    theirs.forEach((ref, n) => ref.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - out[n * ref.length + i])))));
    console.log(`Transform.apply with policies vs torchvision: max |difference| ${worst.toExponential(2)} over ${jobs.length} images`);
    expect(jobs.some((j) => j.steps.length > 0)).toBe(true);
    // the same bytes; float32 normalisation round-off only
    expect(worst).toBeLessThan(1e-5);
  });
});
