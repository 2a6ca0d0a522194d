// downloadCaltech101 against a loopback server with a tiny 101_ObjectCategories.tar.gz (3 class
// folders of real JPEGs made by sharp, packed by the tar CLI), the zip wrapper CaltechDATA uses
// (made by Python's zipfile), and hostile tarballs (made by a tar writer below).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { CALTECH101_MARKER, CALTECH101_MD5, CALTECH101_OFFICIAL_ZIP_URL, downloadCaltech101 } from '../../lib/download/caltech101';
import { ChecksumError } from '../../lib/download/fetch-file';
import { extractTarGz, TarError } from '../../lib/download/tar';
import { crc32, listZip } from '../../lib/download/zip';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { serveBytes, startServer, type TestServer } from './server';

jest.setTimeout(60_000);

const FAST = { retryDelayMs: 5, timeoutMs: 5000 };

// The reference for the md5: torchvision's Caltech101 dataset source, where Debian's is installed.
const CALTECH_PY = '/usr/lib/python3/dist-packages/torchvision/datasets/caltech.py';
const torchvisionSource = prerequisite(
  "Debian's torchvision sources",
  fs.existsSync(CALTECH_PY) ? null : `${CALTECH_PY} is absent (apt-get install python3-torchvision)`,
);
const CLASSES: Record<string, number> = { BACKGROUND_Google: 2, Faces: 3, accordion: 2 };

let server: TestServer;
let work: string; // suite-wide scratch folder
let tmp: string; // per-test root
let source: string; // the tree that was packed
let tarball: Buffer;
let tarMd5: string;
let zip: Buffer;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** A ustar header + data, padded; enough to write hostile archives the tar CLI would not. */
function tarEntry(name: string, data: Buffer | string = '', type = '0', options: { linkname?: string; badChecksum?: boolean } = {}): Buffer {
  const body = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(body.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('14000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  if (options.linkname) h.write(options.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  if (options.badChecksum) sum += 1;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad]);
}

const tarEnd = () => Buffer.alloc(1024);

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-c101-'));
  source = path.join(work, 'src');
  let seed = 0;
  for (const [cls, n] of Object.entries(CLASSES)) {
    const dir = path.join(source, '101_ObjectCategories', cls);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 1; i <= n; i++) {
      seed++;
      const jpeg = await sharp({ create: { width: 40 + seed, height: 30, channels: 3, background: { r: 20 * seed, g: 100, b: 255 - 20 * seed } } })
        .jpeg({ quality: 80 })
        .toBuffer();
      fs.writeFileSync(path.join(dir, `image_${String(i).padStart(4, '0')}.jpg`), jpeg);
    }
  }
  // The real archive's BACKGROUND_Google has a JPEG called `tmp`.
  fs.copyFileSync(path.join(source, '101_ObjectCategories/BACKGROUND_Google/image_0001.jpg'), path.join(source, '101_ObjectCategories/BACKGROUND_Google/tmp'));
  const tarPath = path.join(work, '101_ObjectCategories.tar.gz');
  const packed = spawnSync('tar', ['-czf', tarPath, '-C', source, '101_ObjectCategories'], { encoding: 'utf8', timeout: 30_000 });
  if (packed.status !== 0) throw new Error(`tar failed: ${packed.stderr}`);
  tarball = fs.readFileSync(tarPath);
  tarMd5 = md5(tarball);

  // CaltechDATA's layout: caltech-101/101_ObjectCategories.tar.gz, plus macOS shadows and the annotations.
  const zipPath = path.join(work, 'caltech-101.zip');
  const script = [
    'import sys, zipfile',
    'tar, out = sys.argv[1], sys.argv[2]',
    'with zipfile.ZipFile(out, "w") as z:',
    '    z.writestr("caltech-101/", b"")',
    '    z.writestr("__MACOSX/caltech-101/._101_ObjectCategories.tar.gz", b"\\x00\\x05\\x16\\x07 apple double", zipfile.ZIP_DEFLATED)',
    '    z.write(tar, "caltech-101/101_ObjectCategories.tar.gz", zipfile.ZIP_DEFLATED)',
    '    z.writestr("caltech-101/Annotations.tar", b"not used" * 100, zipfile.ZIP_STORED)',
    '    z.writestr("caltech-101/show_annotation.m", b"% matlab", zipfile.ZIP_DEFLATED)',
  ].join('\n');
  const zipped = spawnSync('/usr/bin/python3', ['-c', script, tarPath, zipPath], { encoding: 'utf8', timeout: 30_000 });
  if (zipped.status !== 0) throw new Error(`zip failed: ${zipped.stderr}`);
  zip = fs.readFileSync(zipPath);

  server = await startServer();
  server.route('/101_ObjectCategories.tar.gz', serveBytes(tarball));
  server.route('/records/x/files/caltech-101.zip', serveBytes(zip));
  server.route('/evil.tar.gz', serveBytes(gzipSync(Buffer.concat([
    tarEntry('101_ObjectCategories/', '', '5'),
    tarEntry('101_ObjectCategories/Faces/image_0001.jpg', 'x'),
    tarEntry('101_ObjectCategories/../../evil', 'pwned'),
    tarEnd(),
  ]))));
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(work, 'root-'));
});

/** Relative paths of all files under dir, sorted. */
function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}

describe('downloadCaltech101', () => {
  test('constants are torchvision 0.14\'s md5 and the official CaltechDATA URL', () => {
    expect(CALTECH101_MD5).toBe('b224c7392d521a49829488ab0f1120d9');
    expect(CALTECH101_OFFICIAL_ZIP_URL).toBe('https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip');
  });

  torchvisionSource.test('the md5 is the one in Debian torchvision sources', () => {
    assertPresent(torchvisionSource);
    const md5InSource = /filename="101_ObjectCategories\.tar\.gz",\s*md5="([0-9a-f]{32})"/.exec(fs.readFileSync(CALTECH_PY, 'utf8'))?.[1];
    expect(md5InSource).toBe(CALTECH101_MD5);
  });

  test('downloads the tar.gz (md5 checked), unpacks <root>/101_ObjectCategories, and skips the work next time', async () => {
    const before = server.hitsFor('/101_ObjectCategories.tar.gz').length;
    const result = await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), md5: tarMd5, ...FAST });
    const folder = path.join(tmp, '101_ObjectCategories');
    expect(result).toEqual({
      path: folder, archive: path.join(tmp, '101_ObjectCategories.tar.gz'), downloaded: true, extracted: true, classes: 3, files: 8,
    });
    const expected = walk(path.join(source, '101_ObjectCategories'));
    expect(walk(folder).filter((f) => f !== CALTECH101_MARKER)).toEqual(expected);
    expect(expected).toContain('Faces/image_0003.jpg');
    for (const f of expected) {
      expect(fs.readFileSync(path.join(folder, f)).equals(fs.readFileSync(path.join(source, '101_ObjectCategories', f)))).toBe(true);
    }
    const meta = await sharp(path.join(folder, 'accordion/image_0001.jpg')).metadata();
    expect(meta.format).toBe('jpeg');
    // Nothing else left behind: no .part, no temporary folder.
    expect(fs.readdirSync(tmp).sort()).toEqual(['101_ObjectCategories', '101_ObjectCategories.tar.gz']);
    expect(JSON.parse(fs.readFileSync(path.join(folder, CALTECH101_MARKER), 'utf8'))).toMatchObject({ md5: tarMd5, files: 8 });
    expect(server.hitsFor('/101_ObjectCategories.tar.gz').length - before).toBe(1);

    const again = await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), md5: tarMd5, ...FAST });
    expect(again).toMatchObject({ downloaded: false, extracted: false, classes: 3, files: 8 });
    expect(server.hitsFor('/101_ObjectCategories.tar.gz').length - before).toBe(1);
  });

  test('an archive already in root is verified and unpacked without a request', async () => {
    fs.writeFileSync(path.join(tmp, '101_ObjectCategories.tar.gz'), tarball);
    const before = server.hits.length;
    const result = await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), md5: tarMd5, keepArchive: false });
    expect(result).toMatchObject({ downloaded: false, extracted: true, classes: 3, archive: null });
    expect(server.hits.length).toBe(before);
    expect(fs.readdirSync(tmp)).toEqual(['101_ObjectCategories']);
  });

  test('a folder unpacked by someone else (torchvision) is accepted as it is; force re-extracts', async () => {
    fs.mkdirSync(path.join(tmp, '101_ObjectCategories', 'Faces'), { recursive: true });
    fs.writeFileSync(path.join(tmp, '101_ObjectCategories', 'Faces', 'old.jpg'), 'x');
    const before = server.hits.length;
    const kept = await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), md5: tarMd5 });
    expect(kept).toMatchObject({ downloaded: false, extracted: false, classes: 1, files: undefined, archive: null });
    expect(server.hits.length).toBe(before);
    const forced = await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), md5: tarMd5, force: true, ...FAST });
    expect(forced).toMatchObject({ downloaded: true, extracted: true, classes: 3 });
    expect(fs.existsSync(path.join(tmp, '101_ObjectCategories', 'Faces', 'old.jpg'))).toBe(false);
    expect(fs.readdirSync(tmp).sort()).toEqual(['101_ObjectCategories', '101_ObjectCategories.tar.gz']);
  });

  test('a wrong md5 fails before anything is unpacked and leaves nothing behind', async () => {
    const error = (await downloadCaltech101(tmp, { url: server.url('/101_ObjectCategories.tar.gz'), ...FAST }).catch((e) => e)) as Error;
    expect(error).toBeInstanceOf(ChecksumError);
    expect(error.message).toContain(`expected md5 ${CALTECH101_MD5}, got ${tarMd5}`);
    expect(error.message).toContain(path.join(tmp, '101_ObjectCategories.tar.gz'));
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  test('takes the tar.gz out of the CaltechDATA zip wrapper, checks its md5, then drops the zip', async () => {
    const entries = await listZip(await (async () => {
      const p = path.join(tmp, 'peek.zip');
      fs.writeFileSync(p, zip);
      return p;
    })());
    fs.rmSync(path.join(tmp, 'peek.zip'));
    expect(entries.map((e) => e.name)).toContain('caltech-101/101_ObjectCategories.tar.gz');
    expect(entries.find((e) => e.name === 'caltech-101/101_ObjectCategories.tar.gz')).toMatchObject({ method: 8, crc32: crc32(tarball), size: tarball.length });

    const result = await downloadCaltech101(tmp, { url: server.url('/records/x/files/caltech-101.zip'), md5: tarMd5, ...FAST });
    expect(result).toMatchObject({ downloaded: true, extracted: true, classes: 3, files: 8 });
    expect(fs.readdirSync(tmp).sort()).toEqual(['101_ObjectCategories', '101_ObjectCategories.tar.gz']);
    expect(fs.readFileSync(path.join(tmp, '101_ObjectCategories.tar.gz')).equals(tarball)).toBe(true);

    // The same zip with the wrong md5 for the inner tar.gz: refused, nothing unpacked.
    const other = fs.mkdtempSync(path.join(work, 'root-'));
    await expect(
      downloadCaltech101(other, { url: server.url('/records/x/files/caltech-101.zip'), md5: '0'.repeat(32), ...FAST }),
    ).rejects.toThrow(`expected md5 ${'0'.repeat(32)}, got ${tarMd5}`);
    expect(fs.readdirSync(other)).toEqual(['caltech-101.zip']);
  });

  test('a tarball with a ../ entry is refused and nothing escapes root', async () => {
    const root = path.join(tmp, 'a', 'b');
    await expect(downloadCaltech101(root, { url: server.url('/evil.tar.gz'), md5: null, ...FAST })).rejects.toThrow(
      "refusing entry '101_ObjectCategories/../../evil'",
    );
    expect(fs.existsSync(path.join(tmp, 'a', 'evil'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'evil'))).toBe(false);
    expect(fs.readdirSync(root)).toEqual(['101_ObjectCategories.tar.gz']); // no folder, no temporary folder
  });

  test('options are checked, sharp-style', async () => {
    await expect(downloadCaltech101(tmp, { md5: 'nope' })).rejects.toThrow(
      "Expected a string of 32 hex digits or null for md5 but received 'nope' of type string",
    );
    await expect(downloadCaltech101(tmp, { url: 'file:///etc/passwd' })).rejects.toThrow(/Expected an http or https URL for url/);
    await expect(downloadCaltech101(tmp, { frce: true } as never)).rejects.toThrow(/Unknown option 'frce'.*did you mean 'force'/);
  });
});

describe('tar reader', () => {
  async function extract(entries: Buffer[], gz = true, options = {}): Promise<{ dest: string; run: Promise<unknown> }> {
    const file = path.join(tmp, 'x.tar.gz');
    const raw = Buffer.concat(entries);
    fs.writeFileSync(file, gz ? gzipSync(raw) : raw);
    const dest = path.join(tmp, 'out');
    return { dest, run: extractTarGz(file, dest, options) };
  }

  // An absolute name of this run's own (tmp is made fresh for each test), so nothing left over from
  // another run can make it pass or fail; test.each's table is built before tmp exists, hence the function.
  const absolute = () => path.join(tmp, 'abs', 'evil');
  test.each([
    ['absolute paths', () => [tarEntry(absolute(), 'x')], /absolute path/],
    ['.. components', () => [tarEntry('a/../../evil', 'x')], /'\.\.' would escape the destination/],
    ['symbolic links', () => [tarEntry('link', '', '2', { linkname: '/etc/passwd' })], /refusing symbolic link 'link'/],
    ['hard links', () => [tarEntry('hard', '', '1', { linkname: 'a' })], /refusing hard link 'hard'/],
    ['devices', () => [tarEntry('dev', '', '3')], /refusing character device 'dev'/],
    ['bad header checksums', () => [tarEntry('a.jpg', 'x', '0', { badChecksum: true })], /bad header checksum at byte 0/],
    ['truncated data', () => [tarEntry('a.jpg', Buffer.alloc(2000)).subarray(0, 1024)], /truncated inside 'a\.jpg' \(512 of 2000 bytes\)/],
  ])('refuses %s', async (_what, entries, message) => {
    expect(Buffer.byteLength(absolute())).toBeLessThanOrEqual(100); // fits a ustar name field whole
    const { dest, run } = await extract(entries());
    await expect(run).rejects.toThrow(message);
    await expect(run).rejects.toBeInstanceOf(TarError);
    expect(fs.existsSync(path.join(tmp, 'evil'))).toBe(false);
    expect(fs.existsSync(absolute())).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'abs'))).toBe(false);
    expect(fs.existsSync(path.join(dest, 'link'))).toBe(false);
  });

  test('a missing archive is an ENOENT error, not a hang', async () => {
    await expect(extractTarGz(path.join(tmp, 'nope.tar.gz'), path.join(tmp, 'out'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('refuses a file that is not gzip, and archives over maxBytes', async () => {
    const { run } = await extract([tarEntry('a', 'x'), tarEnd()], false);
    await expect(run).rejects.toThrow(/is not a valid gzip file/);
    const big = await extract([tarEntry('a', Buffer.alloc(4000)), tarEnd()], true, { maxBytes: 1000 });
    await expect(big.run).rejects.toThrow(/unpacks to more than 1000 bytes \(at 'a'\)/);
  });

  test('reads GNU, ustar and pax archives from the tar CLI, long names included', async () => {
    const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(80)}.jpg`; // 205 characters
    const srcDir = path.join(tmp, 'src');
    fs.mkdirSync(path.dirname(path.join(srcDir, long)), { recursive: true });
    fs.writeFileSync(path.join(srcDir, long), 'long');
    fs.writeFileSync(path.join(srcDir, 'ünïcode.jpg'), 'u');
    fs.mkdirSync(path.join(srcDir, 'empty'));
    for (const format of ['gnu', 'ustar', 'pax']) {
      const file = path.join(tmp, `${format}.tar.gz`);
      const made = spawnSync('tar', [`--format=${format}`, '-czf', file, '-C', srcDir, '.'], { encoding: 'utf8' });
      // gnu: an 'L' long-name record; ustar: the name split over the prefix and name fields;
      // pax: an 'x' record with path=.
      expect(made.status).toBe(0);
      const dest = path.join(tmp, `out-${format}`);
      const result = await extractTarGz(file, dest);
      expect(fs.readFileSync(path.join(dest, 'ünïcode.jpg'), 'utf8')).toBe('u');
      expect(fs.statSync(path.join(dest, 'empty')).isDirectory()).toBe(true);
      expect(fs.readFileSync(path.join(dest, long), 'utf8')).toBe('long');
      expect(result.files).toBe(2);
    }
  });
});
