import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { errnoCode } from '../../model/errors.js';
import { storageDoor } from '../door.js';
import { readOnlyFs, readPlainByPath, type DirEntry, type FileStats, type ReadPlainOptions, type StorageFs } from '../fs.js';
import { ALGORITHM, CURRENT, DATA, INDEX, LAYERS, LINK, MANIFESTS, REVISIONS, TAGS, V2_SUFFIX, layout, type Layout } from '../paths.js';
import type { ObjectStore, S3ObjectInfo } from './client.js';
import { linkEtag } from './keys.js';

/**
 * The bucket seen as the filesystem driver's tree, so that walk, graph, plan,
 * du and check run on it unchanged (the registry does the same: its logic
 * sits above a driver that maps paths to keys, `<rootdirectory>/<path>`).
 *
 * One listing (pages of 1000 keys) of `docker/registry/v2/` is taken on
 * first use (and one of regprune's `.regprune/` when a path there is first
 * read): directories are key
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
  /**
   * Takes the listing now if not yet taken (else on first read). A failed
   * listing (no such bucket, denied) fails here, where a walk would report
   * each directory it could not list as a warning.
   */
  ready(): Promise<void>;
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

function notUnderstood(op: string, path: string, why: string): Error {
  return Object.assign(new Error(`EIO: ${why}; not understood, left in place, ${op} '${path}'`), { code: 'EIO' });
}

/**
 * Keys a filesystem cannot hold, or that no registry writes where they are,
 * found in a listing. Each makes a part of the tree refuse to be read (an
 * error naming the key, which the walk and the graph report as a warning):
 *
 * - `units`: a tag's directory, a revision's or a layer link's directory,
 *   holding such a key (a tag's or a revision's: or any object but the links
 *   the registry writes there, `current/link` and `index/sha256/<hex>/link`;
 *   `link`): nothing at or below it is read, so the tag is never selected and its repository's
 *   manifests stay (the S3 apply removes a tag by deleting every key under
 *   it, which must then be only what it understood; on S3 the registry's own
 *   manifest delete removes a revision's whole prefix, so it leaves no
 *   directory without its link for a plan to sweep);
 *   and elsewhere, a key that is also a prefix (`.../link` and `.../link/x`):
 *   neither the file nor anything below it is read;
 * - `listings`: elsewhere, the directory whose listing holds the odd name.
 */
class OddKeys {
  readonly units = new Map<string, string>();
  readonly listings = new Map<string, string>();

  get empty(): boolean {
    return this.units.size === 0 && this.listings.size === 0;
  }

  /** Why `k` (a key path without a trailing `/`) cannot be read, if it cannot. */
  refused(k: string, listing: boolean): string | undefined {
    if (this.empty) return undefined;
    if (listing && this.listings.has(k)) return this.listings.get(k);
    for (let p = k; ; ) {
      const why = this.units.get(p);
      if (why !== undefined) return why;
      const slash = p.lastIndexOf('/');
      if (slash < 0) return undefined;
      p = p.slice(0, slash);
    }
  }
}

const q = (k: string) => JSON.stringify(k);

/**
 * The unit (tag, revision or layer link directory) a key below
 * `repositories/` lies in, as the index of its last segment, with whether the
 * key is one the registry writes there. `parts` is the key below
 * `repositories/`, split on `/`.
 */
function unitOf(parts: readonly string[]): { end: number; written: boolean } | undefined {
  const at = parts.findIndex((p) => p.startsWith('_'));
  if (at <= 0) return undefined;
  const rest = parts.slice(at);
  const is = (...want: string[]) => rest.length === want.length && want.every((w, i) => w === '*' || (w === 'HEX' ? HEX.test(rest[i] as string) : rest[i] === w));
  if (rest[0] === MANIFESTS && rest[1] === TAGS && rest.length >= 4) {
    return { end: at + 2, written: is(MANIFESTS, TAGS, '*', CURRENT, LINK) || is(MANIFESTS, TAGS, '*', INDEX, ALGORITHM, 'HEX', LINK) };
  }
  if (rest[0] === MANIFESTS && rest[1] === REVISIONS && rest[2] === ALGORITHM && rest.length >= 5) return { end: at + 3, written: is(MANIFESTS, REVISIONS, ALGORITHM, '*', LINK) };
  if (rest[0] === LAYERS && rest[1] === ALGORITHM && rest.length >= 4) return { end: at + 2, written: true };
  return undefined;
}

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
/** Path segments a key may hold but no directory entry can: they would walk in place or up the tree. */
const BAD_SEGMENT = new Set(['', '.', '..']);
/** Some segment of a key is ``, `.` or `..` (tested first: one regular expression per key). */
const ODD_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/;
const TAG_DIRS = `/${MANIFESTS}/${TAGS}/`;
const REVISION_DIRS = `/${MANIFESTS}/${REVISIONS}/`;
/** What the registry writes in a tag's or a revision's directory (a quick test; unitOf decides). */
const WRITTEN_LINK = new RegExp(`/${MANIFESTS}/(?:${TAGS}/[^/]+/(?:${CURRENT}/${LINK}|${INDEX}/${ALGORITHM}/[a-f0-9]{64}/${LINK})|${REVISIONS}/${ALGORITHM}/[^/]+/${LINK})$`);

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

  /** Adds keys that all sort before this snapshot's first. */
  prepend(before: Snapshot): void {
    this.keys = [...before.keys, ...this.keys];
    this.sizes = [...before.sizes, ...this.sizes];
    this.mtimes = [...before.mtimes, ...this.mtimes];
    this.etags = [...before.etags, ...this.etags];
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

  /**
   * Direct children of the directory `prefix` (ending in `/`, or `''` for the
   * top). Names no directory entry can have (``, `.`, `..`) are left out (the
   * directory holding them refuses to be listed: see `odd`), and a key that
   * is also a prefix shows once, as a directory.
   */
  children(prefix: string): DirEntry[] {
    const out: DirEntry[] = [];
    let i = this.lowerBound(prefix);
    while (i < this.keys.length) {
      const k = this.keys[i] as string;
      if (!k.startsWith(prefix)) break;
      const rest = k.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) {
        if (!BAD_SEGMENT.has(rest) && !this.hasUnder(`${k}/`)) out.push(dirEntry(rest, false));
        i++;
        continue;
      }
      const name = rest.slice(0, slash);
      if (!BAD_SEGMENT.has(name)) out.push(dirEntry(name, true));
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
  let odd = new OddKeys();
  const root = rootPrefix === '' ? '/' : `/${rootPrefix.replace(/\/$/, '')}`;
  /** Segments of the rootdirectory's prefix (`reg/` -> 1): the driver's own configuration, not the bucket's content. */
  const rootParts = rootPrefix === '' ? 0 : rootPrefix.replace(/\/$/, '').split('/').length;
  const lay = layout(root);
  const key = (path: string): string => path.slice(1);
  const reposPrefix = `${key(lay.repositories)}/`;
  /** Marks what `parts[bad]` onwards (of key `k`) makes unreadable. */
  const mark = (found: OddKeys, k: string, parts: readonly string[], bad: number, why: string) => {
    const rel = k.startsWith(reposPrefix) ? k.slice(reposPrefix.length).split('/') : undefined;
    const shift = parts.length - (rel?.length ?? 0);
    const unit = rel === undefined ? undefined : unitOf(rel);
    if (unit !== undefined && bad - shift > unit.end) found.units.set(parts.slice(0, shift + unit.end + 1).join('/'), why);
    else if (bad === parts.length - 1 && !BAD_SEGMENT.has(parts[bad] as string)) found.units.set(k, why);
    else found.listings.set(parts.slice(0, bad).join('/'), why);
  };
  /** Lists `prefix` into `next` (sorted when done), noting odd keys in `found`. */
  const listInto = async (prefix: string, next: Snapshot, found: OddKeys) => {
    await store.list(prefix, (page) => {
      for (const o of page) {
        // A directory marker (zero bytes, trailing `/`, as some tools create): the directory, no file.
        const marker = o.size === 0 && o.key.endsWith('/');
        const own = o.key.slice(rootPrefix.length, marker ? -1 : undefined);
        if (ODD_SEGMENT.test(own)) {
          const parts = o.key.split('/');
          const bad = parts.findIndex((p, i) => i >= rootParts && BAD_SEGMENT.has(p) && !(marker && i === parts.length - 1));
          mark(found, o.key, parts, bad, `s3 key ${q(o.key)} has an empty, . or .. segment`);
        } else if (!marker && (o.key.includes(TAG_DIRS) || o.key.includes(REVISION_DIRS)) && !WRITTEN_LINK.test(o.key) && o.key.startsWith(reposPrefix)) {
          const rel = o.key.slice(reposPrefix.length).split('/');
          const unit = unitOf(rel);
          if (unit !== undefined && !unit.written) {
            const parts = o.key.split('/');
            found.units.set(parts.slice(0, parts.length - rel.length + unit.end + 1).join('/'), `s3 key ${q(o.key)} is no link the registry writes in a tag's or a revision's directory`);
          }
        }
        if (!marker) next.add(o);
      }
      options.onProgress?.({ keys: next.keys.length });
    });
    next.sort();
    // A key that is also a prefix: a file and a directory at once.
    // Keys under `k/` sort right after `k` with the keys starting with `k`: only then is it searched.
    for (let i = 0; i + 1 < next.keys.length; i++) {
      const k = next.keys[i] as string;
      if ((next.keys[i + 1] as string).startsWith(k) && next.hasUnder(`${k}/`)) {
        mark(found, k, k.split('/'), k.split('/').length - 1, `s3 key ${q(k)} is an object and a prefix (of ${q(next.keys[next.lowerBound(`${k}/`)] as string)})`);
      }
    }
  };
  const stateKey = key(lay.stateDir);
  /** regprune's own `.regprune/` is listed when first read (a journal, a trash): `list` and `du` cost one request per 1000 keys. */
  let stateLoaded: Promise<void> | undefined;
  const load = async () => {
    const next = new Snapshot();
    const found = new OddKeys();
    await listInto(`${rootPrefix}${V2_SUFFIX}/`, next, found);
    snap = next;
    odd = found;
    stateLoaded = undefined;
  };
  const loadState = async () => {
    const state = new Snapshot();
    await listInto(`${stateKey}/`, state, odd);
    // `.regprune` sorts before `docker` (`.` before `d`): the state's keys go first.
    snap.prepend(state);
  };
  const needsState = (k: string) => k === '' || k === stateKey || stateKey.startsWith(`${k}/`) || k.startsWith(`${stateKey}/`);
  // Listed on first use: a run that takes a lock first plans from a listing made under it.
  let loaded: Promise<void> | undefined;
  const ready = () => (loaded ??= load());
  /** The listing, with `.regprune/` in it when `k` is there or above it. */
  const readyFor = async (k: string) => {
    await ready();
    if (needsState(k)) await (stateLoaded ??= loadState());
  };

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

  const refuse = (op: string, path: string, k: string, listing = false) => {
    const why = odd.refused(k, listing);
    if (why !== undefined) throw notUnderstood(op, path, why);
  };

  const read = async (path: string): Promise<Uint8Array> => {
    const k = key(path);
    await readyFor(k);
    refuse('open', path, k);
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
        const k = key(path);
        await readyFor(k);
        refuse('scandir', path, k, true);
        const prefix = k === '' ? '' : `${k}/`;
        const entries = snap.children(prefix);
        if (entries.length > 0) return entries;
        if (snap.find(k) >= 0) throw enotdir('scandir', path);
        throw enoent('scandir', path);
      },
      lstat: async (path) => {
        const k = key(path);
        await readyFor(k);
        refuse('lstat', path, k);
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
      readPlain: ((path: string, options: ReadPlainOptions) => readPlainByPath(fs, path, options)) as StorageFs['readPlain'],
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
    ready,
    refresh: async () => {
      loaded = load();
      await loaded;
    },
  };
}
