// The demo behind `npm run demo`: its precision flag is checked like the config key, and reaches
// every run it trains.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runDemo } from '../../lib/experiment/demo';
import { readYaml } from '../../lib/experiment/config';
import { prerequisite } from '../helpers/prerequisite';

const root = path.resolve(__dirname, '..', '..');
const demoJs = path.join(root, 'dist', 'scripts', 'demo.js');
const built = prerequisite('dist/scripts/demo.js (npx tsc -p .)', fs.existsSync(demoJs) ? null : `${demoJs} is missing`);

built.test('--amp with an unknown value: exit 2 and what is accepted, before any training', () => {
  const run = spawnSync(process.execPath, [demoJs, '--amp', 'fp8', '--out', path.join(os.tmpdir(), 'finetorch-demo-never')], { encoding: 'utf8', timeout: 60_000 });
  expect(run.status).toBe(2);
  expect(run.stderr).toMatch(/expected true, false or one of fp16, bf16, auto for amp but received 'fp8'/);
  expect(fs.existsSync(path.join(os.tmpdir(), 'finetorch-demo-never'))).toBe(false);
});

test('amp reaches the pretraining and every comparison run', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-demo-amp-'));
  try {
    const demo = await runDemo({ outputDir: out, imagesPerClass: 6, trainPerClass: 3, imageSize: 32, pretrainEpochs: 1, epochs: 1, seeds: [0], amp: 'bf16', quiet: true, log: () => undefined });
    const runs = fs.readdirSync(path.join(out, 'runs')).filter((d) => fs.existsSync(path.join(out, 'runs', d, 'config.yaml')));
    expect(runs.length).toBeGreaterThanOrEqual(4); // pretrain, feature_extract, finetune, scratch
    for (const r of runs) expect(readYaml(path.join(out, 'runs', r, 'config.yaml')).amp).toBe('bf16');
    expect(demo.results.length).toBe(3);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
