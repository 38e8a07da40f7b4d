import { posix } from 'node:path';
import { ManifestCache, repoView } from '../graph/load.js';
import { keptClosure } from '../graph/reach.js';
import { RegpruneError, errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { storageDoor, type StorageDoor } from '../storage/door.js';
import type { StorageFs } from '../storage/fs.js';
import { clearJournal, writeJournal } from '../storage/journal.js';
import { readLink } from '../storage/links.js';
import type { Layout } from '../storage/paths.js';
import { readRepositoryTags } from '../storage/walk.js';
import { limiter } from '../util/limit.js';
import type { ApplyReport, ManifestOutcome, Plan, PlannedManifest, PlannedTag, TagOutcome } from './plan.js';
import { ApplyControl, applyByRepository, type TagNames } from './control.js';

export interface ApplyInput {
  readonly fs: StorageFs;
  readonly layout: Layout;
  readonly plan: Plan;
  /** Unique per run (the CLI uses time and pid): names this run's trash entries. */
  readonly runId: string;
  readonly cache?: ManifestCache;
  readonly onOutcome?: (o: TagOutcome | ManifestOutcome) => void;
  /**
   * Called right before an entry is taken (write-ahead: the audit log is
   * written and flushed here). If it throws, nothing more is removed: the
   * entries in hand finish, and apply throws that error.
   */
  readonly beforeRemove?: (entry: PlannedTag | PlannedManifest) => void;
  /** Aborted (SIGINT/SIGTERM): the entries in hand finish, nothing more starts, apply throws INTERRUPTED. */
  readonly signal?: AbortSignal;
  readonly concurrency?: number;
  /**
   * The start of this run by the storage's own clock (the CLI passes its
   * lock's mtime). A planned manifest whose revision link was written at or
   * after it is being pushed: the registry's manifest PUT writes the revision
   * link first and the tag after, so its tag may not be visible to any
   * re-check yet. Such a manifest is left in place.
   */
  readonly pushesSinceMs?: number;
}

/**
 * Removal goes through a trash directory outside docker/registry/v2: one
 * rename takes the entry out of the registry's sight atomically, so a crash
 * leaves either the whole entry or none of it; the trash is emptied after,
 * and by the next run if this one dies first. Every step goes through the
 * door: nothing is moved or deleted through a symbolic link.
 */
class Trash {
  private n = 0;
  /** One door for the whole run: it remembers the parents it verified (see storageDoor). */
  readonly door: StorageDoor;
  constructor(
    private readonly fs: StorageFs,
    private readonly lay: Layout,
    private readonly runId: string,
  ) {
    this.door = storageDoor(fs, lay.root);
  }

  async prepare(): Promise<number> {
    await this.door.ensureDir(this.lay.stateDir, { mode: 0o755 });
    await this.door.ensureDir(this.lay.trashDir, { mode: 0o700 });
    // One rename is what makes a removal atomic, re-checkable and reversible; across
    // filesystems there is no such rename. Refuse up front rather than delete in place.
    if (!(await this.door.sameFilesystem(this.lay.v2, this.lay.trashDir))) {
      throw new RegpruneError('IO', `${this.lay.trashDir} is on another filesystem than ${this.lay.v2}: entries cannot be moved into the trash in one step`, {
        hint: `regprune keeps its state in ${this.lay.stateDir} so that a removal is one rename; make it a directory on the same filesystem as ${this.lay.v2} (not a separate mount), and run again`,
      });
    }
    return finishTrash(this.fs, this.lay);
  }

  /** Moves `path` into the trash; undefined when it was not there. */
  async take(path: string): Promise<string | undefined> {
    const target = posix.join(this.lay.trashDir, `${this.runId}-${++this.n}`);
    return (await this.door.move(path, target)) === 'missing' ? undefined : target;
  }

  /** Puts an entry back, unless something new was written at `path` meanwhile (then the new one wins). */
  async restore(trashed: string, path: string): Promise<boolean> {
    try {
      await this.door.move(trashed, path);
      return true;
    } catch {
      await this.discard(trashed);
      return false;
    }
  }

  async discard(trashed: string): Promise<void> {
    await this.door.delete(trashed);
  }
}

/** Empties what an interrupted run left in the trash; returns how many entries. */
export async function finishTrash(fs: StorageFs, lay: Layout): Promise<number> {
  const door = storageDoor(fs, lay.root);
  let entries;
  try {
    // Checked by the door first: a symlinked .regprune or trash is refused, never listed.
    await door.ensureDir(lay.trashDir, { mode: 0o700 });
    entries = await fs.readdir(lay.trashDir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
  for (const e of entries) await door.delete(posix.join(lay.trashDir, e.name));
  return entries.length;
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
  const trash = new Trash(fs, lay, input.runId);
  const trashFinished = await trash.prepare();
  const run = new ApplyControl(input, 'the journal and the trash');
  const { stopping, ahead, emitTag, emitManifest } = run;
  if (plan.manifests.length > 0) await writeJournal(fs, lay, plan.manifests, input.runId);
  const cache = input.cache ?? new ManifestCache(fs, lay, limiter(concurrency));

  const removeTag = async (t: PlannedTag, { repo, tag, digest }: TagNames): Promise<TagOutcome | undefined> => {
    const dir = lay.tag(repo, tag);
    if (stopping()) return undefined;
    try {
      const linked = await trash.door.linkOnPath(lay.tagCurrentDir(repo, tag));
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
      ahead(t);
      const trashed = await trash.take(dir);
      if (trashed === undefined) return emitTag(t, 'missing');
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
      return emitTag(t, 'removed');
    } catch (err) {
      if (err === run.halt) return undefined;
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

  const removeManifests = async (repo: RepositoryName, list: readonly PlannedManifest[], digests: readonly Digest[]): Promise<ManifestOutcome[]> => {
    const revisions = new Set<Digest>();
    try {
      for (const e of await fs.readdir(lay.revisions(repo), { withFileTypes: true })) {
        const d = `sha256:${e.name}`;
        if (e.isDirectory() && /^sha256:[a-f0-9]{64}$/.test(d)) revisions.add(d as Digest);
      }
    } catch (err) {
      return list.map((m) => emitManifest(m, 'failed', `listing revisions of ${repo}: ${message(err)}`));
    }
    if (stopping()) return [];
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
        const linked = await trash.door.linkOnPath(lay.revision(repo, d));
        if (linked !== undefined) {
          out.push(emitManifest(m, 'failed', `${linked} is a symbolic link; not followed, left in place`));
          continue;
        }
        if (stopping()) break;
        const linkMtime = await mtimeOf(lay.revisionLink(repo, d));
        if (linkMtime !== undefined && leftovers.has(`${repo}@${d}`)) {
          out.push(emitManifest(m, 'changed', 'its revision link was written since the plan (a push); left in place'));
          continue;
        }
        if (linkMtime !== undefined && input.pushesSinceMs !== undefined && linkMtime >= input.pushesSinceMs) {
          out.push(emitManifest(m, 'changed', 'its revision link was written during this run (a push in flight); left in place'));
          continue;
        }
        ahead(m);
        const trashed = await trash.take(lay.revision(repo, d));
        if (trashed === undefined) out.push(emitManifest(m, 'missing'));
        else taken.push({ m, d, trashed, linkMtime });
      } catch (err) {
        if (err === run.halt) break;
        out.push(emitManifest(m, 'failed', `removing ${lay.revision(repo, d)}: ${message(err)}`));
      }
    }
    if (taken.length === 0) return out;
    // A tag pushed onto one of these manifests meanwhile wins: put it back.
    const after = await reachableNow(repo, revisions, planned);
    const discarding: Array<Promise<ManifestOutcome>> = [];
    for (const { m, d, trashed, linkMtime } of taken) {
      // The registry's manifest PUT writes the revision link first and the tag
      // after: a link rewritten between our look and the rename is a push in
      // flight whose tag may not be written yet. It wins.
      const rewritten = (await mtimeOf(`${trashed}/link`)) !== linkMtime;
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
      // Emptied in the remover threads, all of this repository's at once.
      discarding.push(
        trash.discard(trashed).then(
          () => emitManifest(m, 'removed'),
          (err: unknown) => emitManifest(m, 'removed', `left in ${trashed}: ${message(err)}`),
        ),
      );
    }
    out.push(...(await Promise.all(discarding)));
    return out;
  };

  // Revision dirs without a link go with the planned manifests (plans from before version 1.1
  // have none); one whose link has appeared since is a manifest being pushed.
  const leftovers = new Set((plan.leftovers ?? []).map((l) => `${l.repository}@${l.digest}`));
  const { tags, manifests } = await applyByRepository(run, plan, Math.floor(concurrency / 4), removeTag, removeManifests);
  // Every planned manifest was dealt with (removed, or re-checked and kept),
  // except failures: those stay pending for the next run.
  // Stopped: the journal written at the start still lists every planned manifest, for the next run.
  if (run.halt !== undefined) throw run.halt;
  const failed = manifests.filter((m) => m.result === 'failed');
  if (failed.length > 0) await writeJournal(fs, lay, failed, input.runId);
  else await clearJournal(fs, lay);
  return { tags, manifests, trashFinished };
}
