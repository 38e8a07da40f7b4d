import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ManifestReads } from '../graph/load.js';
import { reassertHeapFlags } from '../util/heap.js';

/**
 * Manifests read and parsed in a thread of their own (src/storage/manifest-thread.ts): at 100k
 * tags that is 110k manifests, a second of parsing the main thread no longer does. Started on the
 * first read; it keeps the process alive only while reads are under way. Undefined where the
 * thread's module is not beside this one (the bundled builds: one file, no module to start a
 * thread from); the plan then reads and parses on the main thread, with the same code.
 */
export function manifestThread(): ManifestReads | undefined {
  let url: URL;
  try {
    url = new URL('./manifest-thread.js', import.meta.url);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'file:' || !existsSync(fileURLToPath(url))) return undefined;
  let worker: Worker | undefined;
  const waiting: Array<{ resolve(v: unknown[]): void; reject(e: Error): void }> = [];
  const fail = (err: Error) => {
    const broken = new Error(`manifest thread failed: ${err.message}`);
    for (const w of waiting.splice(0)) w.reject(broken);
    worker = undefined;
  };
  const start = (): Worker => {
    const w = new Worker(url, { resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 } });
    w.unref();
    // Setting up the thread's heap resets a flag the main thread's heap relies on.
    w.once('online', reassertHeapFlags);
    // Once failed, a thread's events are no longer about the reads waiting (a thread's 'error'
    // comes before its 'exit'; reads made in between go to a new thread).
    w.on('message', (out: unknown[]) => {
      if (worker !== w) return;
      waiting.shift()?.resolve(out);
      if (waiting.length === 0) w.unref();
    });
    w.on('error', (err) => {
      if (worker === w) fail(err);
    });
    w.on('exit', (code) => {
      if (worker === w && waiting.length > 0) fail(new Error(`exited with code ${code}`));
      if (worker === w) worker = undefined;
    });
    return w;
  };
  return {
    read: (blobDirs) =>
      new Promise((resolve, reject) => {
        worker ??= start();
        if (waiting.length === 0) worker.ref();
        waiting.push({ resolve: resolve as (v: unknown[]) => void, reject });
        worker.postMessage(blobDirs);
      }),
  };
}
