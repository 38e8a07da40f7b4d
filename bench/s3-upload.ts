/**
 * Copies a registry storage tree from disk into a bucket, one object per
 * file, key = `<keyPrefix><path below root>`: the layout the registry's s3
 * driver writes (links and small blobs as single PUTs, so their ETag is the
 * MD5 of their content). For the S3 benchmark and tests.
 */
import { readFile, readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ObjectStore } from '../src/storage/s3/client.js';
import { mapLimit } from '../src/util/limit.js';

/** Every regular file under `dir`, as paths relative to it, sorted. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => posix.relative(dir, posix.join(e.parentPath, e.name)))
    .sort();
}

export interface UploadOptions {
  readonly concurrency?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Uploads the given files (paths relative to `root`); returns how many. */
export async function uploadFiles(store: ObjectStore, root: string, files: readonly string[], keyPrefix: string, options: UploadOptions = {}): Promise<number> {
  let done = 0;
  await mapLimit(files, options.concurrency ?? 32, async (rel) => {
    await store.put(`${keyPrefix}${rel}`, await readFile(posix.join(root, rel)));
    done++;
    if (done % 500 === 0) options.onProgress?.(done, files.length);
  });
  return files.length;
}

/** Uploads every file under `root` (`.regprune/` left out); returns how many. */
export async function uploadTree(store: ObjectStore, root: string, keyPrefix: string, options: UploadOptions = {}): Promise<number> {
  const files = (await filesUnder(root)).filter((f) => !f.startsWith('.regprune/'));
  return uploadFiles(store, root, files, keyPrefix, options);
}
