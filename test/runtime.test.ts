import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { allowTF32, cpuCacheInfo, createModel, emptyCpuCache, getNumThreads, manualSeed, randn, runtimeInfo, setAllowTF32, setNumThreads } from '../lib';

const distBinding = path.join(__dirname, '..', 'dist', 'binding', 'index.js');

describe('runtime', () => {
  test('reports the libtorch version and CUDA facts', () => {
    const info = runtimeInfo();
    expect(info.torchVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof info.cudaAvailable).toBe('boolean');
    expect(info.cudaDeviceCount).toBeGreaterThanOrEqual(0);
    if (!info.cudaAvailable) expect(info.cudaDeviceCount).toBe(0);
    expect(info.threads).toBeGreaterThanOrEqual(1);
  });

  test('thread count can be read and set, and is validated', () => {
    const before = getNumThreads();
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    setNumThreads(before);
    expect(getNumThreads()).toBe(before);
    expect(() => setNumThreads(0)).toThrow('Expected integer between 1 and 1024 for threads but received 0 of type number');
  });

  test('TF32 flags start at PyTorch defaults (conv on, matmul off), can be set one at a time, and are validated', () => {
    expect(allowTF32()).toEqual({ conv: true, matmul: false });
    setAllowTF32({ conv: false });
    expect(allowTF32()).toEqual({ conv: false, matmul: false });
    setAllowTF32({ matmul: true });
    expect(allowTF32()).toEqual({ conv: false, matmul: true });
    setAllowTF32({ conv: true, matmul: false });
    expect(allowTF32()).toEqual({ conv: true, matmul: false });
    expect(() => setAllowTF32({ conv: 1 as unknown as boolean })).toThrow('Expected boolean for conv but received 1 of type number');
    expect(() => setAllowTF32({ cudnn: true } as never)).toThrow("Unknown option 'cudnn' in TF32 flags; known: conv, matmul");
  });

  test('CPU block cache: a freed large block serves the next allocation of its size; emptyCpuCache and Model.dispose give it back', () => {
    const MiB = 2 ** 20;
    expect(cpuCacheInfo()).toMatchObject({ installed: true });
    expect(cpuCacheInfo().limitBytes).toBeGreaterThan(64 * MiB);
    emptyCpuCache();
    expect(cpuCacheInfo().cachedBytes).toBe(0);
    randn([4, 1024, 1024]).dispose(); // 16 MiB
    expect(cpuCacheInfo().cachedBytes).toBe(16 * MiB);
    const hits = cpuCacheInfo().hits;
    const again = randn([4, 1024, 1024]);
    expect(cpuCacheInfo()).toMatchObject({ hits: hits + 1, cachedBytes: 0 });
    // reused memory is not zeroed: a fresh tensor must still hold its own values
    expect((again.toTypedArray() as Float32Array).some((v) => v !== 0)).toBe(true);
    again.dispose();
    randn([1, 1024]).dispose(); // small blocks stay with malloc
    expect(cpuCacheInfo().cachedBytes).toBe(16 * MiB);
    createModel('alexnet', { numClasses: 10 }).dispose();
    expect(cpuCacheInfo().cachedBytes).toBe(0);
  });

  (fs.existsSync(distBinding) ? test : test.skip)('FINETORCH_CPU_CACHE=0 leaves libtorch’s own allocator in place', () => {
    const script = `const { native } = require(${JSON.stringify(distBinding)}); console.log(JSON.stringify(native().cpuCacheInfo()));`;
    const off = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, FINETORCH_CPU_CACHE: '0' }, encoding: 'utf8' });
    expect(JSON.parse(off.stdout)).toMatchObject({ installed: false, cachedBytes: 0 });
    const { FINETORCH_CPU_CACHE: _, ...env } = process.env;
    const limited = spawnSync(process.execPath, ['-e', script], { env: { ...env, FINETORCH_CPU_CACHE_MB: '100' }, encoding: 'utf8' });
    expect(JSON.parse(limited.stdout)).toMatchObject({ installed: true, limitBytes: 100 * 2 ** 20 });
  });

  test('manualSeed makes random numbers repeat', () => {
    manualSeed(7);
    const a = randn([5]).toArray();
    manualSeed(7);
    const b = randn([5]).toArray();
    manualSeed(8);
    const c = randn([5]).toArray();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(() => manualSeed(-1)).toThrow('Expected non-negative integer for seed');
  });
});
