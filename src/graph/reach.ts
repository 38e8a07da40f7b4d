import type { Digest } from '../model/names.js';
import type { ManifestRefs } from './manifest.js';

/** What reachability needs to know about one repository's manifests. */
export interface RepoGraphView {
  /** Child manifests of an index (none for anything else, or for what could not be read). */
  children(digest: Digest): readonly Digest[];
  /** Manifests of this repository whose `subject` is `digest`. */
  referrers(digest: Digest): readonly Digest[];
}

/**
 * Every manifest kept alive by `roots` (the digests of the tags that stay):
 * index children to any depth, and referrers (signatures, attestations) of
 * anything kept, and their children in turn.
 */
export function keptClosure(roots: Iterable<Digest>, view: RepoGraphView): Set<Digest> {
  const kept = new Set<Digest>();
  const stack: Digest[] = [...roots];
  while (stack.length > 0) {
    const d = stack.pop() as Digest;
    if (kept.has(d)) continue;
    kept.add(d);
    for (const c of view.children(d)) if (!kept.has(c)) stack.push(c);
    for (const r of view.referrers(d)) if (!kept.has(r)) stack.push(r);
  }
  return kept;
}

/**
 * The blobs garbage-collect marks for a set of manifests: each manifest's own
 * blob and every descriptor it references (config, layers, child manifests).
 */
export function markBlobs(manifests: Iterable<Digest>, refs: (d: Digest) => ManifestRefs | undefined, into: Set<Digest> = new Set()): Set<Digest> {
  for (const m of manifests) {
    into.add(m);
    const r = refs(m);
    if (r === undefined) continue;
    for (const b of r.blobs) into.add(b);
    for (const c of r.children) into.add(c);
  }
  return into;
}
