// safetensors files: an 8-byte header length, a JSON header (dtype, shape, data_offsets per
// tensor), then the data. Mutates the length, header fields, overlapping ranges and huge shapes.
import { u64, writeUInt } from './bytes';
import { generic } from './generic';
import { deepJson, mutateJsonValue } from './json';
import type { Rng } from './rng';

export function mutateSafetensors(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const headerLength = Number(seed.readBigUInt64LE(0));
  const data = seed.subarray(8 + headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(seed.toString('utf8', 8, 8 + headerLength));
  } catch {
    return generic(rng, seed, others);
  }
  const pack = (json: string, body = data): Buffer => Buffer.concat([u64(Buffer.byteLength(json)), Buffer.from(json), body]);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const choice = rng.weighted<string>([[10, 'length'], [30, 'field'], [8, 'overlap'], [5, 'many'], [4, 'deep'], [4, 'dims'], [4, 'text']]);
  switch (choice) {
    case 'length': {
      const out = Buffer.from(seed);
      writeUInt(out, 0, 8, rng.pick([2n ** 63n, 2n ** 64n - 1n, 0xffffffffn, 100n * 2n ** 20n - 1n, BigInt(headerLength + 1), BigInt(headerLength - 1), BigInt(seed.length), 0n, 2n]));
      return out;
    }
    case 'field': {
      const name = rng.pick(names);
      const entry = header[name] as Record<string, unknown>;
      const field = rng.pick(['dtype', 'shape', 'data_offsets', 'shape', 'data_offsets']);
      if (field === 'dtype') entry.dtype = rng.pick(['F32', 'F64', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'x', 7, null]);
      else if (rng.chance(0.5)) entry[field] = mutateJsonValue(rng, entry[field]);
      else entry[field] = rng.pick<unknown>([[2 ** 26, 2 ** 26, 4], [2 ** 53], [-1], [0, 2 ** 53], [1.5], [0, 2 ** 40], [2 ** 40, 2 ** 40 + 4], [], [0]]);
      return pack(JSON.stringify(header));
    }
    case 'overlap': {
      // many tensors sharing the same bytes: the data gets copied once per tensor
      const first = header[names[0]] as { dtype: string; shape: number[]; data_offsets: [number, number] };
      const copies = rng.pick([10, 1000, 5000]);
      const big = rng.chance(0.5) ? Buffer.alloc(1 << 20, 1) : data;
      const span = big === data ? first.data_offsets : [0, big.length];
      const unit = ({ F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as Record<string, number>)[first.dtype] ?? 1;
      const h: Record<string, unknown> = {};
      for (let i = 0; i < copies; i++) h[`t${i}`] = { dtype: first.dtype, shape: [(span[1] - span[0]) / unit], data_offsets: span };
      return pack(JSON.stringify(h), big);
    }
    case 'many': {
      const h: Record<string, unknown> = { ...header };
      for (let i = 0; i < rng.pick([100, 10000]); i++) h[`extra${i}`] = { dtype: 'U8', shape: [0], data_offsets: [0, 0] };
      return pack(JSON.stringify(h));
    }
    case 'deep': {
      const depth = rng.pick([1000, 100000, 1000000]);
      const json = rng.chance(0.5) ? `{"__metadata__": ${deepJson(depth, '[', ']')}}` : `{"a": ${deepJson(depth, '{"a":', '}').replace(/\{"a":\}/, '1')}}`;
      return pack(json);
    }
    case 'dims': {
      const name = rng.pick(names);
      const entry = header[name] as { shape: number[]; data_offsets: [number, number] };
      const n = rng.pick([64, 1000, 100000]);
      entry.shape = [...Array.from({ length: n }, () => 1), ...entry.shape];
      return pack(JSON.stringify(header));
    }
    default: {
      // the header text itself (keeps the length field right)
      const json = Buffer.from(JSON.stringify(header));
      return pack(generic(rng, json, []).toString('latin1'));
    }
  }
}
