// `finetorch export <run>`: a run folder (or a checkpoint file) to an ONNX file whose metadata is the
// run's, and whose logits, in onnxruntime, are those of the run's model.
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import * as os from 'os';
import * as path from 'path';
import { createModel, manualSeed, randn } from '../../lib';
import { resolveConfig } from '../../lib/experiment/config';
import { loadRun } from '../../lib/experiment/runs';
import { saveCheckpoint } from '../../lib/training/checkpoint';
import { runMain } from '../helpers/cli-in-process';
import { checkOnnxFile, maxRelativeError, metadataOf, readOnnxModel, runOnnx } from '../helpers/onnx';

let dir: string;
let runDir: string;
const classes = ['accordion', 'airplanes', 'anchor'];


beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-export-'));
  runDir = path.join(dir, 'runs', 'r18');
  // a run folder as train leaves it, as far as export reads one: checkpoints/best.pth with the config and classes
  const config = resolveConfig({ overrides: { arch: 'resnet18', head: 'conv1x1', image_size: 40, resize: 46, 'data.root': dir } });
  manualSeed(11);
  const model = createModel('resnet18', { numClasses: classes.length, head: 'conv1x1' });
  await saveCheckpoint(path.join(runDir, 'checkpoints', 'best.pth'), { model, epoch: 1, step: 1, config, extra: { classes } });
  model.dispose();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('finetorch export', () => {
  test('writes <run>/model.onnx with the run\'s classes, sizes and normalisation, and its logits', async () => {
    const result = await runMain('export', runDir);
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const file = path.join(runDir, 'model.onnx');
    expect(result.out).toBe(`${file}: resnet18, 3 classes, input [batch, 3, 40, 40], opset 13, ${(fs.statSync(file).size / 1e6).toFixed(1)} MB\n`);
    const metadata = metadataOf(readOnnxModel(file));
    expect(JSON.parse(metadata.class_names)).toEqual(classes);
    expect(metadata).toMatchObject({ arch: 'resnet18', head: 'conv1x1', image_size: '40', resize: '46', mean: '[0.485,0.456,0.406]', std: '[0.229,0.224,0.225]' });

    const run = await loadRun(runDir);
    const session = await ort.InferenceSession.create(file);
    try {
      const images = randn([2, 3, 40, 40]);
      const expected = await run.model.forward(images);
      const { values } = await runOnnx(session, images.toTypedArray() as Float32Array, [2, 3, 40, 40]);
      expect(maxRelativeError(values, expected.toTypedArray() as Float32Array)).toBeLessThan(1e-5);
      images.dispose();
      expected.dispose();
    } finally {
      await session.release();
      run.model.dispose();
    }
    checkOnnxFile(file);
  });

  test('a checkpoint file, --out and --opset', async () => {
    const out = path.join(dir, 'elsewhere', 'r18.onnx');
    const result = await runMain('export', path.join(runDir, 'checkpoints', 'best.pth'), '--out', out, '--opset', '17');
    expect(result.code).toBe(0);
    expect(result.out).toContain(`${out}: resnet18, 3 classes, input [batch, 3, 40, 40], opset 17`);
    const proto = readOnnxModel(out);
    expect(proto.opset_import).toEqual([{ domain: '', version: 17 }]);
    expect(JSON.parse(metadataOf(proto).class_names)).toEqual(classes);
  });

  test('--help shows the usage and the default opset', async () => {
    const help = await runMain('export', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('Usage: finetorch export [options] <run>');
    expect(help.out).toContain('ONNX opset, 11 to 17 (default: 13)');
  });

  test('a bad opset or a folder that is no run: a message and a failing exit code', async () => {
    const low = await runMain('export', runDir, '--opset', '9');
    expect(low.code).toBe(2);
    expect(low.err).toContain("option '--opset <n>' argument '9' is invalid. expected an integer between 11 and 17, got '9'");
    const notRun = await runMain('export', dir);
    expect(notRun.code).toBe(1);
    expect(notRun.err).toBe(`finetorch: '${dir}' is a folder without checkpoints/best.pth: not a finetorch run folder\n`);
  });
});
