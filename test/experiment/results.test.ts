// results.json: written atomically (temp file, fsync, rename), so a process killed during the
// write leaves the previous complete file, never a truncated one; read back as written.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { readResults, writeResults, type RunResults } from '../../lib';

const root = path.resolve(__dirname, '../..');
const distLib = path.join(root, 'dist', 'lib');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-results-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function results(version: number, predictions: number): RunResults {
  return {
    run: `v${version}`, runDir: dir, phase: 'scratch', arch: 'resnet18', epochs: version, wallSeconds: 1, trainSeconds: 1, bestValTop1: 0.5,
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

const haveDist = fs.existsSync(path.join(distLib, 'index.js'));
if (!haveDist) console.log('dist/ not built (run npm test, which compiles it): skipping the kill -9 results.json test');

(haveDist ? test : test.skip)('kill -9 while results.json is written: the file always holds a whole result', async () => {
  const runDir = fs.mkdtempSync(path.join(dir, 'killed-'));
  // ~6 MB per write, so the kill usually lands inside one; the child says when each write is done
  const writer = `
    const { writeResults } = require(${JSON.stringify(distLib)});
    const predictions = Array.from({ length: 100000 }, (_, i) => ({ predicted: i % 2, probability: 0.5, label: i % 2, file: 'class/' + i + '.jpg' }));
    (async () => {
      for (let v = 1; ; v++) {
        await writeResults(${JSON.stringify(runDir)}, { run: 'v' + v, epochs: v, predictions });
        console.log('wrote ' + v);
      }
    })();`;
  for (let round = 0; round < 4; round++) {
    const child = spawn(process.execPath, ['-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const lines = readline.createInterface({ input: child.stdout! });
    let written = 0;
    for await (const line of lines) {
      written = Number(line.split(' ')[1]);
      if (written >= round + 1) break; // killed while write number round + 2 is under way
    }
    child.kill('SIGKILL');
    await exited;
    const kept = readResults(runDir);
    expect(kept.predictions).toHaveLength(100000);
    expect(kept.epochs).toBeGreaterThanOrEqual(written);
    expect(fs.readdirSync(runDir).filter((f) => f !== 'results.json' && !f.includes('.tmp-'))).toEqual([]);
  }
});
