import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
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
  concurrency = 16,
  onBlob?: (d: Digest, size: number) => void,
): Promise<{ bytes: number; blobs: number; looked: number }> {
  const it = digests[Symbol.iterator]();
  const total = { bytes: 0, blobs: 0, looked: 0 };
  const sizeOf = async (d: Digest): Promise<number | undefined> => {
    const k = known(d);
    if (k !== undefined) return k;
    try {
      const st = await fs.lstat(lay.blobData(d));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  };
  const worker = async () => {
    for (let next = it.next(); next.done !== true; next = it.next()) {
      total.looked++;
      const size = await sizeOf(next.value);
      if (size === undefined) continue;
      onBlob?.(next.value, size);
      total.bytes += size;
      total.blobs++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
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
  marked: (d: Digest) => boolean,
  warn: WarningSink = () => {},
  onBlob?: (d: Digest, size: number) => void,
  concurrency = 16,
): Promise<{ bytes: number; blobs: number }> {
  const io = limiter(concurrency);
  const total = { bytes: 0, blobs: 0 };
  const shardsDir = lay.blobShards();
  const list = (dir: string) => listOrWarn(fs, io, dir, warn);
  for (const shard of await list(shardsDir)) {
    if (!shard.isDirectory()) continue;
    const entries = (await list(posix.join(shardsDir, shard.name))).filter((e) => {
      const d = `sha256:${e.name}`;
      return e.isDirectory() && isDigest(d) && !marked(d);
    });
    await mapLimit(entries, concurrency, async (e) => {
      const d = `sha256:${e.name}` as Digest;
      try {
        const st = await io.run(() => fs.lstat(lay.blobData(d)));
        if (!st.isFile()) return;
        onBlob?.(d, st.size);
        total.bytes += st.size;
        total.blobs++;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') warn({ code: 'unreadable', path: lay.blobData(d), message: (err as Error).message });
      }
    });
  }
  return total;
}
