import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
import type { Layout } from '../storage/paths.js';
import type { WarningSink } from '../storage/warnings.js';
import { limiter, type Limiter } from '../util/limit.js';
import { parseManifest, type ManifestRefs } from './manifest.js';
import type { RepoGraphView } from './reach.js';

/** A manifest blob as read from the blob store. */
export type ManifestEntry =
  | { readonly ok: true; readonly refs: ManifestRefs; readonly size: number }
  | { readonly ok: false; readonly problem: string; readonly missing: boolean };

export interface RepoManifests {
  readonly repository: RepositoryName;
  /** Digests under `_manifests/revisions/sha256/`. */
  readonly revisions: ReadonlySet<Digest>;
  /**
   * Set when reachability in this repository cannot be known exactly (a
   * manifest missing or not understood, a symlink among revisions): no
   * manifest of it is removed, and all its linked layers count as referenced.
   */
  opaque: string | undefined;
  /** For opaque repositories: the blobs linked under `_layers` (what its manifests might reference). */
  linkedLayers: readonly Digest[];
}

/**
 * Reads manifests once each, shared by all repositories (the blob store is
 * global). Digest strings are interned so a layer shared by a thousand
 * manifests is held once.
 */
export class ManifestCache {
  private readonly entries = new Map<Digest, Promise<ManifestEntry>>();
  private readonly done = new Map<Digest, ManifestEntry>();
  private readonly interned = new Map<string, Digest>();
  constructor(
    private readonly fs: StorageFs,
    private readonly lay: Layout,
    private readonly io: Limiter,
    private readonly onRead?: () => void,
  ) {}

  private intern(d: Digest): Digest {
    const existing = this.interned.get(d);
    if (existing !== undefined) return existing;
    this.interned.set(d, d);
    return d;
  }

  private internRefs(refs: ManifestRefs): ManifestRefs {
    return {
      kind: refs.kind,
      mediaType: refs.mediaType,
      blobs: refs.blobs.map((b) => this.intern(b)),
      children: refs.children.map((c) => this.intern(c)),
      subject: refs.subject === undefined ? undefined : this.intern(refs.subject),
    };
  }

  load(digest: Digest): Promise<ManifestEntry> {
    const cached = this.entries.get(digest);
    if (cached !== undefined) return cached;
    const path = this.lay.blobData(digest);
    const p = this.io.run(async (): Promise<ManifestEntry> => {
      let bytes: Uint8Array;
      try {
        bytes = await this.fs.readFile(path);
      } catch (err) {
        const missing = errnoCode(err) === 'ENOENT';
        return { ok: false, missing, problem: missing ? 'manifest blob is missing' : `cannot read manifest blob: ${(err as Error).message}` };
      } finally {
        this.onRead?.();
      }
      const parsed = parseManifest(bytes);
      return parsed.ok ? { ok: true, refs: this.internRefs(parsed.refs), size: bytes.length } : { ok: false, missing: false, problem: parsed.problem };
    });
    const tracked = p.then((e) => {
      this.done.set(digest, e);
      return e;
    });
    this.entries.set(this.intern(digest), tracked);
    return tracked;
  }

  /** The entry if already loaded (synchronous, for the pure reachability code). */
  peek(digest: Digest): ManifestEntry | undefined {
    return this.done.get(digest);
  }

  refs(digest: Digest): ManifestRefs | undefined {
    const e = this.done.get(digest);
    return e !== undefined && e.ok ? e.refs : undefined;
  }

  /** Loads `roots` and, transitively, index children. */
  async loadClosure(roots: Iterable<Digest>): Promise<void> {
    let frontier = [...roots];
    const seen = new Set<Digest>();
    while (frontier.length > 0) {
      const next: Digest[] = [];
      const batch = frontier.filter((d) => !seen.has(d));
      for (const d of batch) seen.add(d);
      const loaded = await Promise.all(batch.map((d) => this.load(d)));
      for (const e of loaded) if (e.ok) next.push(...e.refs.children);
      frontier = next;
    }
  }
}

async function listDir(fs: StorageFs, io: Limiter, path: string, warn: WarningSink) {
  try {
    return await io.run(() => fs.readdir(path, { withFileTypes: true }));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    warn({ code: 'unreadable', path, message: `cannot list directory: ${(err as Error).message}` });
    return undefined;
  }
}

/** Lists `<dir>/<hex>` entries as digests; anything else is reported. */
async function listDigestDirs(fs: StorageFs, io: Limiter, dir: string, warn: WarningSink): Promise<{ digests: Digest[]; problem?: string }> {
  const entries = await listDir(fs, io, dir, warn);
  if (entries === undefined) return { digests: [], problem: `cannot list ${dir}` };
  const digests: Digest[] = [];
  let problem: string | undefined;
  for (const e of entries) {
    const path = posix.join(dir, e.name);
    const d = `sha256:${e.name}`;
    if (e.isSymbolicLink()) {
      warn({ code: 'symlink', path, message: 'symbolic link; not followed' });
      problem = `symbolic link at ${path}`;
    } else if (!isDigest(d)) {
      if (!e.name.includes('.tmp')) warn({ code: 'unexpected', path, message: 'not a sha256 digest directory; ignored' });
    } else if (e.isDirectory()) digests.push(d);
  }
  return problem === undefined ? { digests } : { digests, problem };
}

/** The blobs linked into a repository under `_layers` (config and layer links). */
export async function listLinkedLayers(fs: StorageFs, lay: Layout, repository: RepositoryName, warn: WarningSink = () => {}): Promise<Digest[]> {
  return (await listDigestDirs(fs, limiter(16), lay.layers(repository), warn)).digests;
}

export interface LoadGraphOptions {
  /** Reuse manifests already read (content-addressed, so never stale). */
  readonly cache?: ManifestCache;
  readonly onWarning?: WarningSink;
  readonly onProgress?: (p: { manifests: number }) => void;
  readonly concurrency?: number;
}

export interface RepoGraph extends RepoGraphView {
  readonly repos: ReadonlyMap<RepositoryName, RepoManifests>;
  readonly cache: ManifestCache;
}

/** A per-repository view over the shared cache (referrers are repository-local). */
export function repoView(cache: ManifestCache, revisions: Iterable<Digest>): RepoGraphView {
  const referrers = new Map<Digest, Digest[]>();
  for (const d of revisions) {
    const s = cache.refs(d)?.subject;
    if (s === undefined) continue;
    const list = referrers.get(s);
    if (list === undefined) referrers.set(s, [d]);
    else list.push(d);
  }
  return { refs: (d) => cache.refs(d), referrers: (d) => referrers.get(d) ?? [] };
}

/**
 * Reads every repository's revisions and the manifests behind them. `extra`
 * gives further digests per repository that must be loaded (tag targets that
 * may lack a revision link).
 */
export async function loadRepoManifests(
  fs: StorageFs,
  lay: Layout,
  repositories: ReadonlyMap<RepositoryName, Iterable<Digest>>,
  options: LoadGraphOptions = {},
): Promise<{ repos: Map<RepositoryName, RepoManifests>; cache: ManifestCache }> {
  const io = limiter(options.concurrency ?? 64);
  const warn: WarningSink = options.onWarning ?? (() => {});
  let read = 0;
  const cache =
    options.cache ??
    new ManifestCache(fs, lay, io, () => {
      read++;
      if (read % 1000 === 0) options.onProgress?.({ manifests: read });
    });
  const repos = new Map<RepositoryName, RepoManifests>();
  const warned = new Set<Digest>();
  await Promise.all(
    [...repositories].map(async ([repository, tagDigests]) => {
      const listed = await listDigestDirs(fs, io, lay.revisions(repository), warn);
      const revisions = new Set(listed.digests);
      await cache.loadClosure([...revisions, ...tagDigests]);
      let opaque = listed.problem;
      for (const d of revisions) {
        const e = cache.peek(d);
        if (e === undefined || e.ok) continue;
        opaque ??= `manifest ${d}: ${e.problem}`;
        if (!warned.has(d)) {
          warned.add(d);
          warn({
            code: e.missing ? 'missing-blob' : 'bad-manifest',
            path: e.missing ? lay.revision(repository, d) : lay.blobData(d),
            message: `${e.problem}; kept, with everything in ${repository} it might reference`,
          });
        }
      }
      let linkedLayers: Digest[] = [];
      if (opaque !== undefined) linkedLayers = (await listDigestDirs(fs, io, lay.layers(repository), warn)).digests;
      repos.set(repository, { repository, revisions, opaque, linkedLayers });
    }),
  );
  options.onProgress?.({ manifests: read });
  return { repos, cache };
}
