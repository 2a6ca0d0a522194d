// CosineAnnealingLR: PyTorch's recursive cosine annealing, plus the closed-form jump SequentialLR uses.

import { positiveInteger } from '../../utils/validate';

import { nonNegativeNumber, optional, optionsObject } from './checks';
import { EpochLR, type SubSchedulerInit } from './epoch-lr';
import type { CosineAnnealingLROptions, JsonValue, LrGroups } from './types';

/**
 * Cosine annealing from the base lr to etaMin over tMax epochs, computed with PyTorch's recursive
 * form (each lr derived from the previous one) rather than the closed form, because the two differ
 * in the last bits and PyTorch runs the recursion. Past tMax it keeps following the cosine back up.
 */
export class CosineAnnealingLR extends EpochLR {
  readonly type = 'cosine';
  private tMax: number;
  private etaMin: number;

  constructor(optimizer: LrGroups, options: CosineAnnealingLROptions);
  /** @internal */
  constructor(optimizer: LrGroups, options: CosineAnnealingLROptions, init: SubSchedulerInit);
  constructor(optimizer: LrGroups, options: CosineAnnealingLROptions, init?: SubSchedulerInit) {
    super(optimizer, init);
    const o = optionsObject('CosineAnnealingLR options', options, ['tMax', 'etaMin']);
    this.tMax = positiveInteger('tMax', o.tMax);
    this.etaMin = optional(o.etaMin, 0, (v) => nonNegativeNumber('etaMin', v));
    this.initialStep(init);
  }

  protected schedulerName(): string {
    return 'CosineAnnealingLR';
  }

  // PyTorch's get_lr also has a branch for `_step_count == 1 and last_epoch > 0`, reachable only
  // when constructed with last_epoch >= 0; this API always starts at -1, so it is left out.
  protected computeLr(): number[] {
    const { lastEpoch: epoch, tMax, etaMin, baseLrs } = this;
    const lrs = this.currentLrs();
    if (epoch === 0) return lrs;
    // JS `%` keeps the dividend's sign but is zero exactly when Python's modulo is.
    if ((epoch - 1 - tMax) % (2 * tMax) === 0) {
      // One epoch past a minimum the ratio below would divide by zero; PyTorch adds the step instead.
      return lrs.map((lr, i) => lr + ((baseLrs[i] - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2);
    }
    const ratio = (1 + Math.cos((Math.PI * epoch) / tMax)) / (1 + Math.cos((Math.PI * (epoch - 1)) / tMax));
    return lrs.map((lr) => ratio * (lr - etaMin) + etaMin);
  }

  /**
   * @internal PyTorch's step(epoch): jumps to `epoch` using the closed form. SequentialLR calls it
   * with 0 at a milestone, which is the only use here.
   */
  stepToEpoch(epoch: number): void {
    this.lastEpoch = epoch;
    const cosine = 1 + Math.cos((Math.PI * epoch) / this.tMax);
    this.apply(this.baseLrs.map((base) => this.etaMin + ((base - this.etaMin) * cosine) / 2));
  }

  protected optionsState(): Record<string, JsonValue> {
    return { tMax: this.tMax, etaMin: this.etaMin };
  }

  protected loadOptions(s: Record<string, unknown>, path: string): void {
    this.tMax = positiveInteger(`${path}.tMax`, s.tMax);
    this.etaMin = nonNegativeNumber(`${path}.etaMin`, s.etaMin);
  }
}
