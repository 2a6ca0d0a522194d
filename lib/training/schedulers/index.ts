// Learning-rate schedulers in plain TypeScript that reproduce torch.optim.lr_scheduler (PyTorch 1.13)
// number for number: the same recursive ("chainable") formulas, evaluated in the same order, in doubles.
// They drive any optimizer through the small LrGroups interface, so they need no native code.

import { knownKeys, oneOf, plainObject } from '../../utils/validate';

import { CosineAnnealingLR } from './cosine';
import { FixedLR } from './fixed';
import { LinearLR } from './linear';
import { ReduceLROnPlateau } from './plateau';
import { MultiStepLR, StepLR } from './step';
import type {
  CosineAnnealingLROptions,
  LrGroups,
  LrScheduler,
  MultiStepLROptions,
  ReduceLROnPlateauOptions,
  SchedulerConfig,
  StepLROptions,
  WarmupCosineLROptions,
} from './types';
import { WarmupCosineLR } from './warmup-cosine';

export type {
  CosineAnnealingLROptions,
  JsonValue,
  LinearLROptions,
  LrGroups,
  LrScheduler,
  MultiStepLROptions,
  PlateauMode,
  ReduceLROnPlateauOptions,
  SchedulerConfig,
  SchedulerState,
  SchedulerType,
  StepLROptions,
  ThresholdMode,
  WarmupCosineLROptions,
} from './types';
export { CosineAnnealingLR, FixedLR, LinearLR, MultiStepLR, ReduceLROnPlateau, StepLR, WarmupCosineLR };

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
