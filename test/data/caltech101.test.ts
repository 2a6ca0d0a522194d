import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scanDataset, withoutSkipped, countPerClass, BACKGROUND_CLASS } from '../../lib/data/caltech101';
import { sniffImageFormat } from '../../lib/data/formats';
import { createSyntheticDataset, type SyntheticDataset } from '../helpers/synthetic-dataset';

let tmp: string;
let ds: SyntheticDataset;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'finetorch-scan-'));
  ds = await createSyntheticDataset(path.join(tmp, 'caltech'), {
    classes: 6,
    perClass: 5,
    size: 24,
    extras: { background: 3, tmp: true, stray: true, png: true },
  });
});

afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('scanDataset on the synthetic Caltech tree', () => {
  test('classes are the sorted folder names without the background, labels dense', async () => {
    const warn = jest.fn();
    const scan = await scanDataset(ds.root, { warn });
    expect(scan.layout).toBe('caltech101');
    expect(scan.root).toBe(ds.imageRoot);
    expect(scan.classes).toEqual(['Stripes', 'checker', 'circle', 'cross', 'gray_ring', 'square']);
    expect(scan.classes).not.toContain(BACKGROUND_CLASS);
    expect(countPerClass(scan.samples, scan.classes.length)).toEqual([5, 5, 5, 5, 5, 5]);
    // file order within a class is sorted, and labels follow class order
    const checker = scan.samples.filter((s) => s.label === 1).map((s) => path.basename(s.path));
    expect(checker).toEqual([...checker].sort());
    expect(scan.samples.map((s) => s.label)).toEqual([...scan.samples.map((s) => s.label)].sort((a, b) => a - b));
    // PNGs are recognised too
    expect(scan.samples.some((s) => s.path.endsWith('.png'))).toBe(true);
  });

  test('the stray file is skipped and reported in exactly one warning', async () => {
    const warn = jest.fn();
    const scan = await scanDataset(ds.root, { warn });
    expect(scan.skipped).toEqual([expect.objectContaining({ path: ds.stray, kind: 'not-an-image' })]);
    expect(scan.skipped[0].reason).toMatch(/not an image/);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/Skipped 1 of \d+ entries .*1 not an image.*notes\.txt/);
  });

  test('includeBackground adds BACKGROUND_Google as a class, and its extension-less tmp file', async () => {
    const scan = await scanDataset(ds.root, { includeBackground: true, warn: () => undefined });
    expect(scan.classes).toEqual([BACKGROUND_CLASS, 'Stripes', 'checker', 'circle', 'cross', 'gray_ring', 'square']);
    const bg = scan.samples.filter((s) => s.label === 0).map((s) => path.basename(s.path));
    expect(bg).toEqual(['image_0001.jpg', 'image_0002.jpg', 'image_0003.jpg', 'tmp']);
  });

  test('pointing at the category folder itself gives the same result', async () => {
    const a = await scanDataset(ds.root, { warn: () => undefined });
    const b = await scanDataset(ds.imageRoot, { warn: () => undefined });
    expect(b).toEqual(a);
  });

  test('strict mode throws naming the bad file', async () => {
    await expect(scanDataset(ds.root, { strict: true })).rejects.toThrow(/strict mode: 1 unusable entry[\s\S]*notes\.txt: not an image/);
  });

  test('options are validated sharp-style', async () => {
    await expect(scanDataset(ds.root, { concurrency: 0 })).rejects.toThrow(
      'Expected positive integer for concurrency but received 0 of type number',
    );
    await expect(scanDataset(ds.root, { includeBackgroud: true } as never)).rejects.toThrow(/did you mean 'includeBackground'/);
  });
});

describe('scanDataset on broken trees', () => {
  test('a missing root says what layout was expected', async () => {
    const missing = path.join(tmp, 'nope');
    await expect(scanDataset(missing)).rejects.toThrow(/does not exist\. Expected <root>\/101_ObjectCategories\/<class>\/image_NNNN\.jpg/);
  });

  test('an empty root says what was found', async () => {
    const empty = path.join(tmp, 'empty');
    await fsp.mkdir(empty);
    await expect(scanDataset(empty)).rejects.toThrow(/No class folders in '.*empty'\. Expected .* Found an empty folder/);
  });

  test('a folder of loose images is recognised as a single class folder pointed at by mistake', async () => {
    const loose = path.join(tmp, 'loose');
    await fsp.mkdir(loose);
    await fsp.copyFile(ds.files.circle[0], path.join(loose, 'a.jpg'));
    await expect(scanDataset(loose)).rejects.toThrow(/Found 1 file \(a\.jpg\) and no sub-folders; if these are the images of one class/);
  });

  test('a file as root, e.g. the archive, is refused with a hint', async () => {
    const archive = path.join(tmp, '101_ObjectCategories.tar.gz');
    await fsp.writeFile(archive, 'x');
    await expect(scanDataset(archive)).rejects.toThrow(/is a file, not a folder\. It looks like an archive: extract it first/);
  });

  test('zero-byte, non-image and empty class folders are skipped; image-named non-images are called out', async () => {
    const root = path.join(tmp, 'broken');
    const good = path.join(root, 'good');
    await fsp.mkdir(good, { recursive: true });
    await fsp.mkdir(path.join(root, 'hollow'));
    await fsp.mkdir(path.join(root, 'only_junk'));
    await fsp.copyFile(ds.files.circle[0], path.join(good, 'image_0001.jpg'));
    await fsp.writeFile(path.join(good, 'image_0002.jpg'), Buffer.alloc(0));
    await fsp.writeFile(path.join(good, 'image_0003.jpg'), '<html>404</html>');
    await fsp.writeFile(path.join(good, '.DS_Store'), 'ignored silently');
    await fsp.writeFile(path.join(root, 'only_junk', 'readme.md'), '# hi');
    await fsp.writeFile(path.join(root, 'LICENSE'), 'loose file');
    const warn = jest.fn();
    const scan = await scanDataset(root, { warn });
    expect(scan.layout).toBe('imagefolder');
    expect(scan.classes).toEqual(['good']);
    expect(scan.samples).toEqual([{ path: path.join(good, 'image_0001.jpg'), label: 0 }]);
    const byName = Object.fromEntries(scan.skipped.map((s) => [path.relative(root, s.path), s]));
    expect(Object.keys(byName).sort()).toEqual(['LICENSE', 'good/image_0002.jpg', 'good/image_0003.jpg', 'hollow', 'only_junk', 'only_junk/readme.md']);
    expect(byName['good/image_0002.jpg'].reason).toBe('empty file (0 bytes)');
    expect(byName['good/image_0003.jpg'].reason).toMatch(/starts with 3c 68 74 6d.* despite the \.jpg extension/);
    expect(byName.hollow.reason).toBe('empty class folder');
    expect(byName.only_junk.reason).toMatch(/without a usable image \(1 file skipped\)/);
    expect(byName.LICENSE.kind).toBe('outside-class');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/^Skipped 6 of \d+ entries/);
  });

  test('a tree with class folders but no images at all is an error, not an empty dataset', async () => {
    const root = path.join(tmp, 'no-images');
    await fsp.mkdir(path.join(root, 'a'), { recursive: true });
    await fsp.writeFile(path.join(root, 'a', 'x.txt'), 'x');
    await expect(scanDataset(root, { warn: () => undefined })).rejects.toThrow(/No usable images .* Found 1 class folder \(a\) but no image files/);
  });

  test('withoutSkipped drops files found bad later, keeping labels', () => {
    const samples = [
      { path: '/a/1.jpg', label: 0 },
      { path: '/a/2.jpg', label: 0 },
      { path: '/b/1.jpg', label: 1 },
    ];
    expect(withoutSkipped(samples, [{ path: '/a/2.jpg' }])).toEqual([samples[0], samples[2]]);
  });
});

describe('sniffImageFormat', () => {
  const head = (...bytes: (number | string)[]): Uint8Array =>
    Uint8Array.from(bytes.flatMap((b) => (typeof b === 'string' ? [...b].map((c) => c.charCodeAt(0)) : [b])));
  test.each([
    ['jpeg', head(0xff, 0xd8, 0xff, 0xe0)],
    ['png', head(0x89, 'PNG', 0x0d, 0x0a, 0x1a, 0x0a)],
    ['gif', head('GIF89a')],
    ['webp', head('RIFF', 0, 0, 0, 0, 'WEBP')],
    ['tiff', head('II', 0x2a, 0)],
    ['tiff', head('MM', 0, 0x2a)],
    ['bmp', head('BM', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0)],
  ])('%s', (format, bytes) => {
    expect(sniffImageFormat(bytes)).toBe(format);
  });
  test('text and truncated headers are not images', () => {
    expect(sniffImageFormat(head('<html>'))).toBeUndefined();
    expect(sniffImageFormat(head(0xff, 0xd8))).toBeUndefined();
    expect(sniffImageFormat(head('BM is also how this sentence starts'))).toBeUndefined();
  });
});
