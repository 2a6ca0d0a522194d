// Weight files: formats, wrappers, prefixes, bad input, and the way back to PyTorch.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadPretrained, loadTorchFile, loadWeights, saveTorchFile, saveWeights, tensor, Tensor } from '../../lib';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { findTorchPython, runPython, torchPythonUnavailableReason } from '../helpers/python';
import { writeTorchFixtures, type Fixtures } from '../helpers/torch-fixtures';

// Files written by PyTorch, and PyTorch loading ours: skipped without Debian's torch (saying why),
// a failure where CI is set.
const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());
const fixtures: Fixtures | null = torch.missing ? null : writeTorchFixtures();
let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-weights-'));
});
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
  fixtures?.cleanup();
});

function sameValues(a: Tensor, b: Tensor): boolean {
  return a.shape.join() === b.shape.join() && Buffer.from(a.native.toBytes()).equals(b.native.toBytes());
}

torch.describe('loading files written by PyTorch', () => {
  beforeAll(() => assertPresent(torch));
  const file = (name: string) => path.join(fixtures!.dir, name);

  test('zip and legacy formats give identical state_dicts', async () => {
    const zip = await loadWeights(file('resnet18.pth'));
    const legacy = await loadWeights(file('resnet18-legacy.pth'));
    expect(zip.format).toBe('zip');
    expect(legacy.format).toBe('legacy');
    expect([...zip.stateDict.keys()]).toEqual([...legacy.stateDict.keys()]);
    expect(zip.stateDict.size).toBe(122);
    for (const [name, t] of zip.stateDict) expect(sameValues(t, legacy.stateDict.get(name)!)).toBe(true);
    expect(zip.stateDict.get('bn1.num_batches_tracked')!.dtype).toBe('int64');
  });

  test('a checkpoint wrapping the state_dict, and DataParallel prefixes', async () => {
    const checkpoint = await loadWeights(file('checkpoint.pth'));
    expect(checkpoint.foundAt).toBe('state_dict');
    expect(checkpoint.stateDict.size).toBe(122);
    const parallel = await loadWeights(file('dataparallel.pth'));
    expect(parallel.strippedModulePrefix).toBe(true);
    expect([...parallel.stateDict.keys()][0]).toBe('conv1.weight');
    const whole = (await loadTorchFile(file('checkpoint.pth'))).value as Map<string, unknown>;
    expect(whole.get('epoch')).toBe(3);
    expect(whole.get('arch')).toBe('resnet18');
    expect(whole.get('best_acc1')).toBe(0.25);
  });

  test('ImageNet weights (1000 classes) into a 101-class model: the head is skipped and reported', async () => {
    const model = createModel('resnet18', { numClasses: 101 });
    const headBefore = model.namedParameters().get('fc.weight')!.clone();
    const result = await loadPretrained(model, file('resnet18.pth'));
    expect(result.skippedKeys).toEqual(['fc.weight', 'fc.bias']);
    expect(result.missingKeys).toEqual([]);
    expect(result.unexpectedKeys).toEqual([]);
    const params = model.namedParameters();
    expect(sameValues(params.get('fc.weight')!, headBefore)).toBe(true); // fresh head kept
    const source = (await loadWeights(file('resnet18.pth'))).stateDict;
    expect(sameValues(params.get('layer4.1.conv2.weight')!, source.get('layer4.1.conv2.weight')!)).toBe(true);
    model.dispose();
  });

  test('a forbidden global is refused and named: nothing from the file runs', async () => {
    for (const [name, global] of [
      ['evil-os-system.pth', /posix\.system/],
      ['evil-eval.pth', /eval/],
      ['evil-popen.pth', /Popen/],
    ] as const) {
      await expect(loadWeights(file(name))).rejects.toThrow(global);
      await expect(loadWeights(file(name))).rejects.toThrow(/is not allowed/);
    }
  });

  test('a state_dict of the other architecture is a clear error', async () => {
    const model = createModel('alexnet');
    await expect(loadPretrained(model, file('resnet18.pth'))).rejects.toThrow(
      /cannot load '.*resnet18\.pth' into alexnet: missing keys: features\.0\.weight.*unexpected keys: conv1\.weight.*another architecture/,
    );
    model.dispose();
  });

  test('truncated files and random bytes are errors naming the file, never crashes', async () => {
    const original = fs.readFileSync(file('resnet18.pth'));
    const legacy = fs.readFileSync(file('resnet18-legacy.pth'));
    const cases: Array<[string, Buffer]> = [
      ['truncated-zip.pth', original.subarray(0, original.length >> 1)],
      ['truncated-zip-tail.pth', original.subarray(0, original.length - 100)],
      ['truncated-legacy.pth', legacy.subarray(0, legacy.length >> 1)],
      ['truncated-legacy-head.pth', legacy.subarray(0, 300)],
      ['random.pth', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251))],
      ['empty.pth', Buffer.alloc(0)],
    ];
    for (const [name, bytes] of cases) {
      const target = path.join(scratch, name);
      fs.writeFileSync(target, bytes);
      await expect(loadWeights(target)).rejects.toThrow(new RegExp(`cannot load '${target.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}': .+`));
    }
    await expect(loadWeights(path.join(scratch, 'absent.pth'))).rejects.toThrow(/cannot load '.*absent\.pth': no such file/);
  });

  test('wrong shapes: an error naming the key and both shapes, and nothing is changed', async () => {
    const model = createModel('resnet18');
    const before = model.namedParameters().get('conv1.weight')!.clone();
    const bad = new Map([
      ['conv1.weight', tensor(new Float32Array(64 * 3 * 7 * 7), [64, 3, 7, 7])],
      ['layer1.0.conv1.weight', tensor(new Float32Array(10), [10])],
    ]);
    await expect(model.loadStateDict(bad, { strict: false })).rejects.toThrow(
      'size mismatch for layer1.0.conv1.weight: copying a param with shape [10] from the checkpoint, the shape in the current model is [64, 64, 3, 3]',
    );
    expect(sameValues(model.namedParameters().get('conv1.weight')!, before)).toBe(true);
    model.dispose();
  });

  test('round trip: a finetorch model saved as .pth loads in PyTorch (weights_only) with equal outputs', async () => {
    const model = createModel('resnet18', { numClasses: 7, head: 'linear' });
    model.eval();
    const x = tensor(Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i)), [2, 3, 64, 64]);
    const logits = await model.forward(x);
    const target = path.join(scratch, 'finetorch-resnet18.pth');
    await saveWeights(target, model.stateDict());
    const inputFile = path.join(scratch, 'input.pth');
    await saveTorchFile(inputFile, new Map([['x', x], ['logits', logits]]));
    const out = runPython(
      `import sys, torch, torchvision
sd = torch.load(sys.argv[1], weights_only=True)
io = torch.load(sys.argv[2], weights_only=True)
m = torchvision.models.resnet18(num_classes=7).eval()
print(m.load_state_dict(sd, strict=True))
# finetorch computes a CPU batch in channels-last (native/models/net.h): the same kernels in PyTorch
with torch.no_grad(): y = m(io['x'].contiguous(memory_format=torch.channels_last))
print(type(sd).__name__, float((y - io['logits']).abs().max()))`,
      [target, inputFile],
    );
    const [status, kind, diff] = out.trim().split(/\n| /).slice(-3);
    expect(out).toContain('All keys matched successfully');
    expect(kind).toBe('OrderedDict');
    expect(Number(diff)).toBe(0);
    void status;
    model.dispose();
  });
});

describe('safetensors', () => {
  test('round trip of every dtype, and PyTorch-free loading into a model', async () => {
    const file = path.join(scratch, 'weights.safetensors');
    const dict = new Map<string, Tensor>([
      ['a.float', tensor(new Float32Array([1.5, -2, 3]), [3])],
      ['b.int64', tensor(new BigInt64Array([1n, -(2n ** 40n)]), [2])],
      ['c.uint8', tensor(new Uint8Array([0, 255, 7, 8]), [2, 2])],
      ['d.half', await tensor(new Float32Array([0.5, 1024, -3.25]), [3]).to('cpu', 'float16')],
    ]);
    await saveWeights(file, dict);
    const loaded = await loadWeights(file);
    expect(loaded.format).toBe('safetensors');
    expect([...loaded.stateDict.keys()]).toEqual([...dict.keys()]);
    for (const [name, t] of dict) {
      const back = loaded.stateDict.get(name)!;
      expect(back.dtype).toBe(t.dtype);
      expect(sameValues(back, t)).toBe(true);
    }
    const model = createModel('alexnet', { numClasses: 3 });
    const saved = path.join(scratch, 'alexnet.safetensors');
    await saveWeights(saved, model.stateDict());
    const other = createModel('alexnet', { numClasses: 3 });
    await loadPretrained(other, saved);
    expect(sameValues(other.namedParameters().get('classifier.6.weight')!, model.namedParameters().get('classifier.6.weight')!)).toBe(true);
    model.dispose();
    other.dispose();
  });

  test('corrupt headers are errors, not allocations', async () => {
    const file = path.join(scratch, 'bad.safetensors');
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1000000000], data_offsets: [0, 4000000000] } }));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(file, Buffer.concat([length, header]));
    await expect(loadWeights(file)).rejects.toThrow(/tensor 'w' data \[0, 4000000000\) lies outside the 0 data bytes/);
  });
});
