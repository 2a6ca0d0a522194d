// Reading finished runs back: their checkpoint, config, classes and split, for test, predict,
// compare and report.
import * as fs from 'fs';
import * as path from 'path';
import { scanDataset } from '../data/caltech101';
import { loadSplitManifest, type Split } from '../data/splits';
import { createModel, type Model } from '../models/model';
import { loadCheckpoint, loadCheckpointWeights } from '../training/checkpoint';
import type { Config } from './config';

export interface LoadedRun {
  /** The run folder, when the checkpoint sits in one. */
  runDir?: string;
  checkpoint: string;
  config: Config;
  classes: string[];
  model: Model;
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

export async function loadRun(fileOrRun: string): Promise<LoadedRun> {
  const { checkpoint, runDir } = checkpointPath(fileOrRun);
  const loaded = await loadCheckpoint(checkpoint);
  const config = loaded.config as Config | undefined;
  const classes = (loaded.extra as { classes?: string[] } | undefined)?.classes;
  if (!config || !Array.isArray(classes)) throw new Error(`'${checkpoint}' has no run configuration or class names: was it written by finetorch train?`);
  const model = createModel(config.arch, { numClasses: classes.length, head: config.head });
  await loadCheckpointWeights(loaded, model);
  for (const t of loaded.stateDict.values()) t.dispose();
  model.eval();
  return { runDir, checkpoint, config, classes, model };
}

/** The run's saved split, checked against the data found at `dataRoot` (default: the run's). */
export async function loadRunSplit(run: LoadedRun, dataRoot?: string): Promise<Split> {
  if (!run.runDir) throw new Error(`'${run.checkpoint}' is not inside a run folder, so its split is unknown`);
  const scan = await scanDataset(dataRoot ?? run.config.data.root, { includeBackground: run.config.data.include_background, warn: () => undefined });
  return loadSplitManifest(path.join(run.runDir, 'split.json'), scan);
}
