// Top-5 classes with probabilities for image files, through the evaluation transform.
import { decodeImage, EVAL_DECODE } from '../data/decode';
import { evalTransform } from '../data/transforms';
import type { LoadedRun } from './runs';

export interface Prediction {
  file: string;
  top: Array<{ className: string; probability: number }>;
}

export async function predict(run: LoadedRun, files: string[], k = 5): Promise<Prediction[]> {
  const { config, classes, model } = run;
  const decode = { ...EVAL_DECODE, resize: config.resize, centerCrop: config.image_size };
  const images = await Promise.all(files.map((f) => decodeImage(f, decode)));
  const transform = evalTransform({ size: config.image_size });
  const batch = await transform.apply(images, images.map((im) => transform.sample(im)));
  const logits = (await model.forward(batch)).toTypedArray() as Float32Array;
  const n = classes.length;
  return files.map((file, i) => {
    const row = Array.from(logits.subarray(i * n, (i + 1) * n));
    const max = Math.max(...row);
    const exp = row.map((v) => Math.exp(v - max));
    const total = exp.reduce((a, b) => a + b, 0);
    const top = exp
      .map((e, c) => ({ className: classes[c], probability: e / total }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, Math.min(k, n));
    return { file, top };
  });
}
