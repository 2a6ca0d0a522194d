// What the prediction server says about the run it serves: its name, network, classes and, when
// the run finished, its test figures (results.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readResults, resultsFile } from '../experiment/results';
import type { LoadedRun } from '../experiment/runs';

export interface RunInfo {
  name: string;
  arch: string;
  classes: string[];
  /** The side of the square the network sees. */
  imageSize: number;
  /** Test-set top-1 / top-5 accuracy from results.json; null when the run has none. */
  testTop1: number | null;
  testTop5: number | null;
  testImages: number | null;
}

export function runInfo(run: LoadedRun): RunInfo {
  const results = run.runDir && fs.existsSync(resultsFile(run.runDir)) ? readResults(run.runDir) : undefined;
  return {
    name: results?.run ?? path.basename(run.runDir ?? run.checkpoint),
    arch: run.config.arch,
    classes: [...run.classes],
    imageSize: run.config.image_size,
    testTop1: results?.test.top1 ?? null,
    testTop5: results?.test.top5 ?? null,
    testImages: results?.test.count ?? null,
  };
}
