// Loss scaling for float16 autocast, as torch.cuda.amp.GradScaler: the loss is multiplied by the
// scale before backward so small gradients survive fp16; a step whose gradients overflow is skipped
// and the scale halved; after `growthInterval` good steps the scale doubles.
import { knownKeys, nonNegativeInteger, numberInRange, plainObject, positiveInteger } from '../utils/validate';

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
}

export class GradScaler {
  scale: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  private goodSteps = 0;

  constructor(options: GradScalerOptions = {}) {
    knownKeys('GradScaler options', plainObject('options', options), ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval']);
    this.scale = numberInRange('initScale', options.initScale ?? 65536, 1e-30, 1e30);
    this.growthFactor = numberInRange('growthFactor', options.growthFactor ?? 2, 1, 1e3);
    this.backoffFactor = numberInRange('backoffFactor', options.backoffFactor ?? 0.5, 1e-6, 1);
    this.growthInterval = positiveInteger('growthInterval', options.growthInterval ?? 2000);
  }

  /** After each step: `skipped` when its gradients were not finite. */
  update(skipped: boolean): void {
    if (skipped) {
      this.scale *= this.backoffFactor;
      this.goodSteps = 0;
    } else if (++this.goodSteps >= this.growthInterval) {
      this.scale *= this.growthFactor;
      this.goodSteps = 0;
    }
  }

  stateDict(): { scale: number; goodSteps: number } {
    return { scale: this.scale, goodSteps: this.goodSteps };
  }

  loadStateDict(state: { scale: number; goodSteps: number }): void {
    this.scale = numberInRange('scale', state.scale, 1e-30, 1e30);
    this.goodSteps = nonNegativeInteger('goodSteps', state.goodSteps);
  }
}
