// ReduceLROnPlateau: lowers the lr when a monitored metric stops improving, with its state's
// ±inf "no best yet" encoded for JSON.

import { invalid, nonNegativeInteger, oneOf } from '../../utils/validate';

import {
  checkOptimizer,
  finiteNumberArray,
  nonNegativeNumber,
  optional,
  optionsObject,
  readLrs,
  stateObject,
  writeLrs,
} from './checks';
import type {
  LrGroups,
  LrScheduler,
  PlateauMode,
  ReduceLROnPlateauOptions,
  SchedulerState,
  ThresholdMode,
} from './types';

/** Serialises PyTorch's ±inf "no best yet" as strings, since JSON has no Infinity. */
function encodeBest(best: number): number | string {
  return Number.isFinite(best) ? best : String(best);
}

function decodeBest(name: string, value: unknown): number {
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  throw invalid("finite number, 'Infinity' or '-Infinity'", name, value);
}

/**
 * Multiplies the lr by factor once the metric has not improved for more than `patience` epochs,
 * then waits `cooldown` epochs before counting again; lrs never go below minLr, and reductions
 * smaller than eps are skipped. Same rules and order of checks as PyTorch's ReduceLROnPlateau.
 * Metrics are taken as given: NaN never improves, so it counts as a bad epoch.
 */
export class ReduceLROnPlateau implements LrScheduler {
  readonly type = 'plateau';
  readonly needsMetric = true;
  private readonly optimizer: LrGroups;
  private mode: PlateauMode;
  private factor: number;
  private patience: number;
  private threshold: number;
  private thresholdMode: ThresholdMode;
  private cooldown: number;
  private minLrs: number[];
  private eps: number;
  private best: number;
  private numBadEpochs = 0;
  private cooldownCounter = 0;
  private lastEpoch = 0;
  private lastLr: number[];

  constructor(optimizer: LrGroups, options: ReduceLROnPlateauOptions = {}) {
    this.optimizer = checkOptimizer(optimizer);
    const o = optionsObject('ReduceLROnPlateau options', options, [
      'mode',
      'factor',
      'patience',
      'threshold',
      'thresholdMode',
      'cooldown',
      'minLr',
      'eps',
    ]);
    this.mode = optional(o.mode, 'min' as PlateauMode, (v) => oneOf('mode', v, ['min', 'max'] as const));
    this.factor = optional(o.factor, 0.1, (v) => ReduceLROnPlateau.checkFactor('factor', v));
    this.patience = optional(o.patience, 10, (v) => nonNegativeInteger('patience', v));
    this.threshold = optional(o.threshold, 1e-4, (v) => nonNegativeNumber('threshold', v));
    this.thresholdMode = optional(o.thresholdMode, 'rel' as ThresholdMode, (v) =>
      oneOf('thresholdMode', v, ['rel', 'abs'] as const),
    );
    this.cooldown = optional(o.cooldown, 0, (v) => nonNegativeInteger('cooldown', v));
    this.minLrs = this.checkMinLrs('minLr', o.minLr === undefined ? 0 : o.minLr);
    this.eps = optional(o.eps, 1e-8, (v) => nonNegativeNumber('eps', v));
    this.best = this.worst();
    this.lastLr = readLrs(this.optimizer);
  }

  private static checkFactor(name: string, value: unknown): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value >= 1) {
      throw invalid('number from 0 up to but excluding 1', name, value);
    }
    return value;
  }

  private checkMinLrs(name: string, value: unknown): number[] {
    const groups = this.optimizer.groupCount;
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return new Array<number>(groups).fill(value);
    if (Array.isArray(value) && value.length === groups) {
      return value.map((v, i) => nonNegativeNumber(`${name}[${i}]`, v));
    }
    throw invalid(`non-negative number or array of ${groups} non-negative numbers`, name, value);
  }

  private worst(): number {
    return this.mode === 'min' ? Infinity : -Infinity;
  }

  private isBetter(a: number, best: number): boolean {
    if (this.mode === 'min') {
      return this.thresholdMode === 'rel' ? a < best * (1 - this.threshold) : a < best - this.threshold;
    }
    return this.thresholdMode === 'rel' ? a > best * (this.threshold + 1) : a > best + this.threshold;
  }

  step(metric?: number): void {
    if (typeof metric !== 'number') throw invalid('number', 'metric', metric);
    this.lastEpoch += 1;
    if (this.isBetter(metric, this.best)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0; // bad epochs during cooldown do not count
    }
    if (this.numBadEpochs > this.patience) {
      this.reduceLr();
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = readLrs(this.optimizer);
  }

  private reduceLr(): void {
    for (let i = 0; i < this.optimizer.groupCount; i++) {
      const oldLr = this.optimizer.getLr(i);
      const newLr = Math.max(oldLr * this.factor, this.minLrs[i]);
      if (oldLr - newLr > this.eps) this.optimizer.setLr(i, newLr);
    }
  }

  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  stateDict(): SchedulerState {
    return {
      scheduler: 'ReduceLROnPlateau',
      mode: this.mode,
      factor: this.factor,
      patience: this.patience,
      threshold: this.threshold,
      thresholdMode: this.thresholdMode,
      cooldown: this.cooldown,
      minLrs: this.minLrs.slice(),
      eps: this.eps,
      best: encodeBest(this.best),
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastEpoch: this.lastEpoch,
      lastLr: this.lastLr.slice(),
    };
  }

  /**
   * Restores options and counters as PyTorch does, and writes lastLr back into the optimizer
   * because reductions start from the optimizer's current lr.
   */
  loadStateDict(state: unknown, path = 'state'): void {
    const s = stateObject(path, state, 'ReduceLROnPlateau');
    const groups = this.optimizer.groupCount;
    const restored = {
      mode: oneOf(`${path}.mode`, s.mode, ['min', 'max'] as const),
      factor: ReduceLROnPlateau.checkFactor(`${path}.factor`, s.factor),
      patience: nonNegativeInteger(`${path}.patience`, s.patience),
      threshold: nonNegativeNumber(`${path}.threshold`, s.threshold),
      thresholdMode: oneOf(`${path}.thresholdMode`, s.thresholdMode, ['rel', 'abs'] as const),
      cooldown: nonNegativeInteger(`${path}.cooldown`, s.cooldown),
      minLrs: this.checkMinLrs(`${path}.minLrs`, s.minLrs),
      eps: nonNegativeNumber(`${path}.eps`, s.eps),
      best: decodeBest(`${path}.best`, s.best),
      numBadEpochs: nonNegativeInteger(`${path}.numBadEpochs`, s.numBadEpochs),
      cooldownCounter: nonNegativeInteger(`${path}.cooldownCounter`, s.cooldownCounter),
      lastEpoch: nonNegativeInteger(`${path}.lastEpoch`, s.lastEpoch),
      lastLr: finiteNumberArray(`${path}.lastLr`, s.lastLr, groups),
    };
    Object.assign(this, restored);
    writeLrs(this.optimizer, this.lastLr);
  }
}
