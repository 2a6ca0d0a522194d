// Devices and mixed precision. The CPU part runs everywhere; the CUDA part runs where libtorch sees
// a GPU (scripts/gpu-check.sh on a GPU machine) and is skipped with a message elsewhere.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, createOptimizer, evalStep, manualSeed, randn, resolveConfig, resolveDevice, runtimeInfo, tensor, train, trainStep,
} from '../lib';
import { createSyntheticDataset } from './helpers/synthetic-dataset';

const labels = (values: number[]) => tensor(new BigInt64Array(values.map(BigInt)));
const cuda = runtimeInfo().cudaAvailable;

describe('devices (CPU build)', () => {
  test("'auto' resolves to the CPU without CUDA, and to 'cuda' with it", () => {
    expect(resolveDevice('auto')).toBe(cuda ? 'cuda' : 'cpu');
    expect(resolveDevice('cpu')).toBe('cpu');
    expect(() => resolveDevice('gpu')).toThrow("Expected device 'auto', 'cpu', 'cuda' or 'cuda:N' for device but received 'gpu'");
  });

  (cuda ? test.skip : test)('asking for CUDA without it is a clear error everywhere', async () => {
    expect(() => resolveDevice('cuda')).toThrow(/device 'cuda' requested but CUDA is not available/);
    await expect(tensor([1, 2]).to('cuda')).rejects.toThrow(/CUDA is not available/);
    const model = createModel('resnet18', { numClasses: 2 });
    await expect(model.to('cuda:0')).rejects.toThrow(/CUDA is not available/);
    model.dispose();
    const config = resolveConfig({ overrides: { device: 'cuda', 'data.root': '/nonexistent', quiet: true } });
    await expect(train({ ...config, phase: 'scratch' }, { log: () => undefined })).rejects.toThrow(/CUDA is not available/);
  });

  test('bf16 autocast on the CPU: loss close to float32, and training still learns', async () => {
    manualSeed(4);
    const model = createModel('resnet18', { numClasses: 3 });
    const x = randn([4, 3, 32, 32]);
    const y = labels([0, 1, 2, 0]);
    model.eval();
    const fp32 = await evalStep(model, x, y);
    const bf16 = await evalStep(model, x, y, { amp: 'bf16' });
    expect(Math.abs(bf16.loss - fp32.loss) / fp32.loss).toBeLessThan(0.05);
    model.train();
    const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-3 });
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) losses.push((await trainStep(model, optimizer, x, y, { amp: true })).loss);
    expect(losses[7]).toBeLessThan(losses[0]);
    model.dispose();
  });

  test("'fp16' on the CPU is refused with the alternative named", async () => {
    const model = createModel('resnet18', { numClasses: 3 });
    const optimizer = createOptimizer(model, { type: 'sgd', lr: 0.1 });
    await expect(trainStep(model, optimizer, randn([2, 3, 32, 32]), labels([0, 1]), { amp: 'fp16' })).rejects.toThrow(
      "Expected amp 'bf16' or true on the CPU ('fp16' autocast needs a CUDA device) but received 'fp16'",
    );
    model.dispose();
  });

  test('channels-last weights and batches give the same logits', async () => {
    manualSeed(2);
    const model = createModel('resnet18', { numClasses: 5 }).eval();
    const x = randn([2, 3, 48, 48]);
    const plain = (await model.forward(x)).toTypedArray() as Float32Array;
    await model.channelsLast(true);
    const nhwc = (await model.forward(x)).toTypedArray() as Float32Array;
    plain.forEach((v, i) => expect(nhwc[i]).toBeCloseTo(v, 4));
    model.dispose();
  });
});

(cuda ? describe : describe.skip)('CUDA', () => {
  test('forward and backward on the GPU match the CPU', async () => {
    manualSeed(1);
    const cpu = createModel('resnet18', { numClasses: 4 }).eval();
    const gpu = createModel('resnet18', { numClasses: 4 }).eval();
    await gpu.loadStateDict(cpu.stateDict());
    await gpu.to('cuda');
    const x = randn([2, 3, 64, 64]);
    const y = labels([1, 3]);
    const a = (await cpu.forward(x)).toTypedArray() as Float32Array;
    const b = (await gpu.forward(await x.to('cuda'))).toTypedArray() as Float32Array;
    a.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 3));
    const lossCpu = (await cpu.backward(x, y)).loss;
    const lossGpu = (await gpu.backward(await x.to('cuda'), await y.to('cuda'))).loss;
    expect(Math.abs(lossGpu - lossCpu)).toBeLessThan(1e-3);
    const gradCpu = cpu.namedGradients().get('conv1.weight')!.toTypedArray() as Float32Array;
    const gradGpu = gpu.namedGradients().get('conv1.weight')!.toTypedArray() as Float32Array;
    let scale = 0;
    let diff = 0;
    gradCpu.forEach((v, i) => ((scale = Math.max(scale, Math.abs(v))), (diff = Math.max(diff, Math.abs(v - gradGpu[i])))));
    expect(diff / scale).toBeLessThan(1e-3);
    cpu.dispose();
    gpu.dispose();
  });

  test('fp16 AMP loss is close to fp32 and a short training run learns', async () => {
    manualSeed(2);
    const model = createModel('resnet18', { numClasses: 3 });
    await model.to('cuda');
    await model.channelsLast(true);
    const x = await randn([16, 3, 64, 64]).to('cuda');
    const y = await labels(Array.from({ length: 16 }, (_, i) => i % 3)).to('cuda');
    model.eval();
    const fp32 = await evalStep(model, x, y);
    const fp16 = await evalStep(model, x, y, { amp: 'fp16' });
    expect(Math.abs(fp16.loss - fp32.loss) / fp32.loss).toBeLessThan(0.02);
    model.train();
    const optimizer = createOptimizer(model, { type: 'adam', lr: 1e-3 });
    const losses: number[] = [];
    for (let i = 0; i < 20; i++) losses.push((await trainStep(model, optimizer, x, y, { amp: 'fp16' })).loss);
    expect(losses[19]).toBeLessThan(losses[0] * 0.5);
    model.dispose();
  });

  test('a two-stage run trains on the GPU end to end', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-cuda-'));
    await createSyntheticDataset(path.join(dir, 'data'), { classes: 3, perClass: 10, size: 48 });
    const config = resolveConfig({
      overrides: {
        phase: 'scratch', weights: 'none', device: 'cuda', amp: true, channels_last: true, epochs: 3, image_size: 32, resize: 36, batch_size: 8,
        'data.root': path.join(dir, 'data'), 'data.train_per_class': 7, 'data.test_per_class': 3, output_dir: path.join(dir, 'runs'), quiet: true, report: false,
      },
    });
    const [result] = await train(config, { log: () => undefined });
    expect(result.test.count).toBe(9);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
if (!cuda) console.log('libtorch sees no CUDA device: skipping the CUDA tests (scripts/gpu-check.sh runs them on a GPU machine)');
