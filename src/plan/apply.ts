import { posix } from 'node:path';
import { ManifestCache, repoView } from '../graph/load.js';
import { keptClosure } from '../graph/reach.js';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName, TagName } from '../model/names.js';
import { parseDigest, parseRepositoryName, parseTagName } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
import { clearJournal, writeJournal } from '../storage/journal.js';
import { readLink } from '../storage/links.js';
import { symlinkOnPath } from '../storage/nofollow.js';
import type { Layout } from '../storage/paths.js';
import { readRepositoryTags } from '../storage/walk.js';
import { limiter, mapLimit } from '../util/limit.js';
import type { ApplyReport, ManifestOutcome, Plan, PlannedManifest, PlannedTag, TagOutcome } from './plan.js';

export interface ApplyInput {
  readonly fs: StorageFs;
  readonly layout: Layout;
  readonly plan: Plan;
  /** Unique per run (the CLI uses time and pid): names this run's trash entries. */
  readonly runId: string;
  readonly cache?: ManifestCache;
  readonly onOutcome?: (o: TagOutcome | ManifestOutcome) => void;
  readonly concurrency?: number;
}

/**
 * Removal goes through a trash directory outside docker/registry/v2: one
 * rename takes the entry out of the registry's sight atomically, so a crash
 * leaves either the whole entry or none of it; the trash is emptied after,
 * and by the next run if this one dies first.
 */
class Trash {
  private n = 0;
  constructor(
    private readonly fs: StorageFs,
    private readonly dir: string,
    private readonly runId: string,
  ) {}

  async prepare(): Promise<number> {
    await this.fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    return finishTrash(this.fs, this.dir);
  }

  /** Moves `path` into the trash; undefined when it was not there. Falls back to in-place removal across filesystems. */
  async take(path: string): Promise<string | undefined> {
    const target = posix.join(this.dir, `${this.runId}-${++this.n}`);
    try {
      await this.fs.rename(path, target);
      return target;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return undefined;
      if (code === 'EXDEV') {
        await this.fs.rm(path, { recursive: true, force: false });
        return '';
      }
      throw err;
    }
  }

  /** Puts an entry back, unless something new was written at `path` meanwhile (then the new one wins). */
  async restore(trashed: string, path: string): Promise<boolean> {
    if (trashed === '') return false;
    try {
      await this.fs.rename(trashed, path);
      return true;
    } catch {
      await this.discard(trashed);
      return false;
    }
  }

  async discard(trashed: string): Promise<void> {
    if (trashed !== '') await this.fs.rm(trashed, { recursive: true, force: true });
  }
}

/** Empties what an interrupted run left in the trash; returns how many entries. */
export async function finishTrash(fs: StorageFs, dir: string): Promise<number> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
  for (const e of entries) await fs.rm(posix.join(dir, e.name), { recursive: true, force: true });
  return entries.length;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

/** The registry rewrites current/link on every push, even of the same digest: a newer mtime means a new push. */
function pushedSince(mtimeMs: number, plannedIso: string): boolean {
  const planned = Date.parse(plannedIso);
  return Number.isFinite(planned) && Math.floor(mtimeMs) > planned;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Executes a plan. Each entry is re-checked against the disk right before it
 * goes, and its outcome is a value: removed, missing (already gone), changed
 * (the tag was pushed again, or the manifest became reachable: left in place),
 * failed.
 */
export async function applyPlan(input: ApplyInput): Promise<ApplyReport> {
  const { fs, layout: lay, plan } = input;
  const concurrency = input.concurrency ?? 32;
  const trash = new Trash(fs, lay.trashDir, input.runId);
  const trashFinished = await trash.prepare();
  if (plan.manifests.length > 0) await writeJournal(fs, lay, plan.manifests, input.runId);
  const cache = input.cache ?? new ManifestCache(fs, lay, limiter(concurrency));

  const emitTag = (t: PlannedTag, result: TagOutcome['result'], detail?: string): TagOutcome => {
    // Literals, not `{ ...t, result }`: V8 makes spread-plus-extra objects dictionaries, 4x the size.
    const base = { repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt, reason: t.reason, result };
    const o: TagOutcome = detail === undefined ? base : { ...base, detail };
    input.onOutcome?.(o);
    return o;
  };
  const emitManifest = (m: PlannedManifest, result: ManifestOutcome['result'], detail?: string): ManifestOutcome => {
    const base = { repository: m.repository, digest: m.digest, reason: m.reason, result };
    const o: ManifestOutcome = detail === undefined ? base : { ...base, detail };
    input.onOutcome?.(o);
    return o;
  };

  const removeTag = async (t: PlannedTag): Promise<TagOutcome> => {
    let repo: RepositoryName, tag: TagName, digest: Digest;
    try {
      repo = parseRepositoryName(t.repository);
      tag = parseTagName(t.tag);
      digest = parseDigest(t.digest);
    } catch (err) {
      return emitTag(t, 'failed', `invalid plan entry: ${message(err)}`);
    }
    const dir = lay.tag(repo, tag);
    try {
      const linked = await symlinkOnPath(fs, lay, lay.tagCurrentDir(repo, tag));
      if (linked !== undefined) return emitTag(t, 'failed', `${linked} is a symbolic link; not followed, left in place`);
      const link = await readLink(fs, lay.tagCurrentLink(repo, tag));
      if (!link.ok) {
        if (link.warning.code === 'missing-link') {
          try {
            await fs.lstat(dir);
          } catch (err) {
            if (errnoCode(err) === 'ENOENT') return emitTag(t, 'missing');
          }
        }
        return emitTag(t, 'failed', `${link.warning.path}: ${link.warning.message}; left in place`);
      }
      if (link.digest !== digest) return emitTag(t, 'changed', `now points to ${link.digest}; left in place`);
      if (pushedSince(link.mtimeMs, t.pushedAt)) return emitTag(t, 'changed', 'pushed again since the plan; left in place');
      const trashed = await trash.take(dir);
      if (trashed === undefined) return emitTag(t, 'missing');
      if (trashed !== '') {
        // A push may have landed between the check and the rename.
        const again = await readLink(fs, posix.join(trashed, 'current', 'link'));
        if (!again.ok || again.digest !== digest || pushedSince(again.mtimeMs, t.pushedAt)) {
          await trash.restore(trashed, dir);
          return emitTag(t, 'changed', 'pushed again during removal; left in place');
        }
        try {
          await trash.discard(trashed);
        } catch (err) {
          return emitTag(t, 'removed', `left in ${trashed}: ${message(err)}`);
        }
      }
      return emitTag(t, 'removed');
    } catch (err) {
      return emitTag(t, 'failed', `removing tag directory ${dir}: ${message(err)}`);
    }
  };

  /**
   * Manifests still reachable from the repository's tags as they are on disk
   * now, or from the revisions the plan leaves in place.
   */
  const reachableNow = async (repo: RepositoryName, revisions: ReadonlySet<Digest>, planned: ReadonlySet<Digest>): Promise<Set<Digest> | string> => {
    let record = await readRepositoryTags(fs, lay, repo);
    // A push truncates current/link and then writes it: a link caught empty in
    // between is usually whole a moment later.
    for (let attempt = 0; record.unreadableTags > 0 && attempt < 5; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20 * (attempt + 1)));
      record = await readRepositoryTags(fs, lay, repo);
    }
    if (record.unreadableTags > 0) return `${record.unreadableTags} tag(s) of ${repo} could not be read`;
    const roots = [...record.tags.map((t) => t.digest), ...[...revisions].filter((d) => !planned.has(d))];
    await cache.loadClosure([...roots, ...revisions]);
    return keptClosure(roots, repoView(cache, revisions));
  };

  const mtimeOf = async (path: string): Promise<number | undefined> => {
    try {
      return (await fs.lstat(path)).mtimeMs;
    } catch {
      return undefined;
    }
  };

  const removeManifests = async (repoName: string, list: readonly PlannedManifest[]): Promise<ManifestOutcome[]> => {
    let repo: RepositoryName;
    let digests: Digest[];
    try {
      repo = parseRepositoryName(repoName);
      digests = list.map((m) => parseDigest(m.digest));
    } catch (err) {
      return list.map((m) => emitManifest(m, 'failed', `invalid plan entry: ${message(err)}`));
    }
    const revisions = new Set<Digest>();
    try {
      for (const e of await fs.readdir(lay.revisions(repo), { withFileTypes: true })) {
        const d = `sha256:${e.name}`;
        if (e.isDirectory() && /^sha256:[a-f0-9]{64}$/.test(d)) revisions.add(d as Digest);
      }
    } catch (err) {
      return list.map((m) => emitManifest(m, 'failed', `listing revisions of ${repo}: ${message(err)}`));
    }
    const planned = new Set(digests);
    const before = await reachableNow(repo, revisions, planned);
    if (typeof before === 'string') return list.map((m) => emitManifest(m, 'failed', `${before}; left in place`));
    const out: ManifestOutcome[] = [];
    const taken: Array<{ m: PlannedManifest; d: Digest; trashed: string; linkMtime: number | undefined }> = [];
    for (const [i, m] of list.entries()) {
      const d = digests[i] as Digest;
      if (before.has(d)) {
        out.push(emitManifest(m, 'changed', 'reachable from a tag again; left in place'));
        continue;
      }
      try {
        const linked = await symlinkOnPath(fs, lay, lay.revision(repo, d));
        if (linked !== undefined) {
          out.push(emitManifest(m, 'failed', `${linked} is a symbolic link; not followed, left in place`));
          continue;
        }
        const linkMtime = await mtimeOf(lay.revisionLink(repo, d));
        if (linkMtime !== undefined && leftovers.has(`${repo}@${d}`)) {
          out.push(emitManifest(m, 'changed', 'its revision link was written since the plan (a push); left in place'));
          continue;
        }
        const trashed = await trash.take(lay.revision(repo, d));
        if (trashed === undefined) out.push(emitManifest(m, 'missing'));
        else taken.push({ m, d, trashed, linkMtime });
      } catch (err) {
        out.push(emitManifest(m, 'failed', `removing ${lay.revision(repo, d)}: ${message(err)}`));
      }
    }
    if (taken.length === 0) return out;
    // A tag pushed onto one of these manifests meanwhile wins: put it back.
    const after = await reachableNow(repo, revisions, planned);
    for (const { m, d, trashed, linkMtime } of taken) {
      // The registry's manifest PUT writes the revision link first and the tag
      // after: a link rewritten between our look and the rename is a push in
      // flight whose tag may not be written yet. It wins.
      const rewritten = trashed !== '' && (await mtimeOf(`${trashed}/link`)) !== linkMtime;
      if (rewritten && typeof after !== 'string' && !after.has(d)) {
        await trash.restore(trashed, lay.revision(repo, d));
        out.push(emitManifest(m, 'changed', 'pushed again during removal; put back'));
        continue;
      }
      if (typeof after === 'string' || after.has(d)) {
        await trash.restore(trashed, lay.revision(repo, d));
        const why = typeof after === 'string' ? `${after}; put back` : 'a tag was pushed onto it during removal; put back';
        out.push(emitManifest(m, typeof after === 'string' ? 'failed' : 'changed', why));
        continue;
      }
      try {
        await trash.discard(trashed);
        out.push(emitManifest(m, 'removed'));
      } catch (err) {
        out.push(emitManifest(m, 'removed', `left in ${trashed}: ${message(err)}`));
      }
    }
    return out;
  };

  const tagsByRepo = groupBy(plan.tags, (t) => t.repository);
  // Revision dirs without a link go the same way (plans from before version 1.1 have none);
  // one whose link has appeared since is a manifest being pushed.
  const leftovers = new Set((plan.leftovers ?? []).map((l) => `${l.repository}@${l.digest}`));
  const manifestsByRepo = groupBy([...plan.manifests, ...(plan.leftovers ?? [])], (m) => m.repository);
  const repoNames = [...new Set([...tagsByRepo.keys(), ...manifestsByRepo.keys()])].sort();

  const results = await mapLimit(repoNames, Math.max(1, Math.floor(concurrency / 4)), async (name) => {
    const tags = await mapLimit(tagsByRepo.get(name) ?? [], 4, removeTag);
    const planned = manifestsByRepo.get(name) ?? [];
    const manifests = planned.length === 0 ? [] : await removeManifests(name, planned);
    return { tags, manifests };
  });
  // Every planned manifest was dealt with (removed, or re-checked and kept),
  // except failures: those stay pending for the next run.
  const manifests = results.flatMap((r) => r.manifests);
  const failed = manifests.filter((m) => m.result === 'failed');
  if (failed.length > 0) await writeJournal(fs, lay, failed, input.runId);
  else await clearJournal(fs, lay);
  return {
    tags: results.flatMap((r) => r.tags),
    manifests,
    trashFinished,
  };
}
