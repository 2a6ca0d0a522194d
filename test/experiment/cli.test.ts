// The finetorch command line, in-process: outputs, files and exit codes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runMain } from '../helpers/cli-in-process';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';

let dir: string;
let data: string;


beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-cli-'));
  data = path.join(dir, 'data');
  await createSyntheticDataset(data, { classes: 3, perClass: 8, size: 40, seed: 5 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const small = ['--image-size', '32', '--set', 'resize=36', '--set', 'data.train_per_class=5', '--set', 'data.test_per_class=3', '--batch-size', '8', '--quiet', '--device', 'cpu'];

describe('finetorch CLI', () => {
  test('train, then test, predict and compare on the saved run', async () => {
    const trained = await runMain('train', '--phase', 'scratch', '--weights', 'none', '--epochs', '2', '--data', data, '--out', path.join(dir, 'runs'), '--name', 'cli-scratch', ...small);
    expect(trained.err).toBe('');
    expect(trained.code).toBe(0);
    expect(trained.out).toMatch(/\| from scratch \| resnet18 \| 1 \| \d+\.\d% \| \d+\.\d% \|/);
    expect(trained.out).toContain('Selection: final weights (no validation part; the test images decided nothing).');
    const runDir = path.join(dir, 'runs', 'cli-scratch');

    const tested = await runMain('test', '--checkpoint', runDir, '--json', path.join(dir, 'eval.json'));
    expect(tested.code).toBe(0);
    expect(tested.out).toMatch(/9 test images/);
    expect(tested.out).toMatch(/top-1 \d+\.\d\d%  top-5 \d+\.\d\d%  mean per-class \d+\.\d\d%/);
    expect(tested.out).toMatch(/\| circle \| \d+\.\d\d% \| \d \/ 3 \|/);
    const evaluation = JSON.parse(fs.readFileSync(path.join(dir, 'eval.json'), 'utf8'));
    expect(evaluation.confusion.map((row: number[]) => row.reduce((a, b) => a + b, 0))).toEqual([3, 3, 3]);
    // the figures are those of the confusion matrix (3 classes: the top 5 hold every class)
    const diagonal = evaluation.confusion.map((row: number[], i: number) => row[i]);
    expect(evaluation.top1).toBeCloseTo(diagonal.reduce((a: number, b: number) => a + b, 0) / 9, 12);
    expect(evaluation.meanPerClass).toBeCloseTo(diagonal.reduce((a: number, b: number) => a + b / 3, 0) / 3, 12);
    expect(evaluation.top5).toBe(1);
    // printed as evaluated, and the same as the training run's own test of these weights
    const p2 = (x: number) => `${(x * 100).toFixed(2)}%`;
    expect(tested.out).toContain(`top-1 ${p2(evaluation.top1)}  top-5 ${p2(evaluation.top5)}  mean per-class ${p2(evaluation.meanPerClass)}  loss ${evaluation.loss.toFixed(4)}`);
    const saved = JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8'));
    expect(evaluation.confusion).toEqual(saved.confusion);
    expect([evaluation.top1, evaluation.top5, evaluation.meanPerClass]).toEqual([saved.test.top1, saved.test.top5, saved.test.meanPerClass]);
    expect(Math.abs(evaluation.loss - saved.test.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, saved.test.loss));

    const image = fs.readdirSync(path.join(data, '101_ObjectCategories', 'circle'))[0];
    const predicted = await runMain('predict', path.join(data, '101_ObjectCategories', 'circle', image), '--checkpoint', runDir, '--json');
    expect(predicted.code).toBe(0);
    const [p] = JSON.parse(predicted.out);
    expect(p.top).toHaveLength(3); // top-5 of a 3-class model: all three
    expect(p.top.map((t: { className: string }) => t.className).sort()).toEqual(['Stripes', 'checker', 'circle']);
    const probabilities = p.top.map((t: { probability: number }) => t.probability);
    expect(probabilities).toEqual([...probabilities].sort((a: number, b: number) => b - a));
    expect(probabilities.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);

    const compared = await runMain('compare', runDir, runDir, '--json', path.join(dir, 'rows.json'));
    expect(compared.code).toBe(0);
    expect(compared.out).toContain('| method | arch | seeds | top-1 | top-5 | mean per-class | epochs | wall time | runs |');
    const rows = JSON.parse(fs.readFileSync(path.join(dir, 'rows.json'), 'utf8'));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ method: 'from scratch', arch: 'resnet18', epochs: 2 });
    expect(rows[0]).toMatchObject({ top1: saved.test.top1, top5: saved.test.top5, meanPerClassAccuracy: saved.test.meanPerClass });
  });

  test('--seeds: one run folder per seed with its own split; compare gives mean ± std, intervals and the paired test', async () => {
    const out = path.join(dir, 'runs');
    const common = ['--phase', 'scratch', '--weights', 'none', '--epochs', '1', '--data', data, '--out', out, '--seeds', '0,1', ...small];
    const a = await runMain('train', ...common, '--name', 'seeds-a');
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/\| from scratch \| resnet18 \| 2 \| \d+\.\d ± \d+\.\d% \(95% CI -?\d+\.\d–\d+\.\d\) \|/);
    const splits = ['seeds-a.seed0', 'seeds-a.seed1'].map((name) => JSON.parse(fs.readFileSync(path.join(out, name, 'split.json'), 'utf8')));
    expect(splits.map((s) => s.seed)).toEqual([0, 1]);
    expect(splits[0].parts.test).toHaveLength(9);
    expect(splits[0].parts.test).not.toEqual(splits[1].parts.test);
    const b = await runMain('train', ...common, '--name', 'seeds-b', '--lr', '0.05');
    expect(b.code).toBe(0);
    const compared = await runMain('compare', ...['seeds-a.seed0', 'seeds-a.seed1', 'seeds-b.seed0', 'seeds-b.seed1'].map((n) => path.join(out, n)));
    expect(compared.code).toBe(0);
    expect(compared.out).toMatch(/seeds-a − seeds-b: [+−]\d+\.\d points top-1 \(95% CI [+−]\d+\.\d\.\.[+−]\d+\.\d, McNemar p = [\d.e+-]+; 18 paired test images, 2 seeds\)/);
    const badSeeds = await runMain('train', '--seeds', '1,1');
    expect(badSeeds.code).toBe(2);
    expect(badSeeds.err).toContain("expected different non-negative integers separated by commas, got '1,1'");
  });

  test('bad flags and configs exit with 2 and say what is wrong', async () => {
    const badNumber = await runMain('train', '--epochs', 'x');
    expect(badNumber.code).toBe(2);
    expect(badNumber.err).toContain("option '--epochs <n>' argument 'x' is invalid. expected a non-negative integer, got 'x'");
    const badKey = await runMain('train', '--set', 'learning_rat=1');
    expect(badKey.code).toBe(2);
    expect(badKey.err).toContain("unknown key 'learning_rat' (did you mean 'learning_rate'?)");
    const badErasing = await runMain('train', '--random-erasing', '-0.5');
    expect(badErasing.code).toBe(2);
    expect(badErasing.err).toContain("option '--random-erasing <p>' argument '-0.5' is invalid. expected a non-negative number, got '-0.5'");
    const erasingOverOne = await runMain('train', '--random-erasing', '1.5');
    expect(erasingOverOne.code).toBe(2);
    expect(erasingOverOne.err).toMatch(/augmentation\.random_erasing/);
    const badPolicy = await runMain('train', '--augment-policy', 'trivialaugment');
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.err).toContain('Allowed choices are none, trivial_augment_wide, rand_augment, auto_augment');
    const badChoice = await runMain('train', '--phase', 'finetuning');
    expect(badChoice.code).toBe(2);
    expect(badChoice.err).toContain('Allowed choices are feature_extract, finetune, scratch, two-stage');
    expect((await runMain('frobnicate')).code).toBe(2);
    const missing = await runMain('test', '--checkpoint', path.join(dir, 'nope'));
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no checkpoint or run folder at');
  });

  test('--help on every command, with defaults shown', async () => {
    for (const command of [[], ['train'], ['test'], ['predict'], ['compare'], ['weights', 'download'], ['data', 'download']]) {
      const help = await runMain(...command, '--help');
      expect(help.code).toBe(0);
      expect(help.out).toContain('Usage: finetorch');
    }
    const train = await runMain('train', '--help');
    expect(train.out).toContain('epochs (default: 50)');
    expect(train.out).toContain('(default: two-stage)');
    expect((await runMain('data', 'download', '--help')).out).toContain('(default: "data/caltech101")');
  });
});
