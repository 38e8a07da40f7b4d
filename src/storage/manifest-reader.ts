import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ManifestReads } from '../graph/load.js';
import { workerLine } from './worker-line.js';

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
  const line = workerLine('manifest thread', () => new Worker(url, { resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 } }));
  return { read: (blobDirs) => line.send(blobDirs) as Promise<Awaited<ReturnType<ManifestReads['read']>>> };
}
