// A small, learnable, Caltech-style image tree for the demo and the tests.
//
//   <dir>/101_ObjectCategories/<class>/image_0001.jpg ...   (layout 'caltech101', the default)
//   <dir>/<class>/image_0001.jpg ...                        (layout 'imagefolder')
//
// Each class is one shape in one colour (stripes, checker board, disc, cross, ring, square,
// diagonal stripes, vertical stripes) on a dark noisy background, with the shape's position, size
// and colour jittered per image and per-pixel noise added: easy to learn, not trivially constant.
// Images vary in aspect ratio. Class names sort like the archive's ('Stripes' before 'checker',
// as 'Faces' comes before 'accordion'). Oddities on request (`extras`): a grayscale class stored
// as single-channel JPEG (like car_side), a BACKGROUND_Google folder, its `tmp` file (a JPEG
// without extension), and a stray non-image file in a class folder.
// Deterministic for a seed.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { Random } from './random';

export interface SyntheticExtras {
  /** Make the class 'gray_ring' single-channel grayscale JPEGs. Default true. */
  grayscale?: boolean;
  /** Images in a BACKGROUND_Google folder (random clutter). Default 0: no folder. */
  background?: number;
  /** Write BACKGROUND_Google/tmp, a JPEG with no extension, as in the real archive. Default false. */
  tmp?: boolean;
  /** Write <first class>/notes.txt, a non-image file. Default false. */
  stray?: boolean;
  /** Store every third image of each colour class as PNG (named .png). Default false. */
  png?: boolean;
}

export interface SyntheticDatasetOptions {
  /** Number of classes, 1 to 8. Default 6. */
  classes?: number;
  /** Images per class. Default 8. */
  perClass?: number;
  /** Shorter side of each image in pixels (the longer one is up to 1.4x). Default 48. */
  size?: number;
  /** Default 0. */
  seed?: number;
  /** Default 'caltech101'. */
  layout?: 'caltech101' | 'imagefolder';
  /** A random foreground colour per image, so classes differ by shape alone (harder). Default false. */
  randomColours?: boolean;
  extras?: SyntheticExtras;
}

export interface SyntheticDataset {
  /** The folder given (pass it to scanDataset). */
  root: string;
  /** The folder holding the class folders. */
  imageRoot: string;
  /** Object classes in sorted order (BACKGROUND_Google not included). */
  classes: string[];
  /** Image files per class (sorted), background included when written. */
  files: Record<string, string[]>;
  /** The grayscale class, when written. */
  grayscaleClass?: string;
  tmp?: string;
  stray?: string;
  /** All image files written, background included. */
  imageCount: number;
}

type Shape = 'hstripes' | 'checker' | 'disc' | 'cross' | 'ring' | 'square' | 'diagonal' | 'vstripes';

const PATTERNS: { name: string; shape: Shape; colour: [number, number, number] }[] = [
  { name: 'Stripes', shape: 'hstripes', colour: [220, 40, 40] },
  { name: 'checker', shape: 'checker', colour: [40, 200, 60] },
  { name: 'circle', shape: 'disc', colour: [50, 80, 230] },
  { name: 'cross', shape: 'cross', colour: [230, 210, 40] },
  { name: 'gray_ring', shape: 'ring', colour: [200, 200, 200] },
  { name: 'square', shape: 'square', colour: [40, 210, 210] },
  { name: 'diagonal', shape: 'diagonal', colour: [210, 50, 200] },
  { name: 'vertical', shape: 'vstripes', colour: [240, 140, 30] },
];

export const SYNTHETIC_CLASS_NAMES = PATTERNS.map((p) => p.name);

export async function createSyntheticDataset(dir: string, options: SyntheticDatasetOptions = {}): Promise<SyntheticDataset> {
  const numClasses = options.classes ?? 6;
  const perClass = options.perClass ?? 8;
  const size = options.size ?? 48;
  const seed = options.seed ?? 0;
  const extras = { grayscale: true, background: 0, tmp: false, stray: false, png: false, ...options.extras };
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > PATTERNS.length) {
    throw new RangeError(`classes must be an integer from 1 to ${PATTERNS.length}, got ${numClasses}`);
  }
  if (!Number.isInteger(perClass) || perClass < 1) throw new RangeError(`perClass must be a positive integer, got ${perClass}`);
  if (!Number.isInteger(size) || size < 8) throw new RangeError(`size must be an integer of at least 8, got ${size}`);

  const imageRoot = options.layout === 'imagefolder' ? dir : path.join(dir, '101_ObjectCategories');
  await fsp.mkdir(imageRoot, { recursive: true });
  const rng = new Random(seed);
  const patterns = PATTERNS.slice(0, numClasses);
  const files: Record<string, string[]> = {};
  let imageCount = 0;
  let grayscaleClass: string | undefined;

  for (const p of patterns) {
    const gray = extras.grayscale && p.shape === 'ring';
    if (gray) grayscaleClass = p.name;
    const folder = path.join(imageRoot, p.name);
    await fsp.mkdir(folder, { recursive: true });
    files[p.name] = [];
    for (let i = 1; i <= perClass; i++) {
      const { width, height } = jitterSize(rng, size);
      const colour: [number, number, number] = options.randomColours ? [rng.uniform(90, 255), rng.uniform(90, 255), rng.uniform(90, 255)] : p.colour;
      const rgb = render(rng, p.shape, colour, width, height);
      const png = extras.png && !gray && i % 3 === 0;
      const file = path.join(folder, `image_${String(i).padStart(4, '0')}.${png ? 'png' : 'jpg'}`);
      await writeImage(file, rgb, width, height, gray ? 'gray' : png ? 'png' : 'jpeg');
      files[p.name].push(file);
      imageCount++;
    }
    files[p.name].sort();
  }

  const result: SyntheticDataset = { root: dir, imageRoot, classes: patterns.map((p) => p.name).sort(cmp), files, grayscaleClass, imageCount };

  if (extras.background > 0 || extras.tmp) {
    const folder = path.join(imageRoot, 'BACKGROUND_Google');
    await fsp.mkdir(folder, { recursive: true });
    files.BACKGROUND_Google = [];
    for (let i = 1; i <= extras.background; i++) {
      const { width, height } = jitterSize(rng, size);
      const file = path.join(folder, `image_${String(i).padStart(4, '0')}.jpg`);
      await writeImage(file, clutter(rng, width, height), width, height, 'jpeg');
      files.BACKGROUND_Google.push(file);
      imageCount++;
    }
    if (extras.tmp) {
      const { width, height } = jitterSize(rng, size);
      const file = path.join(folder, 'tmp');
      await writeImage(file, clutter(rng, width, height), width, height, 'jpeg');
      files.BACKGROUND_Google.push(file);
      result.tmp = file;
      imageCount++;
    }
    files.BACKGROUND_Google.sort();
  }
  if (extras.stray) {
    result.stray = path.join(imageRoot, result.classes[0], 'notes.txt');
    await fsp.writeFile(result.stray, 'These are not the images you are looking for.\n');
  }
  result.imageCount = imageCount;
  return result;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function jitterSize(rng: Random, size: number): { width: number; height: number } {
  const long = Math.round(size * rng.uniform(1, 1.4));
  return rng.next() < 0.5 ? { width: long, height: size } : { width: size, height: long };
}

async function writeImage(file: string, rgb: Buffer, width: number, height: number, kind: 'jpeg' | 'png' | 'gray'): Promise<void> {
  const img = sharp(rgb, { raw: { width, height, channels: 3 } });
  if (kind === 'png') await img.png().toFile(file);
  else if (kind === 'gray') await img.toColourspace('b-w').jpeg({ quality: 90 }).toFile(file);
  else await img.jpeg({ quality: 90 }).toFile(file);
}

function render(rng: Random, shape: Shape, colour: [number, number, number], width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  const s = Math.min(width, height);
  const cx = width * rng.uniform(0.35, 0.65);
  const cy = height * rng.uniform(0.35, 0.65);
  const r = s * rng.uniform(0.25, 0.4);
  const period = Math.max(4, Math.round(s * rng.uniform(0.12, 0.2)));
  const phase = rng.int(period);
  const fg = colour.map((c) => clamp(c + rng.uniform(-25, 25)));
  const bg = [rng.uniform(10, 60), rng.uniform(10, 60), rng.uniform(10, 60)];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const d = Math.sqrt(dx * dx + dy * dy);
      let on: boolean;
      switch (shape) {
        case 'hstripes': on = Math.floor((y + phase) / period) % 2 === 0; break;
        case 'vstripes': on = Math.floor((x + phase) / period) % 2 === 0; break;
        case 'diagonal': on = Math.floor((x + y + phase) / period) % 2 === 0; break;
        case 'checker': on = (Math.floor((x + phase) / period) + Math.floor((y + phase) / period)) % 2 === 0; break;
        case 'disc': on = d < r; break;
        case 'ring': on = d < r && d > r * 0.6; break;
        case 'square': on = Math.abs(dx) < r * 0.8 && Math.abs(dy) < r * 0.8; break;
        case 'cross': on = (Math.abs(dx) < r * 0.25 && Math.abs(dy) < r) || (Math.abs(dy) < r * 0.25 && Math.abs(dx) < r); break;
      }
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = clamp((on ? fg[c] : bg[c]) + rng.normal() * 12);
    }
  }
  return out;
}

function clutter(rng: Random, width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  const base = [rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)];
  for (let i = 0; i < out.length; i++) out[i] = clamp(base[i % 3] + rng.normal() * 40);
  return out;
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}
