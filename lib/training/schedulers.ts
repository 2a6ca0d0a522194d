// Learning-rate schedulers in plain TypeScript that reproduce torch.optim.lr_scheduler (PyTorch 1.13)
// number for number: the same recursive ("chainable") formulas, evaluated in the same order, in doubles.
// They drive any optimizer through the small LrGroups interface, so they need no native code.

import {
  finiteNumber,
  invalid,
  knownKeys,
  nonNegativeInteger,
  oneOf,
  plainObject,
  positiveInteger,
} from '../utils/validate';

/** What a scheduler needs from an optimizer: read and write the lr of each parameter group. */
export interface LrGroups {
  getLr(group: number): number;
  setLr(group: number, lr: number): void;
  readonly groupCount: number;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A scheduler's state: plain JSON, tagged with the scheduler's class name. */
export interface SchedulerState {
  scheduler: string;
  [key: string]: JsonValue;
}

export type SchedulerType = 'step' | 'multistep' | 'cosine' | 'linear' | 'warmup_cosine' | 'plateau' | 'none';

export interface LrScheduler {
  readonly type: SchedulerType;
  /** True when step() needs the monitored metric (ReduceLROnPlateau). */
  readonly needsMetric: boolean;
  /** Advances one epoch; call it after the epoch's optimizer steps, as in PyTorch. */
  step(metric?: number): void;
  /** The lr of each group as left by the latest step (or by construction). */
  getLastLr(): number[];
  stateDict(): SchedulerState;
  loadStateDict(state: unknown): void;
}

export interface StepLROptions {
  stepSize: number;
  gamma?: number;
}

export interface MultiStepLROptions {
  milestones: number[];
  gamma?: number;
}

export interface CosineAnnealingLROptions {
  tMax: number;
  etaMin?: number;
}

export interface LinearLROptions {
  startFactor?: number;
  endFactor?: number;
  totalIters?: number;
}

export interface WarmupCosineLROptions {
  warmupEpochs: number;
  /** Fraction of the base lr used in the first warm-up epoch. */
  warmupStartFactor?: number;
  /** Total epochs, warm-up included, until the lr reaches etaMin. */
  tMax: number;
  etaMin?: number;
}

export type PlateauMode = 'min' | 'max';
export type ThresholdMode = 'rel' | 'abs';

export interface ReduceLROnPlateauOptions {
  mode?: PlateauMode;
  factor?: number;
  patience?: number;
  threshold?: number;
  thresholdMode?: ThresholdMode;
  cooldown?: number;
  minLr?: number | number[];
  eps?: number;
}

export type SchedulerConfig =
  | ({ type: 'step' } & StepLROptions)
  | ({ type: 'multistep' } & MultiStepLROptions)
  | ({ type: 'cosine' } & CosineAnnealingLROptions)
  | ({ type: 'warmup_cosine' } & WarmupCosineLROptions)
  | ({ type: 'plateau' } & ReduceLROnPlateauOptions)
  | { type: 'none' };

// ---------------------------------------------------------------------------------------------
// Validation helpers beyond lib/utils/validate.ts, in the same "Expected X for name but received Y" style.

function positiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalid('positive number', name, value);
  return value;
}

function nonNegativeNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid('non-negative number', name, value);
  }
  return value;
}

// PyTorch accepts 0 but then divides by zero on the next step, so the lower bound is excluded.
function startFactorNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) {
    throw invalid('number greater than 0 and at most 1', name, value);
  }
  return value;
}

function unitNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw invalid('number between 0 and 1', name, value);
  }
  return value;
}

function optional<T>(value: unknown, fallback: T, check: (v: unknown) => T): T {
  return value === undefined ? fallback : check(value);
}

function finiteNumberArray(name: string, value: unknown, length: number): number[] {
  if (!Array.isArray(value) || value.length !== length) {
    throw invalid(`array of ${length} finite numbers`, name, value);
  }
  return value.map((v, i) => finiteNumber(`${name}[${i}]`, v));
}

function optionsObject(name: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  const options = plainObject(name, value);
  knownKeys(name, options, known);
  return options;
}

function checkOptimizer(optimizer: unknown): LrGroups {
  const o = optimizer as Partial<LrGroups> | null | undefined;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.getLr !== 'function' ||
    typeof o.setLr !== 'function' ||
    typeof o.groupCount !== 'number'
  ) {
    throw invalid('optimizer with getLr, setLr and groupCount', 'optimizer', optimizer);
  }
  positiveInteger('optimizer.groupCount', o.groupCount);
  return o as LrGroups;
}

function readLrs(optimizer: LrGroups): number[] {
  return Array.from({ length: optimizer.groupCount }, (_, i) => finiteNumber(`lr of group ${i}`, optimizer.getLr(i)));
}

function writeLrs(optimizer: LrGroups, lrs: readonly number[]): void {
  lrs.forEach((lr, i) => optimizer.setLr(i, lr));
}

function stateObject(path: string, state: unknown, scheduler: string): Record<string, unknown> {
  const s = plainObject(path, state);
  oneOf(`${path}.scheduler`, s.scheduler, [scheduler]);
  return s;
}

// ---------------------------------------------------------------------------------------------

/** Internal: lets WarmupCosineLR build a sub-scheduler the way SequentialLR leaves it. */
interface SubSchedulerInit {
  baseLrs: number[];
  skipInitialStep: boolean;
}

/**
 * PyTorch's _LRScheduler: base lrs are the groups' lrs at construction, the constructor performs
 * step 0, and each step() computes the next lrs from the current ones (so outside changes to an
 * lr carry on, as in PyTorch's chainable form).
 */
abstract class EpochLR implements LrScheduler {
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

const CONFIG_KEYS: Record<SchedulerConfig['type'], readonly string[]> = {
  step: ['stepSize', 'gamma'],
  multistep: ['milestones', 'gamma'],
  cosine: ['tMax', 'etaMin'],
  warmup_cosine: ['warmupEpochs', 'warmupStartFactor', 'tMax', 'etaMin'],
  plateau: ['mode', 'factor', 'patience', 'threshold', 'thresholdMode', 'cooldown', 'minLr', 'eps'],
  none: [],
};

/** Builds the scheduler a config names, e.g. from an experiment's YAML. */
export function createScheduler(optimizer: LrGroups, config: SchedulerConfig): LrScheduler {
  const c = plainObject('scheduler config', config);
  const type = oneOf('scheduler type', c.type, Object.keys(CONFIG_KEYS) as SchedulerConfig['type'][]);
  knownKeys('scheduler config', c, ['type', ...CONFIG_KEYS[type]]);
  const { type: _type, ...options } = c;
  switch (type) {
    case 'step':
      return new StepLR(optimizer, options as unknown as StepLROptions);
    case 'multistep':
      return new MultiStepLR(optimizer, options as unknown as MultiStepLROptions);
    case 'cosine':
      return new CosineAnnealingLR(optimizer, options as unknown as CosineAnnealingLROptions);
    case 'warmup_cosine':
      return new WarmupCosineLR(optimizer, options as unknown as WarmupCosineLROptions);
    case 'plateau':
      return new ReduceLROnPlateau(optimizer, options as ReduceLROnPlateauOptions);
    case 'none':
      return new FixedLR(optimizer);
  }
}
