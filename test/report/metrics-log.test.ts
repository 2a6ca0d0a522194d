import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { MetricsLog, metricSeries, readMetrics } from '../../lib/report/metrics-log';

describe('MetricsLog', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-metrics-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('round trip, one JSON object per line, non-finite numbers kept', () => {
    const log = new MetricsLog(dir);
    expect(log.file).toBe(path.join(dir, 'metrics.jsonl'));
    const a = log.log({ phase: 'head', epoch: 1, step: 50, split: 'train', loss: 1.25, top1: 0.5, top5: 0.8, lr: 0.01, imagesPerSecond: 321.5, time: 1000 });
    const b = log.log({ phase: 'head', epoch: 1, step: 50, split: 'val', loss: NaN, top1: 0.45, time: 1001 });
    const c = log.log({ kind: 'grad_norm', step: 50, norms: { 'conv1.weight': 0.25, 'fc.weight': Infinity }, time: 1002 });
    const before = Date.now() / 1000;
    const d = log.log({ phase: 'finetune', epoch: 1, step: 100, split: 'val', loss: 0.5, top1: 0.7 });
    const after = Date.now() / 1000;
    log.close();
    expect(a).toEqual({ kind: 'metrics', phase: 'head', epoch: 1, step: 50, split: 'train', loss: 1.25, top1: 0.5, top5: 0.8, lr: 0.01, imagesPerSecond: 321.5, time: 1000 });
    // no time given: the time of the call
    expect(d.time).toBeGreaterThanOrEqual(before);
    expect(d.time).toBeLessThanOrEqual(after);

    const text = fs.readFileSync(log.file, 'utf8');
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(JSON.parse(lines[1]).loss).toBe('NaN');

    const back = readMetrics(log.file);
    expect(back).toEqual([a, b, c, d]);
    expect((back[1] as { loss: number }).loss).toBeNaN();
  });

  test('appends to an existing log and survives a torn last line', () => {
    const first = new MetricsLog(dir);
    first.log({ phase: 'p', epoch: 1, step: 1, split: 'train', loss: 1, top1: 0.1, time: 1 });
    first.close();
    const second = new MetricsLog(dir);
    second.log({ phase: 'p', epoch: 2, step: 2, split: 'train', loss: 0.5, top1: 0.2, time: 2 });
    second.close();
    fs.appendFileSync(second.file, '{"kind":"metrics","phase":"p","ep'); // crash mid-write
    const back = readMetrics(second.file);
    expect(back.map((r) => r.step)).toEqual([1, 2]);
    // A malformed line that is not the last is an error naming the line.
    fs.writeFileSync(second.file, '{"phase":"p"}\nnot json\n{"phase":"q"}\n');
    expect(() => readMetrics(second.file)).toThrow(/metrics\.jsonl:2: not valid JSON/);
  });

  test('lines without kind read as metrics records', () => {
    const file = path.join(dir, 'm.jsonl');
    fs.writeFileSync(file, '{"phase":"a","epoch":1,"step":3,"split":"val","loss":1,"top1":0.5,"time":5}\n');
    expect(readMetrics(file)[0].kind).toBe('metrics');
    fs.writeFileSync(file, '{"phase":"NaN","epoch":1,"step":3,"split":"val","loss":"-Infinity","top1":0.5,"time":5}\n');
    expect(readMetrics(file)[0]).toMatchObject({ phase: 'NaN', loss: -Infinity });
  });

  test('validates records', () => {
    const log = new MetricsLog(dir);
    expect(() => log.log({ phase: 'p', epoch: 1, step: 1, split: 'validation' as 'val', loss: 1, top1: 0 })).toThrow(
      "Expected one of 'train', 'val', 'test' for split but received 'validation' of type string",
    );
    expect(() => log.log({ phase: '', epoch: 1, step: 1, split: 'val', loss: 1, top1: 0 })).toThrow(/phase/);
    expect(() => log.log({ phase: 'p', epoch: 1.5, step: 1, split: 'val', loss: 1, top1: 0 })).toThrow(/epoch/);
    expect(() => log.log({ phase: 'p', epoch: 1, step: 1, split: 'val', loss: '1' as unknown as number, top1: 0 })).toThrow(/loss/);
    expect(() => log.log({ kind: 'grad_norm', step: 1, norms: [] as unknown as Record<string, number> })).toThrow(/norms/);
    log.close();
    expect(() => log.log({ phase: 'p', epoch: 1, step: 1, split: 'val', loss: 1, top1: 0 })).toThrow(/closed/);
  });

  test('metricSeries lays phases end to end and filters by split', () => {
    const log = new MetricsLog(dir);
    for (let e = 1; e <= 2; e++) log.log({ phase: 'head', epoch: e, step: e * 10, split: 'val', loss: 3 - e, top1: e / 10, time: e });
    for (let e = 1; e <= 3; e++) log.log({ phase: 'finetune', epoch: e, step: 20 + e * 10, split: 'val', loss: 1 / e, top1: 0.5 + e / 10, time: 10 + e });
    for (let e = 1; e <= 3; e++) log.log({ phase: 'scratch', epoch: e, step: e * 10, split: 'val', loss: 4 - e, top1: e / 20, time: 20 + e });
    log.log({ phase: 'head', epoch: 1, step: 10, split: 'train', loss: 9, top1: 0, time: 30 });
    log.close();
    const records = readMetrics(log.file);
    expect(metricSeries(records, 'loss', { split: 'val', phases: ['head', 'finetune'] })).toEqual([
      [1, 2], [2, 1], [3, 1], [4, 0.5], [5, 1 / 3],
    ]);
    expect(metricSeries(records, 'top1', { split: 'val', phases: ['scratch'] })).toEqual([[1, 0.05], [2, 0.1], [3, 0.15]]);
    expect(metricSeries(records, 'loss', { split: 'train' })).toEqual([[1, 9]]);
    expect(metricSeries(records, 'loss', { split: 'val', phases: ['finetune'], x: 'step' }).map((p) => p[0])).toEqual([30, 40, 50]);
  });
});
