// downloadFile against a loopback server: ranges and resume, a connection dropped half way,
// checksums, HTTP errors, redirects, stalls, aborts, https -> http downgrades; and progressBar.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ChecksumError, DownloadError, downloadFile, formatBytes, formatDuration, formatProgress, progressBar, resolveRedirect,
} from '../../lib/download/fetch-file';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { bytes, serveBytes, startServer, type TestServer } from './server';

jest.setTimeout(20_000);

const DATA = bytes(300_000, 7);
const SHA256 = createHash('sha256').update(DATA).digest('hex');
const MD5 = createHash('md5').update(DATA).digest('hex');
const FAST = { retryDelayMs: 5, timeoutMs: 5000 };

let server: TestServer;
let tmp: string;
let flaky = 0;

beforeAll(async () => {
  server = await startServer();
  server.route('/file.bin', serveBytes(DATA));
  server.route('/no-range.bin', serveBytes(DATA, { ranges: false }));
  server.route('/wrong.bin', serveBytes(bytes(DATA.length, 99)));
  server.route('/html', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<html>quota exceeded</html>');
  });
  server.route('/flaky.bin', (req, res) => {
    if (flaky++ === 0) {
      res.writeHead(503, { 'retry-after': '0' });
      res.end('busy');
      return;
    }
    serveBytes(DATA)(req, res);
  });
  server.route('/r1', (_req, res) => {
    res.writeHead(302, { location: server.url('/r2') });
    res.end();
  });
  server.route('/r2', (_req, res) => {
    res.writeHead(301, { location: 'sub/r3' }); // relative: /sub/r3
    res.end();
  });
  server.route('/sub/r3', (_req, res) => {
    res.writeHead(307, { location: '../file.bin' });
    res.end();
  });
  for (let i = 0; i < 20; i++) {
    server.route(`/loop/${i}`, (_req, res) => {
      res.writeHead(302, { location: `/loop/${i + 1}` });
      res.end();
    });
  }
  // Headers and 1000 bytes, then silence (the socket stays open).
  server.route('/stall.bin', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DATA.length });
    res.write(DATA.subarray(0, 1000));
  });
  // Never answers at all.
  server.route('/stall-headers', () => undefined);
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-dl-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

describe('downloadFile', () => {
  test('downloads, verifies sha256 and md5, reports progress and leaves no .part', async () => {
    const dest = path.join(tmp, 'sub', 'file.bin');
    const seen: Array<[number, number | undefined]> = [];
    const result = await downloadFile(server.url('/file.bin'), dest, {
      sha256: SHA256, md5: MD5.toUpperCase(), onProgress: (r, t) => seen.push([r, t]), ...FAST,
    });
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
    expect(result).toMatchObject({ path: dest, bytes: DATA.length, sha256: SHA256, md5: MD5, attempts: 1, resumed: false });
    expect(listDir(path.dirname(dest))).toEqual(['file.bin']);
    expect(seen[seen.length - 1]).toEqual([DATA.length, DATA.length]);
    for (let i = 1; i < seen.length; i++) expect(seen[i][0]).toBeGreaterThanOrEqual(seen[i - 1][0]);
  });

  test('resumes an existing .part with a Range request and appends on 206', async () => {
    const dest = path.join(tmp, 'file.bin');
    fs.writeFileSync(`${dest}.part`, DATA.subarray(0, 123_456));
    const before = server.hitsFor('/file.bin').length;
    const result = await downloadFile(server.url('/file.bin'), dest, { sha256: SHA256, ...FAST });
    const hits = server.hitsFor('/file.bin').slice(before);
    expect(hits.map((h) => h.range)).toEqual(['bytes=123456-']);
    expect(result.resumed).toBe(true);
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
    expect(fs.existsSync(`${dest}.part`)).toBe(false);
  });

  test('restarts from zero when the server answers a Range request with 200', async () => {
    const dest = path.join(tmp, 'file.bin');
    fs.writeFileSync(`${dest}.part`, Buffer.from('garbage that must not survive'));
    const result = await downloadFile(server.url('/no-range.bin'), dest, { sha256: SHA256, ...FAST });
    expect(result.resumed).toBe(false);
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('a .part that is already whole is finished via 416 without new bytes', async () => {
    const dest = path.join(tmp, 'file.bin');
    fs.writeFileSync(`${dest}.part`, DATA);
    const result = await downloadFile(server.url('/file.bin'), dest, { sha256: SHA256, ...FAST });
    expect(result.resumed).toBe(true);
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('a stale .part from another file version is discarded after a checksum mismatch and fetched again', async () => {
    const dest = path.join(tmp, 'file.bin');
    fs.writeFileSync(`${dest}.part`, bytes(1000, 5)); // wrong first 1000 bytes
    const result = await downloadFile(server.url('/file.bin'), dest, { sha256: SHA256, ...FAST });
    expect(result.attempts).toBe(2);
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('a connection dropped half way is retried with a resume from the bytes kept and the hash matches', async () => {
    const dest = path.join(tmp, 'drop.bin');
    // The first request gets the first half of the file, then its connection is cut once both the
    // half was handed to the socket and the client has put bytes in the .part. How much of the half
    // the client kept depends on the machine, so the retry is checked against the .part itself.
    let first: Socket | undefined;
    let halfSent = false;
    let clientHasBytes = false;
    let partAtRetry: number | undefined;
    const cut = () => {
      if (halfSent && clientHasBytes && !first!.destroyed) first!.destroy();
    };
    server.route('/drop-once.bin', (req, res) => {
      if (first) {
        partAtRetry = fs.statSync(`${dest}.part`, { throwIfNoEntry: false })?.size ?? 0;
        return serveBytes(DATA)(req, res);
      }
      first = req.socket;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DATA.length });
      res.write(DATA.subarray(0, DATA.length / 2), () => {
        halfSent = true;
        cut();
      });
    });
    const onProgress = (received: number) => {
      if (received > 0 && !clientHasBytes) {
        clientHasBytes = true;
        cut();
      }
    };
    const result = await downloadFile(server.url('/drop-once.bin'), dest, { sha256: SHA256, retries: 2, onProgress, ...FAST });
    const hits = server.hitsFor('/drop-once.bin');
    expect(hits).toHaveLength(2);
    expect(hits[0].range).toBeUndefined();
    expect(partAtRetry).toBeGreaterThan(0);
    expect(partAtRetry).toBeLessThanOrEqual(DATA.length / 2);
    expect(hits[1].range).toBe(`bytes=${partAtRetry}-`);
    expect(result).toMatchObject({ attempts: 2, resumed: true, sha256: SHA256 });
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
    expect(listDir(tmp)).toEqual(['drop.bin']);
  });

  test('a 503 is retried with backoff', async () => {
    const dest = path.join(tmp, 'flaky.bin');
    const result = await downloadFile(server.url('/flaky.bin'), dest, { sha256: SHA256, ...FAST });
    expect(result.attempts).toBe(2);
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('wrong content: checksum error naming file, expected and actual hash; no final file, no .part', async () => {
    const dest = path.join(tmp, 'wrong.bin');
    const actual = createHash('sha256').update(bytes(DATA.length, 99)).digest('hex');
    const error = (await downloadFile(server.url('/wrong.bin'), dest, { sha256: SHA256, ...FAST }).catch((e) => e)) as ChecksumError;
    expect(error).toBeInstanceOf(ChecksumError);
    expect(error.message).toContain(dest);
    expect(error.message).toContain(`expected sha256 ${SHA256}`);
    expect(error.message).toContain(`got ${actual}`);
    expect(error).toMatchObject({ algorithm: 'sha256', expected: SHA256, actual, file: dest });
    expect(listDir(tmp)).toEqual([]);
  });

  test('md5 and sha256-prefix mismatches are reported as such', async () => {
    const dest = path.join(tmp, 'wrong.bin');
    await expect(downloadFile(server.url('/wrong.bin'), dest, { md5: MD5, ...FAST })).rejects.toThrow(`expected md5 ${MD5}, got `);
    await expect(downloadFile(server.url('/wrong.bin'), dest, { hashPrefix: SHA256.slice(0, 8), ...FAST })).rejects.toThrow(
      `expected a sha256 starting with ${SHA256.slice(0, 8)}, got `,
    );
    await downloadFile(server.url('/file.bin'), dest, { hashPrefix: SHA256.slice(0, 8).toUpperCase(), ...FAST });
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('an HTTP error names the status and the URL, is not retried and leaves nothing', async () => {
    const dest = path.join(tmp, 'missing.bin');
    const before = server.hitsFor('/missing').length;
    const error = (await downloadFile(server.url('/missing'), dest, FAST).catch((e) => e)) as DownloadError;
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toBe(`HTTP 404 Not Found for ${server.url('/missing')}`);
    expect(error.status).toBe(404);
    expect(server.hitsFor('/missing').length - before).toBe(1);
    expect(listDir(tmp)).toEqual([]);
  });

  test('an HTML page where a verified file was expected is refused', async () => {
    await expect(downloadFile(server.url('/html'), path.join(tmp, 'x.bin'), { md5: MD5, ...FAST })).rejects.toThrow(
      /answered with an HTML page \(Content-Type: text\/html/,
    );
  });

  test('follows a redirect chain, relative locations included', async () => {
    const dest = path.join(tmp, 'file.bin');
    const result = await downloadFile(server.url('/r1'), dest, { sha256: SHA256, ...FAST });
    expect(result.finalUrl).toBe(server.url('/file.bin'));
    expect(fs.readFileSync(dest).equals(DATA)).toBe(true);
  });

  test('caller headers go to the first origin only, not across a redirect to another one', async () => {
    const other = await startServer();
    try {
      other.route('/file.bin', serveBytes(DATA));
      server.route('/to-other', (_req, res) => {
        res.writeHead(302, { location: other.url('/file.bin') });
        res.end();
      });
      await downloadFile(server.url('/to-other'), path.join(tmp, 'o.bin'), { sha256: SHA256, headers: { 'x-token': 'secret' }, ...FAST });
      expect(server.hitsFor('/to-other')[0].headers['x-token']).toBe('secret');
      expect(other.hitsFor('/file.bin')[0].headers['x-token']).toBeUndefined();
      expect(other.hitsFor('/file.bin')[0].headers['accept-encoding']).toBe('identity');
    } finally {
      await other.close();
    }
  });

  test('more than 10 redirects is an error', async () => {
    const before = server.hits.length;
    await expect(downloadFile(server.url('/loop/0'), path.join(tmp, 'loop.bin'), FAST)).rejects.toThrow(
      `too many redirects (more than 10) starting at ${server.url('/loop/0')}`,
    );
    expect(server.hits.length - before).toBe(11);
    expect(listDir(tmp)).toEqual([]);
  });

  test('a stalled body times out (and is retried), keeping the .part for a later resume', async () => {
    const dest = path.join(tmp, 'stall.bin');
    // The stall limit is also how long the client waits for the first 1000 bytes: 1 s is a hang
    // bound for a loopback answer, even on a loaded machine. The message names the limit in force,
    // so the option is seen to replace the default (30 s) without timing anything.
    const error = (await downloadFile(server.url('/stall.bin'), dest, { timeoutMs: 1000, retries: 1, retryDelayMs: 5 }).catch((e) => e)) as Error;
    expect(error.message).toBe(
      `download of ${server.url('/stall.bin')} failed after 2 attempts: download of ${server.url('/stall.bin')} stalled: no data for 1000 ms`,
    );
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.statSync(`${dest}.part`).size).toBe(1000);
    expect(server.hitsFor('/stall.bin').map((h) => h.range)).toEqual([undefined, 'bytes=1000-']);
  });

  test('a server that never answers times out', async () => {
    // the message names the limit in force: this one, not the default 30 s
    await expect(downloadFile(server.url('/stall-headers'), path.join(tmp, 'x'), { timeoutMs: 100, retries: 0 })).rejects.toThrow(
      /stalled: no data for 100 ms/,
    );
  });

  test('an AbortSignal stops a download under way and keeps the .part', async () => {
    const controller = new AbortController();
    const dest = path.join(tmp, 'x');
    // aborted once the 1000 bytes the stalling server sends are in the .part
    const onProgress = (received: number) => received === 1000 && controller.abort();
    const error = (await downloadFile(server.url('/stall.bin'), dest, { timeoutMs: 60_000, signal: controller.signal, onProgress }).catch(
      (e) => e,
    )) as Error;
    expect(error.name).toBe('AbortError');
    expect(fs.statSync(`${dest}.part`).size).toBe(1000);
    expect(fs.existsSync(dest)).toBe(false);
  });

  test('options are checked, sharp-style', async () => {
    const dest = path.join(tmp, 'x');
    await expect(downloadFile('ftp://example.invalid/x', dest)).rejects.toThrow(
      "Expected an http or https URL for url but received 'ftp://example.invalid/x' of type string",
    );
    await expect(downloadFile(server.url('/file.bin'), dest, { sha256: 'abc' })).rejects.toThrow(
      "Expected a string of 64 hex digits for sha256 but received 'abc' of type string",
    );
    await expect(downloadFile(server.url('/file.bin'), dest, { sha265: SHA256 } as never)).rejects.toThrow(
      "Unknown option 'sha265' in downloadFile options (did you mean 'sha256'?)",
    );
    await expect(downloadFile(server.url('/file.bin'), dest, { retries: -1 })).rejects.toThrow(
      'Expected non-negative integer for retries but received -1 of type number',
    );
    await expect(downloadFile(server.url('/file.bin'), dest, { timeoutMs: 0 })).rejects.toThrow(
      'Expected positive integer for timeoutMs but received 0 of type number',
    );
  });
});

describe('redirect policy', () => {
  test('resolveRedirect resolves relative locations and refuses downgrades and other schemes', () => {
    expect(resolveRedirect(new URL('https://a.example/x/y'), 'z').href).toBe('https://a.example/x/z');
    expect(resolveRedirect(new URL('http://a.example/x'), 'https://b.example/').href).toBe('https://b.example/');
    expect(() => resolveRedirect(new URL('https://a.example/x'), 'http://a.example/x')).toThrow(
      'refusing redirect from https to http: https://a.example/x -> http://a.example/x',
    );
    expect(() => resolveRedirect(new URL('http://a.example/x'), 'file:///etc/passwd')).toThrow(/only http and https are followed/);
  });

  const version = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  const openssl = prerequisite(
    'openssl (a private CA for the https tests)',
    version.status === 0 ? null : `openssl does not run: ${version.error?.message ?? version.stderr} (apt-get install openssl)`,
  );
  openssl.test('an https server redirecting to http is refused (and https works with a private CA)', async () => {
    assertPresent(openssl);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-tls-'));
    try {
      const made = spawnSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
          '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
        { encoding: 'utf8', timeout: 15_000 },
      );
      expect(made.status).toBe(0);
      const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
      const secure = await startServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert });
      try {
        secure.route('/file.bin', serveBytes(DATA));
        secure.route('/down', (_req, res) => {
          res.writeHead(302, { location: server.url('/file.bin') });
          res.end();
        });
        const ok = await downloadFile(secure.url('/file.bin'), path.join(tmp, 'tls.bin'), { sha256: SHA256, ca: cert, ...FAST });
        expect(ok.bytes).toBe(DATA.length);
        const before = server.hitsFor('/file.bin').length;
        await expect(downloadFile(secure.url('/down'), path.join(tmp, 'down.bin'), { ca: cert, ...FAST })).rejects.toThrow(
          `refusing redirect from https to http: ${secure.url('/down')} -> ${server.url('/file.bin')}`,
        );
        expect(server.hitsFor('/file.bin').length).toBe(before);
        expect(fs.existsSync(path.join(tmp, 'down.bin'))).toBe(false);
      } finally {
        await secure.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('progressBar', () => {
  function fakeStream(isTTY: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY, columns: 120, write: (s: string) => void writes.push(s) } };
  }

  test('formats sizes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(12_300_000)).toBe('12.3 MB');
    expect(formatBytes(1_500_000_000)).toBe('1.5 GB');
    expect(formatDuration(3.2)).toBe('3s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatProgress('x', 100, undefined, 0)).toBe('x  100 B');
  });

  test('on a TTY it redraws one line: name, percent, bar, sizes, speed, ETA', () => {
    const { writes, stream } = fakeStream(true);
    let now = 0;
    const bar = progressBar(stream, { name: 'resnet18-f37072fd.pth', now: () => now });
    bar(0, 27_400_000);
    now = 2418;
    bar(12_330_000, 27_400_000);
    const line = writes[writes.length - 1];
    expect(line.startsWith('\r')).toBe(true);
    expect(line).toMatch(/^\rresnet18-f37072fd\.pth {2}45% \|█{13}[▏▎▍▌▋▊▉]? +\| 12\.3\/27\.4 MB 5\.1 MB\/s ETA 3s\x1b\[K$/);
    now = 5000;
    bar(27_400_000, 27_400_000);
    expect(writes[writes.length - 1]).toBe('\n');
    expect(writes[writes.length - 2]).toContain('100% |██████████████████████████████| 27.4/27.4 MB');
  });

  test('when not a TTY it is silent until the end, then prints one line', () => {
    const { writes, stream } = fakeStream(false);
    let now = 0;
    const bar = progressBar(stream, { name: 'f.bin', now: () => now });
    for (let i = 0; i <= 10; i++) {
      now = i * 100;
      bar(i * 100_000, 1_000_000);
    }
    bar.done();
    expect(writes).toEqual(['f.bin 100% 1.0 MB in 1.0s (1.0 MB/s)\n']);
  });

  test('works as downloadFile onProgress', async () => {
    const { writes, stream } = fakeStream(false);
    const dest = path.join(tmp, 'file.bin');
    await downloadFile(server.url('/file.bin'), dest, { onProgress: progressBar(stream, { name: 'file.bin' }), ...FAST });
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^file\.bin 100% 300\.0 kB in /);
  });
});
