import { errnoCode } from '../model/errors.js';
import type { StorageFs } from '../storage/fs.js';
import type { Layout } from '../storage/paths.js';
import { walkRepositories } from '../storage/walk.js';
import type { StorageWarning } from '../storage/warnings.js';
import { walkBlobStore } from './blobs.js';
import { listLinkedLayers, loadRepoManifests } from './load.js';
import { measureUploads } from './usage.js';

export type FindingKind =
  | StorageWarning['code']
  | 'tag-without-revision' // the tag points at a manifest the repository does not link: pulls fail
  | 'missing-manifest' // the tag's manifest blob is gone: pulls fail
  | 'missing-referenced-blob' // a manifest references a blob that is gone: pulls of that image fail
  | 'dangling-layer-link' // `_layers` link whose blob is gone (2.8 GC leaves them)
  | 'stale-upload' // upload started over 24h ago
  | 'trash'; // left by an interrupted regprune run

export interface Finding {
  readonly kind: FindingKind;
  /** `error`: something the registry serves is broken. `clutter`: wasted space or leftovers. */
  readonly severity: 'error' | 'clutter' | 'warning';
  readonly path: string;
  readonly message: string;
}

const SEVERITY: Partial<Record<FindingKind, Finding['severity']>> = {
  'tag-without-revision': 'error',
  'missing-manifest': 'error',
  'missing-blob': 'error',
  'missing-referenced-blob': 'error',
  'dangling-layer-link': 'clutter',
  'stale-upload': 'clutter',
  trash: 'clutter',
};

/**
 * A read-only consistency check of the storage (an fsck): what the registry
 * would fail to serve, and what is left over. Changes nothing.
 */
export async function checkStorage(fs: StorageFs, lay: Layout, options: { now: Date }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (kind: FindingKind, path: string, message: string) =>
    findings.push({ kind, severity: SEVERITY[kind] ?? 'warning', path, message });
  const warn = (w: StorageWarning) => add(w.code, w.path, w.message);

  const records = await walkRepositories(fs, lay, { onWarning: warn });
  const [store, graph] = await Promise.all([
    walkBlobStore(fs, lay, warn),
    loadRepoManifests(fs, lay, new Map(records.map((r) => [r.name, r.tags.map((t) => t.digest)])), { onWarning: warn }),
  ]);
  const reported = new Set<string>();
  for (const r of records) {
    const repo = graph.repos.get(r.name);
    for (const t of r.tags) {
      const entry = graph.cache.peek(t.digest);
      if (entry !== undefined && !entry.ok && entry.missing) {
        add('missing-manifest', lay.tagCurrentLink(r.name, t.tag), `${r.name}:${t.tag} points at ${t.digest}, whose blob is gone`);
      } else if (repo !== undefined && !repo.revisions.has(t.digest)) {
        add('tag-without-revision', lay.tagCurrentLink(r.name, t.tag), `${r.name}:${t.tag} points at ${t.digest}, which ${r.name} does not link`);
      }
    }
    for (const d of repo?.revisions ?? []) {
      const refs = graph.cache.refs(d);
      if (refs === undefined) continue;
      for (const b of [...refs.blobs, ...refs.children]) {
        const key = `${r.name}@${d}@${b}`;
        if (store.has(b) || reported.has(key)) continue;
        reported.add(key);
        add('missing-referenced-blob', lay.revision(r.name, d), `manifest ${d} of ${r.name} references ${b}, which is not in the blob store`);
      }
    }
    for (const layer of await listLinkedLayers(fs, lay, r.name, warn)) {
      if (!store.has(layer)) add('dangling-layer-link', lay.layer(r.name, layer), `links ${layer}, whose blob is gone`);
    }
    const uploads = await measureUploads(fs, lay, r.name, options.now);
    const stale = uploads.filter((u) => u.stale);
    if (stale.length > 0) {
      const bytes = stale.reduce((n, u) => n + u.bytes, 0);
      add('stale-upload', lay.uploads(r.name), `${stale.length} upload(s) started over 24h ago (${bytes} bytes)`);
    }
  }
  try {
    // readdir follows a symlinked directory: a linked .regprune or trash is reported, never listed.
    for (const dir of [lay.stateDir, lay.trashDir]) {
      if ((await fs.lstat(dir)).isSymbolicLink()) {
        add('symlink', dir, 'symbolic link; regprune refuses to prune until it is a real directory (nothing is followed through it)');
        return findings;
      }
    }
    const trash = await fs.readdir(lay.trashDir, { withFileTypes: true });
    if (trash.length > 0) add('trash', lay.trashDir, `${trash.length} entr${trash.length === 1 ? 'y' : 'ies'} left by an interrupted regprune run; the next prune finishes them`);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') add('unreadable', lay.trashDir, (err as Error).message);
  }
  return findings;
}
