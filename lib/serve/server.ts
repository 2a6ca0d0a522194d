// The prediction server behind `finetorch serve`: Node's own http, no framework.
//
//   GET  /         the page: drop or pick images, see each one's top-k as bars
//   GET  /healthz  {"status":"ok", ...} while the server is up
//   GET  /info     the run: name, network, classes, test accuracy
//   POST /predict  an image file's bytes as the body -> {"top":[{className, probability}, ...]};
//                  or multipart/form-data with file parts -> {"predictions":[{file, top}, ...]}
//
// Numbers are those of `finetorch predict` for the same file: the same decode and transform, and
// each image goes through the network alone (a batch could round differently), one forward pass at
// a time through a queue, while reading and decoding bodies run concurrently. Limits, each answered
// with a JSON {"error": "..."}: bodies over maxBodyBytes are 413 (refused from the Content-Length,
// else as soon as the count passes the limit; reading stops and the connection is closed), images
// over maxPixels 413, anything not a decodable image 400, more than maxPending requests at once 503.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { DecodeError, type DecodedImage } from '../data/decode';
import { sniffImageFormat } from '../data/formats';
import { decodeForRun, predictImages, type ClassProbability } from '../experiment/predict';
import type { LoadedRun } from '../experiment/runs';
import { integerInRange, knownKeys, nonEmptyString, plainObject, positiveInteger } from '../utils/validate';
import { MultipartError, multipartBoundary, parseMultipart } from './multipart';
import { renderPage } from './page';
import { SerialQueue } from './queue';
import { runInfo, type RunInfo } from './run-info';

export interface ServeOptions {
  /** Interface to listen on. Default '127.0.0.1' (this machine only). */
  host?: string;
  /** Default 8080; 0 picks a free port (see `url`). */
  port?: number;
  /** Largest request body. Default 10 MiB. */
  maxBodyBytes?: number;
  /** Largest image, width x height, checked from its header before decoding. Default 50 megapixels. */
  maxPixels?: number;
  /** Prediction requests being read, decoded or queued at once; more are refused with 503. Default 512. */
  maxPending?: number;
  /** Classes per prediction. Default 5. */
  top?: number;
}

export interface PredictionServer {
  server: http.Server;
  /** http://host:port/ */
  url: string;
  info: RunInfo;
  /** Stops listening, lets requests in progress finish, and waits for the last forward pass. The run's model stays the caller's. */
  close(): Promise<void>;
}

export const MiB = 1024 * 1024;
const SERVE_KEYS = ['host', 'port', 'maxBodyBytes', 'maxPixels', 'maxPending', 'top'] as const;

export function normalizeServeOptions(options: ServeOptions = {}): Required<ServeOptions> {
  knownKeys('serve options', plainObject('serve options', options), SERVE_KEYS);
  return {
    host: options.host === undefined ? '127.0.0.1' : nonEmptyString('host', options.host),
    port: options.port === undefined ? 8080 : integerInRange('port', options.port, 0, 65535),
    maxBodyBytes: options.maxBodyBytes === undefined ? 10 * MiB : positiveInteger('maxBodyBytes', options.maxBodyBytes),
    maxPixels: options.maxPixels === undefined ? 50_000_000 : positiveInteger('maxPixels', options.maxPixels),
    maxPending: options.maxPending === undefined ? 512 : positiveInteger('maxPending', options.maxPending),
    top: options.top === undefined ? 5 : positiveInteger('top', options.top),
  };
}

/** An answer other than 200, with its status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Close the connection after answering: the body was not (fully) read. */
    readonly close = false,
  ) {
    super(message);
  }
}

const ROUTES: Record<string, string[]> = { '/': ['GET', 'HEAD'], '/healthz': ['GET', 'HEAD'], '/info': ['GET', 'HEAD'], '/predict': ['POST'] };

export async function createPredictionServer(run: LoadedRun, options: ServeOptions = {}): Promise<PredictionServer> {
  const o = normalizeServeOptions(options);
  const info = runInfo(run);
  const page = Buffer.from(renderPage(info, { maxBodyBytes: o.maxBodyBytes }), 'utf8');
  const queue = new SerialQueue();
  let pending = 0;
  let closing = false;

  const tooLarge = (what: string) => `Expected a body of at most ${o.maxBodyBytes} bytes (${(o.maxBodyBytes / MiB).toFixed(1)} MiB) but received ${what}`;

  /** One image file's bytes to the top classes. */
  async function classify(bytes: Buffer): Promise<ClassProbability[]> {
    await checkPixels(bytes, o.maxPixels);
    let image: DecodedImage;
    try {
      image = await decodeForRun(run, bytes);
    } catch (e) {
      const reason = e instanceof DecodeError ? e.reason : (e as Error).message;
      throw new HttpError(400, `Expected an image file (JPEG, PNG, GIF, WebP, TIFF or BMP) but could not decode it: ${reason}`);
    }
    const [top] = await queue.run(() => predictImages(run, [image], o.top));
    return top;
  }

  async function predictRoute(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue: boolean): Promise<unknown> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > o.maxBodyBytes) throw new HttpError(413, tooLarge(`a Content-Length of ${declared}`), true);
    const boundary = formBoundary(req.headers['content-type']);
    if (expectsContinue) res.writeContinue();
    const body = await readBody(req, o.maxBodyBytes);
    if (body === null) throw new HttpError(413, tooLarge('more'), true);
    if (boundary === undefined) return { top: await classify(body) };
    const files = formFiles(body, boundary);
    const tops = await Promise.all(
      files.map((f) =>
        classify(f.data).catch((e) => {
          if (e instanceof HttpError) throw new HttpError(e.status, `${f.filename}: ${e.message}`);
          throw e;
        }),
      ),
    );
    return { predictions: files.map((f, i) => ({ file: f.filename, top: tops[i] })) };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue = false): Promise<void> {
    // once closing, answers end their connections so that keep-alive ones do not hold close() up
    const answer = (status: number, body: unknown, close = false) => sendJson(res, status, body, close || closing);
    try {
      const route = routeOf(req.url);
      const methods = ROUTES[route];
      if (!methods) throw new HttpError(404, `No such page: ${route} (the server answers GET /, GET /healthz, GET /info and POST /predict)`);
      if (!methods.includes(req.method ?? '')) {
        res.setHeader('Allow', methods.join(', '));
        throw new HttpError(405, `Expected ${methods.join(' or ')} for ${route} but received ${req.method}`);
      }
      if (route === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.length, 'Cache-Control': 'no-store', 'Content-Security-Policy': PAGE_POLICY, ...(closing ? { Connection: 'close' } : {}) });
        res.end(page);
      } else if (route === '/healthz') {
        answer(200, { status: closing ? 'closing' : 'ok', run: info.name, queued: queue.size, pending });
      } else if (route === '/info') {
        answer(200, info);
      } else {
        if (pending >= o.maxPending) throw new HttpError(503, `Busy: ${pending} predictions in progress (the limit is ${o.maxPending}); try again shortly`, true);
        pending++;
        try {
          answer(200, await predictRoute(req, res, expectsContinue));
        } finally {
          pending--;
        }
      }
    } catch (e) {
      if (e instanceof HttpError) {
        answer(e.status, { error: e.message }, e.close);
      } else if (!req.destroyed) {
        // a client that went away mid-body lands here too, with nobody left to answer
        process.stderr.write(`finetorch serve: ${req.method} ${req.url}: ${(e as Error).stack ?? e}\n`);
        answer(500, { error: `Internal error: ${(e as Error).message}` }, true);
      }
    }
  }

  const server = http.createServer((req, res) => void handle(req, res));
  // `Expect: 100-continue` (curl sends it for large bodies): refuse an oversized one before it is sent.
  server.on('checkContinue', (req, res) => void handle(req, res, true));
  // Malformed requests: a 400 instead of a silent close.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') {
      const text = JSON.stringify({ error: `Bad request: ${err.code ?? err.message}` });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    } else {
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/`;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing = true;
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }).then(() => queue.run(async () => undefined));
    return closed;
  };
  return { server, url, info, close };
}

const PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

function routeOf(url: string | undefined): string {
  try {
    return new URL(url ?? '/', 'http://localhost').pathname;
  } catch {
    throw new HttpError(400, `Bad request target: ${url}`);
  }
}

function formBoundary(contentType: string | undefined): string | undefined {
  try {
    return multipartBoundary(contentType);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
}

function formFiles(body: Buffer, boundary: string): Array<{ filename: string; data: Buffer }> {
  let parts;
  try {
    parts = parseMultipart(body, boundary);
  } catch (e) {
    if (e instanceof MultipartError) throw new HttpError(400, e.message);
    throw e;
  }
  const files = parts.filter((p) => p.filename !== null).map((p) => ({ filename: p.filename as string, data: p.data }));
  if (files.length === 0) throw new HttpError(400, `Expected at least one file in the multipart/form-data body but received ${parts.length} part(s) without a filename`);
  return files;
}

/** The whole body, or null as soon as it passes `limit` bytes (then the rest is left unread). */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: Error | undefined, value?: Buffer | null) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (error) reject(error);
      else resolve(value ?? null);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        chunks.length = 0;
        settle(undefined, null);
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => settle(undefined, Buffer.concat(chunks, size));
    const onError = (e: Error) => settle(e);
    const onClose = () => settle(new Error('the client closed the connection before the body ended'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/** Refuses images whose header claims more than `maxPixels`: decoding one would take gigabytes. */
async function checkPixels(bytes: Buffer, maxPixels: number): Promise<void> {
  const format = sniffImageFormat(bytes.subarray(0, 32));
  if (format === undefined || format === 'bmp') return; // not an image (the decoder says so), or BMP (uncompressed only: its pixels are in the body)
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch {
    return; // unreadable header: the decoder gives the reason
  }
  if (width && height && width * height > maxPixels) {
    throw new HttpError(413, `Expected an image of at most ${maxPixels} pixels but received ${width}x${height} (${width * height})`);
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' };
  if (close) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}
