import { getNumThreads, manualSeed, randn, runtimeInfo, setNumThreads } from '../lib';

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
