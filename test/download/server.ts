// A loopback HTTP(S) server for the download tests: listens on 127.0.0.1 only, on a free port,
// records every request, and closes every socket it ever opened when stopped.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface Hit {
  method: string;
  path: string;
  range?: string;
  headers: http.IncomingHttpHeaders;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface TestServer {
  base: string;
  url(path: string): string;
  hits: Hit[];
  hitsFor(path: string): Hit[];
  /** Routes by exact path (query ignored); unknown paths get a 404. */
  route(path: string, handler: Handler): void;
  close(): Promise<void>;
}

export async function startServer(tls?: { key: string | Buffer; cert: string | Buffer }): Promise<TestServer> {
  const routes = new Map<string, Handler>();
  const hits: Hit[] = [];
  const sockets = new Set<Socket>();
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    hits.push({ method: req.method ?? '', path: pathname, range: req.headers.range, headers: req.headers });
    const handler = routes.get(pathname);
    if (handler) handler(req, res);
    else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  };
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    base,
    url: (p) => `${base}${p.startsWith('/') ? '' : '/'}${p}`,
    hits,
    hitsFor: (p) => hits.filter((h) => h.path === p),
    route: (p, handler) => void routes.set(p, handler),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Serves `data` with Range support (206 / 416) unless `ranges` is false. */
export function serveBytes(data: Buffer, options: { ranges?: boolean; contentType?: string } = {}): Handler {
  return (req, res) => {
    const type = options.contentType ?? 'application/octet-stream';
    const range = req.headers.range;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (options.ranges !== false && m) {
      const start = Number(m[1]);
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        'content-type': type,
        'content-length': data.length - start,
        'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
        'accept-ranges': 'bytes',
      });
      res.end(data.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-type': type, 'content-length': data.length, ...(options.ranges !== false ? { 'accept-ranges': 'bytes' } : {}) });
    res.end(data);
  };
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
