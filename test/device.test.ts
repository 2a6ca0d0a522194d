// Devices and mixed precision. The CPU part runs everywhere; the CUDA part runs where libtorch sees
// a GPU (scripts/gpu-check.sh on a GPU machine) and is skipped with a message elsewhere.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  createModel, createOptimizer, evalStep, getNumThreads, loadPretrained, loadTorchFile, manualSeed, randn, resolveConfig, resolveDevice,
  runtimeInfo, tensor, train, trainStep, type Tensor,
} from '../lib';
import { assertPresent, prerequisite } from './helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from './helpers/python';
import { createSyntheticDataset } from './helpers/synthetic-dataset';

const labels = (values: number[]) => tensor(new BigInt64Array(values.map(BigInt)));
const cuda = runtimeInfo().cudaAvailable;
const torch = prerequisite('PyTorch reference for bf16 autocast', torchPythonUnavailableReason());

// A seeded torchvision ResNet-18 (non-trivial BatchNorm statistics, eval mode) and a batch, and
// what PyTorch computes for them in float32 and under torch.autocast('cpu', dtype=torch.bfloat16).
const BF16_REFERENCE = String.raw`
import json, sys
import torch, torchvision
out = sys.argv[1]
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=3).eval()
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
x = torch.randn(4, 3, 32, 32)
y = torch.tensor([0, 1, 2, 0])
torch.save(model.state_dict(), f'{out}/model.pth')
torch.save({'x': x, 'y': y}, f'{out}/batch.pth')
# finetorch computes a CPU batch in channels-last (native/models/net.h): the same kernels here
x_nhwc = x.contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    fp32 = model(x_nhwc)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = model(x_nhwc)
assert bf16.dtype == torch.bfloat16
F = torch.nn.functional
print(json.dumps({'fp32': fp32.flatten().tolist(), 'bf16': bf16.float().flatten().tolist(),
                  'fp32_loss': F.cross_entropy(fp32, y).item(), 'bf16_loss': F.cross_entropy(bf16.float(), y).item()}))
`;

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

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

  torch.test('bf16 autocast on the CPU gives PyTorch’s torch.autocast(\'cpu\', bfloat16) logits and loss', async () => {
    assertPresent(torch);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-bf16-'));
    const model = createModel('resnet18', { numClasses: 3 });
    try {
      const ref = JSON.parse(runPython(BF16_REFERENCE, [dir, String(getNumThreads())])) as {
        fp32: number[]; bf16: number[]; fp32_loss: number; bf16_loss: number;
      };
      expect(await loadPretrained(model, path.join(dir, 'model.pth'))).toMatchObject({ missingKeys: [], unexpectedKeys: [] });
      const batch = (await loadTorchFile(path.join(dir, 'batch.pth'))).value as Map<string, Tensor>;
      const [x, y] = [batch.get('x')!, batch.get('y')!];
      model.eval();
      const fp32 = await evalStep(model, x, y, { returnLogits: true });
      const bf16 = await evalStep(model, x, y, { amp: 'bf16', returnLogits: true });
      const ours = { fp32: fp32.logits!.toTypedArray() as Float32Array, bf16: bf16.logits!.toTypedArray() as Float32Array };
      // bfloat16 keeps 8 significant bits: one unit in the last place of a value in [2^e, 2^(e+1))
      // is 2^(e-7). The same ops on the same inputs may differ by a rounding flip in an
      // intermediate, so allow 2 ulps at the largest logit's binade. Cross-entropy moves by at most
      // twice the largest logit change (its gradient p - onehot has an L1 norm of at most 2).
      const largest = Math.max(...ref.bf16.map(Math.abs));
      const ulp = 2 ** (Math.floor(Math.log2(largest)) - 7);
      const tolerance = 2 * ulp;
      const errors = {
        'ours bf16 vs PyTorch bf16': maxAbsDiff(ours.bf16, ref.bf16),
        'ours fp32 vs PyTorch fp32': maxAbsDiff(ours.fp32, ref.fp32),
        'PyTorch bf16 vs PyTorch fp32': maxAbsDiff(ref.bf16, ref.fp32),
      };
      console.log(`bf16 logits, max |difference| (tolerance ${tolerance.toExponential(2)}): ${JSON.stringify(errors)}`);
      expect(errors['ours bf16 vs PyTorch bf16']).toBeLessThanOrEqual(tolerance);
      expect(Math.abs(bf16.loss - ref.bf16_loss)).toBeLessThanOrEqual(2 * tolerance + 1e-6);
      // float32 as a control: the reference agrees with ours to float32 round-off...
      expect(errors['ours fp32 vs PyTorch fp32']).toBeLessThan(1e-5 * largest);
      expect(Math.abs(fp32.loss - ref.fp32_loss)).toBeLessThan(1e-5 * ref.fp32_loss);
      // ...and bf16 really is a different computation here, wider apart than the tolerance: a step
      // that ignored amp (float32 throughout) would fail the comparison above
      expect(errors['PyTorch bf16 vs PyTorch fp32']).toBeGreaterThan(tolerance);
    } finally {
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bf16 autocast training on the CPU still learns', async () => {
    manualSeed(4);
    const model = createModel('resnet18', { numClasses: 3 });
    const x = randn([4, 3, 32, 32]);
    const y = labels([0, 1, 2, 0]);
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
      "Expected amp 'bf16', 'auto' or true on the CPU ('fp16' autocast needs a CUDA device) but received 'fp16'",
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
