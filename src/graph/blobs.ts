import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { lstatMany, type FileStats, type StorageFs } from '../storage/fs.js';
import { DATA, type Layout } from '../storage/paths.js';
import type { WarningSink } from '../storage/warnings.js';
import { limiter, mapLimit, type Limiter } from '../util/limit.js';

/**
 * The total size of the `data` files of `digests`, taken one at a time from
 * the iterable (no list of them is built); a blob whose data is absent is not
 * counted.
 */
export async function totalBlobSizes(
  fs: StorageFs,
  lay: Layout,
  digests: Iterable<Digest>,
  known: (d: Digest) => number | undefined = () => undefined,
  batchSize = 1024,
  onBlob?: (d: Digest, size: number) => void,
): Promise<{ bytes: number; blobs: number; looked: number }> {
  const total = { bytes: 0, blobs: 0, looked: 0 };
  const count = (d: Digest, size: number) => {
    onBlob?.(d, size);
    total.bytes += size;
    total.blobs++;
  };
  let batch: Digest[] = [];
  const stat = async () => {
    const stats = await lstatMany(
      fs,
      batch.map((d) => lay.blobData(d)),
    );
    batch.forEach((d, i) => {
      const st = stats[i] as FileStats | Error;
      if (st instanceof Error) {
        if (errnoCode(st) === 'ENOENT') return;
        throw st;
      }
      if (st.isFile()) count(d, st.size);
    });
    batch = [];
  };
  for (const d of digests) {
    total.looked++;
    const k = known(d);
    if (k !== undefined) count(d, k);
    else if (batch.push(d) >= batchSize) await stat();
  }
  if (batch.length > 0) await stat();
  return total;
}

/** The entries of `dir`; none when it is not there, and a warning when it cannot be read. */
async function listOrWarn(fs: StorageFs, io: Limiter, dir: string, warn: WarningSink) {
  try {
    return await io.run(() => fs.readdir(dir, { withFileTypes: true }));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') warn({ code: 'unreadable', path: dir, message: `cannot list directory: ${(err as Error).message}` });
    return [];
  }
}

/**
 * Every blob in the store with its size: `blobs/sha256/<xx>/<hex>/data`.
 * A blob dir without `data` is reported and left out.
 */
export async function walkBlobStore(fs: StorageFs, lay: Layout, warn: WarningSink = () => {}, concurrency = 64): Promise<Map<Digest, number>> {
  const io = limiter(concurrency);
  const out = new Map<Digest, number>();
  const shardsDir = lay.blobShards();
  const list = (dir: string) => listOrWarn(fs, io, dir, warn);
  const shards = await list(shardsDir);
  await mapLimit(
    shards,
    4,
    async (shard) => {
      if (!shard.isDirectory()) return;
      const entries = await list(posix.join(shardsDir, shard.name));
      await mapLimit(
        entries,
        16,
        async (e) => {
          const d = `sha256:${e.name}`;
          const dir = posix.join(shardsDir, shard.name, e.name);
          if (e.isSymbolicLink()) {
            warn({ code: 'symlink', path: dir, message: 'symbolic link in the blob store; not followed' });
            return;
          }
          if (!e.isDirectory() || !isDigest(d)) return;
          try {
            const st = await io.run(() => fs.lstat(posix.join(dir, DATA)));
            if (st.isFile()) out.set(d, st.size);
            else warn({ code: 'unexpected', path: posix.join(dir, DATA), message: 'blob data is not a regular file' });
          } catch (err) {
            if (errnoCode(err) === 'ENOENT') warn({ code: 'missing-blob', path: dir, message: 'blob directory without data' });
            else warn({ code: 'unreadable', path: dir, message: (err as Error).message });
          }
        },
      );
    },
  );
  return out;
}

/**
 * The blobs in the store that `marked` says nothing references, and their
 * total size: what garbage-collect sweeps although this run removes nothing
 * that references them. Streams shard by shard; only unmarked blobs are
 * stat'ed, and no list of the store is kept.
 */
export async function sweepableBlobs(
  fs: StorageFs,
  lay: Layout,
  /** Given the hex of a blob dir's name: false for a blob nothing marks, undefined when the name is not a digest's hex. */
  marked: (hex: string) => boolean | undefined,
  warn: WarningSink = () => {},
  onBlob?: (d: Digest, size: number) => void,
  concurrency = 16,
): Promise<{ bytes: number; blobs: number }> {
  const io = limiter(concurrency);
  const total = { bytes: 0, blobs: 0 };
  const shardsDir = lay.blobShards();
  const list = (dir: string) => listOrWarn(fs, io, dir, warn);
  // Two shards at a time: one is listed or stat'ed while the other's names are checked.
  await mapLimit(await list(shardsDir), 2, async (shard) => {
    if (!shard.isDirectory()) return;
    const entries = (await list(posix.join(shardsDir, shard.name))).filter((e) => e.isDirectory() && marked(e.name) === false);
    const digests = entries.map((e) => `sha256:${e.name}` as Digest);
    const stats = await io.run(() => lstatMany(fs, digests.map((d) => lay.blobData(d))));
    digests.forEach((d, i) => {
      const st = stats[i] as FileStats | Error;
      if (st instanceof Error) {
        if (errnoCode(st) !== 'ENOENT') warn({ code: 'unreadable', path: lay.blobData(d), message: st.message });
        return;
      }
      if (!st.isFile()) return;
      onBlob?.(d, st.size);
      total.bytes += st.size;
      total.blobs++;
    });
  });
  return total;
}
