// results.json: written atomically (temp file, fsync, rename), so a process killed during the
// write leaves the previous complete file, never a truncated one; read back as written.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readResults, writeResults, type RunResults } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { closed, killStragglers, track, watchLines } from '../helpers/wait-for';

const root = path.resolve(__dirname, '../..');
const distLib = path.join(root, 'dist', 'lib');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-results-'));
});
afterEach(killStragglers);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function results(version: number, predictions: number): RunResults {
  return {
    run: `v${version}`, runDir: dir, phase: 'scratch', arch: 'resnet18', seed: 1, epochs: version, wallSeconds: 1, trainSeconds: 1, selection: 'validation', bestValTop1: 0.5,
    featureCache: false, checkpoints: { best: 'b', last: 'l' },
    test: { count: predictions, loss: 1, top1: 0.5, top5: 1, meanPerClass: 0.5, perClass: [] },
    confusion: [[1, 0], [0, 1]],
    predictions: Array.from({ length: predictions }, (_, i) => ({ predicted: i % 2, probability: 0.5, label: i % 2, file: `class/${i}.jpg` })),
  };
}

test('writeResults and readResults round-trip; a folder without results.json is a clear error', async () => {
  await writeResults(dir, results(3, 5));
  expect(readResults(dir)).toEqual(results(3, 5));
  expect(fs.readdirSync(dir)).toEqual(['results.json']);
  expect(() => readResults(path.join(dir, 'nothing'))).toThrow("has no results.json: the run did not finish");
});

// The library as a child process needs it: `npm test` compiles dist/ first (its pretest); a bare
// `npx jest` needs `npx tsc -p .`.
const dist = prerequisite('the compiled library (dist/)', fs.existsSync(path.join(distLib, 'index.js')) ? null : `${distLib} is missing: run npx tsc -p . (npm test compiles it)`);

dist.test('kill -9 in the middle of a results.json write: the file holds the last whole result, newer than the first', async () => {
  assertPresent(dist);
  const runDir = fs.mkdtempSync(path.join(dir, 'killed-'));
  // The child writes versions base+1, base+2, ... and says when each is in place. Its write of
  // version base+3 is cut in the middle: the first half of the bytes reach the file, then the
  // write never returns (fs.promises.open is wrapped for that one write), and it is killed there.
  const writer = (base: number) => `
    const fs = require('fs');
    const { writeResults } = require(${JSON.stringify(distLib)});
    const predictions = Array.from({ length: 100000 }, (_, i) => ({ predicted: i % 2, probability: 0.5, label: i % 2, file: 'class/' + i + '.jpg' }));
    const open = fs.promises.open;
    let cutting = false;
    fs.promises.open = async function (file, ...rest) {
      const handle = await open.call(this, file, ...rest);
      if (cutting) {
        const write = handle.write.bind(handle);
        handle.write = async (data) => {
          const bytes = Buffer.from(data);
          await write(bytes.subarray(0, bytes.length >> 1));
          console.log('cut ' + String(file));
          return new Promise(() => undefined);
        };
      }
      return handle;
    };
    (async () => {
      for (let v = ${base} + 1; ; v++) {
        cutting = v === ${base} + 3;
        await writeResults(${JSON.stringify(runDir)}, { run: 'v' + v, epochs: v, predictions });
        if (cutting) throw new Error('the write of version ' + v + ' was not cut: writeResults no longer writes through fs.promises.open and FileHandle.write');
        console.log('wrote ' + v);
      }
    })();`;
  for (const base of [1000, 2000]) {
    const child = track(spawn(process.execPath, ['-e', writer(base)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const exit = closed(child);
    const out = watchLines(child.stdout!);
    await out.next(new RegExp(`^wrote ${base + 2}$`), 'the second write');
    const cutFile = (await out.next(/^cut (.+)$/, 'the cut write'))[1];
    child.kill('SIGKILL');
    expect(await exit).toEqual({ code: null, signal: 'SIGKILL' });
    const kept = readResults(runDir);
    expect(kept.epochs).toBe(base + 2); // the last write that finished: newer than the first, not the cut one
    expect(kept.predictions).toHaveLength(100000);
    // the cut write's half is left in its temp file, beside the whole results.json
    expect(path.dirname(cutFile)).toBe(runDir);
    expect(path.basename(cutFile)).toMatch(/^results\.json\.tmp-/);
    expect(() => JSON.parse(fs.readFileSync(cutFile, 'utf8'))).toThrow();
    expect(fs.readdirSync(runDir).filter((f) => f !== 'results.json' && !f.includes('.tmp-'))).toEqual([]);
  }
});
