// A phase's logs: metrics.jsonl (the report's curves) and a TensorBoard event file, per epoch,
// per 50 steps for gradient norms, and once for the test. Only the writing process has one.
import { MetricsLog } from '../report/metrics-log';
import { EventWriter } from '../report/tensorboard';
import type { GradStat } from '../training/steps';
import type { SinglePhase } from './config';

export interface EpochSummary {
  phase: SinglePhase;
  epoch: number;
  step: number;
  train: { loss: number; top1: number; top5: number };
  /** The validation part's figures, or (no validation part) the test part's, watched only. */
  val: { loss: number; top1: number; top5: number };
  /** True when `val` holds test figures kept for the curves, used for no decision. */
  testMonitor: boolean;
  lr: number;
  imagesPerSecond: number;
}

export class RunLog {
  private readonly metrics: MetricsLog;
  private readonly events: EventWriter;

  constructor(logDir: string) {
    this.metrics = new MetricsLog(logDir);
    this.events = new EventWriter(logDir);
  }

  gradients(phase: SinglePhase, step: number, stats: GradStat[]): void {
    this.metrics.log({ kind: 'grad_norm', phase, step, norms: Object.fromEntries(stats.map((s) => [s.name, s.norm])) });
    for (const s of stats) this.events.addHistogram(`gradients/${s.name}`, histogramOf(s), step);
  }

  epoch(e: EpochSummary): void {
    const common = { phase: e.phase, epoch: e.epoch, step: e.step };
    this.metrics.log({ ...common, split: 'train', ...e.train, lr: e.lr, imagesPerSecond: e.imagesPerSecond });
    const held = e.testMonitor ? 'test' : 'val';
    this.metrics.log({ ...common, split: held, ...e.val });
    const tag = e.testMonitor ? 'test_monitor' : 'val';
    for (const [name, value] of [
      ['loss/train', e.train.loss], [`loss/${tag}`, e.val.loss], ['top1/train', e.train.top1], [`top1/${tag}`, e.val.top1],
      ['top5/train', e.train.top5], [`top5/${tag}`, e.val.top5], ['lr', e.lr], ['images_per_second', e.imagesPerSecond],
    ] as const) this.events.addScalar(name, value, e.step);
    this.events.flush();
  }

  test(phase: SinglePhase, epoch: number, step: number, test: { loss: number; top1: number; top5: number }): void {
    this.metrics.log({ phase, epoch, step, split: 'test', loss: test.loss, top1: test.top1, top5: test.top5 });
  }

  close(): void {
    this.metrics.close();
    this.events.close();
  }
}

/** TensorBoard's histogram of one layer's gradient, from the step's fixed-bin counts. */
function histogramOf(stat: GradStat) {
  const bins = stat.histogram.length;
  const width = (stat.max - stat.min) / bins || 1;
  const num = stat.histogram.reduce((a, b) => a + b, 0);
  return {
    min: stat.min,
    max: stat.max,
    num,
    sum: 0,
    sumSquares: stat.norm * stat.norm,
    bucketLimits: Array.from(stat.histogram, (_, i) => stat.min + width * (i + 1)),
    buckets: Array.from(stat.histogram),
  };
}
