import { sweepableBlobs, totalBlobSizes } from '../graph/blobs.js';
import { DigestMarks } from '../graph/digest-table.js';
import { ManifestCache, repoView, walkAndLoad, type RepoManifests } from '../graph/load.js';
import { limiter } from '../util/limit.js';
import { signatureSubject } from '../graph/manifest.js';
import { keptClosure } from '../graph/reach.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { formatTagRef } from '../model/names.js';
import type { Selection, TagDecision, TagFacts } from '../policy/select.js';
import type { StorageFs } from '../storage/fs.js';
import type { Layout } from '../storage/paths.js';
import { readJournal } from '../storage/journal.js';
import type { RepositoryRecord } from '../storage/walk.js';
import type { StorageWarning } from '../storage/warnings.js';
import { PLAN_VERSION, type BlobSize, type BlockedRepository, type Plan, type PlannedManifest, type PlannedTag } from './plan.js';

/** Chooses tags: the command-line selector, or a policy file (see policy/). */
export type Decide = (
  repositories: ReadonlyMap<RepositoryName, readonly TagFacts[]>,
  dependent: (t: TagFacts) => boolean,
) => Selection;

export interface BuildPlanInput {
  readonly fs: StorageFs;
  readonly layout: Layout;
  readonly now: Date;
  readonly decide: Decide;
  /** Repositories where manifests that were already untagged also go (`--untagged`). */
  readonly untaggedIn?: (repository: RepositoryName) => boolean;
  readonly onWarning?: (w: StorageWarning) => void;
  readonly onProgress?: (p: { phase: 'tags' | 'manifests' | 'blobs'; done: number }) => void;
  readonly concurrency?: number;
  /** Shared with applyPlan in the same process, so manifests are read once. */
  readonly cache?: ManifestCache;
  /** Also list the digests and sizes behind the byte figures (`--verbose`). */
  readonly listBlobs?: boolean;
}

/** Values by repository, then tag (or digest): no "repository:tag" key string per tag (100k of them at scale). */
class ByRepository<V> {
  private readonly byRepository = new Map<string, Map<string, V>>();
  get(repository: string, key: string): V | undefined {
    return this.byRepository.get(repository)?.get(key);
  }
  has(repository: string, key: string): boolean {
    return this.byRepository.get(repository)?.has(key) ?? false;
  }
  set(repository: string, key: string, value: V): void {
    let inner = this.byRepository.get(repository);
    if (inner === undefined) {
      inner = new Map();
      this.byRepository.set(repository, inner);
    }
    inner.set(key, value);
  }
}

function planned(t: TagFacts, reason: string): PlannedTag {
  return { repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt.toISOString(), reason };
}

/**
 * The manifests of one repository that go once `remaining` tags are all that
 * is left: those reachable before but not after (or, with `untagged`, every
 * revision not reachable after). Returns the kept set too.
 */
export function orphanedManifests(
  cache: ManifestCache,
  repo: RepoManifests,
  allTagDigests: readonly Digest[],
  remaining: readonly Digest[],
  untagged: boolean,
  pending: ReadonlySet<Digest> = new Set(),
): { kept: Set<Digest>; keptByRepositorys: Set<Digest>; orphaned: Digest[] } {
  const view = repoView(cache, repo.revisions);
  const candidates = untagged ? repo.revisions : new Set([...keptClosure(allTagDigests, view), ...pending]);
  // Revisions that are not candidates stay (e.g. an index pinned by digest),
  // and so does everything they reach: a child of a kept untagged index is kept
  // even when the tag that also pointed at it goes.
  const staying = [...repo.revisions].filter((d) => !candidates.has(d));
  const kept = keptClosure([...remaining, ...staying], view);
  const orphaned = [...candidates].filter((d) => repo.revisions.has(d) && !kept.has(d)).sort();
  return { kept, keptByRepositorys: keptClosure(remaining, view), orphaned };
}

/**
 * Computes what a prune would do, without changing anything: which tags go
 * (selection), which manifests are orphaned by that (graph), and exactly how
 * many bytes garbage-collect will then free (blobs referenced by nothing left
 * in any repository).
 */
export async function buildPlan(input: BuildPlanInput): Promise<Plan> {
  const { fs, layout: lay } = input;
  const warnings: StorageWarning[] = [];
  const warn = (w: StorageWarning) => {
    warnings.push(w);
    input.onWarning?.(w);
  };
  const cache = input.cache ?? new ManifestCache(fs, lay, limiter(input.concurrency ?? 64));
  // Each repository's manifests are read as soon as its tags are.
  const { records, repos } = await walkAndLoad(
    fs,
    lay,
    {
      intern: (d) => cache.intern(d),
      onWarning: warn,
      onProgress: (p) => input.onProgress?.({ phase: 'tags', done: p.tags }),
      ...(input.concurrency === undefined ? {} : { concurrency: input.concurrency }),
    },
    {
      onWarning: warn,
      onProgress: (p) => input.onProgress?.({ phase: 'manifests', done: p.manifests }),
      cache,
      ...(input.concurrency === undefined ? {} : { concurrency: input.concurrency }),
    },
  );
  const byName = new Map<RepositoryName, RepositoryRecord>(records.map((r) => [r.name, r]));

  // Manifests an interrupted run set out to unlink: finished now, if still unreachable.
  const pending = new Map<RepositoryName, Set<Digest>>();
  for (const e of await readJournal(fs, lay, warn)) {
    const set = pending.get(e.repository) ?? new Set<Digest>();
    set.add(e.digest);
    pending.set(e.repository, set);
  }

  const dependent = (t: TagFacts) => {
    const subject = signatureSubject(t.tag);
    return subject !== undefined && subject !== t.digest && (repos.get(t.repository)?.revisions.has(subject) ?? false);
  };
  const selection = input.decide(new Map(records.map((r) => [r.name, r.tags])), dependent);

  const decisions = new ByRepository<TagDecision>();
  for (const d of selection.decisions) decisions.set(d.repository, d.tag, d);
  const removeReason = new ByRepository<string>();
  for (const d of selection.decisions) if (d.verdict === 'remove') removeReason.set(d.repository, d.tag, d.reason);
  const keepReason = new ByRepository<string>();

  // Signatures follow their subject: iterate until removing signature tags
  // orphans nothing further.
  const affected = new Set<RepositoryName>(selection.decisions.filter((d) => d.verdict === 'remove').map((d) => d.repository));
  if (input.untaggedIn !== undefined) for (const r of records) if (input.untaggedIn(r.name)) affected.add(r.name);
  for (const name of pending.keys()) if (byName.has(name)) affected.add(name);
  const orphans = new Map<RepositoryName, Digest[]>();
  const blocked: BlockedRepository[] = [];
  const leftovers: PlannedManifest[] = [];
  // Figures are exact unless something was not fully understood; decided
  // before the loop below marks repositories with unreadable tags (tags do not
  // change what garbage-collect without -m marks).
  const exact =
    [...repos.values()].every((r) => r.marksUnknown === undefined) &&
    !warnings.some((w) => w.code === 'bad-name' || w.code === 'symlink' || w.code === 'unreadable' || w.code === 'unexpected');
  for (const name of [...affected].sort()) {
    const record = byName.get(name);
    const repo = repos.get(name);
    if (record === undefined || repo === undefined) continue;
    const untagged = input.untaggedIn?.(name) ?? false;
    if (repo.opaque === undefined && record.unreadableTags > 0) {
      repo.opaque = `${record.unreadableTags} tag(s) could not be read`;
    }
    const all = record.tags.map((t) => t.digest);
    for (let round = 0; round < 64; round++) {
      const remaining = record.tags.filter((t) => !removeReason.has(name, t.tag)).map((t) => t.digest);
      const { keptByRepositorys, orphaned } = orphanedManifests(cache, repo, all, remaining, untagged, pending.get(name));
      // A blocked repository has no manifest removed: a signature follows what happens to its manifest.
      const gone = new Set(repo.opaque === undefined ? orphaned : []);
      let changed = false;
      for (const t of record.tags) {
        const decision = decisions.get(name, t.tag);
        const subject = signatureSubject(t.tag);
        if (subject === undefined || !dependent(t) || decision?.named === true) continue;
        if (gone.has(subject) && !removeReason.has(name, t.tag)) {
          removeReason.set(name, t.tag, `signature of removed ${subject}`);
          changed = true;
        } else if (repo.opaque !== undefined && orphaned.includes(subject)) {
          keepReason.set(name, t.tag, `kept: signature of ${subject}, which stays (no manifest removed: ${repo.opaque})`);
        } else if (keptByRepositorys.has(subject)) {
          keepReason.set(name, t.tag, `kept: signature of kept ${subject}`);
        } else if (!gone.has(subject)) {
          keepReason.set(name, t.tag, `kept: signature of untagged ${subject}, which stays`);
        }
      }
      if (!changed) {
        orphans.set(name, orphaned);
        break;
      }
    }
    if (repo.opaque !== undefined && (orphans.get(name)?.length ?? 0) > 0) {
      blocked.push({ repository: name, reason: `no manifest removed: ${repo.opaque}` });
      orphans.set(name, []);
    }
    if (repo.opaque === undefined) {
      for (const d of repo.leftovers) leftovers.push({ repository: name, digest: d, reason: 'revision directory without link (left by an API delete): no manifest' });
    }
  }

  const tags: PlannedTag[] = [];
  const kept: PlannedTag[] = [];
  for (const r of records) {
    for (const t of r.tags) {
      const remove = removeReason.get(r.name, t.tag);
      if (remove !== undefined) tags.push(planned(t, remove));
      else {
        const d = decisions.get(r.name, t.tag);
        if (d !== undefined) kept.push(planned(t, keepReason.get(r.name, t.tag) ?? d.reason));
      }
    }
  }

  const removedTagsOf = new ByRepository<string[]>();
  for (const t of tags) {
    const list = removedTagsOf.get(t.repository, t.digest);
    if (list === undefined) removedTagsOf.set(t.repository, t.digest, [t.tag]);
    else list.push(t.tag);
  }
  const manifests: PlannedManifest[] = [];
  for (const [name, list] of [...orphans].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (list.length === 0) continue;
    const repo = repos.get(name);
    const taggedBefore =
      repo === undefined ? new Set<Digest>() : keptClosure(byName.get(name)?.tags.map((t) => t.digest) ?? [], repoView(cache, repo.revisions));
    for (const d of list) {
      const via = removedTagsOf.get(name, d);
      // Joined, not a template: one flat string where a template makes four pieces (84k reasons at 100k tags, 6 MB).
      const reason =
        via !== undefined
          ? [via.length > 1 ? 'tags' : 'tag', via.join(', '), 'removed'].join(' ')
          : taggedBefore.has(d)
            ? 'only reachable from removed tags'
            : pending.get(name)?.has(d) === true
              ? 'orphaned by an interrupted run'
              : 'untagged (--untagged)';
      manifests.push({ repository: name, digest: d, reason });
    }
  }

  // Exact reclaim: a blob is freed only if no manifest left in any repository marks it.
  const removedRevisions = new Map<RepositoryName, Set<Digest>>();
  for (const m of manifests) {
    const set = removedRevisions.get(m.repository as RepositoryName) ?? new Set<Digest>();
    set.add(m.digest as Digest);
    removedRevisions.set(m.repository as RepositoryName, set);
  }
  // Marks are bytes per digest id: sets of ~330k digest strings at 100k tags were tens of MB.
  const after = new DigestMarks();
  const freedCandidates = new DigestMarks();
  for (const repo of repos.values()) {
    const removed = removedRevisions.get(repo.repository);
    for (const b of repo.linkedLayers) after.add(cache.table.id(b));
    for (const d of repo.revisions) cache.mark(d, removed?.has(d) === true ? freedCandidates : after);
  }
  const freed = (function* () {
    for (const id of freedCandidates.minus(after)) yield cache.table.digest(id);
  })();
  const reclaimable: BlobSize[] | undefined = input.listBlobs === true ? [] : undefined;
  const unreferenced: BlobSize[] | undefined = input.listBlobs === true ? [] : undefined;
  // Both at once: their reads overlap with each other's work.
  const [{ bytes: reclaimableBytes, blobs: reclaimableBlobs }, swept] = await Promise.all([
    totalBlobSizes(fs, lay, freed, (d) => cache.size(d), 1024, (digest, size) => reclaimable?.push({ digest, size })).then((r) => {
      input.onProgress?.({ phase: 'blobs', done: r.looked });
      return r;
    }),
    // What garbage-collect sweeps already: blobs in the store no revision marks
    // now (2.8 marks from revisions only, never from _layers).
    sweepableBlobs(
      fs,
      lay,
      (hex) => {
        const id = cache.table.findHex(hex);
        return id === -2 ? undefined : id >= 0 && (after.has(id) || freedCandidates.has(id));
      },
      warn,
      (digest, size) => unreferenced?.push({ digest, size }),
    ),
  ]);
  const byDigest = (a: BlobSize, b: BlobSize) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0);

  const missing = selection.missing.map(formatTagRef);
  for (const ref of selection.missing) {
    warn({ code: 'missing-tag', path: lay.tag(ref.repository, ref.tag), message: `named tag ${formatTagRef(ref)} does not exist` });
  }
  let manifestCount = 0;
  for (const r of repos.values()) manifestCount += r.revisions.size;
  return {
    version: PLAN_VERSION,
    root: lay.root,
    createdAt: input.now.toISOString(),
    untagged: input.untaggedIn !== undefined,
    tags,
    kept,
    manifests,
    missing,
    blocked,
    reclaimableBytes,
    reclaimableBlobs,
    unreferencedBytes: swept.bytes,
    unreferencedBlobs: swept.blobs,
    exact,
    ...(reclaimable === undefined ? {} : { reclaimable: reclaimable.sort(byDigest) }),
    ...(unreferenced === undefined ? {} : { unreferenced: unreferenced.sort(byDigest) }),
    leftovers,
    stats: { repositories: records.length, tags: records.reduce((n, r) => n + r.tags.length, 0), manifests: manifestCount },
    warnings,
  };
}
