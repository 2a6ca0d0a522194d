// Decode once: an in-memory cache of decoded images, and an optional cache file reused across runs.
//
// In memory: `ImageCache.get(path)` decodes a file the first time it is asked for and returns the
// same pixels afterwards; concurrent requests for one path share one decode; a file that fails to
// decode fails once (the error is remembered, not retried). Memory: about width*height*3 bytes per
// image (Caltech-101 at 256 px shorter side: ~2.2 GB for all 9144 images; at 224x224: ~1.4 GB).
// The RandomResizedCrop training set (30 per class x 101 classes = 3030 images) at its decoded
// size, shorter side capped at train_max_side 512: ~0.64 GB (206 KB per image), against 0.81 GB
// decoded at resize 256 and 0.20 GB at 128 (a 112² run) before crops came from the original.
// Caltech-101's photos are small (shorter sides 80-367 px in caltech101-mini, median 230; none
// over the cap), so Resize(256) enlarged most of them. Method: each decode's size rule applied to
// the EXIF-oriented sizes of caltech101-mini's 810 images of the 101 classes (the first 8 of each),
// mean bytes per image x 3030. The cap bounds other datasets: a 4000x3000 photo is 36 MB decoded,
// 1.0 MB at 512.
//
// On disk (`loadImageCache(paths, { cacheFile })`): one file,
//   bytes 0-7    magic "FTIMGC01"
//   bytes 8-11   header length N, uint32 little-endian
//   bytes 12..   N bytes of UTF-8 JSON header:
//                { format, version, key, decode, entries: [[path, width, height], ...], skipped: [...], dataBytes }
//   then         the pixels of each entry in order, width*height*3 bytes each (RGB, HWC), nothing else.
// `key` is a SHA-256 over (format version, decode settings, sharp and libvips versions, and each
// file's path, size and mtime, in order). A different key means the inputs changed: the cache is
// rebuilt and rewritten. A file that cannot be trusted (bad magic, sizes that do not add up,
// unparsable header, short read) is ignored with one warning and rebuilt; it never crashes a run.
// All lengths are checked against the file size before anything is allocated. Writes go to a
// temporary file renamed into place, so a killed run leaves no half-written cache behind.

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { knownKeys, plainObject } from '../utils/validate';
import {
  decodeImage,
  DecodeError,
  normalizeDecodeManyOptions,
  normalizeDecodeOptions,
  type DecodedImage,
  type DecodeManyOptions,
  type DecodeOptions,
  type Decoder,
  type NormalizedDecodeOptions,
} from './decode';
import { mapPool } from './pool';
import { defaultWarn, reportSkipped, type SkippedFile } from './skipped';

export const CACHE_MAGIC = 'FTIMGC01';
export const CACHE_FORMAT = 'finetorch-image-cache';
export const CACHE_VERSION = 1;
const MAX_HEADER_BYTES = 256 * 1024 * 1024;
const MAX_SIDE = 65535;
const SLAB_BYTES = 64 * 1024 * 1024;

export interface CacheStats {
  /** Files actually decoded (successfully or not). */
  decodes: number;
  /** Requests answered from memory (including ones that joined a decode in flight). */
  hits: number;
  /** Images taken from a cache file. */
  loadedFromDisk: number;
}

export interface ImageCacheOptions {
  decode?: DecodeOptions;
  /** Replaces the sharp decoder (tests count calls with it; other pipelines may plug in theirs). */
  decoder?: Decoder;
}

export class ImageCache {
  readonly decodeOptions: NormalizedDecodeOptions;
  readonly stats: CacheStats = { decodes: 0, hits: 0, loadedFromDisk: 0 };
  private readonly decoder: Decoder;
  private readonly entries = new Map<string, Promise<DecodedImage>>();
  private readonly ready = new Map<string, DecodedImage>();
  private bytes = 0;

  constructor(options: ImageCacheOptions = {}) {
    knownKeys('ImageCache options', plainObject('ImageCache options', options), ['decode', 'decoder']);
    this.decodeOptions = normalizeDecodeOptions(options.decode ?? {});
    if (options.decoder !== undefined && typeof options.decoder !== 'function') {
      throw new TypeError(`Expected function for decoder but received ${typeof options.decoder}`);
    }
    this.decoder = options.decoder ?? decodeImage;
  }

  /** The decoded image; decodes on first use only. Rejects with DecodeError for an unusable file. */
  get(file: string): Promise<DecodedImage> {
    const known = this.entries.get(file);
    if (known) {
      this.stats.hits++;
      return known;
    }
    this.stats.decodes++;
    const pending = this.decoder(file, this.decodeOptions).then(
      (image) => {
        this.ready.set(file, image);
        this.bytes += image.data.length;
        return image;
      },
      (e: unknown) => {
        throw e instanceof DecodeError ? e : new DecodeError(file, (e as Error)?.message ?? String(e));
      },
    );
    pending.catch(() => undefined); // remembered failures must not count as unhandled
    this.entries.set(file, pending);
    return pending;
  }

  /** The image if it is already decoded, without decoding. */
  peek(file: string): DecodedImage | undefined {
    return this.ready.get(file);
  }

  has(file: string): boolean {
    return this.ready.has(file);
  }

  /** Puts an already decoded image in the cache (used when loading a cache file). */
  set(file: string, image: DecodedImage): void {
    const old = this.ready.get(file);
    if (old) this.bytes -= old.data.length;
    this.ready.set(file, image);
    this.entries.set(file, Promise.resolve(image));
    this.bytes += image.data.length;
  }

  /** Decoded images held. */
  get size(): number {
    return this.ready.size;
  }

  /** Pixel bytes held. */
  get byteLength(): number {
    return this.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.ready.clear();
    this.bytes = 0;
  }

  /** Many images with a bounded number of decodes in flight; unusable files are skipped and reported once. */
  async getMany(files: readonly string[], options: DecodeManyOptions = {}): Promise<{ images: (DecodedImage | undefined)[]; skipped: SkippedFile[] }> {
    const p = normalizeDecodeManyOptions(options);
    let done = 0;
    let failed = false;
    const skipped: (SkippedFile | undefined)[] = new Array(files.length);
    const images = await mapPool(
      files,
      async (file, i) => {
        try {
          return await this.get(file);
        } catch (e) {
          failed = true;
          skipped[i] = { path: file, reason: (e as DecodeError).reason ?? String(e), kind: 'decode-failed' };
          return undefined;
        } finally {
          p.onProgress?.(++done, files.length);
        }
      },
      { concurrency: p.concurrency, stop: () => p.strict && failed },
    );
    const list = skipped.filter((s): s is SkippedFile => s !== undefined);
    reportSkipped(list, 'while decoding', { strict: p.strict, warn: p.warn, total: files.length });
    return { images, skipped: list };
  }
}

const shared = new Map<string, ImageCache>();

/** One process-wide ImageCache per decode setting, so separate consumers decode each file once. */
export function sharedImageCache(decode: DecodeOptions = {}): ImageCache {
  const options = normalizeDecodeOptions(decode);
  const key = JSON.stringify(options);
  let cache = shared.get(key);
  if (!cache) {
    cache = new ImageCache({ decode: options });
    shared.set(key, cache);
  }
  return cache;
}

/** The cache key of a list of files under decode settings (see the file comment). */
export async function cacheKey(files: readonly string[], decode: DecodeOptions = {}): Promise<string> {
  const options = normalizeDecodeOptions(decode);
  const stats = await mapPool(
    files,
    async (f) => {
      try {
        const st = await fsp.stat(f);
        return [f, st.size, st.mtimeMs] as const;
      } catch {
        return [f, -1, -1] as const;
      }
    },
    { concurrency: 32 },
  );
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: CACHE_FORMAT, version: CACHE_VERSION, decode: options, sharp: sharp.versions.sharp, vips: sharp.versions.vips }));
  for (const [f, size, mtime] of stats) hash.update(`\n${f}\0${size}\0${mtime}`);
  return hash.digest('hex');
}

export interface LoadImageCacheOptions extends DecodeManyOptions {
  decode?: DecodeOptions;
  /** Cache file to reuse and (re)write. Without it the cache lives in memory only. */
  cacheFile?: string;
  /** An existing in-memory cache to fill (its decode settings win over `decode`). */
  cache?: ImageCache;
  decoder?: Decoder;
}

export interface LoadedImages {
  cache: ImageCache;
  /** Aligned with the requested paths; undefined where a file was skipped. */
  images: (DecodedImage | undefined)[];
  skipped: SkippedFile[];
  /** 'disk': every image came from the cache file; 'decoded': decoded now (and written when cacheFile is set). */
  source: 'disk' | 'decoded';
  /** Why the cache file was not used: 'missing', 'stale' (inputs changed), 'corrupt: ...', 'unwritable: ...'. */
  note?: string;
}

/**
 * Decodes every file once, reusing `cacheFile` when it matches the files and settings, and
 * rewriting it when it does not. Unusable files are skipped with one warning (or throw in strict mode).
 */
export async function loadImageCache(files: readonly string[], options: LoadImageCacheOptions = {}): Promise<LoadedImages> {
  knownKeys('loadImageCache options', plainObject('loadImageCache options', options), [
    'decode', 'cacheFile', 'cache', 'decoder', 'concurrency', 'strict', 'warn', 'onProgress',
  ]);
  const cache = options.cache ?? new ImageCache({ decode: options.decode, decoder: options.decoder });
  const pool = normalizeDecodeManyOptions({ concurrency: options.concurrency, strict: options.strict, warn: options.warn, onProgress: options.onProgress });
  const warn = pool.warn ?? defaultWarn;

  let note: string | undefined;
  let key: string | undefined;
  if (options.cacheFile !== undefined) {
    key = await cacheKey(files, cache.decodeOptions);
    const read = await readCacheFile(options.cacheFile, key, files);
    if (read.ok) {
      for (const [file, image] of read.images) cache.set(file, image);
      cache.stats.loadedFromDisk += read.images.size;
      const images = files.map((f) => read.images.get(f));
      reportSkipped(read.skipped, 'while decoding (remembered by the image cache)', { strict: pool.strict, warn, total: files.length });
      return { cache, images, skipped: read.skipped, source: 'disk' };
    }
    note = read.why;
    if (read.corrupt) warn(`Ignoring unusable image cache '${options.cacheFile}' (${read.why}); rebuilding it.`);
  }

  const { images, skipped } = await cache.getMany(files, { ...pool, warn });
  if (options.cacheFile !== undefined && key !== undefined) {
    try {
      await writeCacheFile(options.cacheFile, key, cache.decodeOptions, files, images, skipped);
    } catch (e) {
      note = `unwritable: ${(e as Error).message}`;
      warn(`Could not write image cache '${options.cacheFile}': ${(e as Error).message}; continuing without it.`);
    }
  }
  return { cache, images, skipped, source: 'decoded', note };
}

interface CacheHeader {
  format: string;
  version: number;
  key: string;
  decode: NormalizedDecodeOptions;
  entries: [string, number, number][];
  skipped: SkippedFile[];
  dataBytes: number;
}

export async function writeCacheFile(
  file: string,
  key: string,
  decode: NormalizedDecodeOptions,
  files: readonly string[],
  images: readonly (DecodedImage | undefined)[],
  skipped: readonly SkippedFile[],
): Promise<void> {
  const entries: [string, number, number][] = [];
  const pixels: Buffer[] = [];
  let dataBytes = 0;
  files.forEach((f, i) => {
    const image = images[i];
    if (!image) return;
    entries.push([f, image.width, image.height]);
    pixels.push(image.data);
    dataBytes += image.data.length;
  });
  const header: CacheHeader = { format: CACHE_FORMAT, version: CACHE_VERSION, key, decode, entries, skipped: skipped.slice(), dataBytes };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(CACHE_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);

  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const handle = await fsp.open(tmp, 'w');
  try {
    await handle.writev([prefix, json]);
    for (let i = 0; i < pixels.length; i += 256) await handle.writev(pixels.slice(i, i + 256));
    await handle.close();
    await fsp.rename(tmp, file);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

export type CacheReadResult =
  | { ok: true; images: Map<string, DecodedImage>; skipped: SkippedFile[] }
  | { ok: false; corrupt: boolean; why: string };

/**
 * Reads a cache file. `ok: false, corrupt: false` when it is missing or stale (key differs);
 * `corrupt: true` when it cannot be trusted. Never throws for bad content.
 */
export async function readCacheFile(file: string, expectedKey: string, files: readonly string[]): Promise<CacheReadResult> {
  const corrupt = (why: string): CacheReadResult => ({ ok: false, corrupt: true, why });
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? { ok: false, corrupt: false, why: 'missing' } : corrupt(`cannot open: ${code ?? (e as Error).message}`);
  }
  try {
    const size = (await handle.stat()).size;
    if (size < 12) return corrupt(`${size} bytes, shorter than the 12-byte preamble`);
    const prefix = Buffer.alloc(12);
    if ((await handle.read(prefix, 0, 12, 0)).bytesRead !== 12) return corrupt('short read');
    if (prefix.toString('latin1', 0, 8) !== CACHE_MAGIC) return corrupt('not a finetorch image cache (bad magic)');
    const headerBytes = prefix.readUInt32LE(8);
    if (headerBytes > size - 12 || headerBytes > MAX_HEADER_BYTES) return corrupt(`header length ${headerBytes} does not fit in ${size} bytes`);
    const json = Buffer.alloc(headerBytes);
    if ((await handle.read(json, 0, headerBytes, 12)).bytesRead !== headerBytes) return corrupt('short read of the header');
    let header: CacheHeader;
    try {
      header = JSON.parse(json.toString('utf8')) as CacheHeader;
    } catch (e) {
      return corrupt(`header is not JSON (${(e as Error).message})`);
    }
    const problem = checkHeader(header, size - 12 - headerBytes);
    if (problem) return corrupt(problem);
    if (header.key !== expectedKey) return { ok: false, corrupt: false, why: 'stale' };
    // The key covers the file list, so a matching key with a different list means a damaged header.
    const listed = new Set([...header.entries.map((e) => e[0]), ...header.skipped.map((s) => s.path)]);
    const wanted = new Set(files);
    if (listed.size !== wanted.size || [...wanted].some((f) => !listed.has(f))) return corrupt('entries do not match the key');

    const images = new Map<string, DecodedImage>();
    let position = 12 + headerBytes;
    let slab = Buffer.alloc(0);
    let slabUsed = 0;
    for (let i = 0; i < header.entries.length; i++) {
      const [name, width, height] = header.entries[i];
      const n = width * height * 3;
      if (slabUsed + n > slab.length) {
        // Read the next run of whole images into one slab (fewer reads than one per image).
        let want = 0;
        for (let j = i; j < header.entries.length; j++) {
          const m = header.entries[j][1] * header.entries[j][2] * 3;
          if (want > 0 && want + m > SLAB_BYTES) break;
          want += m;
        }
        slab = Buffer.allocUnsafe(want);
        slabUsed = 0;
        let got = 0;
        while (got < want) {
          const { bytesRead } = await handle.read(slab, got, want - got, position + got);
          if (bytesRead === 0) return corrupt('pixel data is shorter than the header says');
          got += bytesRead;
        }
        position += want;
      }
      images.set(name, { data: slab.subarray(slabUsed, slabUsed + n), width, height });
      slabUsed += n;
    }
    const skipped = header.skipped.map((x) => ({ path: x.path, reason: x.reason, kind: 'decode-failed' as const }));
    return { ok: true, images, skipped };
  } catch (e) {
    return corrupt(`read failed: ${(e as Error).message}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** What is wrong with a parsed header, or undefined. `available` is the byte count after the header. */
function checkHeader(h: CacheHeader, available: number): string | undefined {
  if (typeof h !== 'object' || h === null) return 'header is not an object';
  if (h.format !== CACHE_FORMAT) return `format '${String(h.format)}'`;
  if (h.version !== CACHE_VERSION) return `version ${String(h.version)}, expected ${CACHE_VERSION}`;
  if (typeof h.key !== 'string') return 'no key';
  if (!Array.isArray(h.entries) || !Array.isArray(h.skipped)) return 'entries or skipped missing';
  let total = 0;
  for (const e of h.entries) {
    if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string') return 'malformed entry';
    const [, w, hgt] = e;
    if (!Number.isInteger(w) || !Number.isInteger(hgt) || w < 1 || hgt < 1 || w > MAX_SIDE || hgt > MAX_SIDE) return `bad size ${w}x${hgt} for ${e[0]}`;
    total += w * hgt * 3;
  }
  for (const s of h.skipped) {
    if (typeof s !== 'object' || s === null || typeof s.path !== 'string' || typeof s.reason !== 'string') return 'malformed skipped entry';
  }
  if (total !== h.dataBytes) return `entries need ${total} bytes but the header says ${h.dataBytes}`;
  if (total !== available) return `file holds ${available} bytes of pixels, expected ${total}`;
  return undefined;
}
