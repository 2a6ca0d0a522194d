import {
  CosineAnnealingLR,
  createScheduler,
  LinearLR,
  LrGroups,
  LrScheduler,
  MultiStepLR,
  ReduceLROnPlateau,
  SchedulerConfig,
  StepLR,
  WarmupCosineLR,
} from '../../lib/training/schedulers';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

/** Stands in for the native optimizer: one plain double per parameter group. */
class FakeOptimizer implements LrGroups {
  readonly lrs: number[];
  constructor(lrs: number[] = [0.1, 0.01]) {
    this.lrs = lrs.slice();
  }
  get groupCount(): number {
    return this.lrs.length;
  }
  getLr(group: number): number {
    return this.lrs[group];
  }
  setLr(group: number, lr: number): void {
    this.lrs[group] = lr;
  }
}

type Case = {
  name: string;
  /** 'linear' is not a factory type, so it is built with `new LinearLR`. */
  config: SchedulerConfig | ({ type: 'linear' } & Record<string, unknown>);
  epochs: number;
  /** ReduceLROnPlateau's metric for each step. */
  metrics?: number[];
  /** The TS code performs the very same double operations as PyTorch, so results must be equal. */
  exact: boolean;
};

// Plateau metric sequences: improvements, stalls, improvements smaller than the threshold, and
// recoveries during cooldown.
const falling = [1, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.84999, 0.85, 0.8, 0.79995, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7,
  0.7, 0.69, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6];
const rising = [0.5, 0.6, 0.6, 0.604, 0.61, 0.61, 0.62, 0.62, 0.62, 0.7, 0.705, 0.7, 0.8, 0.8, 0.8, 0.8, 0.81, 0.9,
  0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96];
const noisy = [2, 1.9, 1.96, 1.87, 1.9, 1.9, 1.84, 1.9, 1.9, 1.9, 1.7, 1.72, 1.71, 1.73, 1.6, 1.66, 1.62, 1.63, 1.64,
  1.65, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5];

const cases: Case[] = [
  { name: 'step size 3', config: { type: 'step', stepSize: 3 }, epochs: 30, exact: true },
  { name: 'step size 7 gamma 0.5', config: { type: 'step', stepSize: 7, gamma: 0.5 }, epochs: 30, exact: true },
  { name: 'step size 1 gamma 0.9', config: { type: 'step', stepSize: 1, gamma: 0.9 }, epochs: 30, exact: true },
  { name: 'multistep', config: { type: 'multistep', milestones: [5, 12, 20] }, epochs: 30, exact: true },
  {
    name: 'multistep unsorted with a repeat',
    config: { type: 'multistep', milestones: [20, 5, 10, 10], gamma: 0.3 },
    epochs: 30,
    exact: false,
  },
  { name: 'cosine tMax 10 past the end', config: { type: 'cosine', tMax: 10 }, epochs: 30, exact: false },
  { name: 'cosine tMax 7 etaMin', config: { type: 'cosine', tMax: 7, etaMin: 0.001 }, epochs: 30, exact: false },
  { name: 'cosine tMax 30 etaMin', config: { type: 'cosine', tMax: 30, etaMin: 1e-4 }, epochs: 30, exact: false },
  { name: 'cosine tMax 1', config: { type: 'cosine', tMax: 1 }, epochs: 30, exact: false },
  { name: 'cosine tMax 100', config: { type: 'cosine', tMax: 100, etaMin: 1e-5 }, epochs: 120, exact: false },
  { name: 'linear defaults', config: { type: 'linear' }, epochs: 30, exact: true },
  { name: 'linear 0.25 over 4', config: { type: 'linear', startFactor: 0.25, totalIters: 4 }, epochs: 30, exact: true },
  {
    name: 'linear decreasing',
    config: { type: 'linear', startFactor: 0.5, endFactor: 0.1, totalIters: 10 },
    epochs: 30,
    exact: true,
  },
  {
    name: 'warmup 5 cosine 30',
    config: { type: 'warmup_cosine', warmupEpochs: 5, warmupStartFactor: 0.1, tMax: 30 },
    epochs: 30,
    exact: false,
  },
  {
    name: 'warmup 3 cosine 20 etaMin, past the end',
    config: { type: 'warmup_cosine', warmupEpochs: 3, warmupStartFactor: 0.5, tMax: 20, etaMin: 1e-4 },
    epochs: 30,
    exact: false,
  },
  {
    name: 'warmup 1 cosine 2',
    config: { type: 'warmup_cosine', warmupEpochs: 1, warmupStartFactor: 0.01, tMax: 2, etaMin: 0.001 },
    epochs: 30,
    exact: false,
  },
  {
    name: 'warmup default start factor',
    config: { type: 'warmup_cosine', warmupEpochs: 4, tMax: 25 },
    epochs: 30,
    exact: false,
  },
  { name: 'plateau defaults', config: { type: 'plateau' }, epochs: 30, metrics: noisy, exact: true },
  {
    name: 'plateau min rel patience 2',
    config: { type: 'plateau', patience: 2 },
    epochs: 30,
    metrics: falling,
    exact: true,
  },
  {
    name: 'plateau max rel threshold cooldown',
    config: { type: 'plateau', mode: 'max', factor: 0.5, patience: 1, threshold: 0.01, cooldown: 2 },
    epochs: 30,
    metrics: rising,
    exact: true,
  },
  {
    name: 'plateau min abs with per-group floor',
    config: {
      type: 'plateau',
      factor: 0.3,
      patience: 0,
      threshold: 0.05,
      thresholdMode: 'abs',
      cooldown: 3,
      minLr: [0.02, 0.001],
    },
    epochs: 30,
    metrics: noisy,
    exact: true,
  },
  {
    name: 'plateau max abs with large eps',
    config: { type: 'plateau', mode: 'max', thresholdMode: 'abs', threshold: 0.001, patience: 1, minLr: 1e-4, eps: 1e-3 },
    epochs: 30,
    metrics: rising,
    exact: true,
  },
];

function build(optimizer: LrGroups, config: Case['config']): LrScheduler {
  if (config.type === 'linear') {
    const { type: _type, ...options } = config;
    return new LinearLR(optimizer, options);
  }
  return createScheduler(optimizer, config as SchedulerConfig);
}

/** The lrs after construction, then after each step: the same trace the Python script prints. */
function trace(c: Case, from?: { steps: number; state: unknown }): number[][] {
  const optimizer = new FakeOptimizer();
  const scheduler = build(optimizer, c.config);
  const lrs = [scheduler.getLastLr()];
  let epoch = 0;
  if (from) {
    scheduler.loadStateDict(from.state);
    epoch = from.steps;
  }
  for (; epoch < c.epochs; epoch++) {
    if (scheduler.needsMetric) scheduler.step(c.metrics![epoch]);
    else scheduler.step();
    expect(scheduler.getLastLr()).toEqual(optimizer.lrs);
    lrs.push(scheduler.getLastLr());
  }
  return lrs;
}

const PYTHON_SCRIPT = String.raw`
import json, sys, warnings
import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import (StepLR, MultiStepLR, CosineAnnealingLR, LinearLR, SequentialLR,
                                      ReduceLROnPlateau)

# SequentialLR's step(0) at the milestone and stepping without gradients warn; the numbers are what matter.
warnings.simplefilter('ignore')

def kwargs(options, names):
    return {names[k]: v for k, v in options.items() if k in names}

def build(opt, config):
    kind = config['type']
    options = {k: v for k, v in config.items() if k != 'type'}
    if kind == 'step':
        return StepLR(opt, **kwargs(options, {'stepSize': 'step_size', 'gamma': 'gamma'}))
    if kind == 'multistep':
        return MultiStepLR(opt, **kwargs(options, {'milestones': 'milestones', 'gamma': 'gamma'}))
    if kind == 'cosine':
        return CosineAnnealingLR(opt, **kwargs(options, {'tMax': 'T_max', 'etaMin': 'eta_min'}))
    if kind == 'linear':
        return LinearLR(opt, **kwargs(options, {'startFactor': 'start_factor', 'endFactor': 'end_factor',
                                                'totalIters': 'total_iters'}))
    if kind == 'warmup_cosine':
        warmup = options['warmupEpochs']
        linear = LinearLR(opt, end_factor=1.0, total_iters=warmup,
                          **kwargs(options, {'warmupStartFactor': 'start_factor'}))
        cosine = CosineAnnealingLR(opt, T_max=options['tMax'] - warmup, **kwargs(options, {'etaMin': 'eta_min'}))
        return SequentialLR(opt, [linear, cosine], milestones=[warmup])
    if kind == 'plateau':
        return ReduceLROnPlateau(opt, **kwargs(options, {
            'mode': 'mode', 'factor': 'factor', 'patience': 'patience', 'threshold': 'threshold',
            'thresholdMode': 'threshold_mode', 'cooldown': 'cooldown', 'minLr': 'min_lr', 'eps': 'eps'}))
    raise ValueError(kind)

results = {}
for case in json.loads(sys.argv[1]):
    params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    opt = SGD([{'params': [params[0]], 'lr': 0.1}, {'params': [params[1]], 'lr': 0.01}], lr=0.1)
    sched = build(opt, case['config'])
    lrs = [[g['lr'] for g in opt.param_groups]]
    for epoch in range(case['epochs']):
        opt.step()
        if case['config']['type'] == 'plateau':
            sched.step(case['metrics'][epoch])
        else:
            sched.step()
        lrs.append([g['lr'] for g in opt.param_groups])
    results[case['name']] = {'torch': torch.__version__, 'lrs': lrs}
print(json.dumps(results))
`;

function relativeError(actual: number, expected: number): number {
  if (expected === 0) return actual === 0 ? 0 : Infinity;
  return Math.abs(actual - expected) / Math.abs(expected);
}

const torch = prerequisite('PyTorch reference for the schedulers', torchPythonUnavailableReason());

torch.describe('schedulers match torch.optim.lr_scheduler (PyTorch 1.13)', () => {
  let reference: Record<string, { torch: string; lrs: number[][] }>;
  const worstByType = new Map<string, number>();

  beforeAll(() => {
    assertPresent(torch);
    reference = JSON.parse(runPython(PYTHON_SCRIPT, [JSON.stringify(cases)]));
  });

  afterAll(() => {
    const lines = [...worstByType].map(([type, error]) => `  ${type}: ${error.toExponential(2)}`);
    console.log(`Max relative error against PyTorch ${Object.values(reference ?? {})[0]?.torch}:\n${lines.join('\n')}`);
  });

  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const expected = reference[c.name].lrs;
    const actual = trace(c);
    expect(actual).toHaveLength(expected.length);
    let worst = 0;
    actual.forEach((lrs, epoch) =>
      lrs.forEach((lr, group) => {
        const error = relativeError(lr, expected[epoch][group]);
        if (!(error <= 1e-12)) {
          throw new Error(`epoch ${epoch} group ${group}: ${lr} vs PyTorch ${expected[epoch][group]} (rel ${error})`);
        }
        worst = Math.max(worst, error);
      }),
    );
    if (c.exact) expect(actual).toEqual(expected);
    worstByType.set(c.config.type, Math.max(worstByType.get(c.config.type) ?? 0, worst));
  });

  test.each(cases.filter((c) => c.config.type === 'warmup_cosine').map((c) => [c.name, c] as const))(
    '%s: our lrs equal SequentialLR’s on each side of the warm-up → cosine handover',
    (_name, c) => {
      const warmup = (c.config as { warmupEpochs: number }).warmupEpochs;
      const expected = reference[c.name].lrs;
      const ours = trace(c);
      // PyTorch's own numbers show the handover this test is about: the last warm-up lr is below
      // the base lr, and at the milestone SequentialLR's step(0) puts the cosine at its closed
      // form for epoch 0, the base lr (0.1 and 0.01).
      expect(expected[warmup - 1][0]).toBeLessThan(0.1);
      expect(expected[warmup][0]).toBeCloseTo(0.1, 15);
      expect(expected[warmup][1]).toBeCloseTo(0.01, 15);
      const around = Array.from({ length: 5 }, (_, i) => warmup - 2 + i).filter((epoch) => epoch >= 0);
      for (const epoch of around) {
        for (const group of [0, 1]) {
          const error = relativeError(ours[epoch][group], expected[epoch][group]);
          if (!(error <= 1e-12)) {
            throw new Error(`epoch ${epoch} group ${group}: ours ${ours[epoch][group]} vs PyTorch ${expected[epoch][group]} (rel ${error})`);
          }
        }
      }
    },
  );
});

describe('stateDict / loadStateDict', () => {
  test.each(cases.map((c) => [c.name, c] as const))('%s resumes identically', (_name, c) => {
    const full = trace(c);
    for (const steps of [0, 4, 5, 11, 17]) {
      const optimizer = new FakeOptimizer();
      const scheduler = build(optimizer, c.config);
      for (let epoch = 0; epoch < steps; epoch++) {
        if (scheduler.needsMetric) scheduler.step(c.metrics![epoch]);
        else scheduler.step();
      }
      // Through JSON, as a checkpoint file would carry it.
      const state = JSON.parse(JSON.stringify(scheduler.stateDict()));
      expect(state).toEqual(scheduler.stateDict());
      const resumed = trace(c, { steps, state });
      expect(resumed.slice(1)).toEqual(full.slice(steps + 1));
    }
  });

  test('plateau state keeps an unset best through JSON', () => {
    const scheduler = new ReduceLROnPlateau(new FakeOptimizer(), { mode: 'max' });
    const state = JSON.parse(JSON.stringify(scheduler.stateDict()));
    expect(state.best).toBe('-Infinity');
    const restored = new ReduceLROnPlateau(new FakeOptimizer());
    restored.loadStateDict(state);
    expect(restored.stateDict()).toEqual(scheduler.stateDict());
  });

  test('loading restores the lrs into a fresh optimizer', () => {
    const scheduler = new StepLR(new FakeOptimizer(), { stepSize: 2 });
    for (let i = 0; i < 5; i++) scheduler.step();
    const optimizer = new FakeOptimizer();
    new StepLR(optimizer, { stepSize: 2 }).loadStateDict(scheduler.stateDict());
    expect(optimizer.lrs).toEqual(scheduler.getLastLr());
  });

  test('rejects state from another scheduler or malformed state', () => {
    const cosine = new CosineAnnealingLR(new FakeOptimizer(), { tMax: 5 });
    const step = new StepLR(new FakeOptimizer(), { stepSize: 2 });
    expect(() => cosine.loadStateDict(step.stateDict())).toThrow(
      "Expected one of 'CosineAnnealingLR' for state.scheduler but received 'StepLR' of type string",
    );
    expect(() => cosine.loadStateDict({ ...cosine.stateDict(), baseLrs: [0.1] })).toThrow(
      'Expected array of 2 finite numbers for state.baseLrs but received an array of length 1',
    );
    expect(() => cosine.loadStateDict('nope')).toThrow("Expected object for state but received 'nope' of type string");
    const warmup = new WarmupCosineLR(new FakeOptimizer(), { warmupEpochs: 2, tMax: 6 });
    expect(() => warmup.loadStateDict({ ...warmup.stateDict(), cosine: step.stateDict() })).toThrow(
      "Expected one of 'CosineAnnealingLR' for state.cosine.scheduler but received 'StepLR' of type string",
    );
  });
});

describe('option validation', () => {
  const optimizer = () => new FakeOptimizer();
  const bad: [string, () => unknown, string][] = [
    ['stepSize 0', () => new StepLR(optimizer(), { stepSize: 0 }), 'Expected positive integer for stepSize but received 0 of type number'],
    [
      'missing stepSize',
      () => new StepLR(optimizer(), {} as never),
      'Expected positive integer for stepSize but received undefined of type undefined',
    ],
    ['negative gamma', () => new StepLR(optimizer(), { stepSize: 2, gamma: -1 }), 'Expected positive number for gamma but received -1 of type number'],
    [
      'empty milestones',
      () => new MultiStepLR(optimizer(), { milestones: [] }),
      'Expected non-empty array of positive integers for milestones but received an array of length 0',
    ],
    [
      'milestone 0',
      () => new MultiStepLR(optimizer(), { milestones: [3, 0] }),
      'Expected positive integer for milestones[1] but received 0 of type number',
    ],
    ['fractional tMax', () => new CosineAnnealingLR(optimizer(), { tMax: 2.5 }), 'Expected positive integer for tMax but received 2.5 of type number'],
    [
      'negative etaMin',
      () => new CosineAnnealingLR(optimizer(), { tMax: 5, etaMin: -1 }),
      'Expected non-negative number for etaMin but received -1 of type number',
    ],
    [
      'startFactor 0',
      () => new LinearLR(optimizer(), { startFactor: 0 }),
      'Expected number greater than 0 and at most 1 for startFactor but received 0 of type number',
    ],
    [
      'endFactor 2',
      () => new LinearLR(optimizer(), { endFactor: 2 }),
      'Expected number between 0 and 1 for endFactor but received 2 of type number',
    ],
    [
      'warm-up as long as tMax',
      () => new WarmupCosineLR(optimizer(), { warmupEpochs: 5, tMax: 5 }),
      'Expected integer greater than warmupEpochs (5) for tMax but received 5 of type number',
    ],
    [
      'no warm-up',
      () => new WarmupCosineLR(optimizer(), { warmupEpochs: 0, tMax: 5 }),
      'Expected positive integer for warmupEpochs but received 0 of type number',
    ],
    [
      'plateau mode',
      () => new ReduceLROnPlateau(optimizer(), { mode: 'minimum' as never }),
      "Expected one of 'min', 'max' for mode but received 'minimum' of type string",
    ],
    [
      'plateau factor 1',
      () => new ReduceLROnPlateau(optimizer(), { factor: 1 }),
      'Expected number from 0 up to but excluding 1 for factor but received 1 of type number',
    ],
    [
      'plateau thresholdMode',
      () => new ReduceLROnPlateau(optimizer(), { thresholdMode: 'relative' as never }),
      "Expected one of 'rel', 'abs' for thresholdMode but received 'relative' of type string",
    ],
    [
      'plateau patience',
      () => new ReduceLROnPlateau(optimizer(), { patience: -1 }),
      'Expected non-negative integer for patience but received -1 of type number',
    ],
    [
      'plateau minLr length',
      () => new ReduceLROnPlateau(optimizer(), { minLr: [0.1] }),
      'Expected non-negative number or array of 2 non-negative numbers for minLr but received an array of length 1',
    ],
    [
      'plateau minLr element',
      () => new ReduceLROnPlateau(optimizer(), { minLr: [0.1, -1] }),
      'Expected non-negative number for minLr[1] but received -1 of type number',
    ],
    [
      'plateau metric',
      () => new ReduceLROnPlateau(optimizer()).step('0.5' as never),
      "Expected number for metric but received '0.5' of type string",
    ],
    [
      'plateau missing metric',
      () => new ReduceLROnPlateau(optimizer()).step(),
      'Expected number for metric but received undefined of type undefined',
    ],
    [
      'factory type',
      () => createScheduler(optimizer(), { type: 'cosin' } as never),
      "Expected one of 'step', 'multistep', 'cosine', 'warmup_cosine', 'plateau', 'none' for scheduler type but received 'cosin' of type string",
    ],
    [
      'factory misspelt option',
      () => createScheduler(optimizer(), { type: 'step', stepSize: 3, gama: 0.5 } as never),
      "Unknown option 'gama' in scheduler config (did you mean 'gamma'?); known: type, stepSize, gamma",
    ],
    [
      'option of another type',
      () => createScheduler(optimizer(), { type: 'none', tMax: 3 } as never),
      "Unknown option 'tMax' in scheduler config; known: type",
    ],
    [
      'not an optimizer',
      () => new StepLR({} as never, { stepSize: 1 }),
      'Expected optimizer with getLr, setLr and groupCount for optimizer but received an object of type Object',
    ],
  ];

  test.each(bad)('%s', (_name, make, message) => {
    expect(make).toThrow(message);
    expect(make).toThrow(TypeError);
  });

  test('fills every default', () => {
    expect(new StepLR(optimizer(), { stepSize: 4 }).stateDict()).toMatchObject({ stepSize: 4, gamma: 0.1 });
    expect(new MultiStepLR(optimizer(), { milestones: [3] }).stateDict()).toMatchObject({ gamma: 0.1 });
    expect(new CosineAnnealingLR(optimizer(), { tMax: 4 }).stateDict()).toMatchObject({ etaMin: 0 });
    expect(new LinearLR(optimizer()).stateDict()).toMatchObject({ startFactor: 1 / 3, endFactor: 1, totalIters: 5 });
    expect(new WarmupCosineLR(optimizer(), { warmupEpochs: 2, tMax: 6 }).stateDict()).toMatchObject({
      warmupStartFactor: 1 / 3,
      etaMin: 0,
    });
    expect(new ReduceLROnPlateau(optimizer()).stateDict()).toMatchObject({
      mode: 'min',
      factor: 0.1,
      patience: 10,
      threshold: 1e-4,
      thresholdMode: 'rel',
      cooldown: 0,
      minLrs: [0, 0],
      eps: 1e-8,
      best: 'Infinity',
    });
  });

  test("'none' leaves the lrs alone", () => {
    const o = optimizer();
    const scheduler = createScheduler(o, { type: 'none' });
    for (let i = 0; i < 5; i++) scheduler.step();
    expect(scheduler.getLastLr()).toEqual([0.1, 0.01]);
    expect(o.lrs).toEqual([0.1, 0.01]);
  });
});
