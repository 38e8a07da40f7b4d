import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { ManifestEntry } from '../../graph/load.js';
import { parseManifest, type ManifestKind, type ManifestRefs } from '../../graph/manifest.js';
import { errnoCode } from '../../model/errors.js';
import type { Digest } from '../../model/names.js';
import { digestHex, isDigest } from '../../model/names.js';
import { mapLimit } from '../../util/limit.js';
import { AppendOnlyFile, storageDoor } from '../door.js';
import type { StorageFs } from '../fs.js';
import { DATA } from '../paths.js';
import type { ObjectStore } from './client.js';
import { blobsPrefix } from './keys.js';

/**
 * Manifests read from the bucket's blob store, with a parsed cache on local
 * disk between runs. Manifests are content-addressed: once a blob's bytes
 * hash to its digest, what it references never changes, so a nightly run
 * GETs only the manifests pushed since the last one. The cache is keyed by
 * `parserId` (regprune's version): another parser starts a fresh file.
 */

/** The object key of a blob's data under a rootdirectory key prefix. */
export function blobDataKey(rootPrefix: string, digest: Digest): string {
  const hex = digestHex(digest);
  return `${blobsPrefix(rootPrefix)}${hex.slice(0, 2)}/${hex}/${DATA}`;
}

interface CachedManifest {
  readonly size: number;
  readonly refs: ManifestRefs;
}

const KINDS: readonly ManifestKind[] = ['image', 'index', 'schema1'];

function fromLine(line: string): [Digest, CachedManifest] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined; // a line cut short by a killed run
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const digests = (x: unknown): x is Digest[] => Array.isArray(x) && x.every((d) => typeof d === 'string' && isDigest(d));
  if (typeof o.d !== 'string' || !isDigest(o.d)) return undefined;
  if (typeof o.s !== 'number' || !Number.isSafeInteger(o.s) || o.s < 0) return undefined;
  if (typeof o.k !== 'string' || !KINDS.includes(o.k as ManifestKind) || typeof o.m !== 'string') return undefined;
  if (!digests(o.b) || !digests(o.c)) return undefined;
  if (o.j !== undefined && (typeof o.j !== 'string' || !isDigest(o.j))) return undefined;
  return [o.d, { size: o.s, refs: { kind: o.k as ManifestKind, mediaType: o.m, blobs: o.b, children: o.c, subject: o.j as Digest | undefined } }];
}

function toLine(digest: Digest, m: CachedManifest): string {
  const r = m.refs;
  return `${JSON.stringify({ d: digest, s: m.size, k: r.kind, m: r.mediaType, b: r.blobs, c: r.children, ...(r.subject === undefined ? {} : { j: r.subject }) })}\n`;
}

export class ManifestDiskCache {
  private readonly entries = new Map<Digest, CachedManifest>();
  private pending: string[] = [];
  private constructor(
    private readonly fs: StorageFs,
    readonly file: string,
  ) {}

  /** Opens (creating the directory) the cache file for `parserId` under `dir`. */
  static async open(fs: StorageFs, dir: string, parserId: string): Promise<ManifestDiskCache> {
    const id = createHash('sha256').update(parserId).digest('hex').slice(0, 16);
    const cache = new ManifestDiskCache(fs, posix.join(dir, `manifests-${id}.jsonl`));
    // A local directory outside the registry's tree: created through the door rooted at its
    // parent (never through a symlink), appended to as a plain file (AppendOnlyFile: no link followed).
    await storageDoor(fs, posix.dirname(dir)).ensureDir(dir, { mode: 0o700 });
    let text = '';
    try {
      text = await fs.readText(cache.file);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const e = fromLine(line);
      if (e !== undefined) cache.entries.set(e[0], e[1]);
    }
    return cache;
  }

  get size(): number {
    return this.entries.size;
  }

  get(digest: Digest): CachedManifest | undefined {
    return this.entries.get(digest);
  }

  add(digest: Digest, entry: CachedManifest): void {
    if (this.entries.has(digest)) return;
    this.entries.set(digest, entry);
    this.pending.push(toLine(digest, entry));
  }

  /** Appends what was added since the last flush (one write); returns how many entries. */
  async flush(): Promise<number> {
    const lines = this.pending;
    if (lines.length === 0) return 0;
    this.pending = [];
    const out = await AppendOnlyFile.open(this.fs, this.file, 'manifest cache');
    try {
      out.append(lines.join(''));
    } finally {
      out.close();
    }
    return lines.length;
  }
}

export interface ManifestReadStats {
  /** Manifests fetched from the bucket. */
  gets: number;
  /** Manifests answered by the disk cache. */
  cached: number;
}

export interface ReadManifestsOptions {
  readonly cache?: ManifestDiskCache;
  readonly concurrency?: number;
  readonly onProgress?: (stats: ManifestReadStats) => void;
}

/**
 * Loads `roots` and, transitively, the children of indexes, from the cache
 * or the bucket. A blob whose bytes do not hash to its digest is not
 * understood (and never cached).
 */
export async function readManifests(
  store: ObjectStore,
  rootPrefix: string,
  roots: Iterable<Digest>,
  options: ReadManifestsOptions = {},
): Promise<{ manifests: Map<Digest, ManifestEntry>; stats: ManifestReadStats }> {
  const manifests = new Map<Digest, ManifestEntry>();
  const stats: ManifestReadStats = { gets: 0, cached: 0 };
  const cache = options.cache;

  const readOne = async (digest: Digest): Promise<ManifestEntry> => {
    const hit = cache?.get(digest);
    if (hit !== undefined) {
      stats.cached++;
      return { ok: true, size: hit.size, refs: hit.refs };
    }
    stats.gets++;
    const got = await store.get(blobDataKey(rootPrefix, digest));
    if (got === undefined) return { ok: false, missing: true, problem: 'manifest blob is missing' };
    if (`sha256:${createHash('sha256').update(got.body).digest('hex')}` !== digest) {
      return { ok: false, missing: false, problem: 'manifest blob content does not match its digest' };
    }
    const parsed = parseManifest(got.body);
    if (!parsed.ok) return { ok: false, missing: false, problem: parsed.problem };
    cache?.add(digest, { size: got.body.length, refs: parsed.refs });
    return { ok: true, size: got.body.length, refs: parsed.refs };
  };

  let frontier = [...new Set(roots)];
  while (frontier.length > 0) {
    const batch = frontier.filter((d) => !manifests.has(d));
    const read = await mapLimit(batch, options.concurrency ?? 32, readOne);
    const next = new Set<Digest>();
    batch.forEach((d, i) => {
      const e = read[i]!;
      manifests.set(d, e);
      if (e.ok) for (const c of e.refs.children) if (!manifests.has(c)) next.add(c);
    });
    options.onProgress?.({ ...stats });
    frontier = [...next];
  }
  await cache?.flush();
  return { manifests, stats };
}
