// EfficientNet-B0 against torchvision 0.14 on the same weights and inputs: state_dict names and
// shapes, eval logits and features, train-mode logits with the same stochastic-depth and dropout
// draws, every gradient, BatchNorm running statistics; then a two-stage run through the trainer.
// 96 px rather than 64: train-mode BatchNorm over 2 images of 2x2 maps in the last stages magnifies
// rounding, so at 64 px PyTorch's own NCHW and channels-last gradients differ by up to 9e-5.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadPretrained, loadTorchFile, manualSeed, tensor, type Model, type Tensor } from '../../lib';
import { resolveConfig } from '../../lib/experiment/config';
import { train } from '../../lib/experiment/trainer';
import { getNumThreads, setNumThreads } from '../../lib/runtime';
import { loadCheckpoint } from '../../lib/training/checkpoint';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';
import { createSyntheticDataset } from '../helpers/synthetic-dataset';
import { comparer, relativeError, values } from '../helpers/torch-fixtures';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());

// The seed both sides set just before the train-mode forward: the stochastic-depth rows and the
// classifier's dropout mask then come from the same generator state.
const TRAIN_SEED = 7;

const SCRIPT = String.raw`
import copy, json, sys, torch, torchvision
out, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.efficientnet_b0(num_classes=10)
# non-trivial BatchNorm parameters and statistics, so eval and train mode really differ
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5); m.num_batches_tracked.fill_(5)
model.eval()
torch.save(model.state_dict(), f'{out}/efficientnet_b0.pth')
x = torch.randn(2, 3, 96, 96)
labels = torch.tensor([3, 7])
refs = {'x': x, 'labels': labels}
with torch.no_grad():
    refs['eval'] = model(x)
    refs['features'] = torch.flatten(model.avgpool(model.features(x)), 1)
train = copy.deepcopy(model).train()
# count the rows stochastic depth zeroes, to show the train-mode comparison exercises it
dropped = []
for m in train.modules():
    if isinstance(m, torchvision.ops.StochasticDepth):
        m.register_forward_hook(lambda mod, inp, out: dropped.append(int((out.flatten(1).abs().sum(1) == 0).sum())))
torch.manual_seed(seed)
logits = train(x)
loss = torch.nn.functional.cross_entropy(logits, labels)
loss.backward()
refs['train.logits'] = logits.detach()
refs['train.loss'] = loss.detach()
for name, p in train.named_parameters():
    refs['train.grad.' + name] = p.grad.detach().clone()
for name, b in train.named_buffers():
    refs['train.buffer.' + name] = b.detach().clone()
# the same train-mode forward in channels-last, the layout finetorch computes in on the CPU
train_cl = copy.deepcopy(model).train().to(memory_format=torch.channels_last)
torch.manual_seed(seed)
logits = train_cl(x.contiguous(memory_format=torch.channels_last))
torch.nn.functional.cross_entropy(logits, labels).backward()
refs['train.logits.channels_last'] = logits.detach()
for name, p in train_cl.named_parameters():
    refs['train.grad.channels_last.' + name] = p.grad.detach().clone()
torch.save(refs, f'{out}/refs.pth')
shapes = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
print(json.dumps({'shapes': shapes, 'droppedRows': sum(dropped), 'stochasticDepthModules': len(dropped),
                  'probabilities': [m.p for m in model.modules() if isinstance(m, torchvision.ops.StochasticDepth)],
                  'batchNorm': sorted({(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)})}))
`;

interface Reference {
  shapes: Array<[string, number[], string]>;
  droppedRows: number;
  stochasticDepthModules: number;
  probabilities: number[];
  batchNorm: Array<[number, number]>;
}


torch.describe('efficientnet_b0 parity with torchvision 0.14', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-effnet-'));
  const weights = path.join(dir, 'efficientnet_b0.pth');
  let reference: Reference;
  let refs: Map<string, Tensor>;
  const errors: Record<string, number> = {};

  beforeAll(async () => {
    assertPresent(torch);
    reference = JSON.parse(runPython(SCRIPT, [dir, String(getNumThreads()), String(TRAIN_SEED)])) as Reference;
    refs = (await loadTorchFile(path.join(dir, 'refs.pth'))).value as Map<string, Tensor>;
  });
  afterAll(() => {
    console.log(`efficientnet_b0 max relative errors vs PyTorch (stochastic depth dropped ${reference?.droppedRows} rows in the train-mode reference):\n${Object.entries(errors).map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const compare = comparer(errors);

  async function loaded(): Promise<Model> {
    const model = createModel('efficientnet_b0', { numClasses: 10 });
    expect(await loadPretrained(model, weights)).toMatchObject({ missingKeys: [], unexpectedKeys: [], skippedKeys: [] });
    return model;
  }

  /** Every BatchNorm buffer after one train-mode forward from the file, against PyTorch's. */
  function compareRunningStats(when: string, model: Model): void {
    const buffers = [...model.namedBuffers()];
    expect(buffers.map(([name]) => name)).toEqual([...refs.keys()].filter((k) => k.startsWith('train.buffer.')).map((k) => k.slice(13)));
    expect(buffers).toHaveLength(49 * 3); // 49 BatchNorm layers in B0
    for (const [name, actual] of buffers) {
      const expected = refs.get(`train.buffer.${name}`);
      if (name.endsWith('num_batches_tracked')) expect({ name, value: actual.toArray() }).toEqual({ name, value: [6] });
      else compare(`train running stats (${when})`, actual, expected, 1e-5);
    }
  }

  test('the reference is torchvision’s B0: BatchNorm eps 1e-5 / momentum 0.1, stochastic depth 0.2 x block/16', () => {
    expect(reference.batchNorm).toEqual([[1e-5, 0.1]]);
    expect(reference.probabilities).toEqual(Array.from({ length: 16 }, (_, i) => (0.2 * i) / 16));
  });

  test('state_dict names, order, shapes and dtypes are torchvision’s', () => {
    const model = createModel('efficientnet_b0', { numClasses: 10 });
    const actual = [...model.stateDict()].map(([name, t]) => [name, t.shape, `torch.${t.dtype}`]);
    expect(actual).toEqual(reference.shapes);
    expect(actual.length).toBe(reference.shapes.length);
    expect(model.headPrefix).toBe('classifier.1');
    expect(model.featureDim).toBe(1280);
    // torchvision's module tree, parameterless modules included
    const modules = new Map(model.namedModules().map((m) => [m.name, m.type]));
    expect(modules.get('features.1.0.block.1')).toMatch(/SqueezeExcitation$/);
    expect(modules.get('features.2.1.stochastic_depth')).toMatch(/StochasticDepth$/);
    expect(modules.get('features.0.2')).toMatch(/SiLU$/);
    expect(modules.get('features.2.0.block.2.scale_activation')).toMatch(/Sigmoid$/);
    expect(modules.get('classifier.0')).toMatch(/Dropout$/);
    model.dispose();
  });

  test('eval-mode logits and the pooled 1280-d features; stochastic depth and dropout off (same output whatever the generator)', async () => {
    const model = (await loaded()).eval();
    const x = refs.get('x')!;
    manualSeed(1);
    const first = await model.forward(x);
    compare('eval logits', first, refs.get('eval'), 1e-5);
    compare('features', await model.features(x), refs.get('features'), 1e-5);
    compare('classify(features)', await model.classify(await model.features(x)), refs.get('eval'), 1e-5);
    manualSeed(2);
    expect(values(await model.forward(x))).toEqual(values(first));
    model.dispose();
  });

  test('train mode: logits with torchvision’s stochastic-depth and dropout draws, BatchNorm statistics, loss and every gradient', async () => {
    // the comparison means something only if some residual branch was dropped for some sample
    expect(reference.stochasticDepthModules).toBe(9);
    expect(reference.droppedRows).toBeGreaterThan(0);
    const x = refs.get('x')!;
    const model = (await loaded()).train();
    manualSeed(TRAIN_SEED);
    const logits = await model.forward(x);
    // finetorch computes in channels-last on the CPU: against PyTorch in that layout and in NCHW
    compare('train logits (vs PyTorch channels-last)', logits, refs.get('train.logits.channels_last'), 1e-5);
    compare('train logits (vs PyTorch NCHW)', logits, refs.get('train.logits'), 1e-5);
    compareRunningStats('after forward', model);
    // start again from the file: backward's own forward moves the statistics once more
    await loadPretrained(model, weights);
    manualSeed(TRAIN_SEED);
    const { loss } = await model.backward(x, refs.get('labels')!);
    compareRunningStats('after backward', model);
    const expectedLoss = values(refs.get('train.loss'))[0];
    errors['train loss'] = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
    expect(errors['train loss']).toBeLessThan(1e-5);
    const grads = model.namedGradients();
    expect([...grads.keys()]).toEqual([...model.namedParameters().keys()]);
    expect(grads.size).toBe(213);
    // In train mode the bias of each block's last BatchNorm (the projection's) only shifts what the
    // next train-mode BatchNorm subtracts again, so its gradient is zero up to rounding on both sides
    // (unless stochastic depth dropped that block for some sample): a relative error means nothing
    // there, so its difference is measured against the same layer's weight gradient.
    const projectionBias = /^features\.\d\.\d+\.block\.[23]\.1\.bias$/;
    expect([...grads.keys()].filter((name) => projectionBias.test(name))).toHaveLength(16);
    for (const [name, grad] of grads) {
      const expected = refs.get(`train.grad.${name}`)!;
      if (projectionBias.test(name)) {
        const [a, b] = [values(grad), values(expected)];
        const scale = Math.max(...b.map(Math.abs), ...values(refs.get(`train.grad.${name.replace(/bias$/, 'weight')}`)).map(Math.abs));
        const error = Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale;
        errors['projection BatchNorm bias gradients (vs its weight gradient)'] = Math.max(errors['projection BatchNorm bias gradients (vs its weight gradient)'] ?? 0, error);
        expect({ name, error: error < 1e-4 }).toEqual({ name, error: true });
        continue;
      }
      compare('gradients (vs PyTorch NCHW)', grad, expected, 1e-4);
      compare('gradients (vs PyTorch channels-last)', grad, refs.get(`train.grad.channels_last.${name}`), 1e-4);
    }
    // another generator state drops other rows: the draws matter, so matching them was not luck
    await loadPretrained(model, weights);
    manualSeed(TRAIN_SEED + 1);
    expect(relativeError(values(await model.forward(x)), values(refs.get('train.logits')))).toBeGreaterThan(1e-3);
    model.dispose();
  });

  test('dropout defaults to torchvision’s 0.2 for EfficientNet, and is the option when given', async () => {
    const features = tensor(new Float32Array(64 * 1280).fill(1), [64, 1280]);
    for (const [options, rate] of [[{}, 0.2], [{ dropout: 0.5 }, 0.5], [{ dropout: 0 }, 0]] as const) {
      const model = createModel('efficientnet_b0', { numClasses: 10, ...options }).train();
      // one zero weight row besides column 0: logit 0 is w[0,0] * (mask / (1 - p)) summed over one feature
      const weight = new Float32Array(10 * 1280);
      weight[0] = 1;
      await model.loadStateDict({ 'classifier.1.weight': tensor(weight, [10, 1280]) }, { strict: false });
      const logits = values(await model.classify(features));
      const column = Array.from({ length: 64 }, (_, i) => logits[i * 10]);
      const kept = column.filter((v) => v !== 0);
      kept.forEach((v) => expect(v).toBeCloseTo(1 / (1 - rate), 5));
      // P(no sample dropped at p = 0.2) = 0.8^64 < 1e-6
      if (rate > 0) expect(kept.length).toBeLessThan(64);
      else expect(kept).toHaveLength(64);
      model.dispose();
    }
    features.dispose();
  });

  test('feature_extract then finetune through the trainer: head swapped and trained on cached features, backbone frozen, then tuned', async () => {
    const work = path.join(dir, 'two-stage');
    const dataset = await createSyntheticDataset(path.join(work, 'data'), { classes: 4, perClass: 6, size: 40, seed: 3 });
    const config = resolveConfig({
      overrides: {
        arch: 'efficientnet_b0', phase: 'two-stage', weights, image_size: 32, resize: 36, batch_size: 8, epochs: 1, finetune_epochs: 1,
        device: 'cpu', quiet: true, report: false, 'data.root': dataset.root, 'data.train_per_class': 3, 'data.test_per_class': 2,
        output_dir: path.join(work, 'runs'), run_name: 'effnet',
      },
    });
    const threads = getNumThreads();
    const lines: string[] = [];
    let results;
    try {
      results = await train(config, { log: (line) => lines.push(line) });
    } finally {
      setNumThreads(threads);
    }
    expect(results.map((r) => [r.phase, r.arch, r.featureCache])).toEqual([
      ['feature_extract', 'efficientnet_b0', true],
      ['finetune', 'efficientnet_b0', false],
    ]);
    const source = (await loadTorchFile(weights)).value as Map<string, Tensor>;
    const extracted = (await loadCheckpoint(results[0].checkpoints.best)).stateDict;
    const tuned = (await loadCheckpoint(results[1].checkpoints.best)).stateDict;
    expect(extracted.get('classifier.1.weight')!.shape).toEqual([4, 1280]);
    const same = (a: Tensor, b: Tensor) => a.shape.join() === b.shape.join() && relativeError(a.toTypedArray() as Float32Array, b.toTypedArray() as Float32Array) === 0;
    const backbone = [...source.keys()].filter((k) => !k.startsWith('classifier.1.') && !k.endsWith('num_batches_tracked'));
    // phase 1: every backbone tensor (BatchNorm statistics included) is the file's
    expect(backbone.filter((k) => !same(extracted.get(k)!, source.get(k)!))).toEqual([]);
    // phase 2 starts from phase 1 and trains everything
    expect(backbone.filter((k) => !same(tuned.get(k)!, source.get(k)!)).length).toBeGreaterThan(backbone.length / 2);
    expect(same(tuned.get('classifier.1.weight')!, extracted.get('classifier.1.weight')!)).toBe(false);
    for (const r of results) expect(Number.isFinite(r.test.loss)).toBe(true);
    for (const dict of [source, extracted, tuned]) for (const t of dict.values()) t.dispose();
  });
});
