// How close our sharp decode is to torchvision's: Resize(256) -> CenterCrop(224) on PIL images
// (the ImageNet eval transform), and Resize(256) alone (the train-time pre-resize without
// RandomResizedCrop; test/data/train-transform-parity.test.ts covers the crop from the original), measured as
// the mean absolute difference per channel value (0-255 scale) over real Caltech-101 images.
// Reference: Debian's /usr/bin/python3 with python3-torchvision 0.14 and PIL (not the python3 on
// PATH). Needs CALTECH101_DIR (the folder holding 101_ObjectCategories, or that folder itself);
// skipped with a message otherwise, and a failure where CI is set (test/helpers/prerequisite.ts).
//
// Measured on the 820 images of caltech101-mini (kernel for reductions; enlargements go through
// the bilinear affine path and do not depend on it), eval transform:
//   linear 0.160 (worst image 1.74, the 3481x2955 one), mitchell 0.305, cubic 0.565,
//   lanczos2 0.566, mks2021 0.697, lanczos3 0.782, mks2013 1.046, nearest 1.642;
//   fastShrinkOnLoad true: linear 0.160 too, but worst image 2.07.
// sharp's plain resize() for every image (which enlarges a fraction of a pixel off PIL's grid):
//   linear 4.41, lanczos3 (sharp's default) 5.48.
// Set PARITY_ALL_KERNELS=1 to print the table for every kernel on this test's images.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeImage, RESAMPLE_KERNELS, type DecodeOptions } from '../../lib/data/decode';
import { mapPool } from '../../lib/data/pool';
import { caltech101Dir } from '../helpers/caltech101-dir';
import { assertPresent, prerequisite } from '../helpers/prerequisite';

const real = caltech101Dir();
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'torchvision_eval_transform.py');

function torchvisionAvailable(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import torchvision, PIL, numpy'], { stdio: 'ignore', timeout: 60000 }).status === 0;
}

const parity = prerequisite(
  'real Caltech-101 images ($CALTECH101_DIR) and torchvision for the decode parity test',
  real.skip ??
    (torchvisionAvailable() ? null : `${PYTHON} cannot import torchvision, PIL and numpy (Debian: apt install python3-torchvision)`),
);

interface Reference {
  width: number;
  height: number;
  data: Buffer;
}

/** torchvision's output for each path (resize, then centre crop when given). */
function torchvisionReference(paths: string[], resize: number, crop: number | null): Reference[] {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-parity-')), 'ref.bin');
  try {
    execFileSync(PYTHON, [SCRIPT, out], { input: JSON.stringify({ paths, resize, crop }), stdio: ['pipe', 'pipe', 'inherit'] });
    const bytes = fs.readFileSync(out);
    const refs: Reference[] = [];
    let at = 0;
    for (let i = 0; i < paths.length; i++) {
      const width = bytes.readUInt32LE(at);
      const height = bytes.readUInt32LE(at + 4);
      refs.push({ width, height, data: bytes.subarray(at + 8, at + 8 + width * height * 3) });
      at += 8 + width * height * 3;
    }
    expect(at).toBe(bytes.length);
    return refs;
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

/** Mean absolute difference over all values, the worst image's, and the files whose sizes differ. */
async function compare(paths: string[], refs: Reference[], options: DecodeOptions) {
  const per = await mapPool(
    paths,
    async (p, i) => {
      const ours = await decodeImage(p, options);
      const ref = refs[i];
      if (ours.width !== ref.width || ours.height !== ref.height) return { p, sizeMismatch: `${ours.width}x${ours.height} vs ${ref.width}x${ref.height}`, sum: 0, n: 0 };
      let sum = 0;
      for (let k = 0; k < ours.data.length; k++) sum += Math.abs(ours.data[k] - ref.data[k]);
      return { p, sizeMismatch: undefined, sum, n: ours.data.length };
    },
    { concurrency: 8 },
  );
  const total = per.reduce((s, x) => s + x.sum, 0);
  const count = per.reduce((s, x) => s + x.n, 0);
  const worst = per.reduce((w, x) => (x.n && x.sum / x.n > w.mad ? { mad: x.sum / x.n, file: x.p } : w), { mad: 0, file: '' });
  return { mad: total / count, worst, sizeMismatches: per.filter((x) => x.sizeMismatch).map((x) => `${x.p}: ${x.sizeMismatch}`) };
}

parity.describe('decode parity with torchvision (PIL, bilinear with antialias)', () => {
  beforeAll(() => assertPresent(parity));
  const categories = real.categories ?? '';
  // A few dozen real images: the first of every third folder, plus the archive's extremes.
  const paths = (() => {
    if (parity.missing) return [];
    const folders = fs.readdirSync(categories).sort();
    const picked = folders.filter((_, i) => i % 3 === 0).map((c) => path.join(categories, c, fs.readdirSync(path.join(categories, c)).sort()[0]));
    const extremes = ['flamingo/image_0002.jpg', 'ceiling_fan/image_0021.jpg', 'BACKGROUND_Google/image_0273.jpg', 'car_side/image_0001.jpg']
      .map((r) => path.join(categories, r))
      .filter((p) => fs.existsSync(p) && !picked.includes(p));
    return [...picked, ...extremes];
  })();

  test(`eval transform Resize(256) -> CenterCrop(224): same sizes, MAD below 0.3`, async () => {
    const refs = torchvisionReference(paths, 256, 224);
    const r = await compare(paths, refs, { resize: 256, centerCrop: 224 });
    console.log(
      `eval-transform parity over ${paths.length} real images: MAD ${r.mad.toFixed(3)} per value (0-255), ` +
        `worst image ${r.worst.mad.toFixed(3)} (${path.relative(categories, r.worst.file)})`,
    );
    expect(r.sizeMismatches).toEqual([]);
    expect(r.mad).toBeLessThan(0.3);
    expect(r.worst.mad).toBeLessThan(2.5);
  });

  test('train pre-resize Resize(256): same sizes as torchvision, MAD below 0.3', async () => {
    const refs = torchvisionReference(paths, 256, null);
    const r = await compare(paths, refs, { resize: 256 });
    console.log(`train-resize parity over ${paths.length} real images: MAD ${r.mad.toFixed(3)}, worst image ${r.worst.mad.toFixed(3)}`);
    expect(r.sizeMismatches).toEqual([]);
    expect(r.mad).toBeLessThan(0.3);
    expect(r.worst.mad).toBeLessThan(2.5);
  });

  (process.env.PARITY_ALL_KERNELS ? test : test.skip)('every sharp kernel, for the record (PARITY_ALL_KERNELS=1)', async () => {
    const refs = torchvisionReference(paths, 256, 224);
    const lines: string[] = [];
    for (const kernel of RESAMPLE_KERNELS) {
      for (const fastShrinkOnLoad of [false, true]) {
        const r = await compare(paths, refs, { resize: 256, centerCrop: 224, kernel, fastShrinkOnLoad });
        lines.push(`${kernel.padEnd(9)} fastShrinkOnLoad=${String(fastShrinkOnLoad).padEnd(5)} MAD ${r.mad.toFixed(3)}  worst ${r.worst.mad.toFixed(3)}`);
      }
    }
    console.log(`eval-transform MAD per sharp kernel over ${paths.length} images:\n${lines.join('\n')}`);
  });
});
