// The public Tensor: validated construction from TypedArrays, explicit dispose(), GC as a backstop.
import { native, type AnyTypedArray, type DType, type NativeTensor } from '../binding';
import { describe, invalid, nonNegativeInteger, oneOf } from './utils/validate';

export type { DType } from '../binding';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];
const CREATABLE: readonly DType[] = ['float32', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

/** The TypedArray each creatable dtype is read from. */
const ARRAY_FOR: Record<string, string> = {
  float32: 'Float32Array',
  float64: 'Float64Array',
  int64: 'BigInt64Array',
  int32: 'Int32Array',
  int16: 'Int16Array',
  int8: 'Int8Array',
  uint8: 'Uint8Array',
  bool: 'Uint8Array',
};

function dtypeOfArray(data: AnyTypedArray): DType | undefined {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  return undefined;
}

/** 'cpu', 'cuda' or 'cuda:N' (and 'auto' when allowed), else a TypeError. */
export function validateDevice(device: unknown, allowAuto = false): string {
  if (typeof device !== 'string' || !(allowAuto && device === 'auto') && !/^(cpu|cuda(:\d+)?)$/.test(device)) {
    throw invalid(`device ${allowAuto ? "'auto', " : ''}'cpu', 'cuda' or 'cuda:N'`, 'device', device);
  }
  return device;
}

export function validateShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw invalid('array of non-negative integers', name, shape);
  return shape.map((size, i) => nonNegativeInteger(`${name}[${i}]`, size));
}

export class Tensor {
  /** @internal use tensor() or the functions that return tensors. */
  constructor(readonly native: NativeTensor) {}

  get shape(): number[] {
    return this.native.shape;
  }
  get dtype(): DType {
    return this.native.dtype;
  }
  get device(): string {
    return this.native.device;
  }
  get requiresGrad(): boolean {
    return this.native.requiresGrad;
  }
  get disposed(): boolean {
    return this.native.disposed;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** A copy of the values on the CPU (int64 as BigInt64Array, float16/bfloat16 widened to float32). */
  toTypedArray(): AnyTypedArray {
    return this.native.toTypedArray();
  }

  /** Values as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const values = this.toTypedArray();
    return values instanceof BigInt64Array ? Array.from(values, Number) : Array.from(values as ArrayLike<number>);
  }

  /**
   * A copy on `device` ('cpu', 'cuda', 'cuda:1'), optionally converted to `dtype`. From pinned host
   * memory to CUDA, `nonBlocking` lets the copy overlap other work (it stays ordered before later GPU
   * work). Without CUDA, asking for it is an error saying so.
   */
  async to(device: string, dtype?: DType, options: { nonBlocking?: boolean } = {}): Promise<Tensor> {
    validateDevice(device);
    if (dtype !== undefined) oneOf('dtype', dtype, DTYPES);
    return new Tensor(await this.native.to(device, dtype, options.nonBlocking === true));
  }

  clone(): Tensor {
    return new Tensor(this.native.clone());
  }

  /** Frees the native memory now; the object is unusable afterwards. Safe to call twice. */
  dispose(): void {
    this.native.dispose();
  }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }
}

export interface TensorOptions {
  /** Defaults to the dtype of the TypedArray (float32 for plain number arrays). */
  dtype?: DType;
}

/**
 * A CPU tensor holding a copy of `data` with `shape` (default: 1-D). Plain number arrays become
 * float32 (or the requested dtype).
 */
export function tensor(data: AnyTypedArray | number[], shape?: number[], options: TensorOptions = {}): Tensor {
  let values: AnyTypedArray;
  let dtype: DType;
  if (Array.isArray(data)) {
    dtype = options.dtype === undefined ? 'float32' : oneOf('dtype', options.dtype, CREATABLE);
    values = fromNumbers(data, dtype);
  } else if (ArrayBuffer.isView(data) && dtypeOfArray(data as AnyTypedArray)) {
    values = data as AnyTypedArray;
    const arrayType = dtypeOfArray(values)!;
    dtype = options.dtype === undefined ? arrayType : oneOf('dtype', options.dtype, CREATABLE);
    const compatible = dtype === arrayType || (dtype === 'bool' && arrayType === 'uint8');
    if (!compatible) {
      throw new TypeError(`Expected a ${ARRAY_FOR[dtype]} for dtype ${dtype} but received ${describe(data)}`);
    }
  } else {
    throw invalid('TypedArray or array of numbers', 'data', data);
  }
  const dims = shape === undefined ? [values.length] : validateShape('shape', shape);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== values.length) {
    throw new RangeError(`Expected ${count} values for shape [${dims.join(', ')}] but received ${values.length}`);
  }
  return new Tensor(new (native().Tensor)(values, dims, dtype));
}

function fromNumbers(data: number[], dtype: DType): AnyTypedArray {
  data.forEach((v, i) => {
    if (typeof v !== 'number') throw invalid('number', `data[${i}]`, v);
  });
  switch (dtype) {
    case 'float64':
      return Float64Array.from(data);
    case 'int64':
      return BigInt64Array.from(data, (v) => BigInt(Math.trunc(v)));
    case 'int32':
      return Int32Array.from(data);
    case 'int16':
      return Int16Array.from(data);
    case 'int8':
      return Int8Array.from(data);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(data);
    default:
      return Float32Array.from(data);
  }
}

/** Standard-normal values, mostly for tests and benchmarks. */
export function randn(shape: number[]): Tensor {
  return new Tensor(native().randn(validateShape('shape', shape)));
}

/** Matrix product computed on the native compute thread. */
export async function matmul(a: Tensor, b: Tensor): Promise<Tensor> {
  return new Tensor(await native().matmul(a.native, b.native));
}

/** Concatenation along `dim` (on the compute thread). */
export async function cat(tensors: Tensor[], dim = 0): Promise<Tensor> {
  if (!Array.isArray(tensors) || tensors.length === 0) throw invalid('non-empty array of Tensors', 'tensors', tensors);
  tensors.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw invalid('Tensor', `tensors[${i}]`, t);
  });
  return new Tensor(await native().cat(tensors.map((t) => t.native), dim));
}

/** The entries of `source` at `indices` along `dim`, in that order. */
export async function indexSelect(source: Tensor, indices: ArrayLike<number>, dim = 0): Promise<Tensor> {
  if (!(source instanceof Tensor)) throw invalid('Tensor', 'source', source);
  const size = source.shape[dim];
  const index = Int32Array.from(indices);
  for (let i = 0; i < index.length; i++) {
    if (index[i] < 0 || index[i] >= size) throw new RangeError(`Expected indices between 0 and ${size - 1} but received ${index[i]} at ${i}`);
  }
  return new Tensor(await native().indexSelect(source.native, index, dim));
}

/** Class indices: an int64 tensor of shape [batch] with values in [0, numClasses). */
export function validateLabels(labels: unknown, batch: number, numClasses: number): Tensor {
  if (!(labels instanceof Tensor)) throw invalid('Tensor', 'labels', labels);
  if (labels.dtype !== 'int64') throw new TypeError(`Expected labels of dtype int64 but received ${labels.dtype}`);
  if (labels.shape.length !== 1 || labels.shape[0] !== batch) {
    throw new TypeError(`Expected labels of shape [${batch}] (one per image) but received [${labels.shape.join(', ')}]`);
  }
  const values = labels.toTypedArray() as BigInt64Array;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < 0n || values[i] >= BigInt(numClasses)) {
      throw new RangeError(`Expected labels between 0 and ${numClasses - 1} but received ${values[i]} at index ${i}`);
    }
  }
  return labels;
}
