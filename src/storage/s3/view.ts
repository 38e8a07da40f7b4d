import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { errnoCode } from '../../model/errors.js';
import { storageDoor } from '../door.js';
import { readOnlyFs, type DirEntry, type FileStats, type StorageFs } from '../fs.js';
import { ALGORITHM, CURRENT, DATA, INDEX, LINK, V2_SUFFIX, layout, type Layout } from '../paths.js';
import type { ObjectStore, S3ObjectInfo } from './client.js';
import { linkEtag } from './walk.js';

/**
 * The bucket seen as the filesystem driver's tree, so that walk, graph, plan,
 * du and check run on it unchanged (the registry does the same: its logic
 * sits above a driver that maps paths to keys, `<rootdirectory>/<path>`).
 *
 * One listing (pages of 1000 keys) of `docker/registry/v2/` and of
 * regprune's `.regprune/` is taken when the view opens: directories are key
 * prefixes, a file's size and mtime are the object's Size and LastModified
 * (for a tag's `current/link`: when it was last pushed). Reads are answered
 * from that snapshot where the listing proves the content, and with a GET
 * otherwise:
 *
 * - a link of 71 bytes whose ETag (the MD5 of a single PUT's body) is the MD5
 *   of `sha256:<hex>` for its own directory's hex, or, for a tag's
 *   `current/link`, for one of the tag's `index/` entries, reads that digest
 *   without a request;
 * - a blob's `data` (only manifests are ever read) comes from a local cache
 *   of manifest bytes when given (content-addressed: the bytes are checked
 *   against the digest on every read), else with a GET whose bytes are
 *   checked the same way before they are cached.
 *
 * Paths are `/<key>`: the layout's root is `/` plus the rootdirectory.
 */

export interface S3ViewStats {
  /** Keys in the snapshot. */
  readonly keys: number;
  /** Links answered from the listing (ETag proof), and read with a GET. */
  readonly linksProven: number;
  readonly linksRead: number;
  /** Manifest blobs read from the bucket, and from the local cache. */
  readonly manifestsFetched: number;
  readonly manifestsCached: number;
}

export interface S3View {
  readonly fs: StorageFs;
  readonly layout: Layout;
  /** Key of a path of this view (`/reg/docker/...` -> `reg/docker/...`). */
  key(path: string): string;
  stats(): S3ViewStats;
  /** Lists again (after regprune itself changed the bucket, e.g. finished a killed run's deletions). */
  refresh(): Promise<void>;
}

export interface OpenS3ViewOptions {
  /** A local directory for manifest bytes between runs (created if missing, never through a symlink). */
  readonly manifestCache?: { readonly fs: StorageFs; readonly dir: string };
  readonly onProgress?: (p: { keys: number }) => void;
}

const LINK_SIZE = 'sha256:'.length + 64;
const HEX = /^[a-f0-9]{64}$/;
/** The registry refuses manifests over 4 MiB; nothing larger is read as one. */
const MAX_MANIFEST = 4 * 1024 * 1024;

function enoent(op: string, path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, ${op} '${path}'`), { code: 'ENOENT' });
}
function enotdir(op: string, path: string): Error {
  return Object.assign(new Error(`ENOTDIR: not a directory, ${op} '${path}'`), { code: 'ENOTDIR' });
}
function eisdir(op: string, path: string): Error {
  return Object.assign(new Error(`EISDIR: illegal operation on a directory, ${op} '${path}'`), { code: 'EISDIR' });
}

const EPOCH = new Date(0);

function fileStats(size: number, mtimeMs: number): FileStats {
  const mtime = new Date(mtimeMs);
  return { size, mtimeMs, mtime, dev: 0, ino: 0, uid: 0, gid: 0, isDirectory: () => false, isFile: () => true, isSymbolicLink: () => false };
}
const DIR_STATS: FileStats = { size: 0, mtimeMs: 0, mtime: EPOCH, dev: 0, ino: 0, uid: 0, gid: 0, isDirectory: () => true, isFile: () => false, isSymbolicLink: () => false };

function dirEntry(name: string, dir: boolean): DirEntry {
  return { name, isDirectory: () => dir, isFile: () => !dir, isSymbolicLink: () => false };
}

/**
 * Keys in one sorted array (no per-directory maps: at 100k tags half a million
 * keys), with their facts in parallel arrays. Keys are compared as UTF-16 code
 * units, which for the registry's ASCII names is S3's byte order.
 */
class Snapshot {
  keys: string[] = [];
  sizes: number[] = [];
  mtimes: number[] = [];
  etags: string[] = [];

  add(o: S3ObjectInfo): void {
    this.keys.push(o.key);
    this.sizes.push(o.size);
    this.mtimes.push(o.lastModified.getTime());
    this.etags.push(o.etag);
  }

  sort(): void {
    let sorted = true;
    for (let i = 1; i < this.keys.length && sorted; i++) if ((this.keys[i - 1] as string) >= (this.keys[i] as string)) sorted = false;
    if (sorted) return;
    const order = this.keys.map((_, i) => i).sort((a, b) => ((this.keys[a] as string) < (this.keys[b] as string) ? -1 : 1));
    const pick = <T>(xs: T[]) => order.map((i) => xs[i] as T);
    this.keys = pick(this.keys);
    this.sizes = pick(this.sizes);
    this.mtimes = pick(this.mtimes);
    this.etags = pick(this.etags);
  }

  /** First index whose key is >= `k`. */
  lowerBound(k: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] as string) < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  find(k: string): number {
    const i = this.lowerBound(k);
    return this.keys[i] === k ? i : -1;
  }

  hasUnder(prefix: string): boolean {
    const i = this.lowerBound(prefix);
    return i < this.keys.length && (this.keys[i] as string).startsWith(prefix);
  }

  /** Direct children of the directory `prefix` (ending in `/`, or `''` for the top). */
  children(prefix: string): DirEntry[] {
    const out: DirEntry[] = [];
    let i = this.lowerBound(prefix);
    while (i < this.keys.length) {
      const k = this.keys[i] as string;
      if (!k.startsWith(prefix)) break;
      const rest = k.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) {
        out.push(dirEntry(rest, false));
        i++;
        continue;
      }
      const name = rest.slice(0, slash);
      out.push(dirEntry(name, true));
      // Past everything under `name/`: '0' is the character after '/'.
      i = this.lowerBound(`${prefix}${name}0`);
    }
    return out;
  }
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Opens the view: the tree and regprune's state prefix are listed once, on first use. */
export async function openS3View(store: ObjectStore, rootPrefix: string, options: OpenS3ViewOptions = {}): Promise<S3View> {
  let snap = new Snapshot();
  const root = rootPrefix === '' ? '/' : `/${rootPrefix.replace(/\/$/, '')}`;
  const lay = layout(root);
  const key = (path: string): string => path.slice(1);
  const load = async () => {
    const next = new Snapshot();
    for (const prefix of [`${rootPrefix}${V2_SUFFIX}/`, `${key(lay.stateDir)}/`]) {
      await store.list(prefix, (page) => {
        for (const o of page) next.add(o);
        options.onProgress?.({ keys: next.keys.length });
      });
    }
    next.sort();
    snap = next;
  };
  // Listed on first use: a run that takes a lock first plans from a listing made under it.
  let loaded: Promise<void> | undefined;
  const ready = () => (loaded ??= load());

  let linksProven = 0;
  let linksRead = 0;
  let manifestsFetched = 0;
  let manifestsCached = 0;

  /** The content the listing proves for the link at index `i` (key `k`), if any. */
  const provenLink = (i: number, k: string): string | undefined => {
    if (snap.sizes[i] !== LINK_SIZE || !k.endsWith(`/${LINK}`)) return undefined;
    const etag = snap.etags[i] as string;
    const parts = k.split('/');
    const dir = parts[parts.length - 2] as string;
    if (HEX.test(dir) && linkEtag(`sha256:${dir}`) === etag) return `sha256:${dir}`;
    if (dir === CURRENT) {
      const indexPrefix = `${parts.slice(0, -2).join('/')}/${INDEX}/${ALGORITHM}/`;
      for (const e of snap.children(indexPrefix)) {
        if (e.isDirectory() && HEX.test(e.name) && linkEtag(`sha256:${e.name}`) === etag) return `sha256:${e.name}`;
      }
    }
    return undefined;
  };

  const blobsKeyPrefix = `${key(lay.blobShards())}/`;
  const cacheDoor = options.manifestCache === undefined ? undefined : storageDoor(options.manifestCache.fs, posix.dirname(options.manifestCache.dir));
  let cacheReady: Promise<void> | undefined;
  const cachePath = (hex: string) => posix.join(options.manifestCache!.dir, ALGORITHM, hex.slice(0, 2), hex);

  const fromCache = async (hex: string): Promise<Uint8Array | undefined> => {
    const c = options.manifestCache;
    if (c === undefined) return undefined;
    const path = cachePath(hex);
    try {
      const st = await c.fs.lstat(path);
      if (!st.isFile()) return undefined;
      const bytes = await c.fs.readFile(path);
      return sha256Hex(bytes) === hex ? bytes : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  };

  const toCache = async (hex: string, bytes: Uint8Array): Promise<void> => {
    const c = options.manifestCache;
    if (c === undefined || cacheDoor === undefined) return;
    cacheReady ??= cacheDoor.ensureDir(c.dir, { mode: 0o700 });
    await cacheReady;
    const path = cachePath(hex);
    await cacheDoor.ensureDir(posix.dirname(path), { mode: 0o700 });
    // No fsync: a cache file cut short by a crash fails the digest check on its next read and is fetched again.
    // Called after a miss: a file already there failed its digest check (cut short); replace it.
    if ((await cacheDoor.createFile(path, bytes, { mode: 0o600, flush: false })) === 'exists') {
      await cacheDoor.delete(path);
      await cacheDoor.createFile(path, bytes, { mode: 0o600, flush: false });
    }
  };

  /** A manifest blob's bytes: checked against its digest wherever they come from. */
  const readBlob = async (k: string, path: string): Promise<Uint8Array> => {
    const hex = k.split('/').at(-2) as string;
    if (!HEX.test(hex)) throw enoent('open', path);
    const cached = await fromCache(hex);
    if (cached !== undefined) {
      manifestsCached++;
      return cached;
    }
    manifestsFetched++;
    const got = await store.get(k);
    if (got === undefined) throw enoent('open', path);
    if (got.body.length <= MAX_MANIFEST && sha256Hex(got.body) === hex) await toCache(hex, got.body);
    return got.body;
  };

  const isBlobData = (k: string) => k.startsWith(blobsKeyPrefix) && k.endsWith(`/${DATA}`);

  const read = async (path: string): Promise<Uint8Array> => {
    await ready();
    const k = key(path);
    const i = snap.find(k);
    // A manifest pushed since the listing (a tag pushed during apply names it): read it live.
    if (i < 0 && isBlobData(k)) return readBlob(k, path);
    if (i < 0) throw snap.hasUnder(`${k}/`) ? eisdir('read', path) : enoent('open', path);
    const proven = provenLink(i, k);
    if (proven !== undefined) {
      linksProven++;
      return Buffer.from(proven, 'latin1');
    }
    if (isBlobData(k)) return readBlob(k, path);
    if (k.endsWith(`/${LINK}`)) linksRead++;
    const got = await store.get(k);
    if (got === undefined) throw enoent('open', path);
    return got.body;
  };

  const fs = readOnlyFs(
    {
      readdir: async (path) => {
        await ready();
        const k = key(path);
        const prefix = k === '' ? '' : `${k}/`;
        const entries = snap.children(prefix);
        if (entries.length > 0) return entries;
        if (snap.find(k) >= 0) throw enotdir('scandir', path);
        throw enoent('scandir', path);
      },
      lstat: async (path) => {
        await ready();
        const k = key(path);
        const i = snap.find(k);
        if (i >= 0) return fileStats(snap.sizes[i] as number, snap.mtimes[i] as number);
        if (k === '' || snap.hasUnder(`${k}/`)) return DIR_STATS;
        if (isBlobData(k)) {
          const live = await store.head(k);
          if (live !== undefined) return fileStats(live.size, live.lastModified.getTime());
        } else if (k.startsWith(blobsKeyPrefix)) {
          // A blob's directories exist as far as the listing can say; its data answers for them (HEAD above).
          return DIR_STATS;
        }
        throw enoent('lstat', path);
      },
      readFile: read,
      readText: async (path) => Buffer.from(await read(path)).toString('utf8'),
      readlink: async (path) => {
        throw Object.assign(new Error(`EINVAL: invalid argument, readlink '${path}'`), { code: 'EINVAL' });
      },
      realpath: async (path) => path,
    },
    `s3 bucket (${root})`,
  );

  return {
    fs,
    layout: lay,
    key,
    stats: () => ({ keys: snap.keys.length, linksProven, linksRead, manifestsFetched, manifestsCached }),
    refresh: async () => {
      loaded = load();
      await loaded;
    },
  };
}
