import { Worker } from 'node:worker_threads';
import { reassertHeapFlags } from '../util/heap.js';

/**
 * A worker thread that answers each message with one reply, in order: started on the first
 * message, it keeps the process alive only while replies are awaited. When it fails (an error,
 * its heap limit, an exit) the messages awaiting replies are rejected with `<name> failed: ...`,
 * and the next message starts a new thread; a failed thread's late events touch nothing (its
 * 'error' comes before its 'exit', and messages sent in between go to the new thread).
 */
export interface WorkerLine {
  send(message: unknown): Promise<unknown>;
}

export function workerLine(name: string, create: () => Worker): WorkerLine {
  let worker: Worker | undefined;
  const waiting: Array<{ resolve(v: unknown): void; reject(e: Error): void }> = [];
  const fail = (err: Error) => {
    worker = undefined;
    const failed = new Error(`${name} failed: ${err.message}`);
    for (const w of waiting.splice(0)) w.reject(failed);
  };
  const start = (): Worker => {
    const w = create();
    w.unref();
    // Setting up the thread's heap resets a flag the main thread's heap relies on.
    w.once('online', reassertHeapFlags);
    w.on('message', (reply: unknown) => {
      if (worker !== w) return;
      waiting.shift()?.resolve(reply);
      if (waiting.length === 0) w.unref();
    });
    w.on('error', (err) => {
      if (worker === w) fail(err);
    });
    w.on('exit', (code) => {
      if (worker === w) fail(new Error(`exited with code ${code}`));
    });
    return w;
  };
  return {
    send: (message) =>
      new Promise((resolve, reject) => {
        const w = (worker ??= start());
        if (waiting.length === 0) w.ref();
        waiting.push({ resolve, reject });
        w.postMessage(message);
      }),
  };
}
