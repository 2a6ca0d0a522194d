// What differs between the phases, in one place. feature_extract: frozen backbone (kept in eval
// mode), only the new head (and a ResNet's new attention modules) trains, optionally on cached
// features; finetune: every layer at the
// small rate, from the phase-1 checkpoint or pretrained weights; scratch: random initialisation.
// two-stage is feature_extract then finetune (see train()).
import type { Model } from '../models/model';
import type { OptimizerOptions } from '../training/optimizer';
import type { SchedulerConfig } from '../training/schedulers';
import type { Config, SinglePhase } from './config';

export type PhaseConfig = Config & { phase: SinglePhase };

export interface PhasePlan {
  /** Where the weights come from: the phase-1 checkpoint, pretrained weights, or PyTorch's random init. */
  init: 'checkpoint' | 'pretrained' | 'random';
  /**
   * Only the head trains, and the attention modules if the model has them; the rest of the backbone
   * is frozen and in eval mode (BatchNorm statistics and dropout fixed).
   */
  frozenBackbone: boolean;
  learningRate: number;
  /** The head's own rate (fine-tuning with head_lr), or null for one rate everywhere. */
  headLearningRate: number | null;
  /** Random crop, flip, colour jitter (and random erasing) on the training images. */
  augment: boolean;
  /** MixUp/CutMix on the training batches (when configured): the phases that train the whole network. */
  mixBatches: boolean;
  /** The frozen backbone runs once per image; the head trains on its cached features. */
  featureCache: boolean;
  /** Why a requested feature cache cannot be used (null when it is used or was not requested). */
  featureCacheRefused: string | null;
}

export function planPhase(config: PhaseConfig): PhasePlan {
  switch (config.phase) {
    case 'feature_extract': {
      const augment = config.feature_extract_augmentation;
      // attention modules inside the backbone train in this phase, so its features change every step
      const featureCacheRefused =
        config.feature_cache && !augment && config.attention !== 'none'
          ? `not used: the ${config.attention} attention modules inside the backbone train with the head, so its features change every step`
          : null;
      return {
        init: config.weights === 'none' ? 'random' : 'pretrained',
        frozenBackbone: true,
        learningRate: config.learning_rate,
        headLearningRate: null,
        augment,
        mixBatches: false,
        featureCache: config.feature_cache && !augment && featureCacheRefused === null,
        featureCacheRefused,
      };
    }
    case 'finetune':
      return {
        init: config.init_checkpoint ? 'checkpoint' : config.weights === 'none' ? 'random' : 'pretrained',
        frozenBackbone: false,
        learningRate: config.finetune_lr,
        headLearningRate: config.head_lr,
        augment: true,
        mixBatches: true,
        featureCache: false,
        featureCacheRefused: null,
      };
    case 'scratch':
      return { init: 'random', frozenBackbone: false, learningRate: config.learning_rate, headLearningRate: null, augment: true, mixBatches: true, featureCache: false, featureCacheRefused: null };
  }
}

/** Puts the model in the phase's state: what is frozen, train or eval mode. */
export function applyPlan(model: Model, plan: PhasePlan): void {
  if (plan.frozenBackbone) {
    const attention = model.attentionPrefixes;
    model.freeze({ except: [model.headPrefix, ...attention] });
    // new attention layers train in train mode (CBAM's BatchNorm on batch statistics); the frozen
    // BatchNorm layers stay in eval mode either way (ResNets have no dropout)
    if (attention.length > 0) model.train();
    else model.eval();
  } else {
    model.unfreeze();
    model.train();
  }
}

export function optimizerOptions(config: Config, plan: PhasePlan, model: Model): OptimizerOptions {
  return {
    type: config.optimizer,
    lr: plan.learningRate,
    weightDecay: config.weight_decay,
    ...(config.optimizer === 'sgd' ? { momentum: config.momentum } : {}),
    groups: plan.headLearningRate !== null ? [{ prefixes: [model.headPrefix], lr: plan.headLearningRate }] : undefined,
  };
}

/** The configured schedule over the phase's epochs. */
export function schedulerConfig(config: Config): SchedulerConfig {
  const epochs = Math.max(1, config.epochs);
  switch (config.scheduler) {
    case 'step':
      return { type: 'step', stepSize: Math.max(1, Math.floor(epochs / 3)), gamma: 0.1 };
    case 'cosine':
      return { type: 'cosine', tMax: epochs };
    case 'warmup_cosine':
      return epochs >= 2 ? { type: 'warmup_cosine', warmupEpochs: Math.max(1, Math.min(5, Math.floor(epochs / 10))), tMax: epochs } : { type: 'none' };
    case 'plateau':
      return { type: 'plateau', mode: 'max', patience: 3 };
    default:
      return { type: 'none' };
  }
}
