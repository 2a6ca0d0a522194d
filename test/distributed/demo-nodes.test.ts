// Two "machines" on one host: `npm run demo`'s script under our launcher with --nnodes 2 and
// --node-rank 0 / 1 (one process each) trains the whole demo (pretraining, feature extraction,
// fine-tuning, scratch) to the end, rank 0 writing every run folder.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { distributedSupport } from '../../lib/distributed/process-group';
import { ROOT } from '../helpers/cli-process';
import { freePort } from '../helpers/ranks';
import { killStragglers, track } from '../helpers/wait-for';

const DEMO = path.join(ROOT, 'dist', 'scripts', 'demo.js');
const problem = !distributedSupport().c10d ? 'this build of the addon has no c10d' : !fs.existsSync(DEMO) ? `${DEMO} is not built (npx tsc -p .)` : null;
const maybe = problem ? test.skip : test;
if (problem) console.warn(`skipping the two-node demo: ${problem}`);

afterEach(() => killStragglers());

function node(rank: number, port: number, out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = track(
    spawn(process.execPath, [
      DEMO, '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', String(rank), '--master-port', String(port), '--out', out,
      '--images-per-class', '12', '--image-size', '32', '--pretrain-epochs', '2', '--epochs', '2', '--seeds', '0',
    ], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

maybe('the demo on --nnodes 2 (node ranks 0 and 1, one process each) runs to the end', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ddp-demo-'));
  try {
    const port = await freePort();
    const [zero, one] = await Promise.all([node(0, port, out), node(1, port, out)]);
    for (const n of [zero, one]) {
      expect(n.stderr).toMatch(/launching 1 worker on node [01] of 2 \(world size 2, master 127\.0\.0\.1:\d+\)/);
      expect(n.stderr).not.toMatch(/demo failed|lost rank|did not join/);
    }
    // the demo's own verdict (does fine-tuning beat scratch) is its exit code, the same on both nodes
    expect([0, 1]).toContain(zero.code);
    expect(one.code).toBe(zero.code);
    expect(zero.stdout).toMatch(/demo took \d+ s on 2 processes/);
    expect(zero.stdout).toMatch(/\| fine-tuning \(all layers\) \| resnet18 \|/);
    expect(one.stdout).not.toMatch(/run folders:/);
    // rank 0 wrote every run: the pretraining and the three target runs, each tested on all its images
    const runs = path.join(out, 'runs');
    const results = fs.readdirSync(runs).filter((d) => fs.existsSync(path.join(runs, d, 'results.json'))).sort();
    expect(results).toEqual(['pretrain-source', 'target.scratch.seed0', 'target.seed0.feature_extract', 'target.seed0.finetune']);
    for (const r of results) {
      const result = JSON.parse(fs.readFileSync(path.join(runs, r, 'results.json'), 'utf8'));
      expect(result.test.count).toBe(r === 'pretrain-source' ? 4 * 3 : 4 * 4);
      expect(result.predictions.length).toBe(result.test.count);
    }
    expect(fs.readdirSync(path.join(runs, 'target.seed0.finetune', 'logs')).length).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(out, 'compare.html'))).toBe(true);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 400_000);
