// FixedLR: the 'none' schedule, which leaves the lrs alone.

import { nonNegativeInteger } from '../../utils/validate';

import { checkOptimizer, finiteNumberArray, readLrs, stateObject, writeLrs } from './checks';
import type { LrGroups, LrScheduler, SchedulerState } from './types';

/**
 * The 'none' schedule: leaves the lrs alone, so training code can always call step(). (Not PyTorch's
 * ConstantLR, which scales the lr for a while.)
 */
export class FixedLR implements LrScheduler {
  readonly type = 'none';
  readonly needsMetric = false;
  private readonly optimizer: LrGroups;
  private lastEpoch = 0;
  private lastLr: number[];

  constructor(optimizer: LrGroups) {
    this.optimizer = checkOptimizer(optimizer);
    this.lastLr = readLrs(this.optimizer);
  }

  step(): void {
    this.lastEpoch += 1;
    this.lastLr = readLrs(this.optimizer);
  }

  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  stateDict(): SchedulerState {
    return { scheduler: 'FixedLR', lastEpoch: this.lastEpoch, lastLr: this.lastLr.slice() };
  }

  loadStateDict(state: unknown, path = 'state'): void {
    const s = stateObject(path, state, 'FixedLR');
    this.lastEpoch = nonNegativeInteger(`${path}.lastEpoch`, s.lastEpoch);
    this.lastLr = finiteNumberArray(`${path}.lastLr`, s.lastLr, this.optimizer.groupCount);
    writeLrs(this.optimizer, this.lastLr);
  }
}
