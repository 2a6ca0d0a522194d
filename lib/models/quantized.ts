// int8 post-training static quantization of a trained Model for CPU inference, as PyTorch's eager
// mode does it (torch.ao.quantization fuse_modules -> prepare -> calibrate -> convert): BatchNorms
// folded into the convolutions, activation scales from observers run on calibration batches,
// weights symmetric per output channel, then libtorch's quantized kernels.
import * as fs from 'fs';
import { native, type NativeQuantizedModel } from '../../binding';
import { Tensor, validateLabels } from '../tensor';
import { invalid, knownKeys, nonEmptyString, oneOf, plainObject, positiveInteger } from '../utils/validate';
import { ARCHITECTURES, validateImages, type Architecture, type Model, type StateDict } from './model';
import { loadTorchFile, saveTorchFile } from './weights';
import { prunedModules } from './pruning';

export const QUANTIZABLE_ARCHITECTURES = ['resnet18', 'resnet34', 'resnet50', 'alexnet'] as const;
export const QUANTIZED_ENGINES = ['auto', 'x86', 'fbgemm', 'onednn', 'qnnpack'] as const;
export type QuantizedEngine = (typeof QUANTIZED_ENGINES)[number];
export const OBSERVERS = ['histogram', 'minmax'] as const;
export type ActivationObserver = (typeof OBSERVERS)[number];

export interface QuantizeOptions {
  /** libtorch's int8 kernels: 'auto' (default) takes the best this libtorch has (x86, fbgemm, onednn, qnnpack). */
  engine?: QuantizedEngine;
  /** Activation observer: 'histogram' (default, PyTorch's default qconfig) or 'minmax'. */
  observer?: ActivationObserver;
}

/** The file format's name and version, checked on load. */
const FORMAT = 'finetorch-int8';
const VERSION = 1;

export interface QuantizedEvalResult {
  count: number;
  /** Mean cross-entropy of the int8 logits (0 without labels). */
  loss: number;
  correct1: number;
  correct5: number;
  logits: Tensor;
}

export class QuantizedModel {
  readonly arch: Architecture;
  readonly numClasses: number;
  readonly observer: ActivationObserver;
  /** Images the activation observers saw (0 for a loaded model whose file did not say). */
  readonly calibrationImages: number;
  /** @internal */
  readonly native: NativeQuantizedModel;

  private constructor(arch: Architecture, numClasses: number, observer: ActivationObserver, calibrationImages: number, nativeModel: NativeQuantizedModel) {
    this.arch = arch;
    this.numClasses = numClasses;
    this.observer = observer;
    this.calibrationImages = calibrationImages;
    this.native = nativeModel;
  }

  /**
   * Quantizes a trained model (left unchanged): each calibration batch (float [N, 3, H, W], the
   * evaluation transform's images) runs through the float network with observers on every
   * activation, then weights and activations become int8.
   */
  static async quantize(model: Model, calibration: Iterable<Tensor> | AsyncIterable<Tensor>, options: QuantizeOptions = {}): Promise<QuantizedModel> {
    knownKeys('quantize options', plainObject('options', options), ['engine', 'observer']);
    if (!model || typeof model !== 'object' || !('native' in model) || typeof model.arch !== 'string') throw invalid('Model', 'model', model);
    const arch = oneOf('model.arch (quantizable architectures)', model.arch, QUANTIZABLE_ARCHITECTURES);
    if (model.head !== 'linear') throw new TypeError(`Expected a model with head 'linear' (int8 quantization does not cover 'conv1x1') but received '${model.head}'`);
    const attention = (model as Model).attention ?? 'none';
    if (attention !== 'none') {
      throw new TypeError(`Expected a model without attention (int8 quantization does not cover SE/CBAM blocks) but received attention '${attention}'`);
    }
    const pruned = prunedModules(model as Model);
    if (pruned.length > 0) {
      throw new TypeError(`Expected a model without pruning masks but ${pruned.length} layer(s) hold weight_orig/weight_mask (${pruned.slice(0, 3).join(', ')}…): call pruning.makePermanent(model) before quantizing`);
    }
    if (model.device !== 'cpu') throw new TypeError(`Expected a model on device cpu (int8 inference is CPU-only) but received ${model.device}`);
    const engine = oneOf('engine', options.engine ?? 'auto', QUANTIZED_ENGINES);
    const observer = oneOf('observer', options.observer ?? 'histogram', OBSERVERS);
    if (calibration === null || typeof calibration !== 'object' || !(Symbol.iterator in calibration || Symbol.asyncIterator in calibration)) {
      throw invalid('iterable of image batches', 'calibration', calibration);
    }
    const nativeModel = new (native().QuantizedModel)({ arch, numClasses: model.numClasses, engine: engine === 'auto' ? '' : engine, observer });
    let images = 0;
    try {
      await nativeModel.build(model.native);
      for await (const batch of calibration as AsyncIterable<Tensor>) {
        validateImages('calibration batch', batch);
        await nativeModel.calibrate(batch.native);
        images += batch.shape[0];
      }
      if (images === 0) throw new TypeError('Expected at least one calibration batch but received none');
      await nativeModel.finalize();
    } catch (error) {
      nativeModel.dispose();
      throw error;
    }
    return new QuantizedModel(arch, model.numClasses, observer, images, nativeModel);
  }

  /** The kernels' engine: 'x86', 'fbgemm', 'onednn' or 'qnnpack'. */
  get engine(): string {
    return this.native.engine;
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Float logits for a float [N, 3, H, W] batch, computed in int8. */
  async forward(images: Tensor): Promise<Tensor> {
    validateImages('images', images);
    return new Tensor(await this.native.forward(images.native));
  }

  /**
   * The uint8 codes the first int8 layer reads for `images` (the input's scale and zero point,
   * as torch.quantize_per_tensor(images, scale, zero_point, torch.quint8).int_repr()), [N, 3, H, W].
   */
  async quantizeInput(images: Tensor): Promise<Tensor> {
    validateImages('images', images);
    return new Tensor(await this.native.quantizeInput(images.native));
  }

  /** Logits with the loss and top-1/top-5 counts for labelled images (labels: int64 [N]). */
  async evaluate(images: Tensor, labels: Tensor): Promise<QuantizedEvalResult> {
    validateImages('images', images);
    validateLabels(labels, images.shape[0], this.numClasses);
    const logits = await this.forward(images);
    const rows = logits.toTypedArray() as Float32Array;
    const targets = labels.toTypedArray() as BigInt64Array;
    const n = this.numClasses;
    let loss = 0;
    let correct1 = 0;
    let correct5 = 0;
    for (let i = 0; i < targets.length; i++) {
      const row = rows.subarray(i * n, (i + 1) * n);
      const label = Number(targets[i]);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      loss += Math.log(sum) + max - row[label];
      // rank of the label: classes scoring higher (ties before it in index order, as topk)
      let above = 0;
      for (let c = 0; c < n; c++) if (row[c] > row[label] || (row[c] === row[label] && c < label)) above++;
      if (above === 0) correct1++;
      if (above < 5) correct5++;
    }
    return { count: targets.length, loss: targets.length ? loss / targets.length : 0, correct1, correct5, logits };
  }

  /**
   * The quantized values by PyTorch's quantized module names: `<layer>.weight` (int8 values),
   * `<layer>.weight_scale` (float64, per output channel, zero points 0), `<layer>.bias` (float32),
   * `<point>.scale` (float64) and `<point>.zero_point` (int64) for each quint8 activation
   * (`quant.` is the input, `<block>.add_relu.` (`skip_add_relu.` in bottlenecks) a residual sum).
   */
  async stateDict(): Promise<StateDict> {
    return new Map((await this.native.state()).map(([name, t]) => [name, new Tensor(t)]));
  }

  /** Writes the int8 model as a torch.save file (a dict: format, version, arch, numClasses, engine, observer, calibrationImages, state). */
  async save(file: string): Promise<void> {
    nonEmptyString('file', file);
    const engine = this.engine; // read before awaiting: a dispose() meanwhile must not fail the queued save
    const state = await this.stateDict();
    try {
      await saveTorchFile(file, {
        format: FORMAT,
        version: VERSION,
        arch: this.arch,
        numClasses: this.numClasses,
        engine,
        observer: this.observer,
        calibrationImages: this.calibrationImages,
        state,
      });
    } finally {
      for (const t of state.values()) t.dispose();
    }
  }

  /** Reads a file save() wrote. engine: as for quantize ('auto' by default, whatever the file was made with). */
  static async load(file: string, options: { engine?: QuantizedEngine } = {}): Promise<QuantizedModel> {
    nonEmptyString('file', file);
    knownKeys('load options', plainObject('options', options), ['engine']);
    const engine = oneOf('engine', options.engine ?? 'auto', QUANTIZED_ENGINES);
    if (!fs.existsSync(file)) throw new Error(`no quantized model at '${file}'`);
    const { value } = await loadTorchFile(file);
    const header = value instanceof Map ? value : undefined;
    if (!header || header.get('format') !== FORMAT) throw new TypeError(`Expected a finetorch int8 model file ('${FORMAT}') at '${file}' but found something else`);
    if (header.get('version') !== VERSION) throw new TypeError(`Expected ${FORMAT} version ${VERSION} in '${file}' but received version ${String(header.get('version'))}`);
    const arch = oneOf(`arch in '${file}'`, header.get('arch'), ARCHITECTURES);
    oneOf(`arch in '${file}' (quantizable architectures)`, arch, QUANTIZABLE_ARCHITECTURES);
    const numClasses = positiveInteger(`numClasses in '${file}'`, header.get('numClasses'));
    const observer = oneOf(`observer in '${file}'`, header.get('observer'), OBSERVERS);
    const calibrationImages = Number(header.get('calibrationImages') ?? 0);
    const state = header.get('state');
    if (!(state instanceof Map) || [...state.values()].some((t) => !(t instanceof Tensor))) {
      throw new TypeError(`Expected a dict of tensors under 'state' in '${file}'`);
    }
    const nativeModel = new (native().QuantizedModel)({ arch, numClasses, engine: engine === 'auto' ? '' : engine, observer });
    try {
      await nativeModel.loadState([...(state as Map<string, Tensor>)].map(([name, t]) => [name, t.native]));
    } catch (error) {
      nativeModel.dispose();
      throw error;
    } finally {
      for (const t of (state as Map<string, Tensor>).values()) t.dispose();
    }
    return new QuantizedModel(arch, numClasses, observer, calibrationImages, nativeModel);
  }

  /** Frees the network now; work already queued finishes first. Safe to call twice. */
  dispose(): void {
    this.native.dispose();
  }
}

/** quantizeModel(model, batches, options): QuantizedModel.quantize. */
export function quantizeModel(model: Model, calibration: Iterable<Tensor> | AsyncIterable<Tensor>, options: QuantizeOptions = {}): Promise<QuantizedModel> {
  return QuantizedModel.quantize(model, calibration, options);
}
