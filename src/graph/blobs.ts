import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { lstatMany, type FileStats, type StorageFs } from '../storage/fs.js';
import { DATA, type Layout } from '../storage/paths.js';
import type { WarningSink } from '../storage/warnings.js';
import { limiter, mapLimit, type Limiter } from '../util/limit.js';
import { DigestTable } from './digest-table.js';
import { ManifestCache, loadRepoManifests, type LoadGraphOptions, type RepoManifests } from './load.js';

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
 * The blob store's sizes, by the ids of a DigestTable (shared with the manifest cache where the
 * caller gives its table): no digest string is kept per blob (at 100k tags a Map of them was
 * 40 MB). A ReadonlyMap to read; digests are made when iterated.
 */
export class BlobSizes implements ReadonlyMap<Digest, number> {
  /** By id; -1: not in the store. */
  private sizes = new Float64Array(1024).fill(-1);
  private count = 0;
  constructor(readonly table: DigestTable = new DigestTable()) {}

  /** Records the blob whose dir is named `hex` (64 lowercase hex digits, checked by the caller). */
  setHex(hex: string, bytes: number): void {
    const id = this.table.idHex(hex, 0);
    if (id >= this.sizes.length) {
      const grown = new Float64Array(Math.max(id + 1, this.sizes.length * 2)).fill(-1);
      grown.set(this.sizes);
      this.sizes = grown;
    }
    if ((this.sizes[id] as number) < 0) this.count++;
    this.sizes[id] = bytes;
  }

  /** The size of the blob with this id of the table, or -1. */
  sizeOf(id: number): number {
    return id >= 0 && id < this.sizes.length ? (this.sizes[id] as number) : -1;
  }

  get size(): number {
    return this.count;
  }

  get(d: Digest): number | undefined {
    const n = this.sizeOf(this.table.find(d));
    return n < 0 ? undefined : n;
  }

  has(d: Digest): boolean {
    return this.get(d) !== undefined;
  }

  *entries(): MapIterator<[Digest, number]> {
    for (let id = 0; id < this.sizes.length; id++) if ((this.sizes[id] as number) >= 0) yield [this.table.digest(id), this.sizes[id] as number];
  }

  *keys(): MapIterator<Digest> {
    for (const [d] of this.entries()) yield d;
  }

  *values(): MapIterator<number> {
    for (const [, n] of this.entries()) yield n;
  }

  forEach(fn: (value: number, key: Digest, map: ReadonlyMap<Digest, number>) => void): void {
    for (const [d, n] of this.entries()) fn(n, d, this);
  }

  [Symbol.iterator](): MapIterator<[Digest, number]> {
    return this.entries();
  }
}

/**
 * Every blob in the store with its size: `blobs/sha256/<xx>/<hex>/data`.
 * A blob dir without `data` is reported and left out. `table`: the DigestTable to number the
 * blobs with (the manifest cache's, so a blob and a reference to it have one id).
 */
export async function walkBlobStore(fs: StorageFs, lay: Layout, warn: WarningSink = () => {}, table?: DigestTable, concurrency = 64): Promise<BlobSizes> {
  const io = limiter(concurrency);
  const out = new BlobSizes(table);
  const shardsDir = lay.blobShards();
  const list = (dir: string) => listOrWarn(fs, io, dir, warn);
  const shards = await list(shardsDir);
  await mapLimit(
    shards,
    4,
    async (shard) => {
      if (!shard.isDirectory()) return;
      const entries = await list(posix.join(shardsDir, shard.name));
      const shardDir = posix.join(shardsDir, shard.name);
      const blobs: string[] = [];
      for (const e of entries) {
        if (e.isSymbolicLink()) warn({ code: 'symlink', path: posix.join(shardDir, e.name), message: 'symbolic link in the blob store; not followed' });
        else if (e.isDirectory() && isDigest(`sha256:${e.name}`)) blobs.push(e.name);
      }
      // The shard's blobs in one batch of lstats.
      const stats = await io.run(() => lstatMany(fs, blobs.map((hex) => `${shardDir}/${hex}/${DATA}`)));
      blobs.forEach((hex, i) => {
        const st = stats[i] as FileStats | Error;
        const dir = () => posix.join(shardDir, hex);
        if (st instanceof Error) {
          if (errnoCode(st) === 'ENOENT') warn({ code: 'missing-blob', path: dir(), message: 'blob directory without data' });
          else warn({ code: 'unreadable', path: dir(), message: st.message });
        } else if (st.isFile()) out.setHex(hex, st.size);
        else warn({ code: 'unexpected', path: posix.join(dir(), DATA), message: 'blob data is not a regular file' });
      });
    },
  );
  return out;
}

/**
 * The blob store and every repository's manifests, read together and numbered with one digest
 * table (du, check): a blob has one id in both, and no digest string is kept per blob.
 */
export async function loadWithBlobStore(
  fs: StorageFs,
  lay: Layout,
  repositories: ReadonlyMap<RepositoryName, Iterable<Digest>>,
  options: LoadGraphOptions & { readonly onWarning: WarningSink },
): Promise<{ store: BlobSizes; repos: Map<RepositoryName, RepoManifests>; cache: ManifestCache }> {
  const cache = new ManifestCache(fs, lay, limiter(64));
  const [store, graph] = await Promise.all([walkBlobStore(fs, lay, options.onWarning, cache.table), loadRepoManifests(fs, lay, repositories, { ...options, cache })]);
  return { store, ...graph };
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
