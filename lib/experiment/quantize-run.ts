// `finetorch quantize`: a run's best checkpoint to int8, calibrated on training images through the
// evaluation transform, written beside the checkpoint (best.pth -> best-int8.pth).
import { ImageCache } from '../data/cache';
import { EVAL_DECODE } from '../data/decode';
import { DataLoader } from '../data/loader';
import { evalTransform } from '../data/transforms';
import { QuantizedModel, type QuantizeOptions } from '../models/quantized';
import type { Tensor } from '../tensor';
import { knownKeys, plainObject, positiveInteger } from '../utils/validate';
import { int8Path, loadRunSplit, type LoadedRun } from './runs';

export interface QuantizeRunOptions extends QuantizeOptions {
  /** Training images the observers see (default 256; fewer when the split has fewer). */
  calibration?: number;
  batchSize?: number;
  /** Dataset root (default: the run's). */
  data?: string;
}

export interface QuantizeRunResult {
  file: string;
  calibrationImages: number;
  engine: string;
  observer: string;
}

/** Evenly spaced indices: calibration sees every part of a class-ordered split. */
export function spreadIndices(total: number, wanted: number): number[] {
  const n = Math.min(total, wanted);
  return Array.from({ length: n }, (_, i) => Math.floor((i * total) / n));
}

export async function quantizeRun(run: LoadedRun, options: QuantizeRunOptions = {}): Promise<QuantizeRunResult> {
  knownKeys('quantize options', plainObject('options', options), ['calibration', 'batchSize', 'data', 'engine', 'observer']);
  const calibration = positiveInteger('calibration', options.calibration ?? 256);
  const batchSize = positiveInteger('batchSize', options.batchSize ?? 32);
  const split = await loadRunSplit(run, options.data);
  if (split.train.length === 0) throw new Error(`the run's training split is empty: nothing to calibrate on`);
  const decode = { ...EVAL_DECODE, resize: run.config.resize, centerCrop: run.config.image_size };
  const loader = new DataLoader(split.train, { batchSize, transform: evalTransform({ size: run.config.image_size }), cache: new ImageCache({ decode }) });
  async function* images(): AsyncGenerator<Tensor> {
    for await (const batch of loader.epoch(0, spreadIndices(split.train.length, calibration))) {
      batch.labels.dispose();
      try {
        yield batch.images;
      } finally {
        batch.images.dispose();
      }
    }
  }
  const quantized = await QuantizedModel.quantize(run.model, images(), { engine: options.engine, observer: options.observer });
  try {
    const file = int8Path(run.checkpoint);
    await quantized.save(file);
    return { file, calibrationImages: quantized.calibrationImages, engine: quantized.engine, observer: quantized.observer };
  } finally {
    quantized.dispose();
  }
}
