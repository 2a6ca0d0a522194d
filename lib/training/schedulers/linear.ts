// LinearLR: scales the lr linearly between two factors of the base lr (PyTorch's recursive form).

import { positiveInteger } from '../../utils/validate';

import { optional, optionsObject, startFactorNumber, unitNumber } from './checks';
import { EpochLR } from './epoch-lr';
import type { JsonValue, LinearLROptions, LrGroups } from './types';

/**
 * Scales the lr linearly from startFactor to endFactor times the base lr over totalIters epochs,
 * using PyTorch's recursive form (the construction itself applies startFactor).
 */
export class LinearLR extends EpochLR {
  readonly type = 'linear';
  private startFactor: number;
  private endFactor: number;
  private totalIters: number;

  constructor(optimizer: LrGroups, options: LinearLROptions = {}) {
    super(optimizer);
    const o = optionsObject('LinearLR options', options, ['startFactor', 'endFactor', 'totalIters']);
    // Defaults are PyTorch's.
    this.startFactor = optional(o.startFactor, 1 / 3, (v) => startFactorNumber('startFactor', v));
    this.endFactor = optional(o.endFactor, 1, (v) => unitNumber('endFactor', v));
    this.totalIters = optional(o.totalIters, 5, (v) => positiveInteger('totalIters', v));
    this.initialStep();
  }

  protected schedulerName(): string {
    return 'LinearLR';
  }

  protected computeLr(): number[] {
    const { lastEpoch: epoch, startFactor: start, endFactor: end, totalIters: total } = this;
    const lrs = this.currentLrs();
    if (epoch === 0) return lrs.map((lr) => lr * start);
    if (epoch > total) return lrs;
    const scale = 1 + (end - start) / (total * start + (epoch - 1) * (end - start));
    return lrs.map((lr) => lr * scale);
  }

  protected optionsState(): Record<string, JsonValue> {
    return { startFactor: this.startFactor, endFactor: this.endFactor, totalIters: this.totalIters };
  }

  protected loadOptions(s: Record<string, unknown>, path: string): void {
    this.startFactor = startFactorNumber(`${path}.startFactor`, s.startFactor);
    this.endFactor = unitNumber(`${path}.endFactor`, s.endFactor);
    this.totalIters = positiveInteger(`${path}.totalIters`, s.totalIters);
  }
}
