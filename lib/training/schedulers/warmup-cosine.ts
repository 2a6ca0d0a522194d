// WarmupCosineLR: linear warm-up then cosine annealing, as PyTorch's SequentialLR of LinearLR and
// CosineAnnealingLR computes it.

import { invalid, nonNegativeInteger, positiveInteger } from '../../utils/validate';

import {
  checkOptimizer,
  finiteNumberArray,
  nonNegativeNumber,
  optional,
  optionsObject,
  readLrs,
  startFactorNumber,
  stateObject,
  writeLrs,
} from './checks';
import { CosineAnnealingLR } from './cosine';
import { LinearLR } from './linear';
import type { LrGroups, LrScheduler, SchedulerState, WarmupCosineLROptions } from './types';

/**
 * Linear warm-up then cosine annealing, defined as PyTorch 1.13's
 *   SequentialLR([LinearLR(start_factor=warmupStartFactor, end_factor=1, total_iters=warmupEpochs),
 *                 CosineAnnealingLR(T_max=tMax - warmupEpochs, eta_min=etaMin)],
 *                milestones=[warmupEpochs])
 * and reproducing what that composition really computes, quirks included:
 * - The warm-up never reaches the base lr: SequentialLR hands over at epoch warmupEpochs, when
 *   LinearLR has run epochs 0..warmupEpochs-1 only, so the last warm-up lr is
 *   base * (s + (1 - s) * (warmupEpochs - 1) / warmupEpochs).
 * - At the milestone SequentialLR calls cosine.step(0), an explicit epoch, which makes PyTorch use
 *   the closed form `eta_min + (base - eta_min) * (1 + cos(0)) / 2` instead of the recursion: the lr
 *   jumps to (about) the base lr, whatever the warm-up left. The recursion resumes from there.
 * - The cosine's base lrs are the groups' lrs from before the warm-up (PyTorch's initial_lr), and
 *   SequentialLR undoes the sub-schedulers' construction steps, so the cosine's first own step is
 *   that step(0).
 * - After tMax epochs the cosine climbs back up, as CosineAnnealingLR does.
 */
export class WarmupCosineLR implements LrScheduler {
  readonly type = 'warmup_cosine';
  readonly needsMetric = false;
  private readonly optimizer: LrGroups;
  private warmupEpochs: number;
  private warmupStartFactor: number;
  private tMax: number;
  private etaMin: number;
  private readonly warmup: LinearLR;
  private readonly cosine: CosineAnnealingLR;
  private lastEpoch = 0;
  private lastLr: number[];

  constructor(optimizer: LrGroups, options: WarmupCosineLROptions) {
    this.optimizer = checkOptimizer(optimizer);
    const o = optionsObject('WarmupCosineLR options', options, ['warmupEpochs', 'warmupStartFactor', 'tMax', 'etaMin']);
    this.warmupEpochs = positiveInteger('warmupEpochs', o.warmupEpochs);
    this.warmupStartFactor = optional(o.warmupStartFactor, 1 / 3, (v) => startFactorNumber('warmupStartFactor', v));
    this.tMax = WarmupCosineLR.checkTMax('tMax', o.tMax, this.warmupEpochs);
    this.etaMin = optional(o.etaMin, 0, (v) => nonNegativeNumber('etaMin', v));
    // LinearLR's construction step is SequentialLR's epoch 0; the cosine waits, as SequentialLR leaves it.
    const baseLrs = readLrs(this.optimizer);
    this.warmup = new LinearLR(this.optimizer, {
      startFactor: this.warmupStartFactor,
      endFactor: 1,
      totalIters: this.warmupEpochs,
    });
    this.cosine = new CosineAnnealingLR(
      this.optimizer,
      { tMax: this.tMax - this.warmupEpochs, etaMin: this.etaMin },
      { baseLrs, skipInitialStep: true },
    );
    this.lastLr = this.warmup.getLastLr();
  }

  // The cosine phase needs at least one epoch (PyTorch would divide by T_max = 0).
  private static checkTMax(name: string, value: unknown, warmupEpochs: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= warmupEpochs) {
      throw invalid(`integer greater than warmupEpochs (${warmupEpochs})`, name, value);
    }
    return value;
  }

  step(): void {
    this.lastEpoch += 1;
    if (this.lastEpoch < this.warmupEpochs) this.warmup.step();
    else if (this.lastEpoch === this.warmupEpochs) this.cosine.stepToEpoch(0);
    else this.cosine.step();
    this.lastLr = readLrs(this.optimizer);
  }

  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  stateDict(): SchedulerState {
    return {
      scheduler: 'WarmupCosineLR',
      warmupEpochs: this.warmupEpochs,
      warmupStartFactor: this.warmupStartFactor,
      tMax: this.tMax,
      etaMin: this.etaMin,
      lastEpoch: this.lastEpoch,
      lastLr: this.lastLr.slice(),
      warmup: this.warmup.stateDict(),
      cosine: this.cosine.stateDict(),
    };
  }

  /** Restores progress (and options, as PyTorch does) and writes lastLr back into the optimizer. */
  loadStateDict(state: unknown, path = 'state'): void {
    const s = stateObject(path, state, 'WarmupCosineLR');
    const warmupEpochs = positiveInteger(`${path}.warmupEpochs`, s.warmupEpochs);
    const warmupStartFactor = startFactorNumber(`${path}.warmupStartFactor`, s.warmupStartFactor);
    const tMax = WarmupCosineLR.checkTMax(`${path}.tMax`, s.tMax, warmupEpochs);
    const etaMin = nonNegativeNumber(`${path}.etaMin`, s.etaMin);
    const lastEpoch = nonNegativeInteger(`${path}.lastEpoch`, s.lastEpoch);
    const lastLr = finiteNumberArray(`${path}.lastLr`, s.lastLr, this.optimizer.groupCount);
    this.warmup.loadStateDict(s.warmup, `${path}.warmup`);
    this.cosine.loadStateDict(s.cosine, `${path}.cosine`);
    Object.assign(this, { warmupEpochs, warmupStartFactor, tMax, etaMin, lastEpoch, lastLr });
    // The sub-schedulers wrote their own last lrs; the sequence's is the one in force.
    writeLrs(this.optimizer, lastLr);
  }
}
