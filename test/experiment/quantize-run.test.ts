// `finetorch quantize` on a finished run, then `test --int8` and `predict --int8` reading what it
// wrote; and the refusals when there is no int8 model.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { QuantizedModel } from '../../lib';
import { int8Path, loadRun } from '../../lib/experiment/runs';
import { spreadIndices } from '../../lib/experiment/quantize-run';
import { runMain } from '../helpers/cli-in-process';
import { createTinyRun, type TinyRun } from '../helpers/tiny-run';

describe('finetorch quantize', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-quantize-run-'));
  let tiny: TinyRun;
  beforeAll(async () => {
    tiny = await createTinyRun(dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('spreadIndices covers the whole split evenly', () => {
    expect(spreadIndices(10, 4)).toEqual([0, 2, 5, 7]);
    expect(spreadIndices(3, 8)).toEqual([0, 1, 2]);
  });

  test('test --int8 without a quantized model says how to make one', async () => {
    const result = await runMain('test', '--checkpoint', tiny.runDir, '--int8');
    expect(result.code).not.toBe(0);
    expect(result.err).toMatch(/no int8 model for .*best\.pth.*run finetorch quantize on it first/);
  });

  test('writes best-int8.pth, which test --int8 and predict --int8 use', async () => {
    const quantize = await runMain('quantize', tiny.runDir, '--calibration', '8', '--observer', 'minmax', '--batch-size', '4');
    expect(quantize.err).toBe('');
    expect(quantize.code).toBe(0);
    const file = int8Path(path.join(tiny.runDir, 'checkpoints', 'best.pth'));
    expect(quantize.out).toContain(`${file}: int8 (`);
    expect(quantize.out).toContain('minmax observer, 8 calibration images');
    const saved = await QuantizedModel.load(file);
    expect({ arch: saved.arch, numClasses: saved.numClasses, calibrationImages: saved.calibrationImages }).toEqual({ arch: 'resnet18', numClasses: 4, calibrationImages: 8 });
    saved.dispose();

    const tested = await runMain('test', '--checkpoint', tiny.runDir, '--int8');
    expect(tested.code).toBe(0);
    expect(tested.out).toMatch(/best\.pth \(int8, \w+\): 8 test images/);
    expect(tested.out).toMatch(/top-1 \d/);

    const predicted = await runMain('predict', tiny.images[0], '--checkpoint', tiny.runDir, '--int8', '--json');
    expect(predicted.code).toBe(0);
    const [prediction] = JSON.parse(predicted.out) as Array<{ file: string; top: Array<{ className: string; probability: number }> }>;
    expect(prediction.file).toBe(tiny.images[0]);
    expect(prediction.top).toHaveLength(4);
    // the int8 model's answer, not the float one's: the same as loading it by hand
    const run = await loadRun(tiny.runDir, { int8: true });
    expect(run.int8?.numClasses).toBe(4);
    run.model.dispose();
    run.int8?.dispose();
  });
});
