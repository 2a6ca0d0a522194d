import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CACHE_MAGIC, ImageCache, loadImageCache, sharedImageCache } from '../../lib/data/cache';
import { decodeImage, DecodeError, EVAL_DECODE, type DecodedImage, type NormalizedDecodeOptions } from '../../lib/data/decode';
import { createSyntheticDataset, type SyntheticDataset } from '../helpers/synthetic-dataset';

let tmp: string;
let ds: SyntheticDataset;
let files: string[];

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'finetorch-cache-'));
  ds = await createSyntheticDataset(path.join(tmp, 'data'), { classes: 3, perClass: 3, size: 20 });
  files = ds.classes.flatMap((c) => ds.files[c]);
});
afterAll(() => fsp.rm(tmp, { recursive: true, force: true }));

/** The real decoder, counting calls per file. */
function countingDecoder(): { decoder: (p: string, o: NormalizedDecodeOptions) => Promise<DecodedImage>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    decoder: (p, o) => {
      calls.push(p);
      return decodeImage(p, o);
    },
  };
}

const SMALL = { resize: 32, centerCrop: 28 };

describe('ImageCache (memory)', () => {
  test('each file is decoded once; repeats and concurrent requests are hits', async () => {
    const { decoder, calls } = countingDecoder();
    const cache = new ImageCache({ decode: SMALL, decoder });
    const [a, b] = await Promise.all([cache.get(files[0]), cache.get(files[0])]);
    const c = await cache.get(files[0]);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(calls).toEqual([files[0]]);
    expect(cache.stats).toEqual({ decodes: 1, hits: 2, loadedFromDisk: 0 });
    await cache.getMany(files, { concurrency: 4 });
    await cache.getMany(files);
    expect(calls.length).toBe(files.length);
    expect(cache.size).toBe(files.length);
    expect(cache.byteLength).toBe(files.length * 28 * 28 * 3);
  });

  test('a failing file fails once and is remembered', async () => {
    const broken = path.join(tmp, 'broken.jpg');
    await fsp.writeFile(broken, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    const { decoder, calls } = countingDecoder();
    const cache = new ImageCache({ decode: SMALL, decoder });
    await expect(cache.get(broken)).rejects.toBeInstanceOf(DecodeError);
    await expect(cache.get(broken)).rejects.toBeInstanceOf(DecodeError);
    expect(calls).toEqual([broken]);
    const warn = jest.fn();
    const { images, skipped } = await cache.getMany([files[0], broken], { warn });
    expect(images[0]).toBeDefined();
    expect(images[1]).toBeUndefined();
    expect(skipped.map((s) => s.path)).toEqual([broken]);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  test('sharedImageCache: one cache per decode setting in the process', () => {
    expect(sharedImageCache(EVAL_DECODE)).toBe(sharedImageCache({ resize: 256, centerCrop: 224, kernel: 'linear' }));
    expect(sharedImageCache(EVAL_DECODE)).not.toBe(sharedImageCache({ resize: 256 }));
  });
});

describe('loadImageCache (disk)', () => {
  test('first run decodes and writes; second run reads the file without decoding; pixels identical', async () => {
    const cacheFile = path.join(tmp, 'c1', 'images.ftcache');
    const first = countingDecoder();
    const r1 = await loadImageCache(files, { decode: SMALL, cacheFile, decoder: first.decoder });
    expect(r1.source).toBe('decoded');
    expect(r1.note).toBe('missing');
    expect(first.calls.length).toBe(files.length);
    const head = await fsp.readFile(cacheFile);
    expect(head.toString('latin1', 0, 8)).toBe(CACHE_MAGIC);

    const second = countingDecoder();
    const r2 = await loadImageCache(files, { decode: SMALL, cacheFile, decoder: second.decoder });
    expect(r2.source).toBe('disk');
    expect(second.calls).toEqual([]);
    expect(r2.cache.stats.loadedFromDisk).toBe(files.length);
    r2.images.forEach((img, i) => {
      expect(img!.width).toBe(28);
      expect(img!.data.equals(r1.images[i]!.data)).toBe(true);
    });
    // the in-memory cache is filled: no decode on get()
    await r2.cache.get(files[2]);
    expect(second.calls).toEqual([]);
  });

  test('changed settings, a changed file or a different file list rebuild the cache', async () => {
    const cacheFile = path.join(tmp, 'c2.ftcache');
    await loadImageCache(files, { decode: SMALL, cacheFile });
    const other = countingDecoder();
    const r1 = await loadImageCache(files, { decode: { resize: 32, centerCrop: 24 }, cacheFile, decoder: other.decoder });
    expect(r1.source).toBe('decoded');
    expect(r1.note).toBe('stale');
    expect(other.calls.length).toBe(files.length);
    // the rewritten file now serves the new settings
    expect((await loadImageCache(files, { decode: { resize: 32, centerCrop: 24 }, cacheFile })).source).toBe('disk');
    // touching a file (new mtime) invalidates
    const later = new Date(Date.now() + 5000);
    await fsp.utimes(files[0], later, later);
    expect((await loadImageCache(files, { decode: { resize: 32, centerCrop: 24 }, cacheFile })).note).toBe('stale');
    // so does a different list
    expect((await loadImageCache(files.slice(1), { decode: { resize: 32, centerCrop: 24 }, cacheFile })).note).toBe('stale');
  });

  test('a corrupt cache file is ignored with a warning and rebuilt, never a crash', async () => {
    const cacheFile = path.join(tmp, 'c3.ftcache');
    await loadImageCache(files, { decode: SMALL, cacheFile });
    const good = await fsp.readFile(cacheFile);
    const headerLength = good.readUInt32LE(8);
    const corruptions: [string, Buffer, RegExp][] = [
      ['truncated pixels', good.subarray(0, good.length - 10), /pixels, expected/],
      ['bad magic', Buffer.concat([Buffer.from('GARBAGE!'), good.subarray(8)]), /bad magic/],
      ['absurd header length', Buffer.concat([good.subarray(0, 8), Buffer.from([0xff, 0xff, 0xff, 0x7f]), good.subarray(12)]), /header length/],
      ['header not JSON', Buffer.concat([good.subarray(0, 12), Buffer.alloc(headerLength, 0x20).fill('{', 0, 1), good.subarray(12 + headerLength)]), /not JSON/],
      ['tiny', Buffer.from('FT'), /shorter than the 12-byte preamble/],
    ];
    for (const [, bytes, why] of corruptions) {
      await fsp.writeFile(cacheFile, bytes);
      const warn = jest.fn();
      const { decoder, calls } = countingDecoder();
      const r = await loadImageCache(files, { decode: SMALL, cacheFile, decoder, warn });
      expect(r.source).toBe('decoded');
      expect(calls.length).toBe(files.length);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(/^Ignoring unusable image cache/);
      expect(warn.mock.calls[0][0]).toMatch(why);
      // and the rebuilt file is good again
      expect((await loadImageCache(files, { decode: SMALL, cacheFile })).source).toBe('disk');
    }
  });

  test('undecodable files are remembered in the cache file and reported on every run', async () => {
    const cut = path.join(tmp, 'cut.jpg');
    const bytes = await fsp.readFile(files[0]);
    await fsp.writeFile(cut, bytes.subarray(0, bytes.length - 100));
    const list = [files[1], cut, files[2]];
    const cacheFile = path.join(tmp, 'c4.ftcache');
    const warn1 = jest.fn();
    const r1 = await loadImageCache(list, { decode: SMALL, cacheFile, warn: warn1 });
    expect(r1.skipped.map((s) => s.path)).toEqual([cut]);
    expect(warn1).toHaveBeenCalledTimes(1);
    const warn2 = jest.fn();
    const { decoder, calls } = countingDecoder();
    const r2 = await loadImageCache(list, { decode: SMALL, cacheFile, warn: warn2, decoder });
    expect(r2.source).toBe('disk');
    expect(calls).toEqual([]);
    expect(r2.images[1]).toBeUndefined();
    expect(r2.skipped.map((s) => s.path)).toEqual([cut]);
    expect(warn2).toHaveBeenCalledTimes(1);
    await expect(loadImageCache(list, { decode: SMALL, cacheFile, strict: true })).rejects.toThrow(/strict mode.*\n.*cut\.jpg/);
  });

  test('an unwritable cache location warns and carries on', async () => {
    const blocker = path.join(tmp, 'not-a-dir');
    await fsp.writeFile(blocker, 'x');
    const warn = jest.fn();
    const r = await loadImageCache(files.slice(0, 2), { decode: SMALL, cacheFile: path.join(blocker, 'c.ftcache'), warn });
    expect(r.images.every(Boolean)).toBe(true);
    expect(r.note).toMatch(/^unwritable/);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/Could not write image cache/);
  });
});
