import { ManifestCache, repoView } from '../../graph/load.js';
import { keptClosure } from '../../graph/reach.js';
import type { Digest, RepositoryName, TagName } from '../../model/names.js';
import { isDigest, isRepositoryName, isTagName } from '../../model/names.js';
import type { ApplyInput } from '../../plan/apply.js';
import { ApplyControl, applyByRepository, type TagNames } from '../../plan/control.js';
import type { ApplyReport, ManifestOutcome, PlannedManifest, PlannedTag, TagOutcome } from '../../plan/plan.js';
import { limiter } from '../../util/limit.js';
import type { StorageDriver } from '../driver.js';
import { linkProblem } from '../links.js';
import { CURRENT, LINK } from '../paths.js';
import type { WarningSink } from '../warnings.js';
import type { ObjectStore, S3ObjectInfo } from './client.js';
import { linkEtag } from './keys.js';

/**
 * Apply on a bucket. S3 has no rename, so a removal cannot be one atomic,
 * reversible step as on a filesystem; instead:
 *
 * - the planned deletions (tags and manifests) are journaled first, as an
 *   object at `<root>/.regprune/pending-manifests.json` (outside
 *   docker/registry/v2, the same document the filesystem driver writes), so
 *   that a killed run is finished by the next (finishS3Journal, and the
 *   plan's pending manifests);
 * - a tag goes by deleting its `current/link` first (what a pull reads), then
 *   its `index/` links. Its objects are listed right before and right after
 *   the deletion: if anything changed (a push rewrote the link or added an
 *   index entry), the push wins: `current/link` is put back (with the digest
 *   the push wrote last) when our deletion took it;
 * - a manifest's revision link goes only while no tag (listed live) reaches
 *   it, and is put back when one does right after.
 */

export interface ApplyS3Input extends Omit<ApplyInput, 'fs' | 'layout'> {
  readonly driver: StorageDriver;
  /** Leftovers of a killed run finished before the plan (finishS3Journal). */
  readonly finished?: number;
}

interface JournalTag {
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const LINK_SIZE = 71;

async function listAll(store: ObjectStore, prefix: string): Promise<S3ObjectInfo[]> {
  const out: S3ObjectInfo[] = [];
  await store.list(prefix, (page) => {
    out.push(...page);
  });
  return out;
}

function s3Parts(driver: StorageDriver) {
  if (driver.kind !== 's3') throw new Error('not an s3 driver');
  const { store, view, layout: lay } = driver;
  return { store, view, lay, key: view.key, journalKey: view.key(lay.journalFile) };
}

/** What a link object says: from its ETag when that proves one of `candidates`, else read. */
async function linkDigest(store: ObjectStore, o: S3ObjectInfo, candidates: readonly string[]): Promise<Digest | undefined> {
  if (o.size === LINK_SIZE) for (const c of candidates) if (isDigest(c) && o.etag === linkEtag(c)) return c;
  const got = await store.get(o.key);
  if (got === undefined) return undefined;
  const text = got.body.toString('utf8');
  return got.body.length <= 256 && linkProblem(text) === undefined ? (text as Digest) : undefined;
}

const INDEX_LINK = /^index\/sha256\/[a-f0-9]{64}\/link$/;
const REVISION_LINK = /^([a-f0-9]{64})\/link$/;
/** A directory marker (zero bytes, trailing `/`) whose segments name real directories. */
const isMarker = (o: S3ObjectInfo, rel: string) => o.size === 0 && (rel === '' || (rel.endsWith('/') && rel.slice(0, -1).split('/').every((p) => p !== '' && p !== '.' && p !== '..')));

/**
 * The first object under a tag's prefix that is none of what the registry
 * writes there (`current/link`, `index/sha256/<hex>/link`) nor a directory
 * marker: a tag holding one is left in place, as the view made it unreadable.
 */
function foreignInTag(objects: readonly S3ObjectInfo[], prefix: string, allowCurrent: boolean): S3ObjectInfo | undefined {
  return objects.find((o) => {
    const rel = o.key.slice(prefix.length);
    return !(INDEX_LINK.test(rel) || (allowCurrent && rel === `${CURRENT}/${LINK}`) || isMarker(o, rel));
  });
}

const fingerprint = (objects: readonly S3ObjectInfo[]) =>
  objects
    .map((o) => `${o.key} ${o.etag} ${o.lastModified.getTime()}`)
    .sort()
    .join('\n');

/**
 * Finishes the tag deletions a killed run journaled: a tag whose
 * `current/link` is gone but whose other objects remain. Returns how many.
 */
export async function finishS3Journal(driver: StorageDriver, onWarning: WarningSink = () => {}): Promise<number> {
  const { store, lay, key, journalKey } = s3Parts(driver);
  const got = await store.get(journalKey);
  if (got === undefined) return 0;
  const journalPath = `/${journalKey}`;
  let tags: JournalTag[] = [];
  try {
    const doc = JSON.parse(got.body.toString('utf8')) as { tags?: unknown };
    if (Array.isArray(doc.tags)) tags = doc.tags as JournalTag[];
  } catch {
    return 0; // not ours to understand; the plan reports it (readJournal)
  }
  let finished = 0;
  for (const t of tags) {
    if (typeof t.repository !== 'string' || !isRepositoryName(t.repository) || typeof t.tag !== 'string' || !isTagName(t.tag)) {
      onWarning({ code: 'bad-name', path: journalPath, message: `tag entry ${JSON.stringify(t)} names no valid tag; ignored` });
      continue;
    }
    const repo = t.repository as RepositoryName;
    const tag = t.tag as TagName;
    const prefix = `${key(lay.tag(repo, tag))}/`;
    const objects = await listAll(store, prefix);
    if (objects.length === 0 || objects.some((o) => o.key === key(lay.tagCurrentLink(repo, tag)))) continue;
    // What the killed run left: index links it had not deleted yet, all older than its journal.
    // Anything else (a push in flight writes its index entry first) is not finished here.
    const foreign = foreignInTag(objects, prefix, false);
    const newer = objects.find((o) => o.lastModified.getTime() > got.lastModified.getTime());
    if (foreign !== undefined || newer !== undefined) {
      const o = (foreign ?? newer) as S3ObjectInfo;
      onWarning({
        code: 'unexpected',
        path: `/${o.key}`,
        message: `${foreign !== undefined ? 'not an index link' : 'written after the journal'}: the journaled removal of ${repo}:${tag} is not finished; left in place`,
      });
      continue;
    }
    for (const o of objects) await store.delete(o.key);
    finished++;
  }
  return finished;
}

export async function applyPlanS3(input: ApplyS3Input): Promise<ApplyReport> {
  const { plan, driver } = input;
  const { store, lay, key, journalKey } = s3Parts(driver);
  const concurrency = input.concurrency ?? 16;
  const run = new ApplyControl(input, 'the journal object in the bucket');
  const { stopping, ahead, emitTag, emitManifest } = run;
  const writeJournal = async (tags: readonly PlannedTag[], manifests: readonly PlannedManifest[]) => {
    const doc = {
      version: 1,
      runId: input.runId,
      manifests: manifests.map((m) => ({ repository: m.repository, digest: m.digest })),
      tags: tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest })),
    };
    await store.put(journalKey, `${JSON.stringify(doc)}\n`);
  };
  if (plan.tags.length > 0 || plan.manifests.length > 0) await writeJournal(plan.tags, plan.manifests);
  const cache = input.cache ?? new ManifestCache(driver.fs, lay, limiter(concurrency));
  const leftovers = new Set((plan.leftovers ?? []).map((l) => `${l.repository}@${l.digest}`));

  const removeTag = async (t: PlannedTag, { repo, tag, digest }: TagNames): Promise<TagOutcome | undefined> => {
    if (stopping()) return undefined;
    const prefix = `${key(lay.tag(repo, tag))}/`;
    const currentKey = key(lay.tagCurrentLink(repo, tag));
    const indexOf = (objects: readonly S3ObjectInfo[]) =>
      objects.filter((o) => o.key !== currentKey && o.key.endsWith(`/${LINK}`)).map((o) => `sha256:${o.key.split('/').at(-2) ?? ''}`).filter(isDigest);
    try {
      const before = await listAll(store, prefix);
      if (before.length === 0) return emitTag(t, 'missing');
      const current = before.find((o) => o.key === currentKey);
      if (current === undefined) return emitTag(t, 'failed', `s3://${currentKey} is missing; left in place`);
      const foreign = foreignInTag(before, prefix, true);
      if (foreign !== undefined) return emitTag(t, 'failed', `s3://${foreign.key} is not understood; the tag is left in place`);
      const now = await linkDigest(store, current, [digest, ...indexOf(before)]);
      if (now !== digest) return emitTag(t, 'changed', `now points to ${now ?? 'something unreadable'}; left in place`);
      const planned = Date.parse(t.pushedAt);
      if (Number.isFinite(planned) && current.lastModified.getTime() > planned) return emitTag(t, 'changed', 'pushed again since the plan; left in place');
      ahead(t);
      await store.delete(currentKey);
      // A push may have landed between the listing and the deletion (then ours took its link), or right after.
      const after = await listAll(store, prefix);
      const withoutCurrent = before.filter((o) => o.key !== currentKey);
      const raced = fingerprint(after.filter((o) => o.key !== currentKey)) !== fingerprint(withoutCurrent) || after.some((o) => o.key === currentKey);
      if (raced) {
        if (!after.some((o) => o.key === currentKey)) {
          // The registry writes the index entry, then current/link: the newest index entry is what it pushed.
          const newest = [...after].sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime())[0];
          const d = newest === undefined ? digest : (`sha256:${newest.key.split('/').at(-2) ?? ''}` as Digest);
          await store.put(currentKey, isDigest(d) ? d : digest);
          return emitTag(t, 'changed', 'pushed again during removal; current/link put back');
        }
        return emitTag(t, 'changed', 'pushed again during removal; left in place');
      }
      for (const o of after) await store.delete(o.key);
      return emitTag(t, 'removed');
    } catch (err) {
      if (err === run.halt) return undefined;
      return emitTag(t, 'failed', `removing tag ${repo}:${tag} (s3://${prefix}): ${message(err)}`);
    }
  };

  /** Manifests reachable from the repository's tags as listed now, or from revisions the plan leaves. */
  const reachableNow = async (repo: RepositoryName, planned: ReadonlySet<Digest>): Promise<{ reach: Set<Digest>; revisions: Map<Digest, S3ObjectInfo> } | string> => {
    const tagObjects = await listAll(store, `${key(lay.tags(repo))}/`);
    const byTag = new Map<string, S3ObjectInfo[]>();
    const tagsPrefix = `${key(lay.tags(repo))}/`;
    for (const o of tagObjects) {
      const name = o.key.slice(tagsPrefix.length).split('/')[0] ?? '';
      const list = byTag.get(name);
      if (list === undefined) byTag.set(name, [o]);
      else list.push(o);
    }
    const roots: Digest[] = [];
    let unreadable = 0;
    for (const [name, objects] of byTag) {
      const current = objects.find((o) => o.key === `${tagsPrefix}${name}/${CURRENT}/${LINK}`);
      if (current === undefined) continue; // a tag being deleted (ours) or pushed (index first): no current link, nothing reads it
      const candidates = objects.filter((o) => o !== current).map((o) => `sha256:${o.key.split('/').at(-2) ?? ''}`);
      const d = await linkDigest(store, current, candidates);
      if (d === undefined) unreadable++;
      else roots.push(d);
    }
    if (unreadable > 0) return `${unreadable} tag(s) of ${repo} could not be read`;
    const revisionsPrefix = `${key(lay.revisions(repo))}/`;
    const revisions = new Map<Digest, S3ObjectInfo>();
    for (const o of await listAll(store, revisionsPrefix)) {
      // Exactly `<hex>/link`: another key under a revision (`<hex>/x/link`) is not its link.
      const m = REVISION_LINK.exec(o.key.slice(revisionsPrefix.length));
      if (m !== null) revisions.set(`sha256:${m[1]}` as Digest, o);
    }
    const all = [...revisions.keys()];
    roots.push(...all.filter((d) => !planned.has(d)));
    await cache.loadClosure([...roots, ...all]);
    return { reach: keptClosure(roots, repoView(cache, all)), revisions };
  };

  const removeManifests = async (repo: RepositoryName, list: readonly PlannedManifest[], digests: readonly Digest[]): Promise<ManifestOutcome[]> => {
    if (stopping()) return [];
    const planned = new Set(digests);
    let before;
    try {
      before = await reachableNow(repo, planned);
    } catch (err) {
      return list.map((m) => emitManifest(m, 'failed', `listing ${repo}: ${message(err)}; left in place`));
    }
    if (typeof before === 'string') return list.map((m) => emitManifest(m, 'failed', `${before}; left in place`));
    const out: ManifestOutcome[] = [];
    const taken: Array<{ m: PlannedManifest; d: Digest; link: S3ObjectInfo }> = [];
    for (const [i, m] of list.entries()) {
      const d = digests[i] as Digest;
      if (before.reach.has(d)) {
        out.push(emitManifest(m, 'changed', 'reachable from a tag again; left in place'));
        continue;
      }
      const link = before.revisions.get(d);
      if (link === undefined) {
        // A leftover revision "directory" without a link (objects under it, none named link): goes with the plan.
        if (leftovers.has(`${repo}@${d}`)) {
          try {
            const rest = await listAll(store, `${key(lay.revision(repo, d))}/`);
            const odd = rest.find((o) => o.key.slice(key(lay.revision(repo, d)).length + 1).split('/').some((p, i, all) => (p === '' && i < all.length - 1) || p === '.' || p === '..'));
            if (odd !== undefined) {
              out.push(emitManifest(m, 'failed', `s3://${odd.key} is not understood; left in place`));
              continue;
            }
            for (const o of rest) await store.delete(o.key);
            out.push(emitManifest(m, rest.length > 0 ? 'removed' : 'missing'));
          } catch (err) {
            out.push(emitManifest(m, 'failed', `deleting ${key(lay.revision(repo, d))}/: ${message(err)}`));
          }
          continue;
        }
        out.push(emitManifest(m, 'missing'));
        continue;
      }
      // LastModified has one-second resolution: "at or after" the lock's second.
      if (input.pushesSinceMs !== undefined && link.lastModified.getTime() >= Math.floor(input.pushesSinceMs / 1000) * 1000) {
        out.push(emitManifest(m, 'changed', 'its revision link was written during this run (a push in flight); left in place'));
        continue;
      }
      if (stopping()) break;
      try {
        // Re-checked right before: rewritten since the listing means a push in flight (its tag comes next).
        const now = await store.head(link.key);
        if (now === undefined) {
          out.push(emitManifest(m, 'missing'));
          continue;
        }
        if (now.etag !== link.etag || now.lastModified.getTime() !== link.lastModified.getTime()) {
          out.push(emitManifest(m, 'changed', 'its revision link was rewritten since the listing (a push in flight); left in place'));
          continue;
        }
        ahead(m);
        await store.delete(link.key);
        taken.push({ m, d, link });
      } catch (err) {
        if (err === run.halt) break;
        out.push(emitManifest(m, 'failed', `deleting s3://${link.key}: ${message(err)}`));
      }
    }
    if (taken.length === 0) return out;
    let after;
    try {
      after = await reachableNow(repo, planned);
    } catch (err) {
      after = `listing ${repo} again: ${message(err)}`;
    }
    for (const { m, d, link } of taken) {
      // Rewritten since our deletion: a push in flight (the registry writes the revision link first, the tag after). It wins.
      const rewritten = typeof after !== 'string' && after.revisions.has(d);
      if (rewritten) {
        out.push(emitManifest(m, 'changed', 'pushed again during removal; left in place'));
        continue;
      }
      if (typeof after === 'string' || after.reach.has(d)) {
        try {
          await store.put(link.key, d);
        } catch (err) {
          out.push(emitManifest(m, 'failed', `putting back s3://${link.key}: ${message(err)}`));
          continue;
        }
        out.push(emitManifest(m, typeof after === 'string' ? 'failed' : 'changed', typeof after === 'string' ? `${after}; put back` : 'a tag was pushed onto it during removal; put back'));
        continue;
      }
      out.push(emitManifest(m, 'removed'));
    }
    return out;
  };

  const { tags, manifests } = await applyByRepository(run, plan, Math.floor(concurrency / 4), removeTag, removeManifests);
  // Stopped: the journal object still lists every planned entry, for the next run.
  if (run.halt !== undefined) throw run.halt;
  const failed = manifests.filter((m) => m.result === 'failed');
  if (failed.length > 0) await writeJournal([], failed);
  else await store.delete(journalKey);
  return { tags, manifests, trashFinished: input.finished ?? 0 };
}

/**
 * Restore's link writer on a bucket: creates the object unless one is there.
 * Without conditional writes (Swift answers 501) a push between the HEAD and
 * the PUT could be overwritten with the same kind of link; restore runs under
 * the bucket's lock, and a tag pushed meanwhile names the digest it pushed.
 * LastModified cannot be set: a restored tag's push time is the restore's.
 */
export function s3LinkWriter(driver: StorageDriver): (path: string, digest: Digest) => Promise<'created' | 'exists'> {
  const { store, key } = s3Parts(driver);
  return async (path, digest) => {
    const k = key(path);
    if ((await store.head(k)) !== undefined) return 'exists';
    await store.put(k, digest);
    return 'created';
  };
}
