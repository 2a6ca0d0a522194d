// Decoding image files with sharp into 3-channel RGB uint8, HWC layout.
//
// What every decode does, matching torchvision's `Image.open(f).convert('RGB')` where it matters:
//   - grayscale becomes 3 equal channels, palette images their palette colours;
//   - an alpha channel is dropped without blending (PIL's convert('RGB')), before any resize;
//   - embedded ICC profiles are ignored by default, as PIL does (`iccProfile: 'convert'` converts
//     to sRGB instead); CMYK is converted to sRGB either way;
//   - the EXIF orientation is applied (PIL does not do this by default; a photo taken sideways is
//     shown upright here). `autoOrient: false` turns it off;
//   - BMP (which sharp's libvips cannot read) goes through a small built-in reader;
//   - damaged data (e.g. a truncated JPEG) is an error (`failOn: 'error'`), like PIL's "image file
//     is truncated"; harmless libjpeg warnings such as extraneous bytes before a marker are not.
// Sizes follow torchvision exactly:
//   - Resize(S) with an int: the shorter side becomes S, the longer int(S * long / short)
//     (torchvision 0.14 `_compute_resized_output_size`); an image already that size is untouched;
//   - CenterCrop(C): offsets int(round((dim - C) / 2.0)) with Python's round-half-to-even; a side
//     shorter than C is zero-padded ((C - dim) // 2 before, the rest after) as torchvision does.
// Resampling, compared with torchvision's PIL bilinear (antialiased) on 820 real Caltech-101 images
// (test/data/eval-transform-parity.test.ts): reductions use sharp's resize with the 'linear' kernel
// and fastShrinkOnLoad off, the closest of sharp's kernels; enlargements (half of Caltech-101 is
// smaller than 256 px) use a bilinear affine transform on PIL's pixel-centre grid, because
// sharp's resize enlarges a fraction of a pixel off that grid (mean difference 4.4 instead of
// 0.15). Result: mean absolute difference 0.16 per value (0-255) for Resize(256) -> CenterCrop(224).
// Train images for RandomResizedCrop: `{ resize: null, maxShorterSide: 512 }`, the decoded size
// (torchvision cuts the box from the original and resizes once), capped for memory; without it
// `{ resize: 256, centerCrop: null }` (the centre crop comes at sample time).
// Eval images: `{ resize: 256, centerCrop: 224 }` = torchvision's Resize(256) -> CenterCrop(224).

import { promises as fsp } from 'node:fs';
import sharp from 'sharp';
import type { Sharp, SharpOptions } from 'sharp';
import { boolean, knownKeys, oneOf, plainObject, positiveInteger } from '../utils/validate';
import { decodeBmp } from './bmp';
import { sniffImageFormat } from './formats';
import { mapPool } from './pool';
import { reportSkipped, type SkippedFile, type WarnFn } from './skipped';

export interface DecodedImage {
  /** RGB bytes, row-major, height x width x 3. */
  data: Buffer;
  width: number;
  height: number;
}

export const RESAMPLE_KERNELS = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3', 'mks2013', 'mks2021'] as const;
export type ResampleKernel = (typeof RESAMPLE_KERNELS)[number];

export interface DecodeOptions {
  /** Shorter side after resizing (torchvision Resize(int)); null keeps the decoded size. Default 256. */
  resize?: number | null;
  /**
   * With `resize: null`: an image whose shorter side is longer than this is reduced to it (as
   * Resize(maxShorterSide)); smaller ones keep their decoded size. null: no limit. Default null.
   */
  maxShorterSide?: number | null;
  /** Square centre crop after resizing (torchvision CenterCrop); null for none. Default null. */
  centerCrop?: number | null;
  /** sharp kernel for reductions (enlargements are always bilinear). Default 'linear', measured closest to torchvision's PIL bilinear. */
  kernel?: ResampleKernel;
  /** sharp's JPEG shrink-on-load shortcut for large reductions. Default false (closer to PIL on big photos). */
  fastShrinkOnLoad?: boolean;
  /** Apply the EXIF orientation. Default true. */
  autoOrient?: boolean;
  /** 'ignore' embedded colour profiles like PIL, or 'convert' them to sRGB. Default 'ignore'. */
  iccProfile?: 'ignore' | 'convert';
}

export type NormalizedDecodeOptions = Required<DecodeOptions>;

export const DEFAULT_KERNEL: ResampleKernel = 'linear';

/** Training images: shorter side 256, no crop. */
export const TRAIN_DECODE: Readonly<DecodeOptions> = Object.freeze({ resize: 256, centerCrop: null });
/**
 * Training images for RandomResizedCrop: the decoded size, as torchvision crops from the original
 * image, with the shorter side capped at 512 to bound memory (see lib/data/cache.ts).
 */
export const SOURCE_TRAIN_DECODE: Readonly<DecodeOptions> = Object.freeze({ resize: null, maxShorterSide: 512, centerCrop: null });
/** Evaluation images: torchvision's Resize(256) -> CenterCrop(224). */
export const EVAL_DECODE: Readonly<DecodeOptions> = Object.freeze({ resize: 256, centerCrop: 224 });

const DECODE_KEYS = ['resize', 'maxShorterSide', 'centerCrop', 'kernel', 'fastShrinkOnLoad', 'autoOrient', 'iccProfile'] as const;
const MAX_SIDE = 16384;

/** Validates and fills every default; the result is also what cache keys are made of. */
export function normalizeDecodeOptions(options: DecodeOptions = {}): NormalizedDecodeOptions {
  knownKeys('decode options', plainObject('decode options', options), DECODE_KEYS);
  const side = (name: string, v: unknown, fallback: number | null): number | null => {
    if (v === undefined) return fallback;
    if (v === null) return null;
    positiveInteger(name, v);
    if ((v as number) > MAX_SIDE) throw new TypeError(`Expected integer between 1 and ${MAX_SIDE} for ${name} but received ${v} of type number`);
    return v as number;
  };
  const resize = side('resize', options.resize, 256);
  const maxShorterSide = side('maxShorterSide', options.maxShorterSide, null);
  if (resize !== null && maxShorterSide !== null) {
    throw new TypeError(`Expected resize null with maxShorterSide ${maxShorterSide} (a cap on the decoded size) but received resize ${resize}`);
  }
  return {
    resize,
    maxShorterSide,
    centerCrop: side('centerCrop', options.centerCrop, null),
    kernel: options.kernel === undefined ? DEFAULT_KERNEL : oneOf('kernel', options.kernel, RESAMPLE_KERNELS),
    fastShrinkOnLoad: options.fastShrinkOnLoad === undefined ? false : boolean('fastShrinkOnLoad', options.fastShrinkOnLoad),
    autoOrient: options.autoOrient === undefined ? true : boolean('autoOrient', options.autoOrient),
    iccProfile: options.iccProfile === undefined ? 'ignore' : oneOf('iccProfile', options.iccProfile, ['ignore', 'convert'] as const),
  };
}

/** torchvision 0.14 Resize(int) output size: [width, height]. */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.trunc((size * long) / short); // Python: int(size * long / short)
  return width <= height ? [size, newLong] : [newLong, size];
}

/** Python 3 round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision CenterCrop along one axis: where to start, how much to keep, zero padding before/after. */
export function centerCropAxis(dim: number, crop: number): { offset: number; extent: number; padBefore: number; padAfter: number } {
  if (crop > dim) {
    const padBefore = Math.floor((crop - dim) / 2);
    return { offset: 0, extent: dim, padBefore, padAfter: crop - dim - padBefore };
  }
  return { offset: roundHalfEven((dim - crop) / 2), extent: crop, padBefore: 0, padAfter: 0 };
}

/** The output size `decodeImage` gives for an (oriented) input size. */
export function outputSize(width: number, height: number, options: DecodeOptions = {}): [number, number] {
  const o = normalizeDecodeOptions(options);
  if (o.centerCrop !== null) return [o.centerCrop, o.centerCrop];
  return targetSize(width, height, o);
}

/** The size before any centre crop: Resize(resize), or the decoded size with the shorter side capped. */
function targetSize(width: number, height: number, o: NormalizedDecodeOptions): [number, number] {
  if (o.resize !== null) return resizedSize(width, height, o.resize);
  if (o.maxShorterSide !== null && Math.min(width, height) > o.maxShorterSide) return resizedSize(width, height, o.maxShorterSide);
  return [width, height];
}

export class DecodeError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`Cannot decode '${path}': ${reason}`);
    this.name = 'DecodeError';
  }
}

/** Decodes one image (a file path or the file's bytes) into RGB uint8 HWC. Rejects with DecodeError. */
export async function decodeImage(input: string | Buffer, options: DecodeOptions = {}): Promise<DecodedImage> {
  const o = normalizeDecodeOptions(options);
  const label = typeof input === 'string' ? input : '<buffer>';
  let bytes: Buffer;
  if (typeof input === 'string') {
    try {
      bytes = await fsp.readFile(input);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new DecodeError(label, `unreadable (${err.code ?? err.message})`);
    }
  } else if (Buffer.isBuffer(input)) {
    bytes = input;
  } else {
    throw new TypeError(`Expected string or Buffer for input but received ${typeof input}`);
  }
  if (bytes.length === 0) throw new DecodeError(label, 'empty file (0 bytes)');
  try {
    return await decodeBytes(bytes, o);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError(label, (e as Error).message.split('\n')[0]);
  }
}

async function decodeBytes(bytes: Buffer, o: NormalizedDecodeOptions): Promise<DecodedImage> {
  const format = sniffImageFormat(bytes.subarray(0, 32));
  if (format === undefined) throw new Error('not an image: content is not JPEG, PNG, GIF, WebP, TIFF or BMP');

  let source: Sharp;
  let width: number;
  let height: number;
  const inputOptions: SharpOptions = { failOn: 'error', ignoreIcc: o.iccProfile === 'ignore', autoOrient: o.autoOrient };
  if (format === 'bmp') {
    const raw = decodeBmp(bytes);
    ({ width, height } = raw);
    source = sharp(raw.data, { raw: { width, height, channels: 3 } });
  } else {
    const meta = await sharp(bytes, inputOptions).metadata();
    if (!meta.width || !meta.height) throw new Error('image has no size');
    width = o.autoOrient ? meta.autoOrient.width : meta.width;
    height = o.autoOrient ? meta.autoOrient.height : meta.height;
    if (meta.hasAlpha) {
      // Drop alpha before resizing: sharp would otherwise resize premultiplied colours, PIL's
      // convert('RGB') simply discards the channel first.
      const flat = await rgb(sharp(bytes, inputOptions));
      ({ width, height } = flat);
      source = fromRaw(flat);
    } else {
      source = sharp(bytes, inputOptions);
    }
  }

  const [w, h] = targetSize(width, height, o);
  if (w > MAX_SIDE || h > MAX_SIDE) {
    // An extreme aspect ratio (a few hundred bytes can claim 12x65535 pixels): resizing the shorter
    // side up to `resize` would allocate gigabytes for the longer one before any crop.
    if (w === width && h === height) throw new Error(`${width}x${height} is over ${MAX_SIDE} pixels on a side`);
    throw new Error(`resizing ${width}x${height} to a shorter side of ${Math.min(w, h)} gives ${w}x${h}, over ${MAX_SIDE} pixels on a side`);
  }
  const crop = o.centerCrop === null ? undefined : { x: centerCropAxis(w, o.centerCrop), y: centerCropAxis(h, o.centerCrop) };

  if (w > width || h > height) {
    // Enlarging. libvips' resize samples a fraction of a pixel off PIL's pixel-centre grid when
    // enlarging (a quarter pixel at 2x), so use an affine transform with PIL's centres instead:
    // output pixel X reads input position (X + 0.5) * width / w - 0.5, bilinear, edges repeated
    // (one replicated pixel of padding stands in for PIL's clamped filter window).
    const padded = await rgb(source.extend({ top: 1, bottom: 1, left: 1, right: 1, extendWith: 'copy' }));
    const scaled = await rgb(
      fromRaw(padded).affine([[w / width, 0], [0, h / height]], {
        interpolator: sharp.interpolators.bilinear,
        idx: -0.5,
        idy: -0.5,
        odx: -0.5,
        ody: -0.5,
      }),
    );
    if (scaled.width < w || scaled.height < h) {
      throw new Error(`enlarging produced ${scaled.width}x${scaled.height}, expected at least ${w}x${h}`);
    }
    const x = crop?.x ?? { offset: 0, extent: w, padBefore: 0, padAfter: 0 };
    const y = crop?.y ?? { offset: 0, extent: h, padBefore: 0, padAfter: 0 };
    return cropAndPad(scaled, x, y);
  }

  if (w !== width || h !== height) {
    source = source.resize(w, h, { fit: 'fill', kernel: o.kernel, fastShrinkOnLoad: o.fastShrinkOnLoad });
  }
  let [outW, outH] = [w, h];
  if (crop) {
    const { x, y } = crop;
    if (x.extent !== w || y.extent !== h) {
      source = source.extract({ left: x.offset, top: y.offset, width: x.extent, height: y.extent });
    }
    if (x.padBefore || x.padAfter || y.padBefore || y.padAfter) {
      source = source.extend({
        left: x.padBefore,
        right: x.padAfter,
        top: y.padBefore,
        bottom: y.padAfter,
        background: { r: 0, g: 0, b: 0, alpha: 1 },
      });
    }
    outW = outH = o.centerCrop!;
  }
  const out = await rgb(source);
  if (out.width !== outW || out.height !== outH) {
    throw new Error(`decoder produced ${out.width}x${out.height}, expected ${outW}x${outH}`);
  }
  return out;
}

/** Runs a sharp pipeline to 3-channel sRGB uint8 raw pixels. */
async function rgb(pipeline: Sharp): Promise<DecodedImage> {
  const { data, info } = await pipeline
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new Error(`decoder produced ${info.width}x${info.height}x${info.channels}, expected 3 channels`);
  }
  return { data, width: info.width, height: info.height };
}

function fromRaw(image: DecodedImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

type Axis = ReturnType<typeof centerCropAxis>;

/** Copies the window (x.offset, y.offset, x.extent, y.extent) of an RGB image, zero-padded as given. */
export function cropAndPad(src: DecodedImage, x: Axis, y: Axis): DecodedImage {
  const width = x.padBefore + x.extent + x.padAfter;
  const height = y.padBefore + y.extent + y.padAfter;
  const data = Buffer.alloc(width * height * 3);
  const rowBytes = x.extent * 3;
  for (let r = 0; r < y.extent; r++) {
    const from = ((y.offset + r) * src.width + x.offset) * 3;
    const to = ((y.padBefore + r) * width + x.padBefore) * 3;
    src.data.copy(data, to, from, from + rowBytes);
  }
  return { data, width, height };
}

export interface DecodeManyOptions {
  /** Images decoded at once. sharp runs each on libuv's thread pool (UV_THREADPOOL_SIZE, default 4). Default 8. */
  concurrency?: number;
  /** Throw on the first undecodable file instead of skipping it. Default false. */
  strict?: boolean;
  /** Where the one summary warning goes. Default: process.emitWarning. */
  warn?: WarnFn;
  /** Called after each image with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface DecodeManyResult {
  /** Aligned with the input paths; undefined where the file was skipped. */
  images: (DecodedImage | undefined)[];
  skipped: SkippedFile[];
}

export type Decoder = (path: string, options: NormalizedDecodeOptions) => Promise<DecodedImage>;

/** Decodes many files with a bounded number in flight; undecodable files are skipped and reported once. */
export async function decodeMany(
  paths: readonly string[],
  options: DecodeOptions = {},
  pool: DecodeManyOptions = {},
  decoder: Decoder = decodeImage,
): Promise<DecodeManyResult> {
  const o = normalizeDecodeOptions(options);
  const p = normalizeDecodeManyOptions(pool);
  let done = 0;
  let firstError: DecodeError | undefined;
  const failures: (SkippedFile | undefined)[] = new Array(paths.length);
  const images = await mapPool(
    paths,
    async (file, i) => {
      try {
        return await decoder(file, o);
      } catch (e) {
        const err = e instanceof DecodeError ? e : new DecodeError(file, (e as Error).message);
        firstError ??= err;
        failures[i] = { path: file, reason: err.reason, kind: 'decode-failed' };
        return undefined;
      } finally {
        done++;
        p.onProgress?.(done, paths.length);
      }
    },
    { concurrency: p.concurrency, stop: () => p.strict && firstError !== undefined },
  );
  const skipped = failures.filter((f): f is SkippedFile => f !== undefined);
  reportSkipped(skipped, 'while decoding', { strict: p.strict, warn: p.warn, total: paths.length });
  return { images, skipped };
}

export function normalizeDecodeManyOptions(pool: DecodeManyOptions = {}): Required<Omit<DecodeManyOptions, 'warn' | 'onProgress'>> &
  Pick<DecodeManyOptions, 'warn' | 'onProgress'> {
  knownKeys('decodeMany options', plainObject('decodeMany options', pool), ['concurrency', 'strict', 'warn', 'onProgress']);
  for (const fn of ['warn', 'onProgress'] as const) {
    if (pool[fn] !== undefined && typeof pool[fn] !== 'function') {
      throw new TypeError(`Expected function for ${fn} but received ${typeof pool[fn]}`);
    }
  }
  return {
    concurrency: pool.concurrency === undefined ? 8 : positiveInteger('concurrency', pool.concurrency),
    strict: pool.strict === undefined ? false : boolean('strict', pool.strict),
    warn: pool.warn,
    onProgress: pool.onProgress,
  };
}
