// Scanning a Caltech-101 (or any ImageFolder-style) tree into classes and labelled samples.
//
// Accepted layouts, tried in this order:
//   <root>/101_ObjectCategories/<class>/<files>               (the extracted archive)
//   <root>/caltech101/101_ObjectCategories/<class>/<files>    (torchvision's download folder)
//   <root>/<class>/<files>                                    (root is the category folder itself,
//                                                             or any ImageFolder-style tree)
// Rules:
//   - classes are the class folder names in plain code-unit order (Python's sorted() for ASCII
//     names: upper case before lower case, so 'Faces' < 'Leopards' < 'accordion');
//   - `BACKGROUND_Google` is left out unless includeBackground is true (then it is a class like
//     any other, sorted in place);
//   - files are recognised by content (JPEG, PNG, GIF, WebP, TIFF, BMP magic bytes), not by
//     extension: the archive's `BACKGROUND_Google/tmp` is a JPEG;
//   - files inside a class folder are taken recursively, a folder's files in name order before
//     its sub-folders (torchvision's ImageFolder order); names starting with '.' (.DS_Store, ._x.jpg, .ipynb_checkpoints)
//     are ignored silently;
//   - empty files, non-images, unreadable files, files outside any class folder and class
//     folders without a usable image are skipped and listed in `skipped`, with one warning
//     summarising them (or an Error with strict: true). A class folder with no usable image is
//     not a class, so labels stay dense.
// Damaged image data (a truncated JPEG) passes the magic-byte check; decode.ts finds it.

import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import * as path from 'node:path';
import { boolean, knownKeys, plainObject, positiveInteger } from '../utils/validate';
import { sniffImageFormat, hexHead, SNIFF_BYTES, type ImageFormat } from './formats';
import { mapPool } from './pool';
import { reportSkipped, type SkippedFile, type WarnFn } from './skipped';

export type { SkippedFile, WarnFn } from './skipped';

export const BACKGROUND_CLASS = 'BACKGROUND_Google';
export const CALTECH101_FOLDER = '101_ObjectCategories';

export interface Sample {
  /** Absolute path of the image file. */
  path: string;
  /** Index into `classes`. */
  label: number;
}

export interface DatasetScan {
  /** Absolute path of the folder holding the class folders (paths in manifests are relative to it). */
  root: string;
  layout: 'caltech101' | 'imagefolder';
  classes: string[];
  /** Grouped by label, in file order within each class. */
  samples: Sample[];
  skipped: SkippedFile[];
}

export interface ScanOptions {
  /** Count `BACKGROUND_Google` as a class (most papers do: 102 classes). Default false (torchvision: 101). */
  includeBackground?: boolean;
  /** Throw instead of skipping unusable files. Default false. */
  strict?: boolean;
  /** Where the one summary warning goes. Default: process.emitWarning. */
  warn?: WarnFn;
  /** Files inspected at once. Default 32. */
  concurrency?: number;
}

const SCAN_KEYS = ['includeBackground', 'strict', 'warn', 'concurrency'] as const;

const EXPECTED_LAYOUT =
  `<root>/${CALTECH101_FOLDER}/<class>/image_NNNN.jpg (the extracted Caltech-101 archive), ` +
  `<root>/<class>/<image files> (the category folder itself or any ImageFolder-style tree)`;

/** Plain code-unit order, like Python's sorted() on str for the names that occur here. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function scanDataset(root: string, options: ScanOptions = {}): Promise<DatasetScan> {
  if (typeof root !== 'string' || root.length === 0) {
    throw new TypeError(`Expected non-empty string for root but received ${JSON.stringify(root)}`);
  }
  knownKeys('scanDataset options', plainObject('options', options), SCAN_KEYS);
  const includeBackground = options.includeBackground === undefined ? false : boolean('includeBackground', options.includeBackground);
  const strict = options.strict === undefined ? false : boolean('strict', options.strict);
  const concurrency = options.concurrency === undefined ? 32 : positiveInteger('concurrency', options.concurrency);
  if (options.warn !== undefined && typeof options.warn !== 'function') {
    throw new TypeError(`Expected function for warn but received ${typeof options.warn}`);
  }

  const { imageRoot, layout } = await resolveLayout(path.resolve(root));
  const entries = await listDir(imageRoot);
  const skipped: SkippedFile[] = [];
  const classDirs: string[] = [];
  const looseFiles: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(imageRoot, e.name);
    const kind = await entryKind(e, full);
    if (kind === 'dir') classDirs.push(e.name);
    else if (kind === 'file') looseFiles.push(e.name);
  }
  if (classDirs.length === 0) {
    throw new Error(
      `No class folders in '${imageRoot}'. Expected ${EXPECTED_LAYOUT}. Found ${describeFound(looseFiles)}` +
        (looseFiles.length > 0 ? `; if these are the images of one class, point at the folder above it.` : '.'),
    );
  }
  for (const f of looseFiles.sort(compareCodeUnits)) {
    skipped.push({ path: path.join(imageRoot, f), reason: 'file outside any class folder', kind: 'outside-class' });
  }

  const candidates = classDirs
    .filter((c) => includeBackground || c !== BACKGROUND_CLASS)
    .sort(compareCodeUnits);

  // Gather every file first, then sniff them all through one bounded pool.
  const perClass: { name: string; files: string[] }[] = [];
  for (const name of candidates) perClass.push({ name, files: await walkFiles(path.join(imageRoot, name)) });
  const all = perClass.flatMap((c) => c.files);
  const verdicts = await mapPool(all, inspectFile, { concurrency });
  const verdictOf = new Map(all.map((f, i) => [f, verdicts[i]]));

  const classes: string[] = [];
  const samples: Sample[] = [];
  for (const { name, files } of perClass) {
    const good: string[] = [];
    for (const f of files) {
      const v = verdictOf.get(f)!;
      if (v.ok) good.push(f);
      else skipped.push({ path: f, reason: v.reason, kind: v.kind });
    }
    if (good.length === 0) {
      const why = files.length === 0 ? 'empty class folder' : `class folder without a usable image (${files.length} file${files.length === 1 ? '' : 's'} skipped)`;
      skipped.push({ path: path.join(imageRoot, name), reason: why, kind: 'empty-class' });
      continue;
    }
    const label = classes.length;
    classes.push(name);
    for (const f of good) samples.push({ path: f, label });
  }

  if (classes.length === 0) {
    throw new Error(
      `No usable images under '${imageRoot}'. Expected ${EXPECTED_LAYOUT}. ` +
        `Found ${candidates.length} class folder${candidates.length === 1 ? '' : 's'} ` +
        `(${candidates.slice(0, 5).join(', ')}${candidates.length > 5 ? ', ...' : ''}) ` +
        `but no image files in them` +
        (skipped.length > 0 ? `; ${skipped.length} entries were unusable, e.g. ${skipped[0].path} (${skipped[0].reason}).` : '.') +
        (!includeBackground && classDirs.includes(BACKGROUND_CLASS) ? ` (${BACKGROUND_CLASS} was left out; includeBackground: true adds it.)` : ''),
    );
  }

  reportSkipped(skipped, `while scanning '${imageRoot}'`, { strict, warn: options.warn, total: all.length + looseFiles.length });
  return { root: imageRoot, layout, classes, samples, skipped };
}

/** Drops samples whose files were found unusable later (e.g. at decode time); labels are unchanged. */
export function withoutSkipped(samples: readonly Sample[], skipped: readonly { path: string }[]): Sample[] {
  if (skipped.length === 0) return samples.slice();
  const bad = new Set(skipped.map((s) => s.path));
  return samples.filter((s) => !bad.has(s.path));
}

/** Number of samples per label. */
export function countPerClass(samples: readonly Sample[], numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const s of samples) counts[s.label]++;
  return counts;
}

async function resolveLayout(root: string): Promise<{ imageRoot: string; layout: DatasetScan['layout'] }> {
  let st: Stats;
  try {
    st = await fsp.stat(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error(`Dataset root '${root}' does not exist. Expected ${EXPECTED_LAYOUT}.`);
    }
    throw new Error(`Cannot read dataset root '${root}': ${(e as Error).message}`);
  }
  if (!st.isDirectory()) {
    const archive = /\.(tar\.gz|tgz|tar|zip)$/i.test(root) ? ' It looks like an archive: extract it first.' : '';
    throw new Error(`Dataset root '${root}' is a file, not a folder.${archive} Expected ${EXPECTED_LAYOUT}.`);
  }
  for (const sub of [CALTECH101_FOLDER, path.join('caltech101', CALTECH101_FOLDER)]) {
    const candidate = path.join(root, sub);
    if (await isDirectory(candidate)) return { imageRoot: candidate, layout: 'caltech101' };
  }
  return { imageRoot: root, layout: path.basename(root) === CALTECH101_FOLDER ? 'caltech101' : 'imagefolder' };
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function listDir(dir: string): Promise<Dirent[]> {
  try {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries.sort((a, b) => compareCodeUnits(a.name, b.name));
  } catch (e) {
    throw new Error(`Cannot list dataset folder '${dir}': ${(e as Error).message}`);
  }
}

/** 'dir' | 'file' | 'other', following symbolic links; a dangling link counts as a file (reported later). */
async function entryKind(e: Dirent, full: string): Promise<'dir' | 'file' | 'other'> {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (e.isSymbolicLink()) {
    try {
      const st = await fsp.stat(full);
      return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    } catch {
      return 'file';
    }
  }
  return 'other';
}

/** All non-hidden files under `dir`, ordered by (folder, name); symlinked folders are followed once. */
async function walkFiles(dir: string, seen = new Set<string>()): Promise<string[]> {
  let real: string;
  try {
    real = await fsp.realpath(dir);
  } catch {
    return [];
  }
  if (seen.has(real)) return [];
  seen.add(real);
  const files: string[] = [];
  const subdirs: string[] = [];
  for (const e of await listDir(dir)) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(dir, e.name);
    const kind = await entryKind(e, full);
    if (kind === 'dir') subdirs.push(full);
    else if (kind === 'file') files.push(full);
  }
  // A folder's own files first, then its sub-folders depth-first in name order: ImageFolder's
  // sorted(os.walk()) order, except for sibling names that differ only after a character
  // sorting before '/' (e.g. 'b-c' vs 'b/x'), which do not occur in practice.
  for (const sub of subdirs) files.push(...(await walkFiles(sub, seen)));
  return files;
}

type Verdict = { ok: true; format: ImageFormat } | { ok: false; reason: string; kind: SkippedFile['kind'] };

async function inspectFile(file: string): Promise<Verdict> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(file, 'r');
    const st = await handle.stat();
    if (st.size === 0) return { ok: false, reason: 'empty file (0 bytes)', kind: 'empty-file' };
    const head = Buffer.alloc(Math.min(SNIFF_BYTES, st.size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const format = sniffImageFormat(head.subarray(0, bytesRead));
    if (format) return { ok: true, format };
    const ext = path.extname(file).toLowerCase();
    const looksLikeImage = /^\.(jpe?g|png|gif|webp|tiff?|bmp)$/.test(ext);
    return {
      ok: false,
      reason:
        `not an image: content is not JPEG, PNG, GIF, WebP, TIFF or BMP (starts with ${hexHead(head)})` +
        (looksLikeImage ? ` despite the ${ext} extension` : ''),
      kind: 'not-an-image',
    };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, reason: `unreadable (${err.code ?? err.message})`, kind: 'unreadable' };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function describeFound(files: string[]): string {
  if (files.length === 0) return 'an empty folder';
  const shown = files.slice(0, 5).join(', ');
  return `${files.length} file${files.length === 1 ? '' : 's'} (${shown}${files.length > 5 ? ', ...' : ''}) and no sub-folders`;
}
