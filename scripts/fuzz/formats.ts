// The formats the fuzzer covers: each one's file extension and mutator, the valid seed files it
// starts from (written by finetorch's own writers, plus committed torch.save files), and
// makeInput, which turns (run seed, format, index) into one mutated input.
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { mutateCache } from './cache';
import { generic } from './generic';
import { mutateJpeg } from './jpeg';
import { mutateJsonText } from './json';
import { mutateLegacy } from './legacy';
import { mutatePng } from './png';
import { hash32, Rng } from './rng';
import { mutateSafetensors } from './safetensors';
import { mutateYaml } from './yaml';
import { mutateZip } from './zip';

export const FORMATS = ['zip', 'legacy', 'safetensors', 'checkpoint', 'jpeg', 'png', 'yaml', 'manifest', 'cache'] as const;
export type FuzzFormat = (typeof FORMATS)[number];

interface FormatDef {
  ext: string;
  mutate: (rng: Rng, seed: Buffer, others: readonly Buffer[]) => Buffer;
}

export const FORMAT_DEFS: Record<FuzzFormat, FormatDef> = {
  zip: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.75) ? mutateZip(rng, s, o) : generic(rng, s, o)) },
  legacy: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.75) ? mutateLegacy(rng, s, o) : generic(rng, s, o)) },
  safetensors: { ext: '.safetensors', mutate: (rng, s, o) => (rng.chance(0.7) ? mutateSafetensors(rng, s, o) : generic(rng, s, o)) },
  checkpoint: { ext: '.pth', mutate: (rng, s, o) => (rng.chance(0.8) ? mutateZip(rng, s, o) : generic(rng, s, o)) },
  jpeg: { ext: '.jpg', mutate: (rng, s, o) => (rng.chance(0.5) ? mutateJpeg(rng, s, o) : generic(rng, s, o)) },
  png: { ext: '.png', mutate: (rng, s, o) => (rng.chance(0.6) ? mutatePng(rng, s, o) : generic(rng, s, o)) },
  yaml: { ext: '.yaml', mutate: mutateYaml },
  manifest: { ext: '.json', mutate: (rng, s, o) => mutateJsonText(rng, s.toString('utf8'), o) },
  cache: { ext: '.bin', mutate: mutateCache },
};

/** Fixed inputs of the cache loader (the key and file list its seeds were written for). */
export const CACHE_KEY = 'c0ffee'.repeat(10) + 'beef';
export const CACHE_FILES = ['/data/a/1.jpg', '/data/a/2.jpg', '/data/b/3.png', '/data/b/4.png'];

// The committed torch.save seeds, from scripts/fuzz/ (ts-jest, ts-register) or dist/scripts/fuzz/.
const SEED_DIR_CANDIDATES = [path.join(__dirname, '..', '..', 'test', 'fuzz', 'seeds'), path.join(__dirname, '..', '..', '..', 'test', 'fuzz', 'seeds')];

/** Makes every seed (valid files of each format) with finetorch's own writers, plus the committed torch.save seeds. */
export async function makeSeeds(dir: string, formats: readonly FuzzFormat[]): Promise<Record<FuzzFormat, Buffer[]>> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { tensor } = require('../../lib/tensor') as typeof import('../../lib/tensor');
  const { saveWeights } = require('../../lib/models/weights') as typeof import('../../lib/models/weights');
  const { saveCheckpoint } = require('../../lib/training/checkpoint') as typeof import('../../lib/training/checkpoint');
  const { saveSplitManifest, normalizeProtocol } = require('../../lib/data/splits') as typeof import('../../lib/data/splits');
  const { writeCacheFile } = require('../../lib/data/cache') as typeof import('../../lib/data/cache');
  const { normalizeDecodeOptions } = require('../../lib/data/decode') as typeof import('../../lib/data/decode');
  const { configsDir } = require('../../lib/experiment/config') as typeof import('../../lib/experiment/config');
  /* eslint-enable @typescript-eslint/no-require-imports */
  fs.mkdirSync(dir, { recursive: true });
  const seeds = {} as Record<FuzzFormat, Buffer[]>;
  const seedDir = SEED_DIR_CANDIDATES.find((d) => fs.existsSync(d));
  const committed = (prefix: string): Buffer[] =>
    seedDir ? fs.readdirSync(seedDir).filter((f) => f.startsWith(prefix)).sort().map((f) => fs.readFileSync(path.join(seedDir, f))) : [];
  const rng = new Rng(12345);
  const floats = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
  const stateDict = () => new Map([
    ['conv.weight', tensor(floats(8), [2, 1, 2, 2])],
    ['conv.bias', tensor(floats(2), [2])],
    ['bn.num_batches_tracked', tensor(BigInt64Array.from([5n]), [])],
    ['fc.weight', tensor(floats(6), [3, 2])],
    ['mask', tensor(Uint8Array.from([1, 0, 1]), [3], { dtype: 'bool' })],
    ['f64', tensor(Float64Array.from([1.5, -2]), [2])],
    ['i32', tensor(Int32Array.from([-7, 7]), [2])],
    ['empty', tensor(new Float32Array(0), [0, 3])],
  ]);
  const write = async (name: string, save: (file: string) => Promise<void>): Promise<Buffer> => {
    const file = path.join(dir, name);
    await save(file);
    return fs.readFileSync(file);
  };
  const want = new Set(formats);
  if (want.has('zip')) {
    seeds.zip = [await write('sd.pth', (f) => saveWeights(f, stateDict())), ...committed('zip-')];
    seeds.zip.push(await write('sd2.pth', (f) => saveWeights(f, new Map([['w', tensor(floats(3), [3])]]))));
  }
  if (want.has('legacy')) {
    seeds.legacy = committed('legacy-');
    if (!seeds.legacy.length) throw new Error('no legacy seeds: test/fuzz/seeds/legacy-*.pth (written by scripts/fuzz-make-seeds.py) are missing');
  }
  if (want.has('safetensors')) {
    seeds.safetensors = [
      await write('sd.safetensors', (f) => saveWeights(f, stateDict())),
      await write('one.safetensors', (f) => saveWeights(f, new Map([['module.w', tensor(floats(4), [2, 2])]]))),
    ];
  }
  if (want.has('checkpoint')) {
    // a stand-in with a tiny state_dict: not a ResNet, so saveCheckpoint records no channel widths
    const model = { arch: 'alexnet', numClasses: 3, head: 'linear', stateDict } as unknown as import('../../lib/models/model').Model;
    const optimizer = {
      stateDict: () => ({
        state: new Map([[0, new Map<string, unknown>([['momentum_buffer', tensor(floats(2), [2])]])]]),
        param_groups: [{ lr: 0.1, momentum: 0.9, params: [0, 1] }],
        param_names: ['conv.weight', 'conv.bias'],
        type: 'sgd',
      }),
    } as unknown as import('../../lib/training/optimizer').Optimizer;
    const scheduler = { stateDict: () => ({ scheduler: 'step', last_epoch: 3, step_size: 2 }) } as unknown as import('../../lib/training/schedulers').LrScheduler;
    seeds.checkpoint = [
      await write('ckpt.pth', (f) => saveCheckpoint(f, { model, optimizer, scheduler, epoch: 3, step: 120, bestMetric: 0.5, config: { arch: 'resnet18', lr: 0.01 }, extra: { order: [3, 1, 2] } })),
      await write('ckpt-min.pth', (f) => saveCheckpoint(f, { model, epoch: 0, step: 0 })),
    ];
  }
  if (want.has('jpeg') || want.has('png')) {
    const noise = (w: number, h: number, channels: 1 | 3 | 4) => sharp(rng.bytes(w * h * channels), { raw: { width: w, height: h, channels } });
    if (want.has('jpeg')) {
      seeds.jpeg = [
        await noise(24, 16, 3).jpeg({ quality: 80 }).toBuffer(),
        await noise(17, 9, 1).jpeg({ progressive: true }).toBuffer(),
        await noise(33, 21, 3).jpeg({ chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer(),
        await noise(12, 300, 3).jpeg().toBuffer(),
        await noise(20, 20, 3).toColourspace('cmyk').jpeg().toBuffer(),
      ];
    }
    if (want.has('png')) {
      seeds.png = [
        await noise(16, 12, 3).png().toBuffer(),
        await noise(9, 7, 4).png().toBuffer(),
        await noise(20, 10, 1).png({ progressive: true }).toBuffer(),
        await noise(12, 12, 3).png({ palette: true, colours: 8 }).toBuffer(),
        await noise(8, 8, 3).toColourspace('rgb16').png().toBuffer(),
        await noise(3, 200, 3).png().toBuffer(),
      ];
    }
  }
  if (want.has('yaml')) {
    const configs = configsDir();
    const experiments = path.join(configs, 'experiments');
    seeds.yaml = [
      fs.readFileSync(path.join(configs, 'base.yaml')),
      ...fs.readdirSync(experiments).filter((f) => f.endsWith('.yaml')).sort().map((f) => fs.readFileSync(path.join(experiments, f))),
    ];
  }
  if (want.has('manifest')) {
    const sample = (cls: string, i: number, label: number) => ({ path: `/data/${cls}/${i}.jpg`, label });
    const split = (protocol: ReturnType<typeof normalizeProtocol>) => ({
      seed: 7, protocol, root: '/data', classes: ['cat', 'dog', 'ünïcode'],
      train: [sample('cat', 1, 0), sample('cat', 2, 0), sample('dog', 3, 1), sample('ünïcode', 9, 2)],
      val: [sample('dog', 4, 1)],
      test: [sample('cat', 5, 0), sample('dog', 6, 1)],
    });
    seeds.manifest = [
      await write('m1.json', (f) => saveSplitManifest(split(normalizeProtocol({ kind: 'per-class', trainPerClass: 2, valPerClass: 1, testPerClass: 1 })), f)),
      await write('m2.json', (f) => saveSplitManifest(split(normalizeProtocol({ kind: 'ratio', train: 0.6, val: 0.2, test: 0.2 })), f)),
    ];
  }
  if (want.has('cache')) {
    const image = (w: number, h: number) => ({ data: rng.bytes(w * h * 3), width: w, height: h });
    const decode = normalizeDecodeOptions({ resize: 8, centerCrop: null });
    seeds.cache = [
      await write('c1.bin', (f) => writeCacheFile(f, CACHE_KEY, decode, CACHE_FILES, [image(4, 3), image(2, 2), image(5, 1), image(3, 3)], [])),
      await write('c2.bin', (f) => writeCacheFile(f, CACHE_KEY, decode, CACHE_FILES, [image(6, 4), undefined, image(1, 1), undefined], [
        { path: CACHE_FILES[1], reason: 'truncated', kind: 'decode-failed' }, { path: CACHE_FILES[3], reason: 'not an image', kind: 'decode-failed' },
      ])),
    ];
  }
  return seeds;
}

/** Input `index` of `format`: a pure function of (seed, format, index) and the seeds. */
export function makeInput(format: FuzzFormat, index: number, runSeed: number, seeds: readonly Buffer[]): Buffer {
  const rng = new Rng(hash32(`${runSeed}:${format}:${index}`));
  const seed = rng.pick(seeds);
  return FORMAT_DEFS[format].mutate(rng, seed, seeds);
}
