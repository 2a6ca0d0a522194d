// A short measurement of channel shrinking (not part of `npm run bench`): ResNet-18 at 112²,
// batch 32, eval mode, dense vs 50% of each block's inner channels removed: images per second,
// parameters and the weights file's size. Run: node -r ./test/fuzz/ts-register.js scripts/bench-shrink.ts [amount] [iterations]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, getNumThreads, manualSeed, saveWeights, type Model } from '../lib';
import { randn } from '../lib/tensor';
import { shrinkChannels } from '../lib/models/shrink';

async function imagesPerSecond(model: Model, iterations: number): Promise<number> {
  const x = randn([32, 3, 112, 112]);
  for (let i = 0; i < 3; i++) (await model.forward(x)).dispose();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    (await model.forward(x)).dispose();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  x.dispose();
  times.sort((a, b) => a - b);
  return 32 / times[Math.floor(times.length / 2)]; // the median batch
}

function parameters(model: Model): number {
  let n = 0;
  for (const t of model.namedParameters().values()) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

async function fileSize(model: Model): Promise<number> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ft-shrink-')), 'w.pth');
  await saveWeights(file, model.stateDict());
  const size = fs.statSync(file).size;
  fs.rmSync(path.dirname(file), { recursive: true });
  return size;
}

async function main(): Promise<void> {
  const amount = Number(process.argv[2] ?? 0.5);
  const iterations = Number(process.argv[3] ?? 10);
  manualSeed(0);
  const model = createModel('resnet18', { numClasses: 1000 }).eval();
  const rows: Array<[string, number, number, number]> = [];
  rows.push(['dense', await imagesPerSecond(model, iterations), parameters(model), await fileSize(model)]);
  await shrinkChannels(model, { amount });
  rows.push([`shrunk ${amount * 100}%`, await imagesPerSecond(model, iterations), parameters(model), await fileSize(model)]);
  console.log(`ResNet-18 112², batch 32, eval, ${getNumThreads()} threads, median of ${iterations} batches`);
  for (const [name, rate, params, bytes] of rows) {
    console.log(`${name.padEnd(12)} ${rate.toFixed(1).padStart(7)} img/s  ${(params / 1e6).toFixed(2)} M parameters  ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  }
  console.log(`speed x${(rows[1][1] / rows[0][1]).toFixed(2)}, parameters x${(rows[1][2] / rows[0][2]).toFixed(3)}, file x${(rows[1][3] / rows[0][3]).toFixed(3)}`);
  model.dispose();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
