// A small, strict tar(.gz) extractor: ustar / GNU / v7 headers, plus the pax ('x') and GNU long
// name ('L') records real archives carry. Only regular files and directories are written; links,
// devices, FIFOs and sparse files are refused, as are absolute paths, `..` components and
// backslashes. Files are created 0644, folders 0755 (the archive's modes and owners are ignored;
// mtimes of files are kept). Extract into a fresh, empty folder: nothing here guards against
// symlinks that were already there.
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

const BLOCK = 512;

export interface TarExtractOptions {
  /** Refuse archives that unpack to more than this many bytes (a guard against gzip bombs). Default 4 GiB. */
  maxBytes?: number;
  /** Refuse archives with more entries than this. Default 1,000,000. */
  maxEntries?: number;
}

export interface TarExtractResult {
  files: number;
  directories: number;
  bytes: number;
  /** First path components of the entries, in order of appearance. */
  topLevel: string[];
}

export class TarError extends Error {
  readonly code = 'ERR_TAR';
  constructor(message: string, readonly archive: string) {
    super(message);
    this.name = 'TarError';
  }
}

/** Pulls exact byte counts out of an async stream of Buffers. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  position = 0;
  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else if (next.value.length > 0) {
        this.chunks.push(next.value);
        this.buffered += next.value.length;
      }
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, take);
    const rest = all.subarray(take);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    this.position += take;
    return out;
  }

  /** n bytes as pieces (at most `piece` long); stops early only at the end of the stream. */
  async *pieces(n: number, piece = 1 << 20): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0) await this.fill(1);
      if (this.buffered === 0) return;
      const head = this.chunks[0];
      const take = Math.min(left, head.length, piece);
      const out = head.subarray(0, take);
      if (take === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(take);
      this.buffered -= take;
      this.position += take;
      left -= take;
      yield out;
    }
  }
}

function cString(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

/** A numeric header field: octal ASCII (space/NUL padded) or GNU base-256. */
function numberField(buf: Buffer, start: number, length: number, what: string, archive: string): number {
  const field = buf.subarray(start, start + length);
  if (field[0] & 0x80) {
    if (field[0] === 0xff) throw new TarError(`corrupt tar header in '${archive}': negative ${what}`, archive);
    let value = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + field[i];
      if (value > Number.MAX_SAFE_INTEGER) throw new TarError(`corrupt tar header in '${archive}': ${what} too large`, archive);
    }
    return value;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw new TarError(`corrupt tar header in '${archive}': ${what} field '${text.replace(/[^\x20-\x7e]/g, '?')}' is not octal`, archive);
  }
  const value = parseInt(text, 8);
  if (!Number.isSafeInteger(value)) throw new TarError(`corrupt tar header in '${archive}': ${what} too large`, archive);
  return value;
}

function checksumOk(header: Buffer, stored: number): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : header[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Pax records `<len> <key>=<value>\n`. */
function parsePax(data: Buffer, archive: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space === -1) break;
    const len = Number(data.subarray(i, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= space - i || i + len > data.length) {
      throw new TarError(`corrupt pax header in '${archive}'`, archive);
    }
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}

/** The safe relative path of an entry, split into components ('' for the archive root). */
export function safeEntryPath(name: string, archive: string): string[] {
  if (name.includes('\\')) throw new TarError(`refusing entry '${name}' in '${archive}': backslash in path`, archive);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) {
    throw new TarError(`refusing entry '${name}' in '${archive}': absolute path`, archive);
  }
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new TarError(`refusing entry '${name}' in '${archive}': '..' would escape the destination`, archive);
  return parts;
}

function inside(root: string, parts: string[], name: string, archive: string): string {
  const target = path.resolve(root, ...parts);
  const rel = path.relative(root, target);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new TarError(`refusing entry '${name}' in '${archive}': path escapes the destination`, archive);
  }
  return target;
}

const TYPE_NAMES: Record<string, string> = {
  '1': 'hard link', '2': 'symbolic link', '3': 'character device', '4': 'block device', '6': 'FIFO',
  K: 'GNU long link name', S: 'GNU sparse file', V: 'GNU volume header', M: 'GNU multi-volume continuation',
};

/** Extracts a gzip-compressed tar archive into `dest` (created if missing). */
export async function extractTarGz(archive: string, dest: string, options: TarExtractOptions = {}): Promise<TarExtractResult> {
  // pipeline, not pipe: a read error (a missing file) must reach the consumer, not hang it.
  const source = pipeline(createReadStream(archive), createGunzip(), () => undefined);
  try {
    return await extractTarStream(source[Symbol.asyncIterator]() as AsyncIterator<Buffer>, archive, dest, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' || (error as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') {
      throw new TarError(`'${archive}' is not a valid gzip file (${(error as Error).message})`, archive);
    }
    throw error;
  } finally {
    source.destroy();
  }
}

/** Extracts an uncompressed tar stream (Buffers) into `dest`. */
export async function extractTarStream(
  iterator: AsyncIterator<Buffer>,
  archive: string,
  dest: string,
  options: TarExtractOptions = {},
): Promise<TarExtractResult> {
  const maxBytes = options.maxBytes ?? 4 * 1024 ** 3;
  const maxEntries = options.maxEntries ?? 1_000_000;
  const root = path.resolve(dest);
  await fsp.mkdir(root, { recursive: true });
  const reader = new ByteReader(iterator);
  const result: TarExtractResult = { files: 0, directories: 0, bytes: 0, topLevel: [] };
  const made = new Set<string>([root]);
  let entries = 0;
  let longName: string | undefined;
  let pax = new Map<string, string>();

  const mkdirs = async (dir: string) => {
    if (made.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    made.add(dir);
  };
  const skip = async (n: number, what: string) => {
    let got = 0;
    for await (const piece of reader.pieces(n)) got += piece.length;
    if (got < n) throw new TarError(`'${archive}' is truncated inside ${what}`, archive);
  };
  const readAll = async (n: number, what: string) => {
    if (n > 16 * 1024 * 1024) throw new TarError(`${what} of ${n} bytes in '${archive}' is implausibly large`, archive);
    const data = await reader.read(n);
    if (data.length < n) throw new TarError(`'${archive}' is truncated inside ${what}`, archive);
    await skip((BLOCK - (n % BLOCK)) % BLOCK, what);
    return data;
  };

  for (;;) {
    const at = reader.position;
    const header = await reader.read(BLOCK);
    if (header.length === 0) break; // no end-of-archive blocks: tolerated, as Python's tarfile does
    if (header.length < BLOCK) throw new TarError(`'${archive}' is truncated (a partial header at byte ${at})`, archive);
    if (header.every((b) => b === 0)) break; // end of archive
    if (++entries > maxEntries) throw new TarError(`'${archive}' has more than ${maxEntries} entries`, archive);

    const stored = numberField(header, 148, 8, 'checksum', archive);
    if (!checksumOk(header, stored)) {
      throw new TarError(`'${archive}' is not a tar archive or is corrupt: bad header checksum at byte ${at}`, archive);
    }
    const typeflag = header[156] === 0 ? '0' : String.fromCharCode(header[156]);
    const magic = header.subarray(257, 263).toString('latin1');
    let name = cString(header, 0, 100);
    if (magic === 'ustar\0') {
      const prefix = cString(header, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let size = numberField(header, 124, 12, 'size', archive);
    const mtime = numberField(header, 136, 12, 'mtime', archive);

    // Records that describe the next entry.
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L') {
      const data = await readAll(size, `a '${typeflag}' record`);
      if (typeflag === 'x') pax = parsePax(data, archive);
      else if (typeflag === 'L') longName = cString(data, 0, data.length);
      continue; // global pax records ('g') carry nothing this extractor uses
    }
    if (longName !== undefined) name = longName;
    if (pax.has('path')) name = pax.get('path')!;
    if (pax.has('size')) {
      const s = Number(pax.get('size'));
      if (!Number.isSafeInteger(s) || s < 0) throw new TarError(`corrupt pax size '${pax.get('size')}' in '${archive}'`, archive);
      size = s;
    }
    longName = undefined;
    pax = new Map();

    if (TYPE_NAMES[typeflag] !== undefined || !['0', '7', '5'].includes(typeflag)) {
      const kind = TYPE_NAMES[typeflag] ?? `entry of type '${typeflag.replace(/[^\x20-\x7e]/g, '?')}'`;
      throw new TarError(`refusing ${kind} '${name}' in '${archive}': only regular files and directories are extracted`, archive);
    }
    const isDir = typeflag === '5' || (typeflag === '0' && name.endsWith('/') && size === 0);
    const parts = safeEntryPath(name, archive);
    if (parts.length > 0 && !result.topLevel.includes(parts[0])) result.topLevel.push(parts[0]);
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);

    if (isDir) {
      if (parts.length > 0) {
        await mkdirs(inside(root, parts, name, archive));
        result.directories++;
      }
      await skip(padded, `'${name}'`);
      continue;
    }
    if (parts.length === 0) throw new TarError(`refusing file entry '${name}' in '${archive}': empty path`, archive);
    if (result.bytes + size > maxBytes) {
      throw new TarError(`'${archive}' unpacks to more than ${maxBytes} bytes (at '${name}'); refusing to go on`, archive);
    }
    const target = inside(root, parts, name, archive);
    await mkdirs(path.dirname(target));
    const handle = await fsp.open(target, 'w', 0o644);
    let written = 0;
    try {
      for await (const piece of reader.pieces(size)) {
        await handle.write(piece);
        written += piece.length;
      }
      if (written < size) throw new TarError(`'${archive}' is truncated inside '${name}' (${written} of ${size} bytes)`, archive);
      if (mtime > 0) await handle.utimes(mtime, mtime).catch(() => undefined);
    } finally {
      await handle.close();
    }
    await skip(padded - size, `'${name}'`);
    result.files++;
    result.bytes += size;
  }
  return result;
}
