// ONNX export: every architecture's file, run by onnxruntime, gives finetorch's eval-mode logits
// (relative error max|ort - torch| / max|torch| below 1e-5) for batch 1 and 7 from one session
// (the batch axis is dynamic), carries its metadata, and passes ONNX's checker where it is installed.
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import * as os from 'os';
import * as path from 'path';
import { createModel, exportOnnx, manualSeed, onnxModelBytes, randn, tensor, type Architecture, type HeadKind, type Model, type Tensor } from '../../lib';
import { Random } from '../../lib/data/random';
import * as pruning from '../../lib/models/pruning';
import * as shrink from '../../lib/models/shrink';
import { checkOnnxFile, maxRelativeError, metadataOf, readOnnxModel, runOnnx } from '../helpers/onnx';

let dir: string;
const figures: string[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-onnx-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  if (figures.length) process.stderr.write(`ONNX parity (max relative error, batch 1 / 7):\n${figures.join('\n')}\n`);
});

/**
 * BatchNorm as training leaves it rather than as initialised (weight 1, bias 0, mean 0, var 1), so
 * that a swapped or missing BatchNorm input cannot go unnoticed.
 */
async function randomiseBatchNorm(model: Model, seed: number): Promise<void> {
  const random = new Random(seed);
  const batchNorms = new Set(model.namedModules().filter((m) => m.type === 'BatchNorm2d').map((m) => m.name));
  const draw: Record<string, () => number> = {
    weight: () => 0.8 + 0.4 * random.next(),
    bias: () => 0.2 * (random.next() - 0.5),
    running_mean: () => 0.4 * (random.next() - 0.5),
    running_var: () => 0.5 + random.next(),
  };
  const updates = new Map<string, Tensor>();
  for (const [key, t] of model.stateDict()) {
    const cut = key.lastIndexOf('.');
    const fill = draw[key.slice(cut + 1)];
    if (batchNorms.has(key.slice(0, cut)) && fill) updates.set(key, tensor(Float32Array.from({ length: t.numel }, fill), t.shape));
    t.dispose();
  }
  await model.loadStateDict(updates, { strict: false });
  for (const t of updates.values()) t.dispose();
}

/** Exports, runs batch 1 and 7 through one onnxruntime session, and checks the file. Returns the file. */
async function expectParity(model: Model, imageSize: number, label: string, opset?: number): Promise<string> {
  const file = path.join(dir, `${label.replace(/\W+/g, '-')}.onnx`);
  const result = await exportOnnx(model, file, { imageSize, opset });
  expect(fs.statSync(file).size).toBe(result.bytes);
  const session = await ort.InferenceSession.create(file);
  const errors: number[] = [];
  try {
    expect(session.inputNames).toEqual(['images']);
    expect(session.outputNames).toEqual(['logits']);
    for (const batch of [1, 7]) {
      const shape = [batch, 3, imageSize, imageSize];
      const images = randn(shape);
      const expected = await model.forward(images);
      const { values, dims } = await runOnnx(session, images.toTypedArray() as Float32Array, shape);
      expect(dims).toEqual([batch, model.numClasses]);
      const error = maxRelativeError(values, expected.toTypedArray() as Float32Array);
      expect(error).toBeLessThan(1e-5);
      errors.push(error);
      images.dispose();
      expected.dispose();
    }
  } finally {
    await session.release();
  }
  const checked = checkOnnxFile(file);
  figures.push(`  ${label}: ${errors.map((e) => e.toExponential(2)).join(' / ')}${checked ? ' (ONNX checker: passed)' : ''}`);
  return file;
}

const CASES: Array<{ arch: Architecture; head: HeadKind; imageSize: number; why: string }> = [
  { arch: 'resnet18', head: 'linear', imageSize: 64, why: '' },
  { arch: 'resnet18', head: 'conv1x1', imageSize: 40, why: 'the seed head; a 2x2 layer4 map' },
  { arch: 'resnet34', head: 'linear', imageSize: 64, why: '' },
  { arch: 'resnet50', head: 'conv1x1', imageSize: 64, why: 'bottleneck blocks' },
  { arch: 'alexnet', head: 'linear', imageSize: 160, why: '4x4 map pooled to 6x6: overlapping bins' },
  { arch: 'vgg16', head: 'linear', imageSize: 32, why: '1x1 map pooled to 7x7' },
];

describe('exportOnnx', () => {
  test.each(CASES)('$arch ($head head) at $imageSize px: onnxruntime gives the eval-mode logits $why', async ({ arch, head, imageSize }) => {
    manualSeed(7);
    const model = createModel(arch, { numClasses: 5, head });
    try {
      await randomiseBatchNorm(model, 3);
      model.eval();
      await expectParity(model, imageSize, `${arch} ${head} ${imageSize}px`);
    } finally {
      model.dispose();
    }
  });

  test('AlexNet at 224 px: its map is already 6x6, so the adaptive pooling adds no op', () => {
    const model = createModel('alexnet', { numClasses: 4 });
    try {
      const { graph } = readOnnxModel(onnxModelBytes(model).bytes);
      const ops = graph.node.map((n: { op_type: string }) => n.op_type);
      expect(ops.filter((op: string) => op === 'MatMul')).toEqual([]);
      const flatten = graph.node.find((n: { op_type: string }) => n.op_type === 'Flatten');
      expect(flatten.input).toEqual(['features.12']); // the last max-pool's output, straight into the classifier
    } finally {
      model.dispose();
    }
  });

  test("the lowest and highest opsets run and pass the checker; IR version follows the opset", async () => {
    manualSeed(8);
    const model = createModel('resnet18', { numClasses: 3 });
    try {
      await randomiseBatchNorm(model, 4);
      model.eval();
      for (const [opset, irVersion] of [[11, 6], [17, 8]]) {
        const file = await expectParity(model, 32, `resnet18 opset ${opset}`, opset);
        const proto = readOnnxModel(file);
        expect(proto.ir_version).toBe(irVersion);
        expect(proto.opset_import).toEqual([{ domain: '', version: opset }]);
      }
    } finally {
      model.dispose();
    }
  });

  test('metadata: class names, normalisation, input size; input and output with a dynamic batch axis', async () => {
    const model = createModel('resnet18', { numClasses: 3, head: 'conv1x1' });
    const file = path.join(dir, 'metadata.onnx');
    try {
      const result = await exportOnnx(model, file, { imageSize: 48, resize: 56, classNames: ['cat', 'dog', 'Faces_easy'], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
      const proto = readOnnxModel(file);
      const metadata = metadataOf(proto);
      expect(result.metadata).toEqual(metadata);
      expect(JSON.parse(metadata.class_names)).toEqual(['cat', 'dog', 'Faces_easy']);
      expect(JSON.parse(metadata.mean)).toEqual([0.5, 0.5, 0.5]);
      expect(JSON.parse(metadata.std)).toEqual([0.25, 0.25, 0.25]);
      expect(metadata).toMatchObject({ arch: 'resnet18', head: 'conv1x1', num_classes: '3', image_size: '48', resize: '56' });
      expect(metadata.finetorch_version).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
      expect(metadata.preprocessing).toContain('resize the shorter side to 56, centre-crop 48x48');
      expect(proto.producer_name).toBe('finetorch');
      const dims = (value: { type: { tensor_type: { elem_type: number; shape: { dim: unknown[] } } } }) => [value.type.tensor_type.elem_type, value.type.tensor_type.shape.dim];
      expect(proto.graph.input.map((v: { name: string }) => v.name)).toEqual(['images']);
      expect(dims(proto.graph.input[0])).toEqual([1, [{ dim_param: 'batch' }, { dim_value: 3 }, { dim_value: 48 }, { dim_value: 48 }]]);
      expect(proto.graph.output.map((v: { name: string }) => v.name)).toEqual(['logits']);
      expect(dims(proto.graph.output[0])).toEqual([1, [{ dim_param: 'batch' }, { dim_value: 3 }]]);
      // the weights are the state_dict's, under its names; eval mode: no Dropout, BatchNorm on running stats
      const names = proto.graph.initializer.map((t: { name: string }) => t.name);
      expect(names).toContain('layer4.1.bn2.running_var');
      expect(names).toContain('fc.bias');
      expect(names.some((n: string) => n.endsWith('num_batches_tracked'))).toBe(false);
      expect(proto.graph.node.map((n: { op_type: string }) => n.op_type)).not.toContain('Dropout');
    } finally {
      model.dispose();
    }
  });

  test('defaults: ImageNet normalisation, class names 0..n-1, 224 px, opset 13; the model mode and layout do not matter', async () => {
    const model = createModel('resnet18', { numClasses: 2 });
    try {
      model.train();
      const trained = onnxModelBytes(model);
      model.eval();
      await model.channelsLast();
      const evaluated = onnxModelBytes(model);
      // the same file: eval semantics either way, and weights in NCHW order whatever their memory layout
      expect(Buffer.from(trained.bytes).equals(Buffer.from(evaluated.bytes))).toBe(true);
      expect(trained.opset).toBe(13);
      expect(trained.metadata).toMatchObject({ class_names: '["0","1"]', image_size: '224', mean: '[0.485,0.456,0.406]', std: '[0.229,0.224,0.225]' });
      expect(trained.metadata.resize).toBeUndefined();
    } finally {
      model.dispose();
    }
  });

  test('rejects bad options with what was expected and what came', async () => {
    const model = createModel('alexnet', { numClasses: 2 });
    try {
      expect(() => onnxModelBytes(model, { opset: 18 })).toThrow('Expected integer between 11 and 17 for opset but received 18 of type number');
      expect(() => onnxModelBytes(model, { opset: 10 })).toThrow('Expected integer between 11 and 17 for opset but received 10');
      expect(() => onnxModelBytes(model, { classNames: ['a'] })).toThrow("Expected 2 classNames (the model's numClasses) but received 1");
      expect(() => onnxModelBytes(model, { std: [1, 0, 1] })).toThrow('Expected positive standard deviations for std');
      expect(() => onnxModelBytes(model, { imageSise: 64 } as never)).toThrow("did you mean 'imageSize'?");
      // 32 px leaves AlexNet's last max-pool (3x3 windows) a 1x1 map
      expect(() => onnxModelBytes(model, { imageSize: 32 })).toThrow(
        'alexnet at 32x32: the input is too small for this network (features.12 receives a 1x1 map and would output 0x0)',
      );
      await expect(exportOnnx(model, '')).rejects.toThrow("Expected a file path for file but received '' of type string");
      expect(() => onnxModelBytes({} as Model)).toThrow('Expected Model for model');
    } finally {
      model.dispose();
    }
  });

  test('pruning: masks are refused until makePermanent; a shrunk ResNet exports with its narrower convs and onnxruntime agrees', async () => {
    manualSeed(7);
    const model = createModel('resnet18', { numClasses: 5 });
    try {
      await randomiseBatchNorm(model, 3);
      model.eval();
      await pruning.l1Unstructured(model, ['layer1.0.conv1'], { amount: 0.5 });
      expect(() => onnxModelBytes(model)).toThrow(/1 layer\(s\) hold weight_orig\/weight_mask \(layer1.0.conv1…\): call pruning.makePermanent\(model\) before exporting/);
      await pruning.makePermanent(model);
      await shrink.shrinkChannels(model, { amount: 0.5 });
      await expectParity(model, 64, 'resnet18 pruned and shrunk 64px');
    } finally {
      model.dispose();
    }
  });

  test('refuses EfficientNet-B0, which it cannot write yet, before writing anything', async () => {
    const model = createModel('efficientnet_b0', { numClasses: 2 });
    const file = path.join(os.tmpdir(), `finetorch-effnet-${process.pid}.onnx`);
    try {
      const message = 'ONNX export is not supported for efficientnet_b0 yet (the exporter writes AlexNet, VGG-16 and ResNet graphs)';
      expect(() => onnxModelBytes(model)).toThrow(message);
      await expect(exportOnnx(model, file)).rejects.toThrow(message);
      expect(fs.existsSync(file)).toBe(false);
    } finally {
      model.dispose();
    }
  });

  test.each(['se', 'cbam'] as const)('refuses a ResNet with %s attention, which it cannot write yet, before writing anything', async (attention) => {
    const model = createModel('resnet18', { numClasses: 2, attention });
    const file = path.join(os.tmpdir(), `finetorch-${attention}-${process.pid}.onnx`);
    try {
      const message = `ONNX export is not supported for resnet18 with ${attention} attention yet (the exporter writes AlexNet, VGG-16 and ResNet graphs without attention)`;
      expect(() => onnxModelBytes(model)).toThrow(message);
      await expect(exportOnnx(model, file)).rejects.toThrow(message);
      expect(fs.existsSync(file)).toBe(false);
    } finally {
      model.dispose();
    }
  });
});
