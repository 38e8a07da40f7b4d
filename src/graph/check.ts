import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
import { readLinks, type LinkRead } from '../storage/links.js';
import type { Layout } from '../storage/paths.js';
import { walkRepositories } from '../storage/walk.js';
import type { StorageWarning } from '../storage/warnings.js';
import { loadWithBlobStore } from './blobs.js';
import { listLinkedLayers } from './load.js';
import { measureUploads } from './usage.js';

export type FindingKind =
  | StorageWarning['code']
  | 'tag-without-revision' // the tag points at a manifest the repository does not link: pulls fail
  | 'missing-manifest' // the manifest blob of a tag (or an index child) is gone: pulls fail
  | 'missing-child' // an index names a child manifest the repository does not have (deleted through the API): pulls fail
  | 'missing-referenced-blob' // a manifest references a blob that is gone: pulls of that image fail
  | 'missing-layer-link' // a referenced blob is not linked into the repository (or its link is bad): the registry answers 404
  | 'empty-revision' // revision directory without link (left by the API's manifest DELETE): no manifest, breaks nothing
  | 'dangling-layer-link' // `_layers` link whose blob is gone (2.8 GC leaves them)
  | 'stale-upload' // upload started over 24h ago
  | 'trash'; // left by an interrupted regprune run

export interface Finding {
  readonly kind: FindingKind;
  /**
   * `error`: breaks a pull (of the tag or digest named in the message) or makes
   * garbage-collect abort. `clutter`: leftovers that break nothing.
   * `warning`: something not fully understood; breaks nothing the check can see.
   */
  readonly severity: 'error' | 'clutter' | 'warning';
  readonly path: string;
  readonly message: string;
}

/** Warnings from reading the tree that break a pull or garbage-collect. */
const ERROR_CODES: ReadonlySet<string> = new Set(['bad-link', 'missing-link', 'bad-manifest', 'unreadable']);

/**
 * A read-only consistency check of the storage (an fsck), judged the way the
 * registry reads it: what fails a pull (naming the `repo:tag` or
 * `repo@digest` a user would pull) or aborts garbage-collect is an error;
 * what is merely left over is clutter. Changes nothing.
 */
export async function checkStorage(fs: StorageFs, lay: Layout, options: { now: Date }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (kind: FindingKind, severity: Finding['severity'], path: string, message: string) => findings.push({ kind, severity, path, message });
  const warn = (w: StorageWarning) => {
    // Revisions whose blob is gone or not understood are judged below, by whether anything pulls them.
    if ((w.code === 'missing-blob' && w.path.startsWith(lay.repositories)) || w.code === 'bad-manifest') return;
    const blobDirWithoutData = w.code === 'missing-blob';
    add(w.code, blobDirWithoutData ? 'clutter' : ERROR_CODES.has(w.code) ? 'error' : 'warning', w.path, w.message);
  };

  const records = await walkRepositories(fs, lay, { onWarning: warn });
  const graph = await loadWithBlobStore(fs, lay, new Map(records.map((r) => [r.name, r.tags.map((t) => t.digest)])), { onWarning: warn });
  const { store, cache } = graph;
  for (const r of records) {
    const repo = graph.repos.get(r.name);
    const revisions = repo?.revisions ?? new Set<Digest>();
    const linked = new Set(await listLinkedLayers(fs, lay, r.name, warn));
    // What a pull of each tag needs, and the first tag (or digest) that needs it.
    const pulledAs = new Map<Digest, string>();
    const reported = new Set<string>();
    const once = (key: string, kind: FindingKind, path: string, message: string) => {
      if (reported.has(key)) return;
      reported.add(key);
      add(kind, 'error', path, message);
    };
    const visit = (d: Digest, as: string, path: string, parent: Digest | undefined) => {
      if (pulledAs.has(d)) return;
      pulledAs.set(d, as);
      // The registry also finds a manifest through a `_layers` link (2.1.0 wrote them there).
      if (!revisions.has(d) && !linked.has(d)) {
        if (parent === undefined) once(`rev ${d}`, 'tag-without-revision', path, `${as} points at ${d}, which ${r.name} does not link: pulls fail`);
        else once(`rev ${d}`, 'missing-child', lay.revision(r.name, d), `${as}: index ${parent} names child ${d}, which ${r.name} does not have (deleted through the API?): pulls fail`);
        return;
      }
      const e = cache.peek(d);
      if (e === undefined) return;
      if (!e.ok) {
        if (e.missing) once(`blob ${d}`, 'missing-manifest', lay.blobData(d), `${as}: manifest ${d} has no blob: pulls fail`);
        else if (e.refused === true && !revisions.has(d)) once(`bad ${d}`, 'bad-manifest', lay.blobData(d), `${as}: manifest ${d}: ${e.problem}: the registry cannot serve it`);
        return;
      }
      for (const c of e.refs.children) visit(c, as, path, d);
    };
    for (const t of r.tags) visit(t.digest, `${r.name}:${t.tag}`, lay.tagCurrentLink(r.name, t.tag), undefined);
    for (const d of revisions) {
      const as = pulledAs.get(d) ?? `${r.name}@${d}`;
      const e = cache.peek(d);
      if (e === undefined) continue;
      if (!e.ok) {
        if (e.missing && !pulledAs.has(d)) add('missing-blob', 'clutter', lay.revision(r.name, d), `${as}: revision whose manifest blob is gone; nothing tags it (garbage-collect skips it)`);
        else if (e.refused === true) once(`bad ${d}`, 'bad-manifest', lay.blobData(d), `${as}: ${e.problem}: the registry cannot serve it and garbage-collect aborts on it`);
        else if (!e.missing && e.code === undefined) add('bad-manifest', 'warning', lay.blobData(d), `${as}: ${e.problem}: regprune cannot be sure what it references; prune keeps everything in ${r.name}`);
        continue;
      }
      const foreign = new Set(e.refs.foreign ?? []);
      for (const b of e.refs.blobs) {
        // Foreign / non-distributable layers (descriptors with urls) are fetched from elsewhere.
        if (foreign.has(b)) continue;
        if (!store.has(b)) {
          once(`blob ${d} ${b}`, 'missing-referenced-blob', lay.revision(r.name, d), `${as}: manifest ${d} references ${b}, which is not in the blob store: pulls fail`);
        } else if (!linked.has(b)) {
          once(`link ${b}`, 'missing-layer-link', lay.layerLink(r.name, b), `${as}: ${b} is not linked into ${r.name}: the registry answers 404 for it`);
        }
      }
    }
    // Layer links of referenced blobs must read back as the registry reads them.
    const referenced = [...linked].filter((b) => store.has(b));
    const links = await readLinks(
      fs,
      referenced.map((b) => lay.layerLink(r.name, b)),
    );
    referenced.forEach((b, i) => {
      const link = links[i] as LinkRead;
      if (link.ok && link.digest === b) return;
      const problem = link.ok ? `names ${link.digest}, not ${b}` : link.warning.message;
      add(link.ok ? 'bad-link' : link.warning.code, 'error', lay.layerLink(r.name, b), `${r.name}: layer link ${problem}: pulls of ${b} fail`);
    });
    for (const d of repo?.leftovers ?? []) {
      add('empty-revision', 'clutter', lay.revision(r.name, d), `${r.name}@${d}: revision directory without link (left by an API delete): no manifest to the registry`);
    }
    for (const layer of linked) {
      if (!store.has(layer)) add('dangling-layer-link', 'clutter', lay.layer(r.name, layer), `links ${layer}, whose blob is gone`);
    }
    const uploads = await measureUploads(fs, lay, r.name as RepositoryName, options.now);
    const stale = uploads.filter((u) => u.stale);
    if (stale.length > 0) {
      const bytes = stale.reduce((n, u) => n + u.bytes, 0);
      add('stale-upload', 'clutter', lay.uploads(r.name), `${stale.length} upload(s) started over 24h ago (${bytes} bytes)`);
    }
  }
  try {
    // readdir follows a symlinked directory: a linked .regprune or trash is reported, never listed.
    for (const dir of [lay.stateDir, lay.trashDir]) {
      if ((await fs.lstat(dir)).isSymbolicLink()) {
        add('symlink', 'clutter', dir, 'symbolic link; regprune refuses to prune until it is a real directory (nothing is followed through it)');
        return findings;
      }
    }
    const trash = await fs.readdir(lay.trashDir, { withFileTypes: true });
    if (trash.length > 0) add('trash', 'clutter', lay.trashDir, `${trash.length} entr${trash.length === 1 ? 'y' : 'ies'} left by an interrupted regprune run; the next prune finishes them`);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') add('unreadable', 'error', lay.trashDir, (err as Error).message);
  }
  return findings;
}
