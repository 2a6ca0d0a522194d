import { spawnSync } from 'child_process';
import { candidatePaths } from '../binding';
import {
  allowTF32, cpuCacheInfo, createModel, emptyCpuCache, getNumThreads, getRngState, manualSeed, randn, runtimeInfo, setAllowTF32, setNumThreads, setRngState,
} from '../lib';
import { assertPresent, prerequisite } from './helpers/prerequisite';
import { findTorchPython, runPython, torchPythonUnavailableReason } from './helpers/python';

/**
 * What a fresh process reports (the defaults, whatever earlier test files did to this one): a child
 * loads the addon the way binding/ does (the first candidate that loads) and prints `expression`.
 */
function freshProcess(expression: string, env: NodeJS.ProcessEnv = process.env): unknown {
  const script = `
    let addon;
    for (const file of ${JSON.stringify(candidatePaths())}) {
      try { addon = require(file); break; } catch {}
    }
    if (!addon) throw new Error('no addon loads');
    console.log(JSON.stringify(${expression}));`;
  const run = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 300_000 }); // a hang bound
  if (run.status !== 0) throw new Error(`the child failed (status ${run.status}):\n${run.stderr}`);
  return JSON.parse(run.stdout);
}

const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());

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
    const other = before === 1 ? 2 : 1;
    try {
      setNumThreads(other);
      expect(getNumThreads()).toBe(other);
      expect(() => setNumThreads(0)).toThrow('Expected integer between 1 and 1024 for threads but received 0 of type number');
      expect(getNumThreads()).toBe(other);
    } finally {
      setNumThreads(before);
    }
    expect(getNumThreads()).toBe(before);
  });

  test('TF32 flags start at PyTorch defaults (conv on, matmul off) in a fresh process', () => {
    expect(freshProcess('addon.allowTF32()')).toEqual({ conv: true, matmul: false });
  });

  torch.test('those defaults are the ones PyTorch itself starts with', () => {
    assertPresent(torch);
    const out = runPython('import json, torch\nprint(json.dumps({"conv": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}))');
    expect(freshProcess('addon.allowTF32()')).toEqual(JSON.parse(out));
  });

  test('TF32 flags can be set one at a time, and are validated', () => {
    const before = allowTF32();
    try {
      setAllowTF32({ conv: false, matmul: false });
      expect(allowTF32()).toEqual({ conv: false, matmul: false });
      setAllowTF32({ conv: true });
      expect(allowTF32()).toEqual({ conv: true, matmul: false });
      setAllowTF32({ matmul: true });
      expect(allowTF32()).toEqual({ conv: true, matmul: true });
      setAllowTF32({ conv: false });
      expect(allowTF32()).toEqual({ conv: false, matmul: true });
      expect(() => setAllowTF32({ conv: 1 as unknown as boolean })).toThrow('Expected boolean for conv but received 1 of type number');
      expect(() => setAllowTF32({ cudnn: true } as never)).toThrow("Unknown option 'cudnn' in TF32 flags; known: conv, matmul");
      expect(allowTF32()).toEqual({ conv: false, matmul: true }); // refused calls change nothing
    } finally {
      setAllowTF32(before);
    }
    expect(allowTF32()).toEqual(before);
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

  test('FINETORCH_CPU_CACHE=0 leaves libtorch’s own allocator in place', () => {
    expect(freshProcess('addon.cpuCacheInfo()', { ...process.env, FINETORCH_CPU_CACHE: '0' })).toMatchObject({ installed: false, cachedBytes: 0 });
    const { FINETORCH_CPU_CACHE: _, ...env } = process.env;
    expect(freshProcess('addon.cpuCacheInfo()', { ...env, FINETORCH_CPU_CACHE_MB: '100' })).toMatchObject({ installed: true, limitBytes: 100 * 2 ** 20 });
  });

  test('manualSeed makes random numbers repeat', () => {
    const state = getRngState();
    try {
      manualSeed(7);
      const a = randn([5]).toArray();
      manualSeed(7);
      const b = randn([5]).toArray();
      manualSeed(8);
      const c = randn([5]).toArray();
      expect(a).toEqual(b);
      expect(a).not.toEqual(c);
      expect(() => manualSeed(-1)).toThrow('Expected non-negative integer for seed');
    } finally {
      setRngState(state);
      state.dispose();
    }
  });
});
