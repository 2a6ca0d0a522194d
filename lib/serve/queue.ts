// One task at a time, in arrival order. The model is one native object whose forward passes share
// one compute thread pool: running requests' passes one after another keeps each prediction
// exactly what it would be alone, and a failed task does not stop the ones queued behind it.

export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Tasks queued or running. */
  get size(): number {
    return this.waiting;
  }

  /** Runs `task` after every task queued before it has settled; resolves or rejects with its result. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (typeof task !== 'function') throw new TypeError(`Expected function for task but received ${typeof task}`);
    this.waiting++;
    const result = this.tail.then(task).finally(() => this.waiting--);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
