// The shards each rank trains and evaluates on: PyTorch's DistributedSampler for training (the
// same order on every rank, padded by its start to equal shards, every worldSize-th sample), and
// unpadded interleaved shards for evaluation.
import { distributedShard, evaluationShard } from '../../lib/distributed/sampler';
import { prerequisite } from '../helpers/prerequisite';
import { runPython, torchPythonUnavailableReason } from '../helpers/python';

const torch = prerequisite('PyTorch reference', torchPythonUnavailableReason());
const CASES: Array<[number, number]> = [[10, 2], [11, 2], [7, 3], [2, 5], [33, 4], [1, 1]];

torch.test("distributedShard is torch.utils.data.DistributedSampler's index list for each rank", () => {
  const expected = JSON.parse(
    runPython(`
import json, torch.utils.data as d
out = {}
for n, w in ${JSON.stringify(CASES)}:
    for r in range(w):
        s = d.DistributedSampler(list(range(n)), num_replicas=w, rank=r, shuffle=False)
        out[f"{n},{w},{r}"] = list(iter(s))
print(json.dumps(out))
`),
  ) as Record<string, number[]>;
  for (const [n, w] of CASES) {
    // a shuffled epoch order stands where DistributedSampler's own permutation would be
    const order = Array.from({ length: n }, (_, i) => (i * 7 + 3) % n);
    for (let r = 0; r < w; r++) {
      expect(distributedShard(r, w)(Array.from({ length: n }, (_, i) => i))).toEqual(expected[`${n},${w},${r}`]);
      expect(distributedShard(r, w)(order)).toEqual(expected[`${n},${w},${r}`].map((i) => order[i]));
    }
  }
});

test('training shards: equal sizes; together they cover the epoch; rank k-th batches form the one-process batch', () => {
  const order = Array.from({ length: 37 }, (_, i) => (i * 11) % 37);
  const shards = [0, 1, 2].map((r) => distributedShard(r, 3)(order));
  expect(new Set(shards.map((s) => s.length))).toEqual(new Set([13]));
  expect(new Set(shards.flat())).toEqual(new Set(order));
  // interleaved: element j of rank r is order[r + 3 j]
  shards.forEach((s, r) => s.forEach((v, j) => expect(v).toBe(order[(r + 3 * j) % order.length])));
});

test('evaluation shards are disjoint, unpadded and cover every sample once', () => {
  for (const [n, w] of CASES) {
    const all = Array.from({ length: w }, (_, r) => evaluationShard(n, r, w)).flat();
    expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
  }
});

test('arguments are checked', () => {
  expect(() => distributedShard(2, 2)).toThrow(/rank/);
  expect(() => distributedShard(0, 0)).toThrow(/Expected positive integer for worldSize but received 0/);
});
