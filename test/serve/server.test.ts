// The prediction server with real requests over loopback: its numbers are predict()'s (so
// `finetorch predict`'s) for the same image, also under 200 concurrent requests; corrupt and
// oversized bodies are refused with a JSON message and the server keeps answering; the
// `finetorch serve` command starts, answers and closes on SIGTERM.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { predict } from '../../lib/experiment/predict';
import { readResults } from '../../lib/experiment/results';
import { loadRun, type LoadedRun } from '../../lib/experiment/runs';
import { getNumThreads, setNumThreads } from '../../lib/runtime';
import { createPredictionServer, type PredictionServer } from '../../lib/serve/server';
import { builtCliProblem, CLI, ROOT, runCli, expectExit } from '../helpers/cli-process';
import { prerequisite } from '../helpers/prerequisite';
import { createTinyRun, type TinyRun } from '../helpers/tiny-run';
import { watchLines } from '../helpers/wait-for';
import { multipartBody, postImage, request } from '../helpers/http-client';

const LIMIT = 256 * 1024;
let dir: string;
let tiny: TinyRun;
let run: LoadedRun;
let served: PredictionServer;
let threads: number;
/** predict()'s top-5 for each image, one image per call. */
const alone = new Map<string, Awaited<ReturnType<typeof predict>>[number]['top']>();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-serve-'));
  // 34 different images per class x 6 classes: the 200 concurrent requests each send a different one
  tiny = await createTinyRun(dir, { classes: 6, perClass: 34 });
  run = await loadRun(tiny.runDir);
  // one intra-op thread: on a small, busy machine two spin against each other (a forward pass 10x slower)
  threads = getNumThreads();
  setNumThreads(1);
  for (const file of tiny.images) alone.set(file, (await predict(run, [file]))[0].top);
  served = await createPredictionServer(run, { port: 0, maxBodyBytes: LIMIT, maxPixels: 1_000_000 });
  setNumThreads(threads);
});
// set per test and put back after each (state-restore checks the count after the last test)
beforeEach(() => setNumThreads(1));
afterEach(() => threads && setNumThreads(threads));
afterAll(async () => {
  await served?.close();
  run?.model.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const url = (p: string) => new URL(p, served.url).href;

async function expectHealthy(): Promise<void> {
  const health = await request(url('healthz'));
  expect(health.status).toBe(200);
  expect(health.json).toMatchObject({ status: 'ok', run: 'tiny-run' });
}

test('listens on 127.0.0.1 by default options; GET /healthz and /info describe the run', async () => {
  expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  await expectHealthy();
  const info = await request(url('info'));
  expect(info.status).toBe(200);
  const results = readResults(tiny.runDir);
  expect(info.json).toEqual({
    name: 'tiny-run', arch: 'resnet18', classes: tiny.dataset.classes, imageSize: 32,
    testTop1: results.test.top1, testTop5: results.test.top5, testImages: results.test.count,
  });
  const page = await request(served.url);
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  expect(page.text).toContain('<input id="file" type="file"');
  expect(page.text).not.toMatch(/<(script|link|img)[^>]+(src|href)="?https?:/); // nothing fetched from elsewhere
});

test('POST /predict with an image as the body: exactly predict()\'s top-5 for that file (JPEG and PNG)', async () => {
  const png = tiny.images.find((f) => f.endsWith('.png'));
  expect(png).toBeDefined();
  for (const file of [tiny.images[0], png!]) {
    const answer = await postImage(served.url, fs.readFileSync(file), file.endsWith('.png') ? 'image/png' : 'image/jpeg');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.json.top).toHaveLength(5);
    expect(answer.json).toEqual({ top: alone.get(file) });
  }
});

test('multipart/form-data: one prediction per file part, plain fields ignored', async () => {
  const [a, b] = [tiny.images[1], tiny.images[60]];
  const form = multipartBody([
    { name: 'note', data: 'not a file' },
    { name: 'image', filename: 'a.jpg', contentType: 'image/jpeg', data: fs.readFileSync(a) },
    { name: 'image', filename: 'b c.jpg', contentType: 'image/jpeg', data: fs.readFileSync(b) },
  ]);
  const answer = await postImage(served.url, form.body, form.contentType);
  expect(answer.status).toBe(200);
  expect(answer.json).toEqual({ predictions: [{ file: 'a.jpg', top: alone.get(a) }, { file: 'b c.jpg', top: alone.get(b) }] });

  const noFile = multipartBody([{ name: 'note', data: 'text only' }]);
  const refused = await postImage(served.url, noFile.body, noFile.contentType);
  expect(refused.status).toBe(400);
  expect(refused.json.error).toMatch(/at least one file/);
  const truncated = await postImage(served.url, form.body.subarray(0, form.body.length - 200), form.contentType);
  expect(truncated.status).toBe(400);
  expect(truncated.json.error).toMatch(/multipart/);
  const badPart = multipartBody([{ name: 'image', filename: 'notes.txt', data: 'hello' }]);
  const bad = await postImage(served.url, badPart.body, badPart.contentType);
  expect(bad.status).toBe(400);
  expect(bad.json.error).toMatch(/^notes\.txt: .*not an image/);
});

test('200 concurrent requests, each a different image: each gets the answer its image gets alone', async () => {
  const files = tiny.images.slice(0, 200);
  expect(new Set(files).size).toBe(200);
  const bodies = files.map((f) => fs.readFileSync(f));
  const answers = await Promise.all(bodies.map((body) => postImage(served.url, body, 'image/jpeg')));
  const wrong = answers.map((a, i) => ({ a, i })).filter(({ a, i }) => a.status !== 200 || JSON.stringify(a.json.top) !== JSON.stringify(alone.get(files[i])));
  expect(wrong.map(({ a, i }) => `${files[i]}: ${a.status} ${a.text}`)).toEqual([]);
  // the images do not all get one answer (the comparison above would be weak if they did)
  expect(new Set(answers.map((a) => JSON.stringify(a.json.top))).size).toBeGreaterThan(100);
  const health = await request(url('healthz'));
  expect(health.json).toMatchObject({ queued: 0 });
});

test('corrupt and non-image bodies are a 400 with a message; the server answers correctly afterwards', async () => {
  const jpeg = fs.readFileSync(tiny.images[2]);
  const png = fs.readFileSync(tiny.images.find((f) => f.endsWith('.png'))!);
  const random = Buffer.alloc(5000);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  const corruptPng = Buffer.from(png);
  corruptPng.fill(0x55, 40, corruptPng.length - 20); // header intact, compressed data garbage
  const cases: Array<[string, Buffer | string, RegExp]> = [
    ['a truncated JPEG', jpeg.subarray(0, Math.floor(jpeg.length / 2)), /JPEG|premature|truncated/i],
    ['a PNG with garbage data', corruptPng, /decode/],
    ['random bytes', random, /not an image/],
    ['text', 'hello, this is not an image', /not an image/],
    ['JSON', JSON.stringify({ image: 'cat.jpg' }), /not an image/],
    ['an empty body', '', /empty/],
  ];
  for (const [what, body, reason] of cases) {
    const answer = await postImage(served.url, body, 'image/jpeg');
    expect({ what, status: answer.status }).toEqual({ what, status: 400 });
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.json.error).toMatch(/^Expected an image file/);
    expect(answer.json.error).toMatch(reason);
  }
  // concurrently with good requests: the failures do not touch their neighbours' answers
  const mixed = await Promise.all(tiny.images.slice(3, 23).map((f, i) => postImage(served.url, i % 2 ? 'garbage' : fs.readFileSync(f))));
  mixed.forEach((a, i) => {
    if (i % 2) expect(a.status).toBe(400);
    else expect(a.json).toEqual({ top: alone.get(tiny.images[3 + i]) });
  });
  await expectHealthy();
});

test('an image whose header claims too many pixels is refused before decoding (413)', async () => {
  const big = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#808080' } }).png().toBuffer();
  expect(big.length).toBeLessThan(LIMIT);
  const answer = await postImage(served.url, big, 'image/png');
  expect(answer.status).toBe(413);
  expect(answer.json.error).toMatch(/at most 1000000 pixels but received 1200x1000/);
  await expectHealthy();
});

/** Sends an endless chunked body on a raw socket; `polite` stops at the first byte of an answer. */
function streamBody(polite: boolean, cap = 256 * 1024 * 1024): Promise<{ written: number; answer: string; error?: string }> {
  return new Promise((resolve) => {
    const { port } = new URL(served.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    let written = 0;
    let answer = '';
    let error: string | undefined;
    let closed = false;
    let wake: (() => void) | undefined;
    socket.on('data', (c) => {
      answer += c.toString('latin1');
      wake?.();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      closed = true;
      wake?.();
      resolve({ written, answer, error });
    });
    socket.on('drain', () => wake?.());
    const chunk = Buffer.alloc(64 * 1024, 0xff);
    const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    socket.once('connect', async () => {
      socket.write('POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n');
      while (!closed && written < cap && !(polite && answer.length > 0)) {
        written += chunk.length;
        if (!socket.write(framed)) await new Promise<void>((r) => (wake = r));
      }
      if (!closed) socket.end();
    });
  });
}

test('oversized bodies: 413 from the Content-Length before any byte of the body is sent', async () => {
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = require('node:http').request(url('predict'), { method: 'POST', headers: { 'Content-Type': 'image/jpeg', 'Content-Length': LIMIT + 1 } }, (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.flushHeaders(); // the body is never written
  });
  expect(answer.status).toBe(413);
  expect(JSON.parse(answer.body).error).toMatch(new RegExp(`at most ${LIMIT} bytes .* Content-Length of ${LIMIT + 1}`));
  await expectHealthy();
});

test('oversized bodies without a length: 413 once past the limit, and the server stops reading', async () => {
  const polite = await streamBody(true);
  expect(polite.answer).toMatch(/^HTTP\/1\.1 413 /);
  expect(polite.answer).toMatch(/Connection: close/i);
  expect(JSON.parse(polite.answer.slice(polite.answer.indexOf('\r\n\r\n') + 4)).error).toMatch(`at most ${LIMIT} bytes`);
  // a client that never stops sending is cut off: the server neither buffers nor drains 256 MiB
  const relentless = await streamBody(false);
  expect(relentless.written).toBeLessThan(64 * 1024 * 1024);
  await expectHealthy();
  const after = await postImage(served.url, fs.readFileSync(tiny.images[5]));
  expect(after.json).toEqual({ top: alone.get(tiny.images[5]) });
});

test('unknown routes are 404, wrong methods 405 with Allow, all as JSON', async () => {
  const missing = await request(url('nowhere'));
  expect(missing.status).toBe(404);
  expect(missing.json.error).toMatch(/No such page: \/nowhere/);
  const get = await request(url('predict'));
  expect(get.status).toBe(405);
  expect(get.headers.allow).toBe('POST');
  expect(get.json.error).toBe('Expected POST for /predict but received GET');
  const post = await request(url('healthz'), { method: 'POST', body: 'x' });
  expect(post.status).toBe(405);
  expect(post.headers.allow).toBe('GET, HEAD');
  const query = await request(url('healthz?verbose=1'));
  expect(query.status).toBe(200);
});

test('more requests in progress than maxPending: 503; the held one still completes, also across close()', async () => {
  const small = await createPredictionServer(run, { port: 0, maxPending: 1 });
  try {
    const { port } = new URL(small.url);
    const body = fs.readFileSync(tiny.images[7]);
    // request 1: headers and half its body, then it waits
    const socket = net.connect(Number(port), '127.0.0.1');
    let answer = '';
    const ended = new Promise<void>((resolve) => socket.on('data', (c) => (answer += c)).on('end', resolve).on('close', resolve));
    socket.write(`POST /predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.subarray(0, 100));
    // wait (by asking, not by the clock) until the server holds it
    while ((await request(new URL('healthz', small.url).href)).json.pending !== 1);
    const refused = await postImage(small.url, body);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toMatch(/Busy: 1 predictions in progress \(the limit is 1\)/);
    // close() while it is held: it still gets its answer, then the server is gone
    const closed = small.close();
    socket.write(body.subarray(100)); // not end(): a half-closed request is abandoned by Node's server
    await ended;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ top: alone.get(tiny.images[7]) });
    await closed;
    await expect(request(new URL('healthz', small.url).href)).rejects.toThrow(/ECONNREFUSED/);
  } finally {
    await small.close();
  }
});

const built = prerequisite('finetorch serve (the built CLI)', builtCliProblem());

built.test('finetorch serve <run>: prints its URL, answers as finetorch predict does, closes on SIGTERM', async () => {
  const file = tiny.images[11];
  const predicted = await runCli(['predict', '--checkpoint', tiny.runDir, '--json', file]);
  expectExit(predicted, 0, 'finetorch predict');
  const child = spawn(process.execPath, [CLI, 'serve', tiny.runDir, '--port', '0', '--max-body-mb', '0.5'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const lines = watchLines(child.stdout, () => err);
    const [, base] = await lines.next(/^serving tiny-run \(resnet18, 6 classes\) at (http:\/\/127\.0\.0\.1:\d+\/)$/, 'the URL line');
    const answer = await postImage(base, fs.readFileSync(file), 'image/jpeg');
    expect(answer.status).toBe(200);
    expect(answer.json.top).toEqual(JSON.parse(predicted.out)[0].top);
    const big = await postImage(base, Buffer.alloc(600 * 1024));
    expect(big.status).toBe(413);
    expect(big.json.error).toMatch(/at most 524288 bytes \(0\.5 MiB\)/);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(err).toMatch(/SIGTERM: closing the server/);
});
