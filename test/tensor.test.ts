import { Tensor, tensor, randn, matmul } from '../lib';

describe('tensor round trips', () => {
  const cases: Array<[string, () => ArrayLike<number | bigint>]> = [
    ['float32', () => new Float32Array([1.5, -2.25, 3e-8, 4e20, 0, -0])],
    ['float64', () => new Float64Array([Math.PI, -1e-300, 1e300, 0.1, 2, 3])],
    ['int32', () => new Int32Array([0, -1, 2147483647, -2147483648, 5, 6])],
    ['int64', () => new BigInt64Array([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, 7n])],
    ['uint8', () => new Uint8Array([0, 1, 127, 128, 254, 255])],
  ];
  test.each(cases)('%s keeps every value and the shape', (dtype, make) => {
    const data = make() as never;
    const t = tensor(data, [2, 3]);
    expect(t.dtype).toBe(dtype);
    expect(t.shape).toEqual([2, 3]);
    expect(t.device).toBe('cpu');
    const back = t.toTypedArray();
    expect(back.constructor).toBe((data as object).constructor);
    expect(Array.from(back as ArrayLike<unknown>)).toEqual(Array.from(data as ArrayLike<unknown>));
    t.dispose();
  });

  test('the copy is independent of the source array', () => {
    const data = new Float32Array([1, 2, 3]);
    const t = tensor(data);
    data[0] = 100;
    expect(t.toArray()).toEqual([1, 2, 3]);
    const out = t.toTypedArray() as Float32Array;
    out[1] = 50;
    expect(t.toArray()).toEqual([1, 2, 3]);
  });

  test('a Buffer and a subarray view are read from their own offset', () => {
    const big = new Float32Array([9, 9, 1, 2, 3, 9]);
    expect(tensor(big.subarray(2, 5)).toArray()).toEqual([1, 2, 3]);
    const buf = Buffer.from([7, 8, 9, 10]);
    expect(tensor(buf.subarray(1), [3]).toArray()).toEqual([8, 9, 10]);
  });

  test('plain number arrays become float32 or the requested dtype', () => {
    expect(tensor([1, 2, 3, 4], [2, 2]).dtype).toBe('float32');
    const ints = tensor([1, 2, 3], [3], { dtype: 'int64' });
    expect(ints.dtype).toBe('int64');
    expect(ints.toArray()).toEqual([1, 2, 3]);
  });

  test('empty tensors and scalars', () => {
    expect(tensor(new Float32Array(0), [0, 3]).shape).toEqual([0, 3]);
    const scalar = tensor(new Float32Array([42]), []);
    expect(scalar.shape).toEqual([]);
    expect(scalar.toArray()).toEqual([42]);
  });

  test('to() copies to a device and converts dtype', async () => {
    const t = tensor(new Float32Array([1.5, 2.5]));
    const d = await t.to('cpu', 'float64');
    expect(d.dtype).toBe('float64');
    expect(d.toArray()).toEqual([1.5, 2.5]);
    const h = await t.to('cpu', 'float16');
    expect(h.toTypedArray()).toBeInstanceOf(Float32Array);
    expect(h.toArray()).toEqual([1.5, 2.5]);
  });
});

describe('tensor errors', () => {
  test('wrong length for shape says what was expected and what came', () => {
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow('Expected 6 values for shape [2, 3] but received 5');
  });
  test('bad shapes and data are rejected before native work', () => {
    expect(() => tensor(new Float32Array(2), [2, -1])).toThrow('Expected non-negative integer for shape[1] but received -1 of type number');
    expect(() => tensor(new Float32Array(2), [2.5] as number[])).toThrow('shape[0]');
    expect(() => tensor('abc' as never)).toThrow("Expected TypedArray or array of numbers for data but received 'abc' of type string");
    expect(() => tensor(new Float32Array(2), [2], { dtype: 'int64' })).toThrow('Expected a BigInt64Array for dtype int64');
    expect(() => tensor([1, 'x' as never])).toThrow('Expected number for data[1]');
  });
  test('use after dispose is a clear error, and dispose twice is harmless', () => {
    const t = tensor(new Float32Array([1, 2]));
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.shape).toThrow('Tensor was used after dispose()');
    expect(() => t.toTypedArray()).toThrow('Tensor was used after dispose()');
    expect(String(t)).toBe('Tensor(disposed)');
  });
  test('a libtorch error surfaces as a JS Error with its message and no C++ backtrace', async () => {
    const a = tensor(new Float32Array(6), [2, 3]);
    const b = tensor(new Float32Array(6), [2, 3]);
    const failure = matmul(a, b);
    await expect(failure).rejects.toThrow(Error);
    await expect(failure).rejects.toThrow('mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)');
    const message = await failure.then(() => 'no error', (e: Error) => e.message);
    expect(message).not.toMatch(/Exception raised from|frame #/);
    expect(message.split('\n')).toHaveLength(1);
  });
  test('a disposed tensor passed to native work is rejected', async () => {
    const a = tensor(new Float32Array(4), [2, 2]);
    const b = tensor(new Float32Array(4), [2, 2]);
    b.dispose();
    await expect(async () => matmul(a, b)).rejects.toThrow('Tensor was used after dispose()');
  });
  test('an unknown device is rejected in TS', async () => {
    await expect(tensor([1]).to('gpu')).rejects.toThrow("Expected device 'cpu', 'cuda' or 'cuda:N' for device but received 'gpu'");
  });
});

describe('native work off the event loop', () => {
  test('the event loop keeps turning during a large matmul', async () => {
    const a = randn([1024, 1024]);
    let product: Tensor = a;
    // Event-loop turns that pass while a matmul is still pending. A matmul done on the JS thread
    // has finished before matmul() returns, so not one turn can pass (whatever the machine's
    // speed or load); done off the loop, each 2-GFLOP product leaves the loop free for many.
    let turnsWhilePending = 0;
    for (let i = 0; i < 12; i++) {
      let settled = false;
      const next = matmul(product, a).finally(() => (settled = true));
      while (!settled) {
        await new Promise(setImmediate);
        if (!settled) turnsWhilePending++;
      }
      product = await next;
    }
    expect(product.shape).toEqual([1024, 1024]);
    expect(turnsWhilePending).toBeGreaterThan(0);
  });

  test('many concurrent calls all resolve with the right result', async () => {
    const eye = tensor(new Float32Array([1, 0, 0, 1]), [2, 2]);
    const inputs = Array.from({ length: 64 }, (_, i) => tensor(new Float32Array([i, i + 1, i + 2, i + 3]), [2, 2]));
    const results = await Promise.all(inputs.map((x) => matmul(x, eye)));
    results.forEach((r, i) => expect(r.toArray()).toEqual([i, i + 1, i + 2, i + 3]));
  });
});

describe('memory', () => {
  test('tensors never disposed are freed by the GC, which sees their native memory', () => {
    const fs = require('fs') as typeof import('fs');
    const { spawnSync } = require('child_process') as typeof import('child_process');
    const { candidatePaths } = require('../binding') as typeof import('../binding');
    const addon = candidatePaths().find((p) => fs.existsSync(p))!;
    // 4 GiB of 4 MiB tensors, none disposed and no explicit gc(): without finalizers and
    // AdjustExternalMemory this would exhaust memory long before the end. Node runs addon
    // finalizers between event-loop turns, so the loop yields as any async training loop does.
    const script = `
      const { Tensor } = require(${JSON.stringify(addon)});
      const chunk = new Float32Array(1 << 20);
      (async () => {
        let peak = 0;
        for (let i = 0; i < 1024; i++) {
          new Tensor(chunk, [1 << 20], 'float32');
          if (i % 8 === 0) await new Promise(setImmediate);
          if (i % 64 === 0) peak = Math.max(peak, process.memoryUsage().rss);
        }
        console.log(JSON.stringify({ peakMiB: Math.round(peak / 2 ** 20) }));
      })();`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
    expect(child.stderr).toBe('');
    const { peakMiB } = JSON.parse(child.stdout);
    expect(peakMiB).toBeLessThan(1024);
  });
});
