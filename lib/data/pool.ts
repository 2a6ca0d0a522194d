// A bounded in-flight pool: at most `concurrency` calls of `fn` pending at once, results in input order.

export interface PoolOptions {
  concurrency: number;
  /** Checked before each new item is started; once true, no further items start. */
  stop?: () => boolean;
}

export async function mapPool<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<R>,
  options: PoolOptions,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !options.stop?.()) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency, items.length)) }, worker);
  await Promise.all(workers);
  return results;
}
