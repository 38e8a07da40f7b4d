/**
 * Bounded parallelism for I/O: at most `concurrency` calls of `run` in flight.
 * Unbounded Promise.all over 100k files exhausts file descriptors and memory.
 */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function limiter(concurrency: number): Limiter {
  let active = 0;
  // A head index, not queue.shift(): shift is O(n) on a large array, and a
  // walk queues a task per tag.
  let queue: Array<(() => void) | undefined> = [];
  let head = 0;
  const next = () => {
    active--;
    const start = queue[head];
    if (start === undefined) return;
    queue[head++] = undefined;
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    start();
  };
  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const start = () => {
          active++;
          task().then(resolve, reject).finally(next);
        };
        if (active < concurrency) start();
        else queue.push(start);
      });
    },
  };
}

/** Maps `items` through `fn` with at most `concurrency` in flight; keeps order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
