// Downloading and unpacking Caltech-101 into `<root>/101_ObjectCategories/<class>/<files>`.
//
// Sources:
//   - torchvision 0.14 (torchvision/datasets/caltech.py) fetches `101_ObjectCategories.tar.gz` from
//     Google Drive (file id 137RyRjvTBkBiIfeYBNZBtViDHQ6_Ewsp) with md5
//     b224c7392d521a49829488ab0f1120d9. That link is a Drive page, not the file (torchvision needs
//     a cookie/confirm dance for it) and torchvision itself later moved away from Drive links, so
//     it is kept here for reference only.
//   - The default source is the official CaltechDATA record
//     https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip, a zip that wraps
//     `caltech-101/101_ObjectCategories.tar.gz` (and `Annotations.tar`, which is not used). The
//     tar.gz is taken out of the zip, its CRC checked, and then its md5 is checked against
//     torchvision's before anything is unpacked; the zip itself is deleted afterwards.
//   - `url` may also name a `.tar.gz` directly (a mirror, a local server): it is downloaded with
//     the md5 checked before it gets its final name. `md5: null` skips the check (for re-packaged
//     mirrors); `format` overrides the guess from the URL's extension.
//
// Unpacking goes into a hidden temporary folder under `root` and is renamed into place only when
// complete, with a marker file (`.finetorch-extracted.json`, ignored by the dataset scanner as a
// dot file) inside; so a folder `101_ObjectCategories` is always whole. An existing folder
// without the marker (e.g. unpacked by torchvision, whose own check is that the folder exists)
// is accepted as it is when it holds at least one class folder; `force: true` re-extracts.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { invalid, knownKeys, nonEmptyString, oneOf, plainObject, positiveInteger } from '../utils/validate';
import { ChecksumError, downloadFile, hashFile, httpUrl, type DownloadOptions, type ProgressCallback, type TransferOptions } from './fetch-file';
import { extractTarGz, TarError } from './tar';
import { extractZipEntry, listZip, ZipError, type ZipEntry } from './zip';

export const CALTECH101_FOLDER = '101_ObjectCategories';
export const CALTECH101_ARCHIVE = '101_ObjectCategories.tar.gz';
/** md5 of 101_ObjectCategories.tar.gz, from torchvision 0.14's caltech.py. */
export const CALTECH101_MD5 = 'b224c7392d521a49829488ab0f1120d9';
/** torchvision 0.14's source (a Google Drive file page; not fetched by this module). */
export const CALTECH101_TORCHVISION_URL = 'https://drive.google.com/file/d/137RyRjvTBkBiIfeYBNZBtViDHQ6_Ewsp';
/** The official CaltechDATA download: a zip wrapping caltech-101/101_ObjectCategories.tar.gz. */
export const CALTECH101_OFFICIAL_ZIP_URL = 'https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip';
export const CALTECH101_MARKER = '.finetorch-extracted.json';

export interface DownloadCaltech101Options extends TransferOptions {
  /** Where to fetch from: a .zip wrapping the tar.gz, or the .tar.gz itself. Default the official zip. */
  url?: string;
  /** md5 of 101_ObjectCategories.tar.gz; null skips the check. Default torchvision's. */
  md5?: string | null;
  /** 'zip' or 'tar.gz'; default: 'zip' when the URL's path ends in .zip, else 'tar.gz'. */
  format?: 'zip' | 'tar.gz';
  onProgress?: ProgressCallback;
  /** Extract again even when the folder is there. Default false. */
  force?: boolean;
  /** Keep 101_ObjectCategories.tar.gz next to the folder (as torchvision does). Default true. */
  keepArchive?: boolean;
  /** Refuse archives that unpack to more than this. Default 4 GiB. */
  maxBytes?: number;
  /** Where warnings go. Default process.emitWarning. */
  warn?: (message: string) => void;
}

export interface Caltech101Download {
  /** `<root>/101_ObjectCategories`. */
  path: string;
  /** `<root>/101_ObjectCategories.tar.gz`, or null when it was not kept or not needed. */
  archive: string | null;
  /** True when bytes were fetched over the network in this call. */
  downloaded: boolean;
  /** True when the archive was unpacked in this call. */
  extracted: boolean;
  /** Class folders (BACKGROUND_Google included) now in the folder. */
  classes: number;
  /** Files unpacked, when this module unpacked them (now or before); undefined for a foreign folder. */
  files?: number;
}

const KNOWN = [
  'url', 'md5', 'format', 'onProgress', 'force', 'keepArchive', 'maxBytes', 'warn', 'retries', 'timeoutMs', 'retryDelayMs', 'signal',
] as const;

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function classFolders(folder: string): Promise<string[]> {
  const entries = await fsp.readdir(folder, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}

interface Existing {
  complete: boolean;
  files?: number;
}

async function inspectFolder(folder: string): Promise<Existing> {
  let stat;
  try {
    stat = await fsp.stat(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { complete: false };
    throw error;
  }
  if (!stat.isDirectory()) throw new Error(`'${folder}' exists and is not a folder; move it away to download Caltech-101 there`);
  try {
    const marker = JSON.parse(await fsp.readFile(path.join(folder, CALTECH101_MARKER), 'utf8')) as { files?: unknown };
    return { complete: true, files: typeof marker.files === 'number' ? marker.files : undefined };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof SyntaxError)) throw error;
  }
  return { complete: (await classFolders(folder)).length > 0 };
}

/** The zip entry holding 101_ObjectCategories.tar.gz (macOS `__MACOSX/` and `._` shadows skipped). */
export function findCaltechTarball(entries: ZipEntry[], archive: string): ZipEntry {
  const hits = entries.filter((e) => {
    const parts = e.name.split('/');
    const base = parts[parts.length - 1];
    return base === CALTECH101_ARCHIVE && !parts.includes('__MACOSX');
  });
  if (hits.length === 1) return hits[0];
  const sample = entries.slice(0, 8).map((e) => e.name).join(', ');
  throw new ZipError(
    hits.length === 0
      ? `'${archive}' holds no ${CALTECH101_ARCHIVE} (entries: ${sample}${entries.length > 8 ? ', ...' : ''})`
      : `'${archive}' holds ${hits.length} files named ${CALTECH101_ARCHIVE}: ${hits.map((h) => h.name).join(', ')}`,
    archive,
  );
}

/**
 * Makes sure `<root>/101_ObjectCategories` holds Caltech-101, downloading and unpacking it when it
 * does not (see the file comment for sources, checks and what counts as already there).
 */
export async function downloadCaltech101(root: string, options: DownloadCaltech101Options = {}): Promise<Caltech101Download> {
  nonEmptyString('root', root);
  const o = plainObject('options', options);
  knownKeys('downloadCaltech101 options', o, KNOWN);
  const url = o.url === undefined ? new URL(CALTECH101_OFFICIAL_ZIP_URL) : httpUrl('url', o.url);
  let md5: string | null = CALTECH101_MD5;
  if (o.md5 === null) md5 = null;
  else if (o.md5 !== undefined) {
    if (typeof o.md5 !== 'string' || !/^[0-9a-fA-F]{32}$/.test(o.md5)) throw invalid('a string of 32 hex digits or null', 'md5', o.md5);
    md5 = o.md5.toLowerCase();
  }
  const format = o.format === undefined ? (/\.zip$/i.test(url.pathname) ? 'zip' : 'tar.gz') : oneOf('format', o.format, ['zip', 'tar.gz'] as const);
  for (const key of ['force', 'keepArchive'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw invalid('boolean', key, o[key]);
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalid('function', 'onProgress', o.onProgress);
  if (o.warn !== undefined && typeof o.warn !== 'function') throw invalid('function', 'warn', o.warn);
  const maxBytes = o.maxBytes === undefined ? 4 * 1024 ** 3 : positiveInteger('maxBytes', o.maxBytes);
  const warn = (o.warn as ((m: string) => void) | undefined) ?? ((m: string) => process.emitWarning(m, 'FinetorchWarning'));
  const force = o.force === true;
  const keepArchive = o.keepArchive !== false;
  const transfer: DownloadOptions = {
    onProgress: o.onProgress as ProgressCallback | undefined,
    retries: o.retries as number | undefined,
    timeoutMs: o.timeoutMs as number | undefined,
    retryDelayMs: o.retryDelayMs as number | undefined,
    signal: o.signal as AbortSignal | undefined,
  };

  const base = path.resolve(root);
  const folder = path.join(base, CALTECH101_FOLDER);
  const tarPath = path.join(base, CALTECH101_ARCHIVE);
  await fsp.mkdir(base, { recursive: true });

  const existing = await inspectFolder(folder);
  if (existing.complete && !force) {
    return {
      path: folder,
      archive: (await exists(tarPath)) ? tarPath : null,
      downloaded: false,
      extracted: false,
      classes: (await classFolders(folder)).length,
      files: existing.files,
    };
  }

  // 1. The tar.gz: reuse a verified one, or fetch it (directly, or out of the zip).
  let downloaded = false;
  let haveTar = false;
  if (await exists(tarPath)) {
    if (md5 === null) haveTar = true;
    else {
      const { md5: actual } = await hashFile(tarPath, ['md5']);
      if (actual === md5) haveTar = true;
      else {
        warn(`'${tarPath}' is corrupt (md5 ${actual}, expected ${md5}); downloading it again from ${url.href}`);
        await fsp.rm(tarPath, { force: true });
      }
    }
  }
  if (!haveTar) {
    if (format === 'tar.gz') {
      await downloadFile(url.href, tarPath, { ...transfer, md5: md5 ?? undefined });
    } else {
      const zipName = decodeURIComponent(path.posix.basename(url.pathname)) || 'caltech-101.zip';
      const zipPath = path.join(base, path.basename(zipName).replace(/^\.+/, '') || 'caltech-101.zip');
      await downloadFile(url.href, zipPath, transfer);
      const entry = findCaltechTarball(await listZip(zipPath), zipPath);
      const part = `${tarPath}.part`;
      try {
        await extractZipEntry(zipPath, entry, part);
        if (md5 !== null) {
          const { md5: actual } = await hashFile(part, ['md5']);
          if (actual !== md5) {
            throw new ChecksumError(
              `checksum mismatch for '${tarPath}' (taken out of ${zipPath}, downloaded from ${url.href}): expected md5 ${md5}, got ${actual}`,
              tarPath, 'md5', md5, actual,
            );
          }
        }
        await fsp.rename(part, tarPath);
      } finally {
        await fsp.rm(part, { force: true });
      }
      await fsp.rm(zipPath, { force: true });
    }
    downloaded = true;
  }

  // 2. Unpack into a hidden folder, then rename into place.
  const temp = path.join(base, `.${CALTECH101_FOLDER}.extracting-${process.pid}-${randomBytes(4).toString('hex')}`);
  let files: number;
  try {
    const result = await extractTarGz(tarPath, temp, { maxBytes });
    const unpacked = path.join(temp, CALTECH101_FOLDER);
    if (!(await exists(unpacked)) || !(await fsp.stat(unpacked)).isDirectory()) {
      throw new TarError(
        `'${tarPath}' has no ${CALTECH101_FOLDER}/ folder (top-level entries: ${result.topLevel.slice(0, 8).join(', ') || 'none'})`,
        tarPath,
      );
    }
    const others = result.topLevel.filter((t) => t !== CALTECH101_FOLDER);
    if (others.length > 0) warn(`ignored top-level entries of '${tarPath}' outside ${CALTECH101_FOLDER}/: ${others.slice(0, 8).join(', ')}`);
    files = result.files;
    await fsp.writeFile(
      path.join(unpacked, CALTECH101_MARKER),
      JSON.stringify({ source: url.href, md5, files: result.files, bytes: result.bytes, extractedAt: new Date().toISOString() }, null, 2) + '\n',
    );
    if (await exists(folder)) {
      const old = path.join(base, `.${CALTECH101_FOLDER}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      await fsp.rename(folder, old);
      await fsp.rename(unpacked, folder);
      await fsp.rm(old, { recursive: true, force: true });
    } else {
      await fsp.rename(unpacked, folder);
    }
  } finally {
    await fsp.rm(temp, { recursive: true, force: true });
  }
  if (!keepArchive) await fsp.rm(tarPath, { force: true });
  return {
    path: folder,
    archive: keepArchive ? tarPath : null,
    downloaded,
    extracted: true,
    classes: (await classFolders(folder)).length,
    files,
  };
}
