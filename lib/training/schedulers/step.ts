// StepLR and MultiStepLR: multiply the lr by gamma every stepSize epochs or at milestone epochs.

import { invalid, positiveInteger } from '../../utils/validate';

import { optional, optionsObject, positiveNumber } from './checks';
import { EpochLR } from './epoch-lr';
import type { JsonValue, LrGroups, MultiStepLROptions, StepLROptions } from './types';

/** Multiplies the lr by gamma every stepSize epochs. */
export class StepLR extends EpochLR {
  readonly type = 'step';
  private stepSize: number;
  private gamma: number;

  constructor(optimizer: LrGroups, options: StepLROptions) {
    super(optimizer);
    const o = optionsObject('StepLR options', options, ['stepSize', 'gamma']);
    this.stepSize = positiveInteger('stepSize', o.stepSize);
    this.gamma = optional(o.gamma, 0.1, (v) => positiveNumber('gamma', v));
    this.initialStep();
  }

  protected schedulerName(): string {
    return 'StepLR';
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return lrs;
    return lrs.map((lr) => lr * this.gamma);
  }

  protected optionsState(): Record<string, JsonValue> {
    return { stepSize: this.stepSize, gamma: this.gamma };
  }

  protected loadOptions(s: Record<string, unknown>, path: string): void {
    this.stepSize = positiveInteger(`${path}.stepSize`, s.stepSize);
    this.gamma = positiveNumber(`${path}.gamma`, s.gamma);
  }
}

/**
 * Multiplies the lr by gamma at each milestone epoch. Like PyTorch (which keeps a Counter), order
 * does not matter and a milestone listed n times multiplies by gamma ** n.
 */
export class MultiStepLR extends EpochLR {
  readonly type = 'multistep';
  private milestones: number[];
  private gamma: number;

  constructor(optimizer: LrGroups, options: MultiStepLROptions) {
    super(optimizer);
    const o = optionsObject('MultiStepLR options', options, ['milestones', 'gamma']);
    this.milestones = MultiStepLR.checkMilestones('milestones', o.milestones);
    this.gamma = optional(o.gamma, 0.1, (v) => positiveNumber('gamma', v));
    this.initialStep();
  }

  // Epoch 0 is excluded: PyTorch would apply it inside the constructor, before any training.
  private static checkMilestones(name: string, value: unknown): number[] {
    if (!Array.isArray(value) || value.length === 0) throw invalid('non-empty array of positive integers', name, value);
    return value.map((v, i) => positiveInteger(`${name}[${i}]`, v)).sort((a, b) => a - b);
  }

  protected schedulerName(): string {
    return 'MultiStepLR';
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    const hits = this.milestones.filter((m) => m === this.lastEpoch).length;
    if (hits === 0) return lrs;
    return lrs.map((lr) => lr * this.gamma ** hits);
  }

  protected optionsState(): Record<string, JsonValue> {
    return { milestones: this.milestones.slice(), gamma: this.gamma };
  }

  protected loadOptions(s: Record<string, unknown>, path: string): void {
    this.milestones = MultiStepLR.checkMilestones(`${path}.milestones`, s.milestones);
    this.gamma = positiveNumber(`${path}.gamma`, s.gamma);
  }
}
