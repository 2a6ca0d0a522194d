// Reading finished runs back: their checkpoint, config, classes and split, for test, predict,
// compare and report.
import * as fs from 'fs';
import * as path from 'path';
import { scanDataset } from '../data/caltech101';
import { loadSplitManifest, type Split } from '../data/splits';
import { createModel, type Model } from '../models/model';
import { QuantizedModel } from '../models/quantized';
import { loadCheckpoint, loadCheckpointWeights } from '../training/checkpoint';
import type { Config } from './config';

export interface LoadedRun {
  /** The run folder, when the checkpoint sits in one. */
  runDir?: string;
  checkpoint: string;
  config: Config;
  classes: string[];
  model: Model;
  /** The run's int8 model (`finetorch quantize`), when loadRun was asked for it: predictions use it. */
  int8?: QuantizedModel;
}

/** Where `finetorch quantize` writes a checkpoint's int8 model: beside it, best.pth -> best-int8.pth. */
export function int8Path(checkpoint: string): string {
  return checkpoint.replace(/\.pth?$/, '') + '-int8.pth';
}

/** Accepts a checkpoint file or a run folder (whose checkpoints/best.pth is used). */
export function checkpointPath(fileOrRun: string): { checkpoint: string; runDir?: string } {
  if (fs.existsSync(fileOrRun) && fs.statSync(fileOrRun).isDirectory()) {
    const best = path.join(fileOrRun, 'checkpoints', 'best.pth');
    if (!fs.existsSync(best)) throw new Error(`'${fileOrRun}' is a folder without checkpoints/best.pth: not a finetorch run folder`);
    return { checkpoint: best, runDir: fileOrRun };
  }
  if (!fs.existsSync(fileOrRun)) throw new Error(`no checkpoint or run folder at '${fileOrRun}'`);
  const runDir = path.dirname(path.dirname(path.resolve(fileOrRun)));
  return { checkpoint: fileOrRun, runDir: fs.existsSync(path.join(runDir, 'split.json')) ? runDir : undefined };
}

/** int8: also load the int8 model `finetorch quantize` wrote for this checkpoint (an error when there is none). */
export async function loadRun(fileOrRun: string, options: { int8?: boolean } = {}): Promise<LoadedRun> {
  const { checkpoint, runDir } = checkpointPath(fileOrRun);
  if (options.int8 && !fs.existsSync(int8Path(checkpoint))) {
    throw new Error(`no int8 model for '${checkpoint}' (expected ${int8Path(checkpoint)}): run finetorch quantize on it first`);
  }
  const loaded = await loadCheckpoint(checkpoint);
  const config = loaded.config as Config | undefined;
  const classes = (loaded.extra as { classes?: string[] } | undefined)?.classes;
  if (!config || !Array.isArray(classes)) throw new Error(`'${checkpoint}' has no run configuration or class names: was it written by finetorch train?`);
  // checkpoints from before the attention key have none
  const model = createModel(config.arch, { numClasses: classes.length, head: config.head, attention: config.attention ?? 'none' });
  await loadCheckpointWeights(loaded, model);
  for (const t of loaded.stateDict.values()) t.dispose();
  model.eval();
  const int8 = options.int8 ? await QuantizedModel.load(int8Path(checkpoint)) : undefined;
  if (int8 && int8.numClasses !== classes.length) {
    int8.dispose();
    throw new Error(`'${int8Path(checkpoint)}' has ${int8.numClasses} classes, the run ${classes.length}: quantize the run again`);
  }
  return { runDir, checkpoint, config, classes, model, int8 };
}

/** The run's saved split, checked against the data found at `dataRoot` (default: the run's). */
export async function loadRunSplit(run: LoadedRun, dataRoot?: string): Promise<Split> {
  if (!run.runDir) throw new Error(`'${run.checkpoint}' is not inside a run folder, so its split is unknown`);
  const scan = await scanDataset(dataRoot ?? run.config.data.root, { includeBackground: run.config.data.include_background, warn: () => undefined });
  return loadSplitManifest(path.join(run.runDir, 'split.json'), scan);
}
