// The scheduler interfaces: what a scheduler needs from an optimizer (LrGroups), what it offers
// (LrScheduler), its JSON state, and the options of each scheduler and of createScheduler.

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
