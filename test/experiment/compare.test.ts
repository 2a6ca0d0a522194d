// Grouping runs into recipes over seeds, pairing them by seed and file, and saying how the tested
// weights were chosen, on hand-made results.
import { compareRuns, comparisonMarkdown, recipeOf } from '../../lib/experiment/compare';
import type { RunResults } from '../../lib/experiment/results';

function run(name: string, seed: number, correct: boolean[], selection?: 'final' | 'validation'): RunResults {
  const top1 = correct.filter(Boolean).length / correct.length;
  return {
    run: name, runDir: `/runs/${name}`, phase: name.includes('scratch') ? 'scratch' : 'finetune', arch: 'resnet18', seed, epochs: 2,
    wallSeconds: 1, trainSeconds: 1, selection: selection as 'final', bestValTop1: null, featureCache: false, checkpoints: { best: 'b', last: 'l' },
    test: { count: correct.length, loss: 1, top1, top5: 1, meanPerClass: top1, perClass: [] },
    confusion: [],
    predictions: correct.map((c, i) => ({ predicted: c ? 0 : 1, probability: 0.9, label: 0, file: `c/${seed}-${i}.jpg` })),
  };
}

test('runs group by recipe (the .seedN part dropped) and pair by seed and file', () => {
  expect(recipeOf('tl.seed3.finetune')).toBe('tl.finetune');
  expect(recipeOf('sc.seed12')).toBe('sc');
  const ft = [run('tl.seed0.finetune', 0, [true, true, true, false], 'final'), run('tl.seed1.finetune', 1, [true, true, false, false], 'final')];
  const sc = [run('sc.seed0', 0, [true, false, false, false], 'final'), run('sc.seed1', 1, [true, true, false, false], 'final')];
  const c = compareRuns([...ft, ...sc]);
  expect(c.methods.map((m) => [m.recipe, m.seeds])).toEqual([['tl.finetune', [0, 1]], ['sc', [0, 1]]]);
  expect(c.methods[0].top1.mean).toBeCloseTo(0.625, 12);
  const pair = c.pairs[0].comparison!;
  expect(pair).toMatchObject({ count: 8, onlyFirst: 2, onlySecond: 0 });
  expect(comparisonMarkdown(c)).toContain('Selection: final weights (no validation part; the test images decided nothing).');
});

test('runs written before the selection was recorded are not said to be validated', () => {
  const c = compareRuns([run('old.finetune', 0, [true, false]), run('old.scratch', 0, [false, false])]);
  expect(comparisonMarkdown(c)).toContain('Selection: not recorded for some runs');
});
