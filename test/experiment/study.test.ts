// The study's next steps at demo size: every variant is trained with its own settings on the same
// split, and the comparison pairs the variants' fine-tuned models on the same test images.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readYaml, resolveConfig } from '../../lib/experiment/config';
import { isStudyName, runStudy, STUDIES } from '../../lib/experiment/study';
import { prerequisite } from '../helpers/prerequisite';

const root = path.resolve(__dirname, '..', '..');
const demoJs = path.join(root, 'dist', 'scripts', 'demo.js');
const built = prerequisite('dist/scripts/demo.js (npx tsc -p .)', fs.existsSync(demoJs) ? null : `${demoJs} is missing`);

built.test('--study with an unknown name: exit 2 naming the studies, before any training', () => {
  const out = path.join(os.tmpdir(), `finetorch-study-never-${process.pid}`);
  const run = spawnSync(process.execPath, [demoJs, '--study', 'vgg', '--out', out], { encoding: 'utf8', timeout: 60_000 });
  expect(run.status).toBe(2);
  expect(run.stderr).toMatch(/Expected one of attention, augmentation, pruning, precision, convolution for --study but received 'vgg'/);
  expect(fs.existsSync(out)).toBe(false);
});

test('every variant of every study is a valid config on top of the demo recipe', () => {
  expect(isStudyName('attention')).toBe(true);
  expect(isStudyName('toString')).toBe(false);
  for (const variants of Object.values(STUDIES)) {
    expect(new Set(variants.map((v) => v.name)).size).toBe(variants.length);
    for (const variant of variants) expect(() => resolveConfig({ overrides: variant.overrides })).not.toThrow();
  }
});

test.each(['attention', 'augmentation', 'pruning', 'precision', 'convolution'] as const)('the %s study trains each variant with its settings and compares their fine-tuned models', async (study) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `finetorch-study-${study}-`));
  try {
    const result = await runStudy(study, { outputDir: out, imagesPerClass: 6, trainPerClass: 3, imageSize: 32, pretrainEpochs: 1, epochs: 1, seeds: [0], quiet: true, log: () => undefined });
    const variants = STUDIES[study];
    expect(result.comparison.methods.map((m) => m.recipe)).toEqual(variants.map((v) => `${v.name}.finetune`));
    // every pair of variants compared on the same test images
    expect(result.comparison.pairs).toHaveLength((variants.length * (variants.length - 1)) / 2);
    for (const pair of result.comparison.pairs) expect(pair.comparison).not.toBeNull();
    for (const variant of variants) {
      const run = result.results.find((r) => r.phase === 'finetune' && r.run.startsWith(variant.name))!;
      const config = readYaml(path.join(run.runDir, 'config.yaml')) as Record<string, unknown>;
      for (const [key, value] of Object.entries(variant.overrides)) {
        const [section, name] = key.split('.');
        expect({ key, value: name ? (config[section] as Record<string, unknown>)[name] : config[section] }).toEqual({ key, value });
      }
    }
    expect(fs.existsSync(result.comparisonReport)).toBe(true);
    expect(result.table).toContain('plain.finetune'.replace('plain', variants[0].name));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 600_000);
