import { errnoCode } from '../model/errors.js';
import type { RepositoryName } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
import type { Layout } from '../storage/paths.js';
import { walkRepositories } from '../storage/walk.js';
import type { StorageWarning } from '../storage/warnings.js';
import { mapLimit } from '../util/limit.js';
import { loadWithBlobStore } from './blobs.js';

export interface RepositoryUsage {
  readonly repository: string;
  readonly tags: number;
  readonly manifests: number;
  /** Bytes of the blobs its manifests mark (manifests, configs, layers). */
  readonly referencedBytes: number;
  /** Bytes marked by no other repository: freed if this repository went. */
  readonly exclusiveBytes: number;
  readonly uploads: number;
  readonly uploadBytes: number;
  /** Set when its manifests could not all be read: its linked layers count as referenced. */
  readonly incomplete?: string;
}

export interface StorageUsage {
  readonly root: string;
  readonly repositories: readonly RepositoryUsage[];
  readonly blobStore: { readonly bytes: number; readonly blobs: number };
  /** Referenced by exactly one repository, summed over all repositories. */
  readonly exclusiveBytes: number;
  /** Referenced by two or more repositories. */
  readonly sharedBytes: number;
  /** Referenced by nothing: what garbage-collect would free right now. */
  readonly unreferenced: { readonly bytes: number; readonly blobs: number };
  /** Upload directories (`_uploads/<uuid>`): in progress or abandoned. */
  readonly uploads: { readonly count: number; readonly bytes: number; readonly stale: number; readonly staleBytes: number };
}

/** An upload that started this long ago is not a push in progress any more. */
export const STALE_UPLOAD_MS = 24 * 3600 * 1000;

export interface MeasureOptions {
  readonly now: Date;
  /** Which repositories to report (all are still measured, so exclusivity is exact). */
  readonly includeRepository?: (name: RepositoryName) => boolean;
  readonly onWarning?: (w: StorageWarning) => void;
  /** Counts as the walk goes (the CLI shows them on a terminal). */
  readonly onProgress?: (p: { phase: 'tags' | 'manifests'; done: number }) => void;
}

/** Upload directories of one repository: bytes received and whether the upload is stale. */
export async function measureUploads(fs: StorageFs, lay: Layout, repo: RepositoryName, now: Date) {
  let entries;
  try {
    entries = await fs.readdir(lay.uploads(repo), { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return mapLimit(
    entries.filter((e) => e.isDirectory()),
    16,
    async (e) => {
      let bytes = 0;
      let startedAt: Date | undefined;
      try {
        bytes = (await fs.lstat(lay.uploadFile(repo, e.name, 'data'))).size;
      } catch {
        // an upload that never received data
      }
      try {
        const text = Buffer.from(await fs.readFile(lay.uploadFile(repo, e.name, 'startedat'))).toString('utf8').trim();
        const t = new Date(text);
        if (!Number.isNaN(t.getTime())) startedAt = t;
      } catch {
        // no startedat: treated as stale
      }
      const stale = startedAt === undefined || now.getTime() - startedAt.getTime() > STALE_UPLOAD_MS;
      return { bytes, stale };
    },
  );
}

/**
 * Where the bytes are: per repository what its manifests reference and what
 * only it references; overall, what is shared and what nothing references.
 * exclusive + shared + unreferenced = blob store size, by construction.
 */
export async function measureUsage(fs: StorageFs, lay: Layout, options: MeasureOptions): Promise<StorageUsage> {
  const warn = options.onWarning ?? (() => {});
  const progress = options.onProgress;
  const records = await walkRepositories(fs, lay, { onWarning: warn, ...(progress === undefined ? {} : { onProgress: (p) => progress({ phase: 'tags', done: p.tags }) }) });
  const graph = await loadWithBlobStore(fs, lay, new Map(records.map((r) => [r.name, r.tags.map((t) => t.digest)])), {
    onWarning: warn,
    ...(progress === undefined ? {} : { onProgress: (p) => progress({ phase: 'manifests', done: p.manifests }) }),
  });
  const { store } = graph;
  const table = graph.cache.table;
  // Marks as digest-table ids: a set of digest strings per repository (about 500 each, a new
  // string per reference) was 60 MB at 100k tags, more than anything else du held.
  const marks = new Map<RepositoryName, Uint32Array>();
  for (const r of records) {
    const repo = graph.repos.get(r.name);
    const set = new Set<number>();
    for (const d of repo?.linkedLayers ?? []) set.add(table.id(d));
    if (repo !== undefined) for (const d of repo.revisions) graph.cache.mark(d, set);
    marks.set(r.name, Uint32Array.from(set));
  }
  // How many repositories mark each blob in the store (0, 1, 2 = more).
  const owners = new Uint8Array(table.size);
  for (const ids of marks.values()) for (const id of ids) if (store.sizeOf(id) >= 0 && (owners[id] as number) < 2) owners[id] = (owners[id] as number) + 1;
  const repositories: RepositoryUsage[] = [];
  let exclusiveTotal = 0;
  const uploads = { count: 0, bytes: 0, stale: 0, staleBytes: 0 };
  for (const r of records) {
    const ids = marks.get(r.name) ?? new Uint32Array(0);
    let referencedBytes = 0;
    let exclusiveBytes = 0;
    for (const id of ids) {
      const size = store.sizeOf(id);
      if (size < 0) continue;
      referencedBytes += size;
      if (owners[id] === 1) exclusiveBytes += size;
    }
    exclusiveTotal += exclusiveBytes;
    const ups = await measureUploads(fs, lay, r.name, options.now);
    for (const u of ups) {
      uploads.count++;
      uploads.bytes += u.bytes;
      if (u.stale) {
        uploads.stale++;
        uploads.staleBytes += u.bytes;
      }
    }
    if (options.includeRepository !== undefined && !options.includeRepository(r.name)) continue;
    const repo = graph.repos.get(r.name);
    repositories.push({
      repository: r.name,
      tags: r.tags.length,
      manifests: repo?.revisions.size ?? 0,
      referencedBytes,
      exclusiveBytes,
      uploads: ups.length,
      uploadBytes: ups.reduce((n, u) => n + u.bytes, 0),
      ...(repo?.opaque === undefined ? {} : { incomplete: repo.opaque }),
    });
  }
  repositories.sort((a, b) => b.exclusiveBytes - a.exclusiveBytes || (a.repository < b.repository ? -1 : 1));
  let storeBytes = 0;
  let referencedUnion = 0;
  let unreferencedBlobs = 0;
  for (let id = 0; id < table.size; id++) {
    const n = store.sizeOf(id);
    if (n < 0) continue;
    storeBytes += n;
    if ((owners[id] as number) > 0) referencedUnion += n;
    else unreferencedBlobs++;
  }
  return {
    root: lay.root,
    repositories,
    blobStore: { bytes: storeBytes, blobs: store.size },
    exclusiveBytes: exclusiveTotal,
    sharedBytes: referencedUnion - exclusiveTotal,
    unreferenced: { bytes: storeBytes - referencedUnion, blobs: unreferencedBlobs },
    uploads,
  };
}
