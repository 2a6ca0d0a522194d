// The model's queue: one task at a time, in arrival order, a failure kept to its own caller.
import { SerialQueue } from '../../lib/serve/queue';

test('tasks never overlap and run in the order queued; a rejected task does not stop the next', async () => {
  const queue = new SerialQueue();
  const events: string[] = [];
  let running = 0;
  const task = (name: string, fail = false) => async () => {
    running++;
    events.push(`start ${name} (${running} running)`);
    await new Promise((r) => setImmediate(r));
    await Promise.resolve();
    running--;
    events.push(`end ${name}`);
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const results = await Promise.allSettled([queue.run(task('a')), queue.run(task('b', true)), queue.run(task('c'))]);
  expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['a', 'b failed', 'c']);
  expect(events).toEqual(['start a (1 running)', 'end a', 'start b (1 running)', 'end b', 'start c (1 running)', 'end c']);
  expect(queue.size).toBe(0);
});

test('size counts queued and running tasks; a task must be a function', async () => {
  const queue = new SerialQueue();
  let release!: () => void;
  const held = queue.run(() => new Promise<void>((r) => (release = r)));
  const next = queue.run(async () => 1);
  expect(queue.size).toBe(2);
  await new Promise((r) => setImmediate(r));
  release();
  await held;
  expect(await next).toBe(1);
  expect(queue.size).toBe(0);
  expect(() => queue.run(42 as never)).toThrow('Expected function for task but received number');
});
