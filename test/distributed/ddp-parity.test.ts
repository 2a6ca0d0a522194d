// DDP's gradient averaging on libtorch's c10d, checked as the issue asks: 2 ranks x batch 16
// against 1 process x batch 32 over the same global batches, from the same initial weights, after
// 5 optimizer steps; and a sharded evaluation equal to one process's. Real processes on loopback.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { distributedSupport } from '../../lib/distributed/process-group';
import { allExited, freePort, startRanks } from '../helpers/ranks';

const WORKER = path.join(__dirname, 'fixtures', 'ddp-parity-worker.js');
const support = distributedSupport();
const describeC10d = support.c10d ? describe : describe.skip;
if (!support.c10d) console.warn('skipping DDP parity: this build of the addon has no c10d (install libgloo-dev and rebuild)');

interface Summary {
  count: number;
  loss: number;
  top1: number;
  top5: number;
  confusion: number[][];
  predicted: number[];
}
interface Findings {
  mode: string;
  worst: { name: string; relative: number; elementwise: number };
  moved: string[];
  checksums: number[];
  sharded: Summary;
  single: Summary;
}

async function runParity(recipe: string, extra: string[] = []): Promise<Findings> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddp-parity-'));
  const result = path.join(dir, 'result.json');
  const ranks = startRanks([WORKER, result, recipe, ...extra], { worldSize: 2, port: await freePort() });
  const exits = await allExited(ranks);
  for (const e of exits) expect({ rank: e.rank, code: e.code, stderr: e.stderr }).toEqual({ rank: e.rank, code: 0, stderr: expect.any(String) });
  const findings = JSON.parse(fs.readFileSync(result, 'utf8')) as Findings;
  fs.rmSync(dir, { recursive: true, force: true });
  return findings;
}

function expectParity(f: Findings, trained: (name: string) => boolean): void {
  // every rank ends with the same weights
  expect(f.checksums[1]).toBe(f.checksums[0]);
  // the steps changed exactly the trainable parameters
  expect(f.moved.length).toBeGreaterThan(0);
  expect(f.moved.every(trained)).toBe(true);
  // per parameter: ||distributed - single|| / ||single|| after 5 steps
  expect(f.worst.relative).toBeLessThan(1e-5);
  // the sharded evaluation is one process's: counts, confusion matrix and every prediction
  expect(f.sharded.count).toBe(37);
  expect(f.sharded.top1).toBe(f.single.top1);
  expect(f.sharded.top5).toBe(f.single.top5);
  expect(f.sharded.confusion).toEqual(f.single.confusion);
  expect(f.sharded.predicted).toEqual(f.single.predicted);
  expect(f.sharded.loss).toBeCloseTo(f.single.loss, 5);
}

describeC10d('DDP on c10d: 2 ranks x 16 = 1 process x 32', () => {
  test('AlexNet (no BatchNorm), every layer trained, DDP Reducer', async () => {
    const f = await runParity('alexnet');
    expect(f.mode).toBe(support.gradientSync);
    expectParity(f, () => true);
    expect(f.moved.length).toBe(16);
    console.log(`AlexNet 2x16 vs 1x32, 5 SGD steps: worst ${f.worst.name} relative ${f.worst.relative.toExponential(2)} (elementwise ${f.worst.elementwise.toExponential(2)})`);
  }, 300_000);

  test('ResNet-18 feature_extract (BatchNorm frozen), the head trained, DDP Reducer and flat buckets', async () => {
    for (const mode of ['reducer', 'flat']) {
      const f = await runParity('resnet18-feature_extract', mode === 'flat' ? ['flat'] : []);
      expect(f.mode).toBe(mode === 'flat' ? 'flat-buckets' : support.gradientSync);
      expectParity(f, (name) => name.startsWith('fc.'));
      expect(f.moved.sort()).toEqual(['fc.bias', 'fc.weight']);
      console.log(`ResNet-18 feature_extract (${f.mode}): worst ${f.worst.name} relative ${f.worst.relative.toExponential(2)}`);
    }
  }, 300_000);
});
