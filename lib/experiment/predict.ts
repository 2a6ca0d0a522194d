// Top-k classes with probabilities for images, through the evaluation transform. Files (the
// predict command) and in-memory bytes (the prediction server) share one path, so both give the
// same numbers for the same image.
import { decodeImage, EVAL_DECODE, type DecodedImage, type DecodeOptions } from '../data/decode';
import { evalTransform } from '../data/transforms';
import type { LoadedRun } from './runs';

export interface ClassProbability {
  className: string;
  probability: number;
}

export interface Prediction {
  file: string;
  top: ClassProbability[];
}

/** The run's evaluation decode: Resize(config.resize) -> CenterCrop(config.image_size). */
export function runDecodeOptions(run: LoadedRun): DecodeOptions {
  return { ...EVAL_DECODE, resize: run.config.resize, centerCrop: run.config.image_size };
}

/** Decodes a file path or an image file's bytes as the run's evaluation does. Rejects with DecodeError. */
export function decodeForRun(run: LoadedRun, input: string | Buffer): Promise<DecodedImage> {
  return decodeImage(input, runDecodeOptions(run));
}

/** Top-k classes for images decoded by decodeForRun, in one forward pass. */
export async function predictImages(run: LoadedRun, images: DecodedImage[], k = 5): Promise<ClassProbability[][]> {
  const { config, classes } = run;
  const model = run.int8 ?? run.model;
  const transform = evalTransform({ size: config.image_size });
  const batch = await transform.apply(images, images.map((im) => transform.sample(im)));
  let logits: Float32Array;
  try {
    const output = await model.forward(batch);
    logits = output.toTypedArray() as Float32Array;
    output.dispose();
  } finally {
    batch.dispose();
  }
  const n = classes.length;
  return images.map((_, i) => topK(Array.from(logits.subarray(i * n, (i + 1) * n)), classes, k));
}

/** Softmax of one row of logits, the k most probable classes first. */
function topK(row: number[], classes: string[], k: number): ClassProbability[] {
  const max = Math.max(...row);
  const exp = row.map((v) => Math.exp(v - max));
  const total = exp.reduce((a, b) => a + b, 0);
  return exp
    .map((e, c) => ({ className: classes[c], probability: e / total }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.min(k, classes.length));
}

export async function predict(run: LoadedRun, files: string[], k = 5): Promise<Prediction[]> {
  const images = await Promise.all(files.map((f) => decodeForRun(run, f)));
  const tops = await predictImages(run, images, k);
  return files.map((file, i) => ({ file, top: tops[i] }));
}
