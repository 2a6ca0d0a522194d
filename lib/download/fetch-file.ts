// Downloading one file over Node's own http/https, with no dependencies.
//
//   - streams into `<dest>.part` and renames it to `dest` only after the checksum matched, so the
//     final name never holds a partial or unverified file (rename within a folder is atomic);
//   - resumes: a `.part` left by an earlier try (or an earlier run) is continued with
//     `Range: bytes=N-`; a 206 appends, a 200 restarts from zero, a 416 whose total equals the
//     `.part`'s size means the `.part` is already whole;
//   - follows up to 10 redirects (relative ones too) and refuses https -> http and non-http(s);
//   - a dropped connection, a stalled one (no byte for `timeoutMs`), a 5xx, 408 or 429 are retried
//     up to `retries` times with exponential backoff, resuming where the `.part` ended;
//   - verifies sha256, md5 or a sha256 hex prefix (the `-<hash>.` in torchvision's file names, as
//     torch.hub's check_hash does); a mismatch deletes the `.part` and names the file, the expected
//     and the actual hash. When bytes of a `.part` from an earlier run were reused and the hash is
//     wrong, the file is fetched once more from zero before giving up (the remote file may have
//     changed since that `.part` was written).
//
// Two processes downloading to the same `dest` at once are not coordinated (they would share the
// `.part`); callers that can race should download to distinct names.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { invalid, knownKeys, nonEmptyString, nonNegativeInteger, plainObject, positiveInteger } from '../utils/validate';

export type ProgressCallback = (received: number, total: number | undefined) => void;

export interface DownloadOptions {
  /** Expected sha256 of the whole file (64 hex digits). */
  sha256?: string;
  /** Expected md5 of the whole file (32 hex digits). */
  md5?: string;
  /** Expected start of the sha256 (1 to 64 hex digits), as torchvision file names carry it. */
  hashPrefix?: string;
  /** Called as bytes arrive: bytes in the `.part` so far, and the full size when the server said it. */
  onProgress?: ProgressCallback;
  /** Further tries after a network failure (dropped or stalled connection, 5xx, 408, 429). Default 3. */
  retries?: number;
  /** A connection with no byte for this long is given up (and retried). Default 30000. */
  timeoutMs?: number;
  /** First backoff delay; it doubles on each retry, capped at 10 s. Default 1000. */
  retryDelayMs?: number;
  /** Aborts the download; the `.part` is kept for a later resume. */
  signal?: AbortSignal;
  /** Extra trusted CA certificates (PEM) for https, e.g. a private mirror's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Extra request headers (sent to the first URL's origin only, not across redirects to others). */
  headers?: Record<string, string>;
}

/** The transfer settings a higher-level download (weights, data set) passes through unchanged. */
export type TransferOptions = Pick<DownloadOptions, 'retries' | 'timeoutMs' | 'retryDelayMs' | 'signal'>;

export interface DownloadResult {
  /** The final file (`dest`). */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** Its sha256 (hex), computed over the whole file. */
  sha256: string;
  /** Its md5 (hex) when an md5 was asked to be checked. */
  md5?: string;
  /** Requests made (redirect hops not counted). */
  attempts: number;
  /** True when bytes of a `.part` (from this call's earlier tries or an earlier run) were kept. */
  resumed: boolean;
  /** The URL the bytes finally came from, after redirects. */
  finalUrl: string;
}

const KNOWN_OPTIONS = [
  'sha256', 'md5', 'hashPrefix', 'onProgress', 'retries', 'timeoutMs', 'retryDelayMs', 'signal', 'ca', 'headers',
] as const;
export const MAX_REDIRECTS = 10;
const MAX_BACKOFF_MS = 10_000;
const USER_AGENT = 'finetorch-download/0.1 (node)';

/** An error from the download machinery; `retryable` says whether another try could help. */
export class DownloadError extends Error {
  readonly code: string;
  readonly url: string;
  readonly status?: number;
  readonly retryable: boolean;
  constructor(message: string, init: { code: string; url: string; status?: number; retryable: boolean; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'DownloadError';
    this.code = init.code;
    this.url = init.url;
    this.status = init.status;
    this.retryable = init.retryable;
  }
}

/** The downloaded bytes did not have the expected hash. */
export class ChecksumError extends Error {
  readonly code = 'ERR_CHECKSUM_MISMATCH';
  constructor(
    message: string,
    readonly file: string,
    readonly algorithm: 'sha256' | 'md5',
    readonly expected: string,
    readonly actual: string,
  ) {
    super(message);
    this.name = 'ChecksumError';
  }
}

function hex(name: string, value: unknown, lengths: { min: number; max: number }): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]+$/.test(value) || value.length < lengths.min || value.length > lengths.max) {
    const what = lengths.min === lengths.max ? `${lengths.min} hex digits` : `${lengths.min} to ${lengths.max} hex digits`;
    throw invalid(`a string of ${what}`, name, value);
  }
  return value.toLowerCase();
}

/** Parses an http(s) URL or throws a TypeError naming the option. */
export function httpUrl(name: string, value: unknown): URL {
  nonEmptyString(name, value);
  let url: URL;
  try {
    url = new URL(value as string);
  } catch {
    throw invalid('an http or https URL', name, value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('an http or https URL', name, value);
  return url;
}

/**
 * Where a redirect leads: `location` resolved against `from`. Throws for a non-http(s) target and
 * for a downgrade from https to http.
 */
export function resolveRedirect(from: URL, location: string): URL {
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw new DownloadError(`invalid redirect Location '${location}' from ${from.href}`, { code: 'ERR_BAD_REDIRECT', url: from.href, retryable: false });
  }
  if (to.protocol !== 'http:' && to.protocol !== 'https:') {
    throw new DownloadError(`refusing redirect from ${from.href} to ${to.href}: only http and https are followed`, {
      code: 'ERR_BAD_REDIRECT', url: from.href, retryable: false,
    });
  }
  if (from.protocol === 'https:' && to.protocol === 'http:') {
    throw new DownloadError(`refusing redirect from https to http: ${from.href} -> ${to.href}`, {
      code: 'ERR_INSECURE_REDIRECT', url: from.href, retryable: false,
    });
  }
  return to;
}

interface Validated {
  sha256?: string;
  md5?: string;
  hashPrefix?: string;
  onProgress?: ProgressCallback;
  retries: number;
  timeoutMs: number;
  retryDelayMs: number;
  signal?: AbortSignal;
  ca?: DownloadOptions['ca'];
  headers: Record<string, string>;
}

function validateOptions(options: unknown): Validated {
  const o = plainObject('options', options);
  knownKeys('downloadFile options', o, KNOWN_OPTIONS);
  const v: Validated = { retries: 3, timeoutMs: 30_000, retryDelayMs: 1000, headers: {} };
  if (o.sha256 !== undefined) v.sha256 = hex('sha256', o.sha256, { min: 64, max: 64 });
  if (o.md5 !== undefined) v.md5 = hex('md5', o.md5, { min: 32, max: 32 });
  if (o.hashPrefix !== undefined) v.hashPrefix = hex('hashPrefix', o.hashPrefix, { min: 1, max: 64 });
  if (o.onProgress !== undefined) {
    if (typeof o.onProgress !== 'function') throw invalid('function', 'onProgress', o.onProgress);
    v.onProgress = o.onProgress as ProgressCallback;
  }
  if (o.retries !== undefined) v.retries = nonNegativeInteger('retries', o.retries);
  if (o.timeoutMs !== undefined) v.timeoutMs = positiveInteger('timeoutMs', o.timeoutMs);
  if (o.retryDelayMs !== undefined) v.retryDelayMs = nonNegativeInteger('retryDelayMs', o.retryDelayMs);
  if (o.signal !== undefined) {
    const s = o.signal as AbortSignal;
    if (typeof s !== 'object' || s === null || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
      throw invalid('AbortSignal', 'signal', o.signal);
    }
    v.signal = s;
  }
  if (o.ca !== undefined) {
    const ok = (x: unknown) => typeof x === 'string' || Buffer.isBuffer(x);
    if (!(ok(o.ca) || (Array.isArray(o.ca) && o.ca.every(ok)))) throw invalid('PEM string or Buffer (or an array of them)', 'ca', o.ca);
    v.ca = o.ca as DownloadOptions['ca'];
  }
  if (o.headers !== undefined) {
    const h = plainObject('headers', o.headers);
    for (const [k, value] of Object.entries(h)) {
      if (typeof value !== 'string') throw invalid('string', `headers['${k}']`, value);
    }
    v.headers = h as Record<string, string>;
  }
  return v;
}

function abortError(signal: AbortSignal, url: string): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new DownloadError(`download of ${url} was aborted`, { code: 'ABORT_ERR', url, retryable: false });
  error.name = 'AbortError';
  return error;
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CHUNK_SIZE', 'ERR_DOWNLOAD_INCOMPLETE',
  'ERR_DOWNLOAD_STALLED', 'UND_ERR_SOCKET',
]);

function isRetryable(error: unknown): boolean {
  if (error instanceof DownloadError) return error.retryable;
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code && RETRYABLE_CODES.has(code)) return true;
  return (error as Error)?.message === 'aborted' || (error as Error)?.message === 'socket hang up';
}

function sleep(ms: number, signal: AbortSignal | undefined, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, url));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!, url));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    const stat = await fsp.stat(file);
    return stat.isFile() ? stat.size : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Hashes a file with the named algorithms (hex digests). */
export async function hashFile(file: string, algorithms: readonly string[] = ['sha256']): Promise<Record<string, string>> {
  const hashes = algorithms.map((a) => createHash(a));
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    for (const h of hashes) h.update(chunk as Buffer);
  }
  return Object.fromEntries(algorithms.map((a, i) => [a, hashes[i].digest('hex')]));
}

interface OpenedResponse {
  res: http.IncomingMessage;
  req: http.ClientRequest;
  url: URL;
}

interface Timer {
  arm(): void;
  clear(): void;
  /** The stall error, once the timer fired. */
  fired?: Error;
}

/** Sends a GET, following redirects; resolves with the first non-redirect response. */
async function openFollowing(start: URL, v: Validated, extraHeaders: Record<string, string>, timer: (req: http.ClientRequest, url: URL) => Timer): Promise<OpenedResponse & { timer: Timer }> {
  let url = start;
  for (let hop = 0; ; hop++) {
    const { res, req, t } = await new Promise<{ res: http.IncomingMessage; req: http.ClientRequest; t: Timer }>((resolve, reject) => {
      const lib = url.protocol === 'https:' ? https : http;
      const requestOptions: https.RequestOptions = {
        method: 'GET',
        agent: false,
        // The caller's headers (credentials, say) go only to the origin they were meant for.
        headers: {
          'user-agent': USER_AGENT, accept: '*/*', 'accept-encoding': 'identity',
          ...(url.origin === start.origin ? v.headers : {}), ...extraHeaders,
        },
      };
      if (url.protocol === 'https:' && v.ca !== undefined) requestOptions.ca = v.ca;
      const req = lib.request(url, requestOptions);
      const t = timer(req, url);
      const onAbort = () => req.destroy(abortError(v.signal!, start.href));
      v.signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => v.signal?.removeEventListener('abort', onAbort));
      req.once('error', (error) => {
        t.clear();
        reject(t.fired ?? error);
      });
      req.once('response', (res) => resolve({ res, req, t }));
      t.arm();
      req.end();
    });
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      t.clear();
      res.resume();
      req.destroy();
      if (hop + 1 > MAX_REDIRECTS) {
        throw new DownloadError(`too many redirects (more than ${MAX_REDIRECTS}) starting at ${start.href}`, {
          code: 'ERR_TOO_MANY_REDIRECTS', url: start.href, retryable: false,
        });
      }
      url = resolveRedirect(url, location);
      continue;
    }
    return { res, req, url, timer: t };
  }
}

function parseContentRange(value: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!value) return undefined;
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  return {
    start: m[1] !== undefined ? Number(m[1]) : undefined,
    end: m[2] !== undefined ? Number(m[2]) : undefined,
    total: m[3] !== '*' ? Number(m[3]) : undefined,
  };
}

function describeUrl(url: URL, start: URL): string {
  return url.href === start.href ? url.href : `${url.href} (redirected from ${start.href})`;
}

type AttemptOutcome = { kind: 'complete'; finalUrl: string } | { kind: 'restart' };

/**
 * Downloads `url` to `dest` (see the file comment). Resolves once `dest` holds the whole,
 * verified file.
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const start = httpUrl('url', url);
  nonEmptyString('dest', dest);
  const v = validateOptions(options);
  const part = `${dest}.part`;
  await fsp.mkdir(path.dirname(path.resolve(dest)), { recursive: true });

  const initialPart = (await fileSize(part)) ?? 0;
  let staleBytesKept = initialPart > 0; // bytes from before this call may belong to another version
  let resumed = false;
  let attempts = 0;
  let failures = 0;
  let restartedAfterMismatch = false;

  for (;;) {
    if (v.signal?.aborted) throw abortError(v.signal, start.href);
    let outcome: AttemptOutcome;
    try {
      attempts++;
      outcome = await attempt();
    } catch (error) {
      if (v.signal?.aborted) throw abortError(v.signal, start.href);
      if (!isRetryable(error)) throw error;
      failures++;
      if (failures > v.retries) {
        const message = (error as Error)?.message ?? String(error);
        throw new DownloadError(`download of ${start.href} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${message}`, {
          code: (error as NodeJS.ErrnoException)?.code ?? 'ERR_DOWNLOAD_FAILED', url: start.href,
          status: (error as DownloadError).status, retryable: false, cause: error,
        });
      }
      await sleep(Math.min(v.retryDelayMs * 2 ** (failures - 1), MAX_BACKOFF_MS), v.signal, start.href);
      continue;
    }
    if (outcome.kind === 'restart') continue;

    // The .part holds what the server sent: check it before it gets the final name.
    const algorithms = ['sha256', ...(v.md5 ? ['md5'] : [])];
    const digests = await hashFile(part, algorithms);
    const mismatch = checkDigests(digests, v, dest, outcome.finalUrl);
    if (mismatch) {
      await fsp.rm(part, { force: true });
      if (staleBytesKept && !restartedAfterMismatch) {
        // The reused .part may have come from another version of the file: one clean try more.
        restartedAfterMismatch = true;
        staleBytesKept = false;
        resumed = false;
        continue;
      }
      throw mismatch;
    }
    const handle = await fsp.open(part, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const bytes = (await fileSize(part)) ?? 0;
    await fsp.rename(part, dest);
    await syncDir(path.dirname(path.resolve(dest)));
    return { path: dest, bytes, sha256: digests.sha256, md5: digests.md5, attempts, resumed, finalUrl: outcome.finalUrl };
  }

  async function attempt(): Promise<AttemptOutcome> {
    const offset = (await fileSize(part)) ?? 0;
    const rangeHeaders: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const makeTimer = (req: http.ClientRequest, at: URL): Timer => {
      let handle: NodeJS.Timeout | undefined;
      const t: Timer = {
        arm() {
          clearTimeout(handle);
          handle = setTimeout(() => {
            t.fired = new DownloadError(`download of ${describeUrl(at, start)} stalled: no data for ${v.timeoutMs} ms`, {
              code: 'ERR_DOWNLOAD_STALLED', url: at.href, retryable: true,
            });
            req.destroy(t.fired);
          }, v.timeoutMs);
        },
        clear() {
          clearTimeout(handle);
        },
      };
      return t;
    };
    const { res, req, url: at, timer } = await openFollowing(start, v, rangeHeaders, makeTimer);
    try {
      const status = res.statusCode ?? 0;
      let append = false;
      let total: number | undefined;
      const length = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
      if (status === 206 && offset > 0) {
        const range = parseContentRange(res.headers['content-range']);
        if (!range || range.start !== offset) {
          // Not the bytes that were asked for: start over.
          res.resume();
          await fsp.rm(part, { force: true });
          staleBytesKept = false;
          throw new DownloadError(`server answered a resume of ${describeUrl(at, start)} with Content-Range '${res.headers['content-range'] ?? ''}' (asked for bytes=${offset}-)`, {
            code: 'ERR_BAD_RANGE', url: at.href, status, retryable: true,
          });
        }
        append = true;
        resumed = true;
        total = range.total ?? (length !== undefined && Number.isFinite(length) ? offset + length : undefined);
      } else if (status === 416 && offset > 0) {
        res.resume();
        const range = parseContentRange(res.headers['content-range']);
        if (range?.total === offset) {
          resumed = true;
          v.onProgress?.(offset, offset);
          return { kind: 'complete', finalUrl: at.href };
        }
        await fsp.rm(part, { force: true });
        staleBytesKept = false;
        return { kind: 'restart' };
      } else if (status === 200) {
        total = length !== undefined && Number.isFinite(length) ? length : undefined;
      } else {
        res.resume();
        const retryable = status >= 500 || status === 408 || status === 429;
        throw new DownloadError(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} for ${describeUrl(at, start)}`, {
          code: 'ERR_HTTP_STATUS', url: at.href, status, retryable,
        });
      }
      const contentType = String(res.headers['content-type'] ?? '');
      if ((v.sha256 || v.md5 || v.hashPrefix) && /^\s*text\/html\b/i.test(contentType)) {
        res.resume();
        throw new DownloadError(`${describeUrl(at, start)} answered with an HTML page (Content-Type: ${contentType}), not the expected file`, {
          code: 'ERR_UNEXPECTED_HTML', url: at.href, status, retryable: false,
        });
      }
      if (!append) staleBytesKept = false;

      let received = append ? offset : 0;
      const handle = await fsp.open(part, append ? 'a' : 'w', 0o644);
      try {
        v.onProgress?.(received, total);
        timer.arm();
        for await (const chunk of res) {
          timer.clear();
          await handle.write(chunk as Buffer);
          received += (chunk as Buffer).length;
          v.onProgress?.(received, total);
          timer.arm();
        }
      } catch (error) {
        // A destroyed request surfaces as 'aborted' on the response: report the stall instead.
        throw timer.fired ?? error;
      } finally {
        timer.clear();
        await handle.close();
      }
      if (total !== undefined && received < total) {
        throw new DownloadError(`connection to ${describeUrl(at, start)} closed after ${received} of ${total} bytes`, {
          code: 'ERR_DOWNLOAD_INCOMPLETE', url: at.href, status, retryable: true,
        });
      }
      if (total !== undefined && received > total) {
        await fsp.rm(part, { force: true });
        throw new DownloadError(`${describeUrl(at, start)} sent ${received} bytes, more than the ${total} announced`, {
          code: 'ERR_DOWNLOAD_OVERRUN', url: at.href, status, retryable: true,
        });
      }
      return { kind: 'complete', finalUrl: at.href };
    } finally {
      timer.clear();
      req.destroy();
    }
  }
}

function checkDigests(digests: Record<string, string>, v: Validated, dest: string, url: string): ChecksumError | undefined {
  const name = `'${dest}' (downloaded from ${url})`;
  if (v.sha256 && digests.sha256 !== v.sha256) {
    return new ChecksumError(`checksum mismatch for ${name}: expected sha256 ${v.sha256}, got ${digests.sha256}`, dest, 'sha256', v.sha256, digests.sha256);
  }
  if (v.md5 && digests.md5 !== v.md5) {
    return new ChecksumError(`checksum mismatch for ${name}: expected md5 ${v.md5}, got ${digests.md5}`, dest, 'md5', v.md5, digests.md5);
  }
  if (v.hashPrefix && !digests.sha256.startsWith(v.hashPrefix)) {
    return new ChecksumError(
      `checksum mismatch for ${name}: expected a sha256 starting with ${v.hashPrefix}, got ${digests.sha256}`,
      dest, 'sha256', v.hashPrefix, digests.sha256,
    );
  }
  return undefined;
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms and file systems cannot fsync a folder; the rename itself is still atomic.
  }
}

export { progressBar, formatProgress, formatBytes, formatDuration } from './progress';
export type { ProgressBar, ProgressBarOptions, ProgressStream } from './progress';
