// Builds an ONNX graph (plain objects in the shape of onnx.proto's messages) from the modules of a
// finetorch network, in eval mode. Each op takes the module's state_dict entries as initializers
// under the same names, and tracks the shape of what it outputs (batch axis left out), so that
// shape-dependent ops (adaptive pooling) are exact for the declared input size and a size too
// small for the network is an error here rather than in the runtime.
import type { Tensor } from '../tensor';

/** A value flowing through the graph: its name and its shape without the (dynamic) batch axis. */
export interface GraphValue {
  name: string;
  shape: number[];
}

/** onnx.AttributeProto as protobufjs's fromObject takes it. */
export interface OnnxAttribute {
  name: string;
  type: 'FLOAT' | 'INT' | 'INTS';
  f?: number;
  i?: number;
  ints?: number[];
}

export interface OnnxNode {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: OnnxAttribute[];
}

export interface OnnxInitializer {
  name: string;
  data_type: number;
  dims: number[];
  raw_data: Uint8Array;
}

/** A module the graph used, by its state_dict name and its torch::nn type. */
export interface UsedModule {
  name: string;
  type: string;
}

const FLOAT = 1; // onnx.TensorProto.DataType.FLOAT

// torchvision's BatchNorm2d default; the exported op must use the same.
const BATCH_NORM_EPSILON = 1e-5;

const ints = (name: string, values: number[]): OnnxAttribute => ({ name, type: 'INTS', ints: values });
const int = (name: string, value: number): OnnxAttribute => ({ name, type: 'INT', i: value });

function poolOutput(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

/** The rows of torch's adaptive average pooling as a matrix: bin i averages [floor(i·in/out), ceil((i+1)·in/out)). */
export function adaptivePoolMatrix(inSize: number, outSize: number): Float32Array {
  const matrix = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let j = start; j < end; j++) matrix[i * inSize + j] = 1 / (end - start);
  }
  return matrix;
}

function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(matrix.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = matrix[r * cols + c];
  return out;
}

export class OnnxGraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  readonly usedModules: UsedModule[] = [];
  readonly usedKeys = new Set<string>();
  private readonly names = new Set<string>();

  /** `weights`: the model's state_dict; `context` names the network in errors ("alexnet at 32x32"). */
  constructor(
    private readonly weights: Map<string, Tensor>,
    private readonly context: string,
  ) {}

  conv(module: string, x: GraphValue, options: { stride: number; padding: number }): GraphValue {
    const [out, inChannels, kh, kw] = this.weight(`${module}.weight`, 4);
    this.expectChannels(module, x, inChannels);
    const bias = this.weights.has(`${module}.bias`) ? [this.initializer(`${module}.bias`, 1)] : [];
    const h = poolOutput(x.shape[1], kh, options.stride, options.padding);
    const w = poolOutput(x.shape[2], kw, options.stride, options.padding);
    this.expectSpatial(module, h, w, x);
    this.usedModules.push({ name: module, type: 'Conv2d' });
    return this.node('Conv', module, [x.name, this.initializer(`${module}.weight`, 4), ...bias], [out, h, w], [
      ints('kernel_shape', [kh, kw]),
      ints('strides', [options.stride, options.stride]),
      ints('pads', Array(4).fill(options.padding)),
      ints('dilations', [1, 1]),
      int('group', 1),
    ]);
  }

  /** Eval-mode BatchNorm2d: the running statistics, torchvision's epsilon. */
  batchNorm(module: string, x: GraphValue): GraphValue {
    this.expectChannels(module, x, this.weight(`${module}.weight`, 1)[0]);
    const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => this.initializer(`${module}.${p}`, 1));
    // not an input of the op, but part of the module's state: counted so the completeness check holds
    if (this.weights.has(`${module}.num_batches_tracked`)) this.usedKeys.add(`${module}.num_batches_tracked`);
    this.usedModules.push({ name: module, type: 'BatchNorm2d' });
    return this.node('BatchNormalization', module, [x.name, ...inputs], x.shape, [
      { name: 'epsilon', type: 'FLOAT', f: BATCH_NORM_EPSILON },
    ]);
  }

  /** `module`: the ReLU module's name where it is one (AlexNet/VGG Sequentials); ResNets call torch::relu. */
  relu(x: GraphValue, module?: string): GraphValue {
    if (module !== undefined) this.usedModules.push({ name: module, type: 'ReLU' });
    return this.node('Relu', module ?? 'relu', [x.name], x.shape);
  }

  maxPool(x: GraphValue, options: { kernel: number; stride: number; padding: number }, module?: string): GraphValue {
    const where = module ?? 'maxpool';
    const h = poolOutput(x.shape[1], options.kernel, options.stride, options.padding);
    const w = poolOutput(x.shape[2], options.kernel, options.stride, options.padding);
    this.expectSpatial(where, h, w, x);
    if (module !== undefined) this.usedModules.push({ name: module, type: 'MaxPool2d' });
    return this.node('MaxPool', where, [x.name], [x.shape[0], h, w], [
      ints('kernel_shape', [options.kernel, options.kernel]),
      ints('strides', [options.stride, options.stride]),
      ints('pads', Array(4).fill(options.padding)),
    ]);
  }

  /** Identity in eval mode: only recorded, so that the module tree check sees it. */
  dropout(module: string, x: GraphValue): GraphValue {
    this.usedModules.push({ name: module, type: 'Dropout' });
    return x;
  }

  add(a: GraphValue, b: GraphValue, name: string): GraphValue {
    if (a.shape.join() !== b.shape.join()) {
      throw new Error(`${this.context}: cannot add [${a.shape}] and [${b.shape}] at ${name}`);
    }
    return this.node('Add', name, [a.name, b.name], a.shape);
  }

  globalAveragePool(x: GraphValue, name: string): GraphValue {
    return this.node('GlobalAveragePool', name, [x.name], [x.shape[0], 1, 1]);
  }

  /**
   * AdaptiveAvgPool2d for the map size this input size gives: nothing when the map already has the
   * output size (AlexNet and VGG at 224), else torch's bins as one averaging matrix per axis (any
   * size, overlapping bins and upsampling of small maps included).
   */
  adaptiveAveragePool(module: string, x: GraphValue, size: [number, number]): GraphValue {
    this.usedModules.push({ name: module, type: 'AdaptiveAvgPool2d' });
    const [channels, h, w] = x.shape;
    const [oh, ow] = size;
    if (h === oh && w === ow) return x;
    // [N,C,H,W] · [W,ow] -> [N,C,H,ow], then [oh,H] · that -> [N,C,oh,ow] (MatMul broadcasts)
    const columns = this.constant(`${module}.column_weights`, [w, ow], transpose(adaptivePoolMatrix(w, ow), ow, w));
    const rows = this.constant(`${module}.row_weights`, [oh, h], adaptivePoolMatrix(h, oh));
    const across = this.node('MatMul', `${module}.columns`, [x.name, columns], [channels, h, ow]);
    return this.node('MatMul', module, [rows, across.name], [channels, oh, ow]);
  }

  flatten(x: GraphValue, name: string): GraphValue {
    return this.node('Flatten', name, [x.name], [x.shape.reduce((a, b) => a * b, 1)], [int('axis', 1)]);
  }

  /** nn::Linear as Gemm: x · Wᵀ + b. */
  linear(module: string, x: GraphValue): GraphValue {
    const [out, inFeatures] = this.weight(`${module}.weight`, 2);
    if (x.shape.length !== 1 || x.shape[0] !== inFeatures) {
      throw new Error(`${this.context}: ${module} takes ${inFeatures} features but receives [${x.shape}]`);
    }
    this.usedModules.push({ name: module, type: 'Linear' });
    const inputs = [x.name, this.initializer(`${module}.weight`, 2), this.initializer(`${module}.bias`, 1)];
    return this.node('Gemm', module, inputs, [out], [int('transB', 1)]);
  }

  private node(opType: string, name: string, inputs: string[], shape: number[], attribute: OnnxAttribute[] = []): GraphValue {
    const output = this.uniqueName(name);
    this.nodes.push({ name: output, op_type: opType, input: inputs, output: [output], attribute });
    return { name: output, shape };
  }

  private uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  private weight(key: string, rank: number): number[] {
    const tensor = this.weights.get(key);
    if (!tensor) throw new Error(`${this.context}: the model has no '${key}' (the exporter is out of step with the network)`);
    if (tensor.shape.length !== rank) throw new Error(`${this.context}: expected '${key}' of rank ${rank} but it has shape [${tensor.shape}]`);
    return tensor.shape;
  }

  /** The state_dict entry `key` as a float32 initializer of the same name. */
  private initializer(key: string, rank: number): string {
    const dims = this.weight(key, rank);
    if (!this.usedKeys.has(key)) {
      const values = this.weights.get(key)!.toTypedArray();
      if (!(values instanceof Float32Array)) throw new Error(`${this.context}: expected float32 values for '${key}'`);
      this.usedKeys.add(key);
      this.names.add(key);
      this.initializers.push({ name: key, data_type: FLOAT, dims, raw_data: littleEndianBytes(values) });
    }
    return key;
  }

  private constant(base: string, dims: number[], values: Float32Array): string {
    const name = this.uniqueName(base);
    this.initializers.push({ name, data_type: FLOAT, dims, raw_data: littleEndianBytes(values) });
    return name;
  }

  private expectChannels(module: string, x: GraphValue, channels: number): void {
    if (x.shape.length !== 3 || x.shape[0] !== channels) {
      throw new Error(`${this.context}: ${module} takes ${channels} channels but receives [${x.shape}]`);
    }
  }

  private expectSpatial(where: string, h: number, w: number, x: GraphValue): void {
    if (h < 1 || w < 1) {
      throw new RangeError(`${this.context}: the input is too small for this network (${where} receives a ${x.shape[1]}x${x.shape[2]} map and would output ${h}x${w})`);
    }
  }
}

// raw_data is little-endian by the format's definition; typed arrays use the host's order.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
}
