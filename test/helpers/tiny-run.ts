// A finished run to serve or predict with, made in seconds: a synthetic Caltech-style set of small
// images, ResNet-18 from scratch at 32 px for one epoch (the weights are poor; the tests compare
// numbers between code paths, not accuracy). Puts the thread count train() changes back.
import * as path from 'node:path';
import { getNumThreads, setNumThreads } from '../../lib/runtime';
import { resolveConfig } from '../../lib/experiment/config';
import { train } from '../../lib/experiment/trainer';
import { createSyntheticDataset, type SyntheticDataset } from './synthetic-dataset';

export interface TinyRun {
  runDir: string;
  dataset: SyntheticDataset;
  /** Every image file of the dataset, class by class. */
  images: string[];
}

export async function createTinyRun(dir: string, options: { classes?: number; perClass?: number; name?: string; png?: boolean } = {}): Promise<TinyRun> {
  const dataset = await createSyntheticDataset(path.join(dir, 'data'), {
    classes: options.classes ?? 4,
    perClass: options.perClass ?? 6,
    size: 40,
    seed: 3,
    extras: { png: options.png ?? true },
  });
  const config = resolveConfig({
    overrides: {
      arch: 'resnet18', phase: 'scratch', weights: 'none', image_size: 32, resize: 36, batch_size: 8, epochs: 1, device: 'cpu', quiet: true, report: false,
      'data.root': dataset.root, 'data.train_per_class': 3, 'data.test_per_class': 2, output_dir: path.join(dir, 'runs'), run_name: options.name ?? 'tiny-run',
    },
  });
  const threads = getNumThreads();
  try {
    const [result] = await train(config, { log: () => undefined });
    return { runDir: result.runDir, dataset, images: dataset.classes.flatMap((c) => dataset.files[c]) };
  } finally {
    setNumThreads(threads);
  }
}
