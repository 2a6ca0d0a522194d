// int8 static quantization against PyTorch's eager mode (torch.ao.quantization on torchvision's
// quantizable ResNet-18 and an AlexNet with Quant/DeQuant stubs) on the same float weights and
// the same calibration batches: every scale, zero point and int8 weight, then the int8 logits.
// Then the saved file's round trip and the refusals.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadPretrained, pruning, shrink, loadTorchFile, QuantizedModel, randn, saveTorchFile, tensor, type Model, type Tensor } from '../../lib';
import { getNumThreads } from '../../lib/runtime';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());
const REFERENCE = fs.readFileSync(path.join(__dirname, '..', 'helpers', 'quantized-reference.py'), 'utf8');

// Seeded float networks with non-trivial BatchNorms, calibration batches and a test batch.
const SETUP = String.raw`
import sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(0)
resnet = torchvision.models.resnet18(num_classes=10)
for m in resnet.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
torch.save(resnet.state_dict(), f'{out}/resnet18.pth')
torch.save(torchvision.models.alexnet(num_classes=10).state_dict(), f'{out}/alexnet.pth')
torch.save({'calibration': [torch.randn(4, 3, 64, 64) for _ in range(3)], 'x': torch.randn(6, 3, 64, 64)}, f'{out}/inputs.pth')
print('ok')
`;

function array(t: Tensor | undefined): number[] {
  if (!t) throw new Error('missing tensor');
  return Array.from(t.toTypedArray() as ArrayLike<number | bigint>, Number);
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

torch.describe('int8 static quantization against PyTorch eager mode', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-int8-'));
  let inputs: Map<string, unknown>;
  let engine: string;
  const figures: Record<string, string> = {};

  beforeAll(async () => {
    assertPresent(torch);
    runPython(SETUP, [dir]);
    inputs = (await loadTorchFile(path.join(dir, 'inputs.pth'))).value as Map<string, unknown>;
  });
  afterAll(() => {
    console.log(`int8 vs PyTorch (engine ${engine}):\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function floatModel(arch: 'resnet18' | 'alexnet'): Promise<Model> {
    const model = createModel(arch, { numClasses: 10 });
    await loadPretrained(model, path.join(dir, `${arch}.pth`));
    return model.eval();
  }

  function reference(arch: string, observer: string): Promise<Map<string, unknown>> {
    const out = path.join(dir, `${arch}-${observer}-ref.pth`);
    runPython(REFERENCE, [path.join(dir, `${arch}.pth`), path.join(dir, 'inputs.pth'), out, engine, observer, String(getNumThreads()), arch]);
    return loadTorchFile(out).then((f) => f.value as Map<string, unknown>);
  }

  const cases: Array<['resnet18' | 'alexnet', 'minmax' | 'histogram']> = [
    ['resnet18', 'minmax'],
    ['resnet18', 'histogram'],
    ['alexnet', 'histogram'],
  ];
  test.each(cases)('%s with the %s observer: scales, zero points, int8 weights and logits match', async (arch, observer) => {
    const model = await floatModel(arch);
    const calibration = inputs.get('calibration') as Tensor[];
    const quantized = await QuantizedModel.quantize(model, calibration, { observer });
    engine = quantized.engine;
    const ref = await reference(arch, observer);
    const expected = ref.get('state') as Map<string, Tensor>;
    const actual = await quantized.stateDict();
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());

    let scaleError = 0;
    let weightMismatches = 0;
    let biasError = 0;
    for (const [name, value] of actual) {
      const want = expected.get(name)!;
      expect({ name, dtype: value.dtype, shape: value.shape }).toEqual({ name, dtype: want.dtype, shape: want.shape });
      const a = array(value);
      const b = array(want);
      if (name.endsWith('zero_point')) expect({ name, a }).toEqual({ name, a: b });
      else if (name.endsWith('scale')) scaleError = Math.max(scaleError, ...a.map((v, i) => Math.abs(v - b[i]) / b[i]));
      else if (name.endsWith('weight')) weightMismatches += a.filter((v, i) => v !== b[i]).length;
      else biasError = Math.max(biasError, maxAbsDiff(a, b));
    }
    const x = inputs.get('x') as Tensor;
    const logits = array(await quantized.forward(x));
    const refLogits = array(ref.get('logits') as Tensor);
    const floatLogits = array(ref.get('float_logits') as Tensor);
    const outputStep = array(actual.get(arch === 'resnet18' ? 'fc.scale' : 'classifier.6.scale'))[0];
    const logitError = maxAbsDiff(logits, refLogits);
    const floatGap = maxAbsDiff(refLogits, floatLogits);
    figures[`${arch}/${observer}`] =
      `scales rel ${scaleError.toExponential(1)}, int8 weights differing ${weightMismatches}, biases ${biasError.toExponential(1)}, ` +
      `logits max |diff| ${logitError.toExponential(2)} (= ${(logitError / outputStep).toFixed(2)} output steps; int8 vs float ${floatGap.toFixed(3)})`;
    expect(scaleError).toBeLessThan(1e-6);
    expect(weightMismatches).toBe(0);
    expect(biasError).toBeLessThan(1e-6);
    // one output quantization step: the same kernels on the same int8 values and scales
    expect(logitError).toBeLessThanOrEqual(outputStep * 1.0001);
    for (const t of actual.values()) t.dispose();
    quantized.dispose();
    model.dispose();
  });

  test("the input's uint8 codes equal torch.quantize_per_tensor's: ties, both ends, inf and NaN, either layout", async () => {
    const model = await floatModel('resnet18');
    const quantized = await QuantizedModel.quantize(model, inputs.get('calibration') as Tensor[], { observer: 'minmax' });
    const state = await quantized.stateDict();
    const scale = array(state.get('quant.scale'))[0];
    const zeroPoint = array(state.get('quant.zero_point'))[0];
    // [2, 3, 16, 16]: values at and next to every half step around each code, past both ends of
    // the range, and the specials; the rest uniform in [-3, 3)
    const count = 2 * 3 * 16 * 16;
    let seed = 7;
    const values = Float32Array.from({ length: count }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 6);
    let i = 0;
    for (let code = -300; code <= 300 && i < count - 16; code += 1) {
      const tie = Math.fround((code + 0.5 - zeroPoint) * scale);
      values[i++] = tie;
      if (code % 3 === 0) values[i++] = Math.fround(tie * (1 + 2 ** -23));
    }
    for (const special of [Infinity, -Infinity, NaN, 3e38, -3e38, 1e20, -1e20, 2 ** 22 * scale, -(2 ** 22) * scale, 0, -0]) values[i++] = special;
    const x = tensor(values, [2, 3, 16, 16]);
    const codes = await quantized.quantizeInput(x);
    expect({ dtype: codes.dtype, shape: codes.shape }).toEqual({ dtype: 'uint8', shape: [2, 3, 16, 16] });
    const file = path.join(dir, 'quantize-input.pth');
    await saveTorchFile(file, { x, scale: tensor(new Float64Array([scale]), [1]), zero_point: tensor(new BigInt64Array([BigInt(zeroPoint)]), [1]) });
    runPython(
      String.raw`
import sys, torch
d = torch.load(sys.argv[1])
x = d['x']
codes = torch.quantize_per_tensor(x, float(d['scale'][0]), int(d['zero_point'][0]), torch.quint8).int_repr()
torch.save({'codes': codes, 'channels_last': x.contiguous(memory_format=torch.channels_last)}, sys.argv[1])
`,
      [file],
    );
    const ref = (await loadTorchFile(file)).value as Map<string, Tensor>;
    const expected = array(ref.get('codes'));
    const actual = array(codes);
    const differing = actual.map((v, k) => (v === expected[k] ? -1 : k)).filter((k) => k >= 0);
    expect(differing.map((k) => ({ value: values[k], ours: actual[k], torch: expected[k] }))).toEqual([]);
    // the same codes from a channels-last batch (the pipeline's layout)
    expect(array(await quantized.quantizeInput(ref.get('channels_last')!))).toEqual(expected);
    for (const t of state.values()) t.dispose();
    quantized.dispose();
    model.dispose();
  });

  test('save and load round-trip exactly: every value, then the logits', async () => {
    const model = await floatModel('resnet18');
    const quantized = await QuantizedModel.quantize(model, inputs.get('calibration') as Tensor[], { observer: 'minmax' });
    const file = path.join(dir, 'int8.pth');
    await quantized.save(file);
    const loaded = await QuantizedModel.load(file);
    expect({ arch: loaded.arch, numClasses: loaded.numClasses, observer: loaded.observer, calibrationImages: loaded.calibrationImages }).toEqual({
      arch: 'resnet18',
      numClasses: 10,
      observer: 'minmax',
      calibrationImages: 12,
    });
    const before = await quantized.stateDict();
    const after = await loaded.stateDict();
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [name, t] of before) expect({ name, values: array(after.get(name)) }).toEqual({ name, values: array(t) });
    const x = inputs.get('x') as Tensor;
    expect(array(await loaded.forward(x))).toEqual(array(await quantized.forward(x)));
    loaded.dispose();
    quantized.dispose();
    model.dispose();
  });
});

describe('QuantizedModel refuses misuse', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-int8-misuse-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const batch = () => randn([2, 3, 32, 32]);

  test('architectures, heads and options it does not cover', async () => {
    await expect(QuantizedModel.quantize(createModel('mobilenet_v3_large', { numClasses: 3 }), [batch()])).rejects.toThrow(
      /Expected one of 'resnet18'.* for model.arch \(quantizable architectures\) but received 'mobilenet_v3_large'/,
    );
    await expect(QuantizedModel.quantize(createModel('resnet18', { numClasses: 3, head: 'conv1x1' }), [batch()])).rejects.toThrow(/head 'linear'.*'conv1x1'/);
    const model = createModel('resnet18', { numClasses: 3 }).eval();
    await expect(QuantizedModel.quantize(model, [batch()], { observer: 'kl' as never })).rejects.toThrow(/observer.*'kl'/);
    await expect(QuantizedModel.quantize(model, [batch()], { engine: 'tensorrt' as never })).rejects.toThrow(/engine.*'tensorrt'/);
    await expect(QuantizedModel.quantize(model, [], {})).rejects.toThrow('Expected at least one calibration batch but received none');
    await expect(QuantizedModel.quantize(model, 5 as never)).rejects.toThrow(/Expected iterable of image batches for calibration/);
    await expect(QuantizedModel.quantize(model, [tensor([1, 2, 3])])).rejects.toThrow(/calibration batch of shape \[N, 3, H, W\]/);
    // an engine this libtorch lacks: the native message lists the ones it has
    const missing = ['x86', 'fbgemm', 'onednn', 'qnnpack'];
    for (const engine of missing) {
      try {
        const q = await QuantizedModel.quantize(model, [batch()], { engine: engine as never, observer: 'minmax' });
        expect(q.engine).toBe(engine);
        q.dispose();
      } catch (error) {
        expect((error as Error).message).toMatch(new RegExp(`quantized engine '${engine}' is not in this libtorch \\(it has .+\\)`));
      }
    }
    model.dispose();
  });

  test('models with attention or pruning masks are refused (found by the API fuzzer)', async () => {
    const attention = createModel('resnet18', { numClasses: 2, attention: 'se' }).eval();
    await expect(QuantizedModel.quantize(attention, [batch()])).rejects.toThrow(/Expected a model without attention .* but received attention 'se'/);
    attention.dispose();
    const pruned = createModel('resnet18', { numClasses: 2 }).eval();
    await pruning.l1Unstructured(pruned, ['conv1', 'fc'], { amount: 0.3 });
    await expect(QuantizedModel.quantize(pruned, [batch()])).rejects.toThrow(/Expected a model without pruning masks but 2 layer\(s\) hold .*call pruning.makePermanent\(model\)/);
    await pruning.makePermanent(pruned);
    const q = await QuantizedModel.quantize(pruned, [batch()], { observer: 'minmax' });
    expect(q.numClasses).toBe(2);
    q.dispose();
    pruned.dispose();
  });

  test('a shrunk ResNet quantizes, saves and loads with its narrower widths (found by the API fuzzer)', async () => {
    const model = createModel('resnet18', { numClasses: 2 }).eval();
    const widths = await shrink.shrinkChannels(model, { amount: 0.5 });
    expect(widths['layer1.0.conv1']).toBe(32);
    const quantized = await QuantizedModel.quantize(model, [batch()], { observer: 'minmax' });
    const file = path.join(dir, 'shrunk-int8.pth');
    await quantized.save(file);
    const loaded = await QuantizedModel.load(file);
    const x = batch();
    expect(Array.from((await loaded.forward(x)).toTypedArray() as Float32Array)).toEqual(Array.from((await quantized.forward(x)).toTypedArray() as Float32Array));
    expect((await loaded.stateDict()).get('layer1.0.conv1.weight')?.shape).toEqual([32, 64, 3, 3]);
    loaded.dispose();
    quantized.dispose();
    model.dispose();
  });

  test('bad inputs, disposed models and files that are not int8 models', async () => {
    const model = createModel('resnet18', { numClasses: 3 }).eval();
    const quantized = await QuantizedModel.quantize(model, [batch()], { observer: 'minmax' });
    await expect(quantized.forward(tensor([1, 2]))).rejects.toThrow(/Expected images of shape \[N, 3, H, W\] but received \[2\]/);
    await expect(quantized.evaluate(batch(), tensor([0, 5], undefined, { dtype: 'int64' }))).rejects.toThrow(/labels between 0 and 2 but received 5/);
    const result = await quantized.evaluate(batch(), tensor([0, 2], undefined, { dtype: 'int64' }));
    expect(result.count).toBe(2);
    expect(result.correct5).toBe(2); // 3 classes: always within the top 5
    const floatFile = path.join(dir, 'float.pth');
    await saveTorchFile(floatFile, model.stateDict());
    await expect(QuantizedModel.load(floatFile)).rejects.toThrow(/Expected a finetorch int8 model file/);
    await expect(QuantizedModel.load(path.join(dir, 'absent.pth'))).rejects.toThrow(/no quantized model at/);
    // a file whose state lacks a value: the native loader names it
    const file = path.join(dir, 'int8.pth');
    await quantized.save(file);
    const saved = (await loadTorchFile(file)).value as Map<string, unknown>;
    (saved.get('state') as Map<string, Tensor>).delete('layer2.0.downsample.0.weight');
    await saveTorchFile(path.join(dir, 'broken.pth'), saved);
    await expect(QuantizedModel.load(path.join(dir, 'broken.pth'))).rejects.toThrow("quantized state lacks 'layer2.0.downsample.0.weight'");
    quantized.dispose();
    await expect(quantized.forward(batch())).rejects.toThrow('QuantizedModel was used after dispose()');
    model.dispose();
  });
});
