import { parseManifest } from '../graph/manifest.js';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName, TagName } from '../model/names.js';
import { isDigest, isRepositoryName, isTagName } from '../model/names.js';
import type { AuditLine, ManifestRemoval, TagRemoval } from './audit.js';
import { storageDoor } from './door.js';
import type { StorageFs } from './fs.js';
import { readLink } from './links.js';
import type { Layout } from './paths.js';
import { createLink as createDoorLink, exists } from './restore-ops.js';

/**
 * Puts back what an audit log says was removed: revision links first, then
 * tags (current/link + index link, mtime = the logged push time). Only
 * manifests whose blob data is all still there (garbage-collect has not
 * swept it) come back; a tag that exists now was pushed again and is never
 * overwritten.
 */

export type RestoreResult = 'restored' | 'present' | 'exists' | 'refused' | 'failed';

export interface RestoreEntry {
  readonly kind: 'tag' | 'manifest';
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: string;
  readonly pushedAt: string | null;
}

/** The plan: per entry, `restore` (to do) or an already-decided result with why. */
export interface RestoreDecision extends RestoreEntry {
  readonly action: 'restore' | 'present' | 'exists' | 'refused';
  readonly reason: string;
}

export interface RestoreOutcome extends RestoreEntry {
  readonly result: RestoreResult;
  readonly detail?: string;
}

export interface RestorePlan {
  readonly root: string;
  readonly manifests: readonly RestoreDecision[];
  readonly tags: readonly RestoreDecision[];
  /** Log lines that name something outside the grammar: ignored. */
  readonly ignored: readonly string[];
}

interface Completeness {
  readonly complete: boolean;
  /** Why not: the first missing blob or a manifest not understood. */
  readonly why?: string;
  /** Config and layer blobs (for `_layers` links). */
  readonly blobs: readonly Digest[];
}

/** Latest entry per key: a log grows over many runs, and the last removal is the one to undo. */
function latest<T>(items: readonly T[], key: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const it of items) {
    const k = key(it);
    m.delete(k);
    m.set(k, it);
  }
  return [...m.values()];
}

export async function planRestore(fs: StorageFs, lay: Layout, lines: readonly AuditLine[]): Promise<RestorePlan> {
  const ignored: string[] = [];
  const removedManifests = latest(
    lines.filter((l): l is AuditLine & ManifestRemoval => l.action === 'remove-manifest'),
    (l) => `${l.repository}@${l.digest}`,
  ).filter((l) => {
    const ok = isRepositoryName(l.repository) && isDigest(l.digest);
    if (!ok) ignored.push(`${l.repository}@${l.digest}`);
    return ok;
  });
  const removedTags = latest(
    lines.filter((l): l is AuditLine & TagRemoval => l.action === 'remove-tag'),
    (l) => `${l.repository}:${l.tag}`,
  ).filter((l) => {
    const ok = isRepositoryName(l.repository) && isTagName(l.tag) && isDigest(l.digest) && !Number.isNaN(Date.parse(l.pushedAt));
    if (!ok) ignored.push(`${l.repository}:${l.tag}`);
    return ok;
  });
  const inLog = new Set(removedManifests.map((m) => `${m.repository}@${m.digest}`));

  const blobThere = async (d: Digest) => exists(fs, lay.blobData(d));
  const memo = new Map<string, Promise<Completeness>>();
  // A manifest can come back when its blob and everything it references are still there;
  // an index also needs each child linked in the repository (now, or put back from the log).
  const completeness = (repo: RepositoryName, d: Digest, depth = 0): Promise<Completeness> => {
    const key = `${repo}@${d}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const p = (async (): Promise<Completeness> => {
      let bytes: Uint8Array;
      try {
        bytes = await fs.readFile(lay.blobData(d));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return { complete: false, why: `manifest blob ${d} is gone (garbage-collect ran)`, blobs: [] };
        throw err;
      }
      const parsed = parseManifest(bytes);
      if (!parsed.ok) return { complete: false, why: `manifest ${d} not understood: ${parsed.problem}`, blobs: [] };
      for (const b of parsed.refs.blobs) {
        if (!(await blobThere(b))) return { complete: false, why: `blob ${b} of ${d} is gone (garbage-collect ran)`, blobs: [] };
      }
      if (depth > 8) return { complete: false, why: `index ${d} nests too deep`, blobs: [] };
      for (const c of parsed.refs.children) {
        const linked = (await exists(fs, lay.revisionLink(repo, c))) || inLog.has(`${repo}@${c}`);
        if (!linked) return { complete: false, why: `child manifest ${c} is neither in ${repo} nor in the log`, blobs: [] };
        const child = await completeness(repo, c, depth + 1);
        if (!child.complete) return { complete: false, why: `child manifest ${c}: ${child.why ?? 'incomplete'}`, blobs: [] };
      }
      return { complete: true, blobs: parsed.refs.blobs };
    })();
    memo.set(key, p);
    return p;
  };

  const manifests: RestoreDecision[] = [];
  for (const m of removedManifests) {
    const repo = m.repository as RepositoryName;
    const d = m.digest as Digest;
    const entry: RestoreEntry = { kind: 'manifest', repository: m.repository, tag: null, digest: m.digest, pushedAt: null };
    if (await exists(fs, lay.revisionLink(repo, d))) {
      manifests.push({ ...entry, action: 'present', reason: 'revision link is there' });
      continue;
    }
    const c = await completeness(repo, d);
    manifests.push(c.complete ? { ...entry, action: 'restore', reason: m.reason } : { ...entry, action: 'refused', reason: c.why ?? 'incomplete' });
  }
  const restorable = new Set(manifests.filter((m) => m.action !== 'refused').map((m) => `${m.repository}@${m.digest}`));

  const tags: RestoreDecision[] = [];
  for (const t of removedTags) {
    const repo = t.repository as RepositoryName;
    const tag = t.tag as TagName;
    const d = t.digest as Digest;
    const entry: RestoreEntry = { kind: 'tag', repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt };
    const current = await readLink(fs, lay.tagCurrentLink(repo, tag));
    if (current.ok) {
      tags.push(
        current.digest === d
          ? { ...entry, action: 'present', reason: 'tag is there, same digest' }
          : { ...entry, action: 'exists', reason: `pushed again since: now points to ${current.digest}; left as is` },
      );
      continue;
    }
    if (current.warning.code !== 'missing-link') {
      tags.push({ ...entry, action: 'exists', reason: `${current.warning.message}; left as is` });
      continue;
    }
    const key = `${repo}@${d}`;
    const linkedNow = await exists(fs, lay.revisionLink(repo, d));
    if (!linkedNow && !restorable.has(key)) {
      const refused = manifests.find((m) => `${m.repository}@${m.digest}` === key);
      tags.push({
        ...entry,
        action: 'refused',
        reason: refused !== undefined ? `its manifest cannot come back: ${refused.reason}` : `manifest ${d} is not in ${repo} and not in the log`,
      });
      continue;
    }
    const c = await completeness(repo, d);
    tags.push(c.complete ? { ...entry, action: 'restore', reason: t.reason } : { ...entry, action: 'refused', reason: c.why ?? 'incomplete' });
  }
  const order = (a: RestoreDecision, b: RestoreDecision) => {
    const ka = `${a.repository}\0${a.tag ?? a.digest}`;
    const kb = `${b.repository}\0${b.tag ?? b.digest}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
  return { root: lay.root, manifests: manifests.sort(order), tags: tags.sort(order), ignored };
}

/** Creates a link file at `path` unless something is there ('exists'); `mtime` where the backend can set it. */
export type LinkWriter = (path: string, digest: Digest, mtime?: Date) => Promise<'created' | 'exists'>;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Executes a restore plan; each entry's outcome is a value. */
export async function applyRestore(
  fs: StorageFs,
  lay: Layout,
  plan: RestorePlan,
  onOutcome?: (o: RestoreOutcome) => void,
  /** How a link is created where it does not exist (default: through the door; a bucket passes its own). */
  writeLink?: LinkWriter,
): Promise<{ manifests: RestoreOutcome[]; tags: RestoreOutcome[] }> {
  const emit = (d: RestoreDecision, result: RestoreResult, detail?: string): RestoreOutcome => {
    const { action: _a, reason: _r, ...entry } = d;
    const o: RestoreOutcome = detail === undefined ? { ...entry, result } : { ...entry, result, detail };
    onOutcome?.(o);
    return o;
  };
  const door = writeLink === undefined ? storageDoor(fs, lay.root) : undefined;
  const createLink: LinkWriter = writeLink ?? ((path, digest, mtime) => createDoorLink(door!, path, digest, mtime));
  const decided = (d: RestoreDecision): RestoreOutcome => emit(d, d.action as Exclude<RestoreDecision['action'], 'restore'>, d.reason);

  const manifests: RestoreOutcome[] = [];
  for (const m of plan.manifests) {
    if (m.action !== 'restore') {
      manifests.push(decided(m));
      continue;
    }
    const repo = m.repository as RepositoryName;
    const d = m.digest as Digest;
    try {
      // The repository's `_layers` links for the manifest's blobs: pulls go through them.
      const parsed = parseManifest(await fs.readFile(lay.blobData(d)));
      if (parsed.ok) for (const b of parsed.refs.blobs) await createLink(lay.layerLink(repo, b), b);
      const r = await createLink(lay.revisionLink(repo, d), d);
      manifests.push(emit(m, r === 'created' ? 'restored' : 'present'));
    } catch (err) {
      manifests.push(emit(m, 'failed', `writing ${lay.revisionLink(repo, d)}: ${message(err)}`));
    }
  }
  const failed = new Set(manifests.filter((m) => m.result === 'failed').map((m) => `${m.repository}@${m.digest}`));
  const tags: RestoreOutcome[] = [];
  for (const t of plan.tags) {
    if (t.action !== 'restore') {
      tags.push(decided(t));
      continue;
    }
    if (failed.has(`${t.repository}@${t.digest}`)) {
      tags.push(emit(t, 'failed', 'its revision link could not be written'));
      continue;
    }
    const repo = t.repository as RepositoryName;
    const tag = t.tag as TagName;
    const d = t.digest as Digest;
    const pushedAt = new Date(t.pushedAt ?? 0);
    try {
      // index link first: current/link is what makes the tag visible, and it is created last, with O_EXCL.
      await createLink(lay.tagIndexLink(repo, tag, d), d, pushedAt);
      const r = await createLink(lay.tagCurrentLink(repo, tag), d, pushedAt);
      tags.push(r === 'created' ? emit(t, 'restored') : emit(t, 'exists', 'pushed again during restore; left as is'));
    } catch (err) {
      tags.push(emit(t, 'failed', `writing ${lay.tagCurrentLink(repo, tag)}: ${message(err)}`));
    }
  }
  return { manifests, tags };
}
