// The .safetensors format (8-byte little-endian header length, JSON header, raw data), read and
// written in TypeScript: it is plain data, so there is nothing to execute and little to parse.
import * as fs from 'fs';
import { native, type DType } from '../../binding';
import { Tensor } from '../tensor';
import { writeFileAtomic } from '../utils/atomic-write';

const DTYPES: Record<string, [DType, number]> = {
  F32: ['float32', 4],
  F64: ['float64', 8],
  F16: ['float16', 2],
  BF16: ['bfloat16', 2],
  I64: ['int64', 8],
  I32: ['int32', 4],
  I16: ['int16', 2],
  I8: ['int8', 1],
  U8: ['uint8', 1],
  BOOL: ['bool', 1],
};
const CODE_FOR: Record<string, string> = Object.fromEntries(Object.entries(DTYPES).map(([code, [dtype]]) => [dtype, code]));
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function looksLikeSafetensors(head: Buffer): boolean {
  if (head.length < 9) return false;
  const headerLength = head.readBigUInt64LE(0);
  return headerLength > 1n && headerLength < BigInt(MAX_HEADER_BYTES) && head[8] === 0x7b; // '{'
}

export async function readSafetensors(file: string): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const bytes = await fs.promises.readFile(file);
  const fail = (why: string) => new Error(`cannot load '${file}': ${why}`);
  if (bytes.length < 8) throw fail('file too short for a safetensors header');
  const headerLength = bytes.readBigUInt64LE(0);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    throw fail(`header claims ${headerLength} bytes but the file has ${bytes.length - 8} after the length field`);
  }
  const dataStart = 8 + Number(headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, dataStart).toString('utf8'));
  } catch (error) {
    throw fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('header is not a JSON object');
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  const pending: { name: string; begin: number; end: number; shape: number[]; dtype: DType }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: string; shape?: unknown; data_offsets?: unknown };
    const known = dtype !== undefined ? DTYPES[dtype] : undefined;
    if (!known) throw fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw fail(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) {
      throw fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength) throw fail(`tensor '${name}' data [${begin}, ${end}) lies outside the ${dataLength} data bytes`);
    if (end - begin !== numel * known[1]) {
      throw fail(`tensor '${name}' has ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${numel * known[1]}`);
    }
    pending.push({ name, begin, end, shape: shape as number[], dtype: known[0] });
  }
  // Each tensor copies its bytes, so tensors sharing bytes would let a small file allocate its data
  // once per name (thousands of times); safetensors requires disjoint ranges.
  const ranges = pending.filter((p) => p.end > p.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw fail(`tensors '${ranges[i - 1].name}' and '${ranges[i].name}' overlap (data [${ranges[i - 1].begin}, ${ranges[i - 1].end}) and [${ranges[i].begin}, ${ranges[i].end}))`);
    }
  }
  for (const { name, begin, end, shape, dtype } of pending) {
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset + dataStart + begin, end - begin);
    tensors.set(name, new Tensor(new (native().Tensor)(view, shape, dtype)));
  }
  return { tensors, metadata };
}

export async function writeSafetensors(file: string, tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const code = CODE_FOR[t.dtype];
    if (!code) throw new TypeError(`cannot save tensor '${name}' of dtype ${t.dtype} as safetensors`);
    const data = t.native.toBytes();
    header[name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + data.byteLength] };
    chunks.push(data);
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // data starts 8-byte aligned
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  await writeFileAtomic(file, [length, json, ...chunks]);
}
