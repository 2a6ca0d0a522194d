// ONNX export: the network in eval mode (BatchNorm on running statistics, dropout off) as an ONNX
// model with a dynamic batch axis, its class names and input normalisation in the metadata. The
// graph is written out from the same module tree as native/models/*.cc, and checked against the
// model's own module list and state_dict, so the two cannot drift apart unnoticed.
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';
import { packageRoot } from '../../binding';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/transforms';
import { Model, type Architecture } from '../models/model';
import { prunedModules } from '../models/pruning';
import type { Tensor } from '../tensor';
import { writeFileAtomic } from '../utils/atomic-write';
import { integerInRange, invalid, knownKeys, plainObject } from '../utils/validate';
import { OnnxGraphBuilder, type GraphValue } from './onnx-graph';
import { ONNX_PROTO } from './onnx-proto';

/** The opsets the exported ops are written for; 17 is the newest ONNX 1.12 (IR version 8) checks. */
export const ONNX_OPSETS = { min: 11, max: 17, default: 13 } as const;
export const ONNX_INPUT_NAME = 'images';
export const ONNX_OUTPUT_NAME = 'logits';

export interface OnnxExportOptions {
  /** Height and width of the input (the run's image_size; default 224). The batch axis is dynamic. */
  imageSize?: number;
  /** ONNX opset, ONNX_OPSETS.min to ONNX_OPSETS.max (default 13). */
  opset?: number;
  /** One name per output (default '0', '1', ...). */
  classNames?: string[];
  /** Per-channel normalisation the input is expected to have had (default ImageNet's). */
  mean?: [number, number, number];
  std?: [number, number, number];
  /** The evaluation resize (shorter side) before the centre crop, recorded in the metadata when given. */
  resize?: number;
}

export interface OnnxExportResult {
  file: string;
  bytes: number;
  opset: number;
  irVersion: number;
  /** The model's metadata_props. */
  metadata: Record<string, string>;
}

// The oldest IR version that allows each opset (onnx/helper.py's VERSION_TABLE).
const IR_VERSION_FOR_OPSET: Record<number, number> = { 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8 };

const RESNET_BLOCKS: Record<'resnet18' | 'resnet34' | 'resnet50', { depths: number[]; bottleneck: boolean }> = {
  resnet18: { depths: [2, 2, 2, 2], bottleneck: false },
  resnet34: { depths: [3, 4, 6, 3], bottleneck: false },
  resnet50: { depths: [3, 4, 6, 3], bottleneck: true },
};

// The modules that the graph maps to ops; containers (Sequential, blocks) only group them.
const OP_MODULES = new Set(['Conv2d', 'BatchNorm2d', 'Linear', 'ReLU', 'MaxPool2d', 'Dropout', 'AdaptiveAvgPool2d']);

let modelProto: protobuf.Type | undefined;
function onnxModelProto(): protobuf.Type {
  modelProto ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelProto;
}

function resnetGraph(g: OnnxGraphBuilder, arch: keyof typeof RESNET_BLOCKS, head: string, input: GraphValue): GraphValue {
  let x = g.relu(g.batchNorm('bn1', g.conv('conv1', input, { stride: 2, padding: 3 })));
  x = g.maxPool(x, { kernel: 3, stride: 2, padding: 1 });
  const { depths, bottleneck } = RESNET_BLOCKS[arch];
  depths.forEach((depth, stage) => {
    for (let i = 0; i < depth; i++) {
      const block = `layer${stage + 1}.${i}`;
      const stride = i === 0 && stage > 0 ? 2 : 1;
      let out: GraphValue;
      if (bottleneck) {
        out = g.relu(g.batchNorm(`${block}.bn1`, g.conv(`${block}.conv1`, x, { stride: 1, padding: 0 })));
        out = g.relu(g.batchNorm(`${block}.bn2`, g.conv(`${block}.conv2`, out, { stride, padding: 1 })));
        out = g.batchNorm(`${block}.bn3`, g.conv(`${block}.conv3`, out, { stride: 1, padding: 0 }));
      } else {
        out = g.relu(g.batchNorm(`${block}.bn1`, g.conv(`${block}.conv1`, x, { stride, padding: 1 })));
        out = g.batchNorm(`${block}.bn2`, g.conv(`${block}.conv2`, out, { stride: 1, padding: 1 }));
      }
      // as resnet.cc: a downsample branch where the block changes the stride or the width
      const identity = stride === 1 && out.shape[0] === x.shape[0]
        ? x
        : g.batchNorm(`${block}.downsample.1`, g.conv(`${block}.downsample.0`, x, { stride, padding: 0 }));
      x = g.relu(g.add(out, identity, `${block}.add`));
    }
  });
  if (head === 'conv1x1') {
    // the seed's head: a 1x1 conv on the layer4 map, then the global average
    return g.flatten(g.globalAveragePool(g.conv('fc', x, { stride: 1, padding: 0 }), 'avgpool'), 'flatten');
  }
  return g.linear('fc', g.flatten(g.globalAveragePool(x, 'avgpool'), 'flatten'));
}

function alexnetGraph(g: OnnxGraphBuilder, input: GraphValue): GraphValue {
  const pool = { kernel: 3, stride: 2, padding: 0 };
  let x = g.relu(g.conv('features.0', input, { stride: 4, padding: 2 }), 'features.1');
  x = g.maxPool(x, pool, 'features.2');
  x = g.relu(g.conv('features.3', x, { stride: 1, padding: 2 }), 'features.4');
  x = g.maxPool(x, pool, 'features.5');
  x = g.relu(g.conv('features.6', x, { stride: 1, padding: 1 }), 'features.7');
  x = g.relu(g.conv('features.8', x, { stride: 1, padding: 1 }), 'features.9');
  x = g.relu(g.conv('features.10', x, { stride: 1, padding: 1 }), 'features.11');
  x = g.maxPool(x, pool, 'features.12');
  x = g.flatten(g.adaptiveAveragePool('avgpool', x, [6, 6]), 'flatten');
  x = g.relu(g.linear('classifier.1', g.dropout('classifier.0', x)), 'classifier.2');
  x = g.relu(g.linear('classifier.4', g.dropout('classifier.3', x)), 'classifier.5');
  return g.linear('classifier.6', x);
}

const VGG16_CONFIG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'] as const;

function vgg16Graph(g: OnnxGraphBuilder, input: GraphValue): GraphValue {
  let x = input;
  let index = 0;
  for (const layer of VGG16_CONFIG) {
    if (layer === 'M') {
      x = g.maxPool(x, { kernel: 2, stride: 2, padding: 0 }, `features.${index++}`);
    } else {
      x = g.conv(`features.${index++}`, x, { stride: 1, padding: 1 });
      x = g.relu(x, `features.${index++}`);
    }
  }
  x = g.flatten(g.adaptiveAveragePool('avgpool', x, [7, 7]), 'flatten');
  x = g.dropout('classifier.2', g.relu(g.linear('classifier.0', x), 'classifier.1'));
  x = g.dropout('classifier.5', g.relu(g.linear('classifier.3', x), 'classifier.4'));
  return g.linear('classifier.6', x);
}

function networkGraph(g: OnnxGraphBuilder, model: Model, input: GraphValue): GraphValue {
  const arch: Architecture = model.arch;
  switch (arch) {
    case 'alexnet':
      return alexnetGraph(g, input);
    case 'vgg16':
      return vgg16Graph(g, input);
    case 'resnet18':
    case 'resnet34':
    case 'resnet50':
      return resnetGraph(g, arch, model.head, input);
    case 'mobilenet_v3_large':
    case 'efficientnet_b0':
      throw notExportable(arch);
  }
}

/** Networks the graph writer has no ops for yet (SiLU, Hardswish, Hardsigmoid, squeeze-excitation, depthwise convolutions). */
const NOT_EXPORTABLE: ReadonlySet<Architecture> = new Set(['mobilenet_v3_large', 'efficientnet_b0']);

function notExportable(arch: Architecture): Error {
  return new Error(`ONNX export is not supported for ${arch} yet (the exporter writes AlexNet, VGG-16 and ResNet graphs)`);
}

/** Fails when the graph did not use every module and state_dict entry of the model exactly once. */
function checkCoverage(g: OnnxGraphBuilder, model: Model, stateKeys: string[]): void {
  const typeName = (type: string) => type.split('::').pop()!;
  const expected = model.namedModules().filter((m) => OP_MODULES.has(typeName(m.type))).map((m) => `${m.name}:${typeName(m.type)}`).sort();
  const used = g.usedModules.map((m) => `${m.name}:${m.type}`).sort();
  const unused = stateKeys.filter((k) => !g.usedKeys.has(k));
  if (expected.join() !== used.join() || unused.length > 0) {
    const missing = expected.filter((m) => !used.includes(m));
    const extra = used.filter((m) => !expected.includes(m));
    throw new Error(
      `The ONNX exporter is out of step with the ${model.arch} network: modules not exported [${missing.join(', ')}], ` +
        `exported but not in the model [${extra.join(', ')}], state_dict entries not exported [${unused.join(', ')}]`,
    );
  }
}

function tupleOf3(name: string, value: unknown): [number, number, number] {
  if (!Array.isArray(value) || value.length !== 3 || value.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw invalid('an array of 3 finite numbers', name, value);
  }
  return value as [number, number, number];
}

interface ResolvedOptions {
  imageSize: number;
  opset: number;
  classNames: string[];
  mean: [number, number, number];
  std: [number, number, number];
  resize?: number;
}

function resolveOptions(model: Model, options: OnnxExportOptions): ResolvedOptions {
  knownKeys('ONNX export options', plainObject('options', options), ['imageSize', 'opset', 'classNames', 'mean', 'std', 'resize']);
  const imageSize = integerInRange('imageSize', options.imageSize ?? 224, 1, 16384);
  const opset = integerInRange('opset', options.opset ?? ONNX_OPSETS.default, ONNX_OPSETS.min, ONNX_OPSETS.max);
  const classNames = options.classNames ?? Array.from({ length: model.numClasses }, (_, i) => String(i));
  if (!Array.isArray(classNames) || classNames.some((c) => typeof c !== 'string')) throw invalid('an array of strings', 'classNames', classNames);
  if (classNames.length !== model.numClasses) {
    throw new TypeError(`Expected ${model.numClasses} classNames (the model's numClasses) but received ${classNames.length}`);
  }
  const std = tupleOf3('std', options.std ?? IMAGENET_STD);
  if (std.some((s) => s <= 0)) throw invalid('positive standard deviations', 'std', std);
  const resize = options.resize === undefined ? undefined : integerInRange('resize', options.resize, 1, 65536);
  return { imageSize, opset, classNames, mean: tupleOf3('mean', options.mean ?? IMAGENET_MEAN), std, resize };
}

function finetorchVersion(): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

function metadataOf(model: Model, o: ResolvedOptions): Record<string, string> {
  const crop = `${o.imageSize}x${o.imageSize}`;
  const resize = o.resize === undefined ? '' : `resize the shorter side to ${o.resize}, `;
  return {
    arch: model.arch,
    head: model.head,
    num_classes: String(model.numClasses),
    class_names: JSON.stringify(o.classNames),
    image_size: String(o.imageSize),
    ...(o.resize === undefined ? {} : { resize: String(o.resize) }),
    mean: JSON.stringify(o.mean),
    std: JSON.stringify(o.std),
    preprocessing:
      `RGB image: ${resize}centre-crop ${crop}, scale pixel values to [0, 1], subtract mean and divide by std per channel; ` +
      `input '${ONNX_INPUT_NAME}' is float32 [batch, 3, ${o.imageSize}, ${o.imageSize}] (NCHW); output '${ONNX_OUTPUT_NAME}' is ` +
      `[batch, ${model.numClasses}] unnormalised scores in class_names order (softmax for probabilities)`,
    finetorch_version: finetorchVersion(),
  };
}

/**
 * The model as the bytes of an ONNX file (see exportOnnx). The weights are read once, so the model
 * should not be training concurrently.
 */
export function onnxModelBytes(model: Model, options: OnnxExportOptions = {}): { bytes: Uint8Array; opset: number; irVersion: number; metadata: Record<string, string> } {
  if (!(model instanceof Model)) throw invalid('Model', 'model', model);
  if (model.disposed) throw new Error('Expected a live model but it has been disposed');
  if (NOT_EXPORTABLE.has(model.arch)) throw notExportable(model.arch);
  if (model.attention !== 'none') {
    throw new Error(`ONNX export is not supported for ${model.arch} with ${model.attention} attention yet (the exporter writes AlexNet, VGG-16 and ResNet graphs without attention)`);
  }
  const pruned = prunedModules(model);
  if (pruned.length > 0) {
    throw new Error(`Expected a model without pruning masks but ${pruned.length} layer(s) hold weight_orig/weight_mask (${pruned.slice(0, 3).join(', ')}…): call pruning.makePermanent(model) before exporting`);
  }
  const o = resolveOptions(model, options);
  const stateDict: Map<string, Tensor> = model.stateDict();
  try {
    const g = new OnnxGraphBuilder(stateDict, `${model.arch} at ${o.imageSize}x${o.imageSize}`);
    const input: GraphValue = { name: ONNX_INPUT_NAME, shape: [3, o.imageSize, o.imageSize] };
    const output = networkGraph(g, model, input);
    checkCoverage(g, model, [...stateDict.keys()]);
    if (output.shape.length !== 1 || output.shape[0] !== model.numClasses) {
      throw new Error(`The ${model.arch} graph ends in [${output.shape}] instead of [${model.numClasses}] logits`);
    }
    // the last node writes the graph output directly under its public name
    g.nodes[g.nodes.length - 1].output = [ONNX_OUTPUT_NAME];
    const tensorType = (dims: Array<number | string>) => ({
      tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) } },
    });
    const metadata = metadataOf(model, o);
    const irVersion = IR_VERSION_FOR_OPSET[o.opset];
    const ModelProto = onnxModelProto();
    const message = ModelProto.fromObject({
      ir_version: irVersion,
      opset_import: [{ domain: '', version: o.opset }],
      producer_name: 'finetorch',
      producer_version: metadata.finetorch_version,
      doc_string: `${model.arch} (${model.head} head, ${model.numClasses} classes) exported by finetorch in eval mode`,
      graph: {
        name: model.arch,
        node: g.nodes,
        initializer: g.initializers,
        input: [{ name: ONNX_INPUT_NAME, type: tensorType(['batch', 3, o.imageSize, o.imageSize]) }],
        output: [{ name: ONNX_OUTPUT_NAME, type: tensorType(['batch', model.numClasses]) }],
      },
      metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    });
    return { bytes: ModelProto.encode(message).finish(), opset: o.opset, irVersion, metadata };
  } finally {
    for (const t of stateDict.values()) t.dispose();
  }
}

/**
 * Writes `model` as an ONNX file (atomically): eval-mode semantics whatever the model's mode, input
 * 'images' [batch, 3, imageSize, imageSize] float32 normalised with mean/std, output 'logits'
 * [batch, numClasses]; class names, normalisation, input size, architecture and finetorch's version
 * in metadata_props.
 */
export async function exportOnnx(model: Model, file: string, options: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  if (typeof file !== 'string' || file.length === 0) throw invalid('a file path', 'file', file);
  const { bytes, opset, irVersion, metadata } = onnxModelBytes(model, options);
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, [bytes]);
  return { file, bytes: bytes.length, opset, irVersion, metadata };
}
