import { allowTF32, getNumThreads, manualSeed, randn, runtimeInfo, setAllowTF32, setNumThreads } from '../lib';

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
