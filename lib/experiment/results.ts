// What a finished phase leaves behind: the result type, and results.json (written atomically,
// read back by compare, report and the CLI). Training writes it; reporting only reads it.
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../utils/atomic-write';
import type { SinglePhase } from './config';
import type { Evaluation } from './evaluate';
import type { PruningSummary } from './pruning-schedule';

/**
 * How the tested weights were chosen: `final`, the weights after the configured epochs (the split
 * has no validation part, and the test part decides nothing); `validation`, the epoch with the best
 * validation top-1.
 */
export type Selection = 'final' | 'validation';

export interface PhaseResult {
  run: string;
  runDir: string;
  phase: SinglePhase;
  arch: string;
  /** The seed of the split and the initialisation. */
  seed: number;
  epochs: number;
  wallSeconds: number;
  trainSeconds: number;
  selection: Selection;
  /** The best validation top-1 (selection 'validation'); null without a validation part. */
  bestValTop1: number | null;
  featureCache: boolean;
  test: Omit<Evaluation, 'predictions' | 'confusion'>;
  checkpoints: { best: string; last: string };
  /** config.prune's outcome: per-layer sparsity and the parameters left (absent without pruning). */
  pruning?: PruningSummary;
}

/** One test image's top-1 prediction, with its file relative to the data root. */
export interface TestPrediction {
  predicted: number;
  probability: number;
  label: number;
  file: string;
}

/** results.json: the phase result plus the test set's confusion matrix and predictions. */
export interface RunResults extends PhaseResult {
  confusion: number[][];
  predictions: TestPrediction[];
}

export function resultsFile(runDir: string): string {
  return path.join(runDir, 'results.json');
}

export async function writeResults(runDir: string, results: RunResults): Promise<void> {
  await writeFileAtomic(resultsFile(runDir), [JSON.stringify(results, null, 1)]);
}

export function readResults(runDir: string): RunResults {
  const file = resultsFile(runDir);
  if (!fs.existsSync(file)) throw new Error(`'${runDir}' has no results.json: the run did not finish`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}
