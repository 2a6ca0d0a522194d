// EpochLR, the chainable epoch scheduler base (PyTorch's _LRScheduler) that StepLR, MultiStepLR,
// CosineAnnealingLR and LinearLR extend.

import { nonNegativeInteger } from '../../utils/validate';

import { checkOptimizer, finiteNumberArray, readLrs, stateObject, writeLrs } from './checks';
import type { JsonValue, LrGroups, LrScheduler, SchedulerState, SchedulerType } from './types';

/** Internal: lets WarmupCosineLR build a sub-scheduler the way SequentialLR leaves it. */
export interface SubSchedulerInit {
  baseLrs: number[];
  skipInitialStep: boolean;
}

/**
 * PyTorch's _LRScheduler: base lrs are the groups' lrs at construction, the constructor performs
 * step 0, and each step() computes the next lrs from the current ones (so outside changes to an
 * lr carry on, as in PyTorch's chainable form).
 */
export abstract class EpochLR implements LrScheduler {
  abstract readonly type: SchedulerType;
  readonly needsMetric = false;
  protected readonly optimizer: LrGroups;
  protected baseLrs: number[];
  protected lastEpoch = -1;
  protected lastLr: number[] = [];

  protected constructor(optimizer: LrGroups, init?: SubSchedulerInit) {
    this.optimizer = checkOptimizer(optimizer);
    this.baseLrs = init ? init.baseLrs.slice() : readLrs(this.optimizer);
    this.lastLr = readLrs(this.optimizer);
  }

  /** Subclasses call this at the end of their constructor, once their options are set. */
  protected initialStep(init?: SubSchedulerInit): void {
    if (!init?.skipInitialStep) this.step();
  }

  step(): void {
    this.lastEpoch += 1;
    this.apply(this.computeLr());
  }

  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  stateDict(): SchedulerState {
    return {
      scheduler: this.schedulerName(),
      ...this.optionsState(),
      lastEpoch: this.lastEpoch,
      baseLrs: this.baseLrs.slice(),
      lastLr: this.lastLr.slice(),
    };
  }

  /**
   * Restores options and progress like PyTorch's load_state_dict, and also writes lastLr back into
   * the optimizer: the recursive formulas continue from the optimizer's current lr, and a fresh
   * optimizer would otherwise hold the constructor's lrs instead of the checkpoint's.
   */
  loadStateDict(state: unknown, path = 'state'): void {
    const s = stateObject(path, state, this.schedulerName());
    const groups = this.optimizer.groupCount;
    const lastEpoch = s.lastEpoch === -1 ? -1 : nonNegativeInteger(`${path}.lastEpoch`, s.lastEpoch);
    const baseLrs = finiteNumberArray(`${path}.baseLrs`, s.baseLrs, groups);
    const lastLr = finiteNumberArray(`${path}.lastLr`, s.lastLr, groups);
    this.loadOptions(s, path);
    this.lastEpoch = lastEpoch;
    this.baseLrs = baseLrs;
    this.lastLr = lastLr;
    writeLrs(this.optimizer, lastLr);
  }

  protected apply(lrs: readonly number[]): void {
    writeLrs(this.optimizer, lrs);
    // Read back, as PyTorch does, so lastLr is what the optimizer really holds.
    this.lastLr = readLrs(this.optimizer);
  }

  protected currentLrs(): number[] {
    return readLrs(this.optimizer);
  }

  protected abstract schedulerName(): string;
  protected abstract computeLr(): number[];
  protected abstract optionsState(): Record<string, JsonValue>;
  protected abstract loadOptions(state: Record<string, unknown>, path: string): void;
}
