// Every finetorch CLI action run for real, as users run it (`node dist/scripts/cli.js` in a child
// process), on a tiny synthetic set (3 classes, ResNet-18 at 32×32, one epoch, one thread), with
// the effect asserted: the files written, the printed figures against results.json, each
// checkpoint's own figures, predict's lines against PyTorch's probabilities for the same weights,
// and the downloads against a loopback server.
//
// Two training runs are shared by the tests (beforeAll): S, `train --config <file>` from scratch,
// and T, `--phase two-stage` from S's weights (T.feature_extract, then T.finetune).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import YAML from 'yaml';
import { loadCheckpoint } from '../../lib/training/checkpoint';
import type { RunResults } from '../../lib/experiment/results';
import { serveBytes, startServer, type TestServer } from '../download/server';
import { builtCliProblem, expectExit, ROOT, runCli, type CliResult } from '../helpers/cli-process';
import { prerequisite } from '../helpers/prerequisite';
import { findTorchPython, runPython, torchPythonUnavailableReason } from '../helpers/python';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';
import { buildZip } from '../../scripts/fuzz/zip';

const built = prerequisite('the compiled CLI (dist/)', builtCliProblem());
const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());

const BASE = YAML.parse(fs.readFileSync(path.join(ROOT, 'configs', 'base.yaml'), 'utf8'));

let dir: string;
let data: string;
let runs: string;
const run = (name: string) => path.join(runs, name);
const best = (name: string) => path.join(run(name), 'checkpoints', 'best.pth');

const readJson = <T = unknown>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8'));
const results = (name: string) => readJson<RunResults>(path.join(run(name), 'results.json'));
const config = (name: string) => YAML.parse(fs.readFileSync(path.join(run(name), 'config.yaml'), 'utf8'));
const classesOf = (name: string): string[] => readJson<{ classes: string[] }>(path.join(run(name), 'split.json')).classes;
const pctOf = (x: number, digits: number) => `${(x * 100).toFixed(digits)}%`;
const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * Small settings as flags (train --config S writes the same ones in its file). Plain SGD keeps no
 * optimizer buffers, so each checkpoint is 45 MB rather than Adam's 134 MB: every run and every
 * command that reads one is cheaper.
 */
const SMALL = [
  '--image-size', '32', '--set', 'resize=36', '--set', 'data.train_per_class=5', '--set', 'data.test_per_class=3', '--batch-size', '4',
  '--set', 'optimizer=sgd', '--set', 'momentum=0', '--set', 'threads=1', '--device', 'cpu', '--set', 'report=false', '--quiet',
];

/** The cells of the printed comparison table's row for a run. */
function tableRow(out: string, name: string): { method: string; top1: string; top5: string; meanPerClass: string; epochs: string } {
  const line = out.split('\n').find((l) => l.endsWith(`| ${name} |`));
  if (!line) throw new Error(`no table row for ${name} in:\n${out}`);
  const cells = line.split('|').slice(1, -1).map((c) => c.trim());
  return { method: cells[0], top1: cells[3], top5: cells[4], meanPerClass: cells[5], epochs: cells[6] };
}

/** Checkpoints read back (each once: they are 134 MB with Adam's state), disposed in afterAll. */
const loaded = new Map<string, Awaited<ReturnType<typeof loadCheckpoint>>>();
async function checkpoint(file: string) {
  if (!loaded.has(file)) loaded.set(file, await loadCheckpoint(file));
  return loaded.get(file)!;
}

/** The state_dict tensors (chosen by name) of two checkpoints: which are equal, which differ. */
async function sameTensors(a: string, b: string, names: (name: string) => boolean): Promise<{ same: string[]; different: string[] }> {
  const [x, y] = [await checkpoint(a), await checkpoint(b)];
  const same: string[] = [];
  const different: string[] = [];
  for (const [name, t] of x.stateDict) {
    if (!names(name)) continue;
    const u = y.stateDict.get(name);
    if (!u) throw new Error(`${b} has no ${name}`);
    const [p, q] = [t.toTypedArray(), u.toTypedArray()];
    (p.length === q.length && p.every((v, i) => v === q[i]) ? same : different).push(name);
  }
  return { same, different };
}

/** The learning rate of each epoch's training, as metrics.jsonl recorded it. */
function trainedLr(name: string): number[] {
  return fs.readFileSync(path.join(run(name), 'logs', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((r) => r.kind === 'metrics' && r.split === 'train').map((r) => r.lr);
}

/** The optimizer's learning rate saved in a checkpoint. */
async function savedLr(file: string): Promise<number> {
  const groups = (await checkpoint(file)).optimizer?.get('param_groups') as Array<Map<string, unknown> | Record<string, unknown>>;
  const first = groups[0];
  return (first instanceof Map ? first.get('lr') : first.lr) as number;
}

built.describe('train, test, predict and report, run as a user runs them', () => {
  let trainS: CliResult;
  let trainT: CliResult;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-cli-actions-'));
    data = path.join(dir, 'data');
    runs = path.join(dir, 'runs');
    await createSyntheticDataset(data, { classes: 3, perClass: 8, size: 40, seed: 5 });
    // S: an experiment file; --epochs on the command line overrides its 3
    const file = path.join(dir, 'small-scratch.yaml');
    fs.writeFileSync(file, YAML.stringify({
      phase: 'scratch', weights: 'none', epochs: 3, batch_size: 4, image_size: 32, resize: 36, optimizer: 'sgd', momentum: 0, learning_rate: 0.003,
      threads: 1, device: 'cpu', report: false, quiet: true, label_smoothing: 0.05, data: { root: data, train_per_class: 5, test_per_class: 3 },
    }));
    trainS = await runCli(['train', '--config', file, '--epochs', '1', '--out', runs, '--name', 'S']);
    expectExit(trainS, 0, 'train --config');
    // T: feature_extract from S's weights (a finetorch checkpoint as --weights), then finetune from its result
    trainT = await runCli(['train', '--phase', 'two-stage', '--weights', best('S'), '--epochs', '1', '--lr', '0.02', '--data', data, '--out', runs, '--name', 'T', ...SMALL]);
    expectExit(trainT, 0, 'train --phase two-stage');
  });
  afterAll(() => {
    for (const c of loaded.values()) for (const t of c.stateDict.values()) t.dispose();
    loaded.clear();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("train --config <file>: the file's settings with the flags over them; the printed table is results.json's", () => {
    const c = config('S');
    expect(c).toMatchObject({ phase: 'scratch', weights: 'none', batch_size: 4, image_size: 32, resize: 36, optimizer: 'sgd', learning_rate: 0.003, label_smoothing: 0.05, epochs: 1 });
    expect(c.data).toMatchObject({ root: data, train_per_class: 5, test_per_class: 3 });
    const split = readJson<{ parts: Record<string, unknown[]> }>(path.join(run('S'), 'split.json'));
    expect([split.parts.train.length, split.parts.test.length]).toEqual([15, 9]);
    const epochs = fs.readFileSync(path.join(run('S'), 'logs', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((r) => r.kind === 'metrics' && r.split === 'train');
    expect(epochs.map((r) => r.epoch)).toEqual([1]);
    expect(fs.existsSync(path.join(run('S'), 'report.html'))).toBe(false); // report: false from the file

    const r = results('S');
    expect(r).toMatchObject({ phase: 'scratch', epochs: 1, selection: 'final' });
    // results.json agrees with itself: the figures are those of its own predictions
    const n = r.confusion.length;
    const confusion = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    for (const p of r.predictions) confusion[p.label][p.predicted]++;
    expect(r.confusion).toEqual(confusion);
    expect(r.test.count).toBe(9);
    expect(r.test.top1).toBeCloseTo(r.predictions.filter((p) => p.predicted === p.label).length / 9, 12);
    expect(r.test.meanPerClass).toBeCloseTo(confusion.reduce((s, row, i) => s + row[i] / row.reduce((a, b) => a + b, 0), 0) / n, 12);
    expect(r.test.top5).toBe(1); // 3 classes: the top 5 hold them all

    const row = tableRow(trainS.out, 'S');
    expect(row).toEqual({ method: 'from scratch', top1: pctOf(r.test.top1, 1), top5: pctOf(r.test.top5, 1), meanPerClass: pctOf(r.test.meanPerClass, 1), epochs: '1' });
    expect(trainS.out).toContain(`run folder: ${run('S')}\n`);
  });

  test('test --checkpoint prints the figures of the run it is given: two checkpoints, each its own results.json', async () => {
    const checked: Array<{ name: string; loss: number }> = [];
    // a run folder, and another run's checkpoint file
    for (const [name, target] of [['S', run('S')], ['T.finetune', best('T.finetune')]]) {
      const json = path.join(dir, `${name}.eval.json`);
      const tested = await runCli(['test', '--checkpoint', target, '--json', json]);
      expectExit(tested, 0, `test --checkpoint ${target}`);
      const r = results(name);
      const t = r.test;
      expect(tested.out).toContain(`${best(name)}: 9 test images\n`);
      const figures = /^top-1 (\S+)  top-5 (\S+)  mean per-class (\S+)  loss (\S+)$/m.exec(tested.out);
      expect(figures).not.toBeNull();
      expect(figures!.slice(1, 4)).toEqual([pctOf(t.top1, 2), pctOf(t.top5, 2), pctOf(t.meanPerClass, 2)]);
      // results.json was evaluated by the training process (channels_last), this by a fresh one
      expect(Math.abs(Number(figures![4]) - t.loss)).toBeLessThanOrEqual(5e-5 + 1e-5 * t.loss);
      for (const c of t.perClass) expect(tested.out).toContain(`| ${c.className} | ${pctOf(c.accuracy, 2)} | ${c.correct} / ${c.count} |`);

      const evaluation = readJson<{ top1: number; top5: number; meanPerClass: number; loss: number; confusion: number[][]; predictions: RunResults['predictions'] }>(json);
      expect([evaluation.top1, evaluation.top5, evaluation.meanPerClass]).toEqual([t.top1, t.top5, t.meanPerClass]);
      expect(evaluation.confusion).toEqual(r.confusion);
      expect(evaluation.predictions.map((p) => [p.predicted, p.label])).toEqual(r.predictions.map((p) => [p.predicted, p.label]));
      evaluation.predictions.forEach((p, i) => expect(Math.abs(p.probability - r.predictions[i].probability)).toBeLessThan(1e-4));
      expect(Math.abs(evaluation.loss - t.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, t.loss));
      checked.push({ name, loss: t.loss });
    }
    // the two checkpoints are told apart: their losses differ far more than the tolerance above
    expect(Math.abs(checked[0].loss - checked[1].loss)).toBeGreaterThan(1e-3);
  });

  /** predict's text output: per file, the file's line then `  xx.x%  class` lines. */
  function parsePredict(out: string, files: string[]): Array<Array<{ className: string; percent: number }>> {
    const lines = out.replace(/\n$/, '').split('\n');
    const blocks: Array<Array<{ className: string; percent: number }>> = [];
    for (const line of lines) {
      if (files.includes(line)) {
        expect(line).toBe(files[blocks.length]);
        blocks.push([]);
        continue;
      }
      const m = /^ {2}([ \d]{2}\d\.\d)%  (.+)$/.exec(line); // `  ${percent.padStart(5)}%  class`
      if (!m || blocks.length === 0) throw new Error(`unexpected predict line '${line}' in:\n${out}`);
      blocks[blocks.length - 1].push({ percent: Number(m[1]), className: m[2] });
    }
    expect(blocks).toHaveLength(files.length);
    return blocks;
  }

  /**
   * The predict runs both predict tests read (run once, by whichever test asks first): S's run
   * folder with the default --top, T.finetune's checkpoint file with --top 2, each on a test image
   * of the split and two PNGs whose shorter side is already `resize` (36), so that PIL's Resize is
   * the identity and the PyTorch reference sees exactly these pixels.
   */
  let predictRuns: Promise<{ images: string[]; s: CliResult; ft: CliResult }> | undefined;
  const predictions = () =>
    (predictRuns ??= (async () => {
      const testImage = path.join(data, '101_ObjectCategories', results('S').predictions[0].file); // relative to the image root
      const images = [testImage, path.join(dir, 'square.png'), path.join(dir, 'tall.png')];
      const sources = Object.values((await createSyntheticDataset(path.join(dir, 'predict-src'), { classes: 3, perClass: 1, size: 40, seed: 9 })).files).map((f) => f[0]);
      await sharp(sources[1]).resize(36, 36, { fit: 'fill' }).png().toFile(images[1]);
      await sharp(sources[2]).resize(36, 44, { fit: 'fill' }).png().toFile(images[2]);
      const s = await runCli(['predict', ...images, '--checkpoint', run('S')]);
      expectExit(s, 0, 'predict --checkpoint <run folder>');
      const ft = await runCli(['predict', ...images, '--checkpoint', best('T.finetune'), '--top', '2']);
      expectExit(ft, 0, 'predict --checkpoint <file> --top 2');
      return { images, s, ft };
    })());

  test("predict's text output: per image its top-k lines, in order; on a test image each checkpoint's first line is its own results.json's", async () => {
    const { images, s, ft } = await predictions();
    const classes = classesOf('S');
    expect(classesOf('T.finetune')).toEqual(classes);
    for (const [name, out, k] of [['S', s.out, 3], ['T.finetune', ft.out, 2]] as const) {
      // S: the default top 5 of 3 classes is all three, once each; T.finetune: --top 2
      const blocks = parsePredict(out, images);
      for (const lines of blocks) {
        expect(lines).toHaveLength(k);
        expect(new Set(lines.map((l) => l.className)).size).toBe(k);
        for (const l of lines) expect(classes).toContain(l.className);
        const percents = lines.map((l) => l.percent);
        expect(percents).toEqual([...percents].sort((a, b) => b - a));
        if (k === 3) expect(Math.abs(percents.reduce((a, b) => a + b, 0) - 100)).toBeLessThanOrEqual(0.15);
      }
      const sample = results(name).predictions[0];
      expect(path.join(data, '101_ObjectCategories', sample.file)).toBe(images[0]);
      expect(blocks[0][0].className).toBe(classes[sample.predicted]);
      expect(Math.abs(blocks[0][0].percent - sample.probability * 100)).toBeLessThanOrEqual(0.05 + 1e-3);
    }
    // the two checkpoints disagree on that image, so printing one's figures for the other would fail above
    expect(Math.abs(results('S').predictions[0].probability - results('T.finetune').predictions[0].probability)).toBeGreaterThan(0.002);
  });

  torch.test("predict: each checkpoint's printed classes and probabilities are PyTorch's for those weights, in order", async () => {
    const { images, s, ft } = await predictions();
    const classes = classesOf('S');
    const pngs = images.slice(1);
    const checkpoints = [best('S'), best('T.finetune')];
    const reference = JSON.parse(runPython(
      [
        'import json, sys, torch, torchvision',
        'from PIL import Image',
        'from torchvision import transforms as T',
        'req = json.loads(sys.argv[1])',
        'torch.set_num_threads(1)',
        'tf = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])',
        'x = torch.stack([tf(Image.open(p).convert("RGB")) for p in req["images"]])',
        'out = []',
        'for ck in req["checkpoints"]:',
        '    m = torchvision.models.resnet18(num_classes=req["classes"])',
        '    m.load_state_dict(torch.load(ck, map_location="cpu")["state_dict"])',
        '    m.eval()',
        '    with torch.no_grad():',
        '        out.append(torch.softmax(m(x).double(), 1).tolist())',
        'print(json.dumps(out))',
      ].join('\n'),
      [JSON.stringify({ images: pngs, checkpoints, classes: classes.length })],
    )) as number[][][];
    // the two checkpoints' probabilities differ, so printing one's for the other would fail below
    expect(Math.max(...reference[0].flat().map((p, i) => Math.abs(p - reference[1].flat()[i])))).toBeGreaterThan(0.01);
    for (const [k, out] of [s.out, ft.out].entries()) {
      const blocks = parsePredict(out, images).slice(1);
      blocks.forEach((lines, i) => {
        const order = reference[k][i].map((p, c) => ({ p, c })).sort((a, b) => b.p - a.p).slice(0, lines.length);
        expect(lines.map((l) => l.className)).toEqual(order.map((o) => classes[o.c]));
        lines.forEach((l, j) => expect(Math.abs(l.percent - order[j].p * 100)).toBeLessThanOrEqual(0.05 + 1e-3));
      });
    }
  });

  test('--phase two-stage: feature_extract loads --weights and keeps the backbone frozen, --lr is its rate; finetune starts from its weights and split', async () => {
    for (const [name, phase] of [['T.feature_extract', 'feature_extract'], ['T.finetune', 'finetune']]) {
      expect(config(name).phase).toBe(phase);
      const r = results(name);
      expect(tableRow(trainT.out, name)).toMatchObject({ top1: pctOf(r.test.top1, 1), top5: pctOf(r.test.top5, 1), meanPerClass: pctOf(r.test.meanPerClass, 1) });
    }
    expect(trainT.out).toContain(`run folder: ${run('T.feature_extract')}\nrun folder: ${run('T.finetune')}\n`);
    expect(config('T.finetune').init_checkpoint).toBe(best('T.feature_extract'));
    expect(readJson(path.join(run('T.finetune'), 'split.json'))).toEqual(readJson(path.join(run('T.feature_extract'), 'split.json')));
    // --lr went to the first stage (learning_rate); the finetune stage kept finetune_lr: in the
    // configs, and as the rate each optimizer trained with (metrics.jsonl)
    expect(config('T.feature_extract').learning_rate).toBe(0.02);
    expect(trainedLr('T.feature_extract')).toEqual([0.02]);
    expect(config('T.finetune').finetune_lr).toBe(BASE.finetune_lr);
    expect(trainedLr('T.finetune')).toEqual([BASE.finetune_lr]);
    expect(trainedLr('S')).toEqual([0.003]);
    // feature_extract: every backbone tensor (BatchNorm statistics included) is S's, the head is not
    const fe = await sameTensors(best('T.feature_extract'), best('S'), () => true);
    expect(fe.different.sort()).toEqual(['fc.bias', 'fc.weight']);
    expect(fe.same.length).toBeGreaterThan(100);
  });

  test('--phase finetune --init <checkpoint> --lr: starts from that checkpoint with its split, and --lr is finetune_lr', async () => {
    // --epochs 0: the tested weights are the starting weights, so they must be exactly the --init file's
    const init = best('T.feature_extract');
    const tuned = await runCli(['train', '--phase', 'finetune', '--init', init, '--lr', '3e-4', '--epochs', '0', '--data', data, '--out', runs, '--name', 'F', ...SMALL]);
    expectExit(tuned, 0, 'train --phase finetune --init');
    const c = config('F');
    expect(c).toMatchObject({ phase: 'finetune', init_checkpoint: init, finetune_lr: 3e-4, learning_rate: BASE.learning_rate });
    expect(await savedLr(best('F'))).toBeCloseTo(3e-4, 12);
    const same = await sameTensors(best('F'), init, () => true);
    expect(same.different).toEqual([]);
    expect(readJson(path.join(run('F'), 'split.json'))).toEqual(readJson(path.join(run('T.feature_extract'), 'split.json')));
    const [f, fe] = [results('F'), results('T.feature_extract')];
    expect(f.confusion).toEqual(fe.confusion);
    expect(Math.abs(f.test.loss - fe.test.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, fe.test.loss));
  });

  test('the augmentation flags reach the run’s config: --augment-policy, --random-erasing, --mixup-alpha, --cutmix-alpha', async () => {
    const init = best('T.feature_extract');
    const flags = ['--augment-policy', 'rand_augment', '--random-erasing', '0.3', '--mixup-alpha', '0.2', '--cutmix-alpha', '1'];
    const tuned = await runCli(['train', '--phase', 'finetune', '--init', init, '--epochs', '1', '--data', data, '--out', runs, '--name', 'A', ...flags, ...SMALL]);
    expectExit(tuned, 0, 'train with the augmentation flags');
    expect(config('A').augmentation).toMatchObject({ policy: 'rand_augment', random_erasing: 0.3, mixup_alpha: 0.2, cutmix_alpha: 1 });
    expect(results('A').test.top1).toBeGreaterThanOrEqual(0);
  });

  test('--lr with --config <name> whose phase is finetune sets finetune_lr, as --phase finetune does', async () => {
    // configs/experiments/resnet18_finetune.yaml sets phase: finetune; --lr must reach the rate that phase uses
    expect(YAML.parse(fs.readFileSync(path.join(ROOT, 'configs', 'experiments', 'resnet18_finetune.yaml'), 'utf8')).phase).toBe('finetune');
    const init = best('T.feature_extract');
    const tuned = await runCli(['train', '--config', 'resnet18_finetune', '--init', init, '--lr', '3e-4', '--epochs', '0', '--data', data, '--out', runs, '--name', 'F2', ...SMALL]);
    expectExit(tuned, 0, 'train --config resnet18_finetune --lr');
    expect(config('F2')).toMatchObject({ phase: 'finetune', finetune_lr: 3e-4 });
    expect(await savedLr(best('F2'))).toBeCloseTo(3e-4, 12);
  });

  test('--resume: no run folder, a two-stage config, and a config its checkpoint does not fit are refused with what is wrong', async () => {
    const nowhere = path.join(dir, 'nowhere');
    const missing = await runCli(['train', '--resume', nowhere]);
    expectExit(missing, 2, '--resume <no folder>');
    expect(missing.err).toBe(`finetorch: --resume: '${nowhere}' has no config.yaml: not a run folder\n`);

    // run folders made from S's files: its checkpoint (a hard link, nothing copied), split and an edited config
    const copy = (name: string, edit: (c: Record<string, unknown>) => void) => {
      const target = path.join(dir, name);
      fs.mkdirSync(path.join(target, 'checkpoints'), { recursive: true });
      fs.linkSync(path.join(run('S'), 'checkpoints', 'last.pth'), path.join(target, 'checkpoints', 'last.pth'));
      fs.copyFileSync(path.join(run('S'), 'split.json'), path.join(target, 'split.json'));
      const c = config('S');
      edit(c);
      fs.writeFileSync(path.join(target, 'config.yaml'), YAML.stringify(c));
      return target;
    };
    const twoStage = await runCli(['train', '--resume', copy('resume-two-stage', (c) => (c.phase = 'two-stage'))]);
    expectExit(twoStage, 2, '--resume <two-stage config>');
    expect(twoStage.err).toBe("finetorch: --resume takes one phase's run folder\n");

    const before = sha(path.join(run('S'), 'checkpoints', 'last.pth'));
    const mismatched = copy('resume-conv-head', (c) => (c.head = 'conv1x1'));
    const resumed = await runCli(['train', '--resume', mismatched, '--epochs', '2']);
    expectExit(resumed, 1, '--resume <config the checkpoint does not fit>');
    expect(resumed.err).toContain('size mismatch for fc.weight: copying a param with shape [3, 512] from the checkpoint, the shape in the current model is [3, 512, 1, 1]');
    expect(sha(path.join(mismatched, 'checkpoints', 'last.pth'))).toBe(before); // nothing written over it
    expect(fs.existsSync(path.join(mismatched, 'results.json'))).toBe(false);
  });

  test('report regenerates the pictures and report.html from the saved logs; several runs also give compare.html', async () => {
    // S was trained with report: false: no pictures, no report, no confusion matrix in its TensorBoard log
    const events = () => fs.readdirSync(path.join(run('S'), 'logs')).filter((f) => f.startsWith('events.out.tfevents.'));
    const logsConfusion = () => events().some((f) => fs.readFileSync(path.join(run('S'), 'logs', f)).includes('confusion_matrix'));
    expect(fs.existsSync(path.join(run('S'), 'pictures'))).toBe(false);
    expect(logsConfusion()).toBe(false);
    const single = await runCli(['report', run('S')]);
    expectExit(single, 0, 'report');
    expect(single.out).toBe(`${path.join(run('S'), 'report.html')}\n`);
    const png = (file: string) => fs.readFileSync(file).subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const pictures = fs.readdirSync(path.join(run('S'), 'pictures')).sort();
    expect(pictures).toEqual(expect.arrayContaining(['accuracy.png', 'confusion.png', 'gradient-norms.png', 'loss.png', 'tsne.png']));
    for (const p of pictures) expect(png(path.join(run('S'), 'pictures', p))).toBe(true);
    const r = results('S');
    const html = fs.readFileSync(path.join(run('S'), 'report.html'), 'utf8');
    expect(html).toContain('finetorch run S');
    expect(html).toContain(pctOf(r.test.top1, 1));
    for (const c of classesOf('S')) expect(html).toContain(c);
    // the confusion matrix went into the TensorBoard log as well
    expect(logsConfusion()).toBe(true);

    const out = path.join(dir, 'compare');
    const several = await runCli(['report', run('T.finetune'), run('S'), '--out', out, '--no-tsne']);
    expectExit(several, 0, 'report (several runs)');
    expect(several.out).toBe([path.join(run('T.finetune'), 'report.html'), path.join(run('S'), 'report.html'), path.join(out, 'compare.html')].join('\n') + '\n');
    expect(fs.readdirSync(out).sort()).toEqual(['compare-loss.png', 'compare-top1.png', 'compare.html']);
    expect(fs.readdirSync(path.join(run('T.finetune'), 'pictures'))).not.toContain('tsne.png'); // --no-tsne
    const compare = fs.readFileSync(path.join(out, 'compare.html'), 'utf8');
    for (const name of ['S', 'T.finetune']) expect(compare).toContain(run(name));
  });
});

// ---------------------------------------------------------------------------------------------
// Downloads: the CLI against a loopback server, in child processes whose environment points it there.

/**
 * 80 bytes whose sha256 starts with f37072fd, the prefix torchvision's resnet18-f37072fd.pth carries
 * in its name (found by trying nonces; checked below): the one file a test can serve under the
 * official name and have accepted.
 */
const RESNET18_STAND_IN = Buffer.from('finetorch test weights: not ImageNet, a stand-in with this hash\n000000003e95b640');
const RESNET18_FILE = 'resnet18-f37072fd.pth';

/** Relative paths and contents of every file under dir, sorted. */
function tree(root: string, skip: (rel: string) => boolean = () => false): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(root, p);
      if (skip(rel)) continue;
      if (e.isDirectory()) walk(p);
      else out.push([rel, createHash('sha256').update(fs.readFileSync(p)).digest('hex')]);
    }
  };
  walk(root);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

built.describe('weights download and data download against a loopback server', () => {
  let server: TestServer;
  let work: string;
  let source: string;
  let tarball: Buffer;
  let tarMd5: string;
  const md5Preload = path.join(ROOT, 'test', 'helpers', 'cli-caltech101-md5.js');

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-cli-downloads-'));
    // Caltech-101's layout: 101_ObjectCategories/<class>/image_NNNN.jpg, BACKGROUND_Google included
    source = path.join(work, 'src');
    let k = 0;
    for (const [cls, n] of [['BACKGROUND_Google', 1], ['Faces', 2], ['accordion', 1]] as const) {
      fs.mkdirSync(path.join(source, '101_ObjectCategories', cls), { recursive: true });
      for (let i = 1; i <= n; i++) {
        k++;
        const jpeg = await sharp({ create: { width: 30 + k, height: 24, channels: 3, background: { r: 40 * k, g: 90, b: 200 - 30 * k } } }).jpeg().toBuffer();
        fs.writeFileSync(path.join(source, '101_ObjectCategories', cls, `image_${String(i).padStart(4, '0')}.jpg`), jpeg);
      }
    }
    const tarPath = path.join(work, '101_ObjectCategories.tar.gz');
    const packed = spawnSync('tar', ['-czf', tarPath, '-C', source, '101_ObjectCategories'], { encoding: 'utf8' });
    if (packed.status !== 0) throw new Error(`tar failed: ${packed.stderr}`);
    tarball = fs.readFileSync(tarPath);
    tarMd5 = createHash('md5').update(tarball).digest('hex');

    server = await startServer();
    server.route(`/mirror/${RESNET18_FILE}`, serveBytes(RESNET18_STAND_IN));
    server.route(`/corrupt/${RESNET18_FILE}`, serveBytes(Buffer.from('not the weights')));
    server.route('/data/101_ObjectCategories.tar.gz', serveBytes(tarball));
    server.route('/records/x/files/caltech-101.zip', serveBytes(buildZip([
      { name: 'caltech-101/Annotations.tar', data: Buffer.from('not used') },
      { name: 'caltech-101/101_ObjectCategories.tar.gz', data: tarball },
    ])));
  });
  afterAll(async () => {
    await server?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('weights download <arch> fetches <base URL>/<official name> into $TORCH_HOME/hub/checkpoints, prints the path, then reuses it', async () => {
    expect(createHash('sha256').update(RESNET18_STAND_IN).digest('hex').startsWith('f37072fd')).toBe(true);
    const torchHome = path.join(work, 'torch-home');
    const env = { TORCH_HOME: torchHome, FINETORCH_WEIGHTS_BASE_URL: server.url('/mirror') };
    const target = path.join(torchHome, 'hub', 'checkpoints', RESNET18_FILE);
    const first = await runCli(['weights', 'download', 'resnet18'], { env });
    expectExit(first, 0, 'weights download');
    expect(first.out).toBe(`${target}\n`);
    expect(fs.readFileSync(target).equals(RESNET18_STAND_IN)).toBe(true);
    expect(server.hitsFor(`/mirror/${RESNET18_FILE}`).filter((h) => h.method === 'GET')).toHaveLength(1);
    const again = await runCli(['weights', 'download', 'resnet18'], { env });
    expectExit(again, 0, 'weights download (cached)');
    expect(again.out).toBe(`${target}\n`);
    expect(server.hitsFor(`/mirror/${RESNET18_FILE}`).filter((h) => h.method === 'GET')).toHaveLength(1);
  });

  test('weights download refuses bytes whose sha256 does not match the official name, names the mirror, and keeps nothing', async () => {
    const torchHome = path.join(work, 'torch-home-corrupt');
    const base = server.url('/corrupt');
    const result = await runCli(['weights', 'download', 'resnet18'], { env: { TORCH_HOME: torchHome, FINETORCH_WEIGHTS_BASE_URL: base } });
    expectExit(result, 1, 'weights download (corrupt)');
    const got = createHash('sha256').update('not the weights').digest('hex');
    expect(result.err).toContain(got);
    expect(result.err).toContain('f37072fd');
    expect(result.err).toContain(`(weights base URL ${base} from $FINETORCH_WEIGHTS_BASE_URL)`);
    const cache = path.join(torchHome, 'hub', 'checkpoints');
    expect(fs.existsSync(cache) ? fs.readdirSync(cache) : []).toEqual([]);
  });

  test("data download --url <.tar.gz>: with torchvision's md5 a test archive is refused, both md5s named, nothing left under --root", async () => {
    const root = path.join(work, 'refused');
    const url = server.url('/data/101_ObjectCategories.tar.gz');
    const result = await runCli(['data', 'download', '--root', root, '--url', url]);
    expectExit(result, 1, 'data download (md5 mismatch)');
    expect(result.err).toContain(`expected md5 b224c7392d521a49829488ab0f1120d9, got ${tarMd5}`);
    expect(server.hitsFor('/data/101_ObjectCategories.tar.gz').length).toBeGreaterThan(0);
    expect(fs.existsSync(root) ? fs.readdirSync(root) : []).toEqual([]);
  });

  test('data download --url <.tar.gz> and <CaltechDATA .zip>: fetched, checked, unpacked as <root>/101_ObjectCategories; a second run fetches nothing', async () => {
    const expected = tree(source);
    for (const [where, urlPath] of [['from-tar', '/data/101_ObjectCategories.tar.gz'], ['from-zip', '/records/x/files/caltech-101.zip']]) {
      const root = path.join(work, where);
      const url = server.url(urlPath);
      const options = { preload: [md5Preload], env: { FINETORCH_TEST_CALTECH101_MD5: tarMd5 } };
      const hits = () => server.hitsFor(urlPath).length;
      const before = hits();
      const first = await runCli(['data', 'download', '--root', root, '--url', url], options);
      expectExit(first, 0, `data download ${urlPath}`);
      expect(first.out).toBe(`${path.join(root, '101_ObjectCategories')}\n`);
      expect(hits()).toBeGreaterThan(before);
      // the real layout, byte for byte, plus the completion marker; the archive kept next to it
      expect(tree(root, (rel) => rel === '101_ObjectCategories.tar.gz' || rel.endsWith('.finetorch-extracted.json'))).toEqual(expected);
      expect(fs.existsSync(path.join(root, '101_ObjectCategories', '.finetorch-extracted.json'))).toBe(true);
      expect(fs.readdirSync(root).sort()).toEqual(['101_ObjectCategories', '101_ObjectCategories.tar.gz']);
      const after = hits();
      const folder = path.join(root, '101_ObjectCategories');
      const marker = fs.readFileSync(path.join(folder, '.finetorch-extracted.json'), 'utf8');
      const inode = fs.statSync(folder).ino;
      const again = await runCli(['data', 'download', '--root', root, '--url', url], options);
      expectExit(again, 0, `data download ${urlPath} (again)`);
      expect(again.out).toBe(first.out);
      // neither fetched nor unpacked again: the same folder, the same marker
      expect(hits()).toBe(after);
      expect(fs.statSync(folder).ino).toBe(inode);
      expect(fs.readFileSync(path.join(folder, '.finetorch-extracted.json'), 'utf8')).toBe(marker);
    }
  });
});
