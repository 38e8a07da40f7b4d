import { randomBytes } from 'node:crypto';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest, isRepositoryName } from '../model/names.js';
import { storageDoor } from './door.js';
import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';
import type { WarningSink } from './warnings.js';

/**
 * The manifests an apply set out to unlink. Tags go first and their
 * manifests after; a run killed in between would leave manifests that look
 * "already untagged" to the next run, which leaves those alone. The journal
 * tells the next run to finish them (each still re-checked).
 *
 * Normally one JSON file, replaced atomically. On a disk with no byte free
 * (the usual moment to prune) it is written as names instead: empty files
 * `<journalDir>/<run>/<repository...>/@<digest>`, which need inodes but no
 * data block (tmpfs, XFS; ext4 has root's reserve), built under a temporary
 * name and renamed into place whole.
 */
export interface JournalEntry {
  readonly repository: RepositoryName;
  readonly digest: Digest;
}

const VERSION = 1;
const TMP = '.tmp-';

async function readJsonJournal(fs: StorageFs, lay: Layout, warn: WarningSink): Promise<JournalEntry[]> {
  let text: string;
  try {
    const st = await fs.lstat(lay.journalFile);
    if (!st.isFile()) {
      warn({ code: 'unexpected', path: lay.journalFile, message: 'not a regular file (a symbolic link?); ignored, never followed' });
      return [];
    }
    text = Buffer.from(await fs.readFile(lay.journalFile)).toString('utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    warn({ code: 'unreadable', path: lay.journalFile, message: `cannot read: ${(err as Error).message}; ignored` });
    return [];
  }
  try {
    const doc = JSON.parse(text) as { version?: unknown; manifests?: unknown };
    if (doc.version !== VERSION || !Array.isArray(doc.manifests)) throw new Error('not a version 1 journal');
    const entries: JournalEntry[] = [];
    for (const m of doc.manifests as Array<{ repository?: unknown; digest?: unknown }>) {
      if (typeof m.repository === 'string' && isRepositoryName(m.repository) && typeof m.digest === 'string' && isDigest(m.digest)) {
        entries.push({ repository: m.repository, digest: m.digest });
      }
    }
    return entries;
  } catch (err) {
    const why = text.trim() === '' ? 'empty' : (err as Error).message;
    warn({ code: 'unexpected', path: lay.journalFile, message: `${why} (left half-written by a crash or a full disk?); ignored (nothing is removed because of it) and replaced by this run` });
    return [];
  }
}

async function readNameJournal(fs: StorageFs, lay: Layout, warn: WarningSink): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  const visit = async (dir: string, repo: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      if (e.isSymbolicLink()) continue; // never followed
      if (e.name.startsWith('@') && e.isFile()) {
        const d = e.name.slice(1);
        if (isRepositoryName(repo) && isDigest(d)) entries.push({ repository: repo, digest: d });
      } else if (e.isDirectory()) {
        await visit(`${dir}/${e.name}`, repo === '' ? e.name : `${repo}/${e.name}`);
      }
    }
  };
  let runs;
  try {
    const st = await fs.lstat(lay.journalDir);
    if (!st.isDirectory()) {
      warn({ code: 'unexpected', path: lay.journalDir, message: 'not a directory (a symbolic link?); ignored, never followed' });
      return [];
    }
    runs = await fs.readdir(lay.journalDir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    warn({ code: 'unreadable', path: lay.journalDir, message: `cannot read: ${(err as Error).message}; ignored` });
    return [];
  }
  for (const r of runs) {
    // A temporary dir is a journal cut short (crash, full disk): never renamed into place, so never used.
    if (r.name.startsWith(TMP) || !r.isDirectory()) continue;
    try {
      await visit(`${lay.journalDir}/${r.name}`, '');
    } catch (err) {
      warn({ code: 'unreadable', path: `${lay.journalDir}/${r.name}`, message: `cannot read: ${(err as Error).message}; ignored` });
    }
  }
  return entries;
}

export async function readJournal(fs: StorageFs, lay: Layout, warn: WarningSink = () => {}): Promise<JournalEntry[]> {
  return [...(await readJsonJournal(fs, lay, warn)), ...(await readNameJournal(fs, lay, warn))];
}

const isFull = (err: unknown) => {
  const code = errnoCode((err as { cause?: unknown }).cause) ?? errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
};

/**
 * Replaces the journal with `entries`: atomically (an unpredictable temp
 * name created exclusively, flushed, renamed), so a crash or a full disk
 * never leaves half a journal in use.
 */
export async function writeJournal(fs: StorageFs, lay: Layout, entries: readonly { repository: string; digest: string }[], runId: string): Promise<void> {
  const door = storageDoor(fs, lay.root);
  await door.ensureDir(lay.stateDir, { mode: 0o755 });
  const doc = { version: VERSION, runId, manifests: entries.map((e) => ({ repository: e.repository, digest: e.digest })) };
  try {
    await door.putAtomic(lay.journalFile, `${JSON.stringify(doc)}\n`, 0o600);
    await clearNames(fs, lay);
    return;
  } catch (err) {
    if (!isFull(err)) throw err;
  }
  // No byte free: the same entries as names (inodes only).
  await door.ensureDir(lay.journalDir, { mode: 0o700 });
  const tmp = `${lay.journalDir}/${TMP}${randomBytes(12).toString('hex')}`;
  await door.ensureDir(tmp, { mode: 0o700 });
  for (const e of entries) {
    await door.ensureDir(`${tmp}/${e.repository}`, { mode: 0o700 });
    await door.createFile(`${tmp}/${e.repository}/@${e.digest}`, '', { mode: 0o600 });
  }
  const final = `${lay.journalDir}/${runId}-${randomBytes(4).toString('hex')}`;
  await door.move(tmp, final);
  // Only now may the older journals go (what they list is in this one, or done).
  await door.delete(lay.journalFile);
  await clearNames(fs, lay, final);
}

async function clearNames(fs: StorageFs, lay: Layout, keep?: string): Promise<void> {
  const door = storageDoor(fs, lay.root);
  if (keep === undefined) {
    await door.delete(lay.journalDir);
    return;
  }
  let runs;
  try {
    if (!(await fs.lstat(lay.journalDir)).isDirectory()) return;
    runs = await fs.readdir(lay.journalDir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  for (const r of runs) {
    const path = `${lay.journalDir}/${r.name}`;
    if (path !== keep) await door.delete(path);
  }
}

/** Removes the journal, and temporary files a crash or a full disk left beside it. */
export async function clearJournal(fs: StorageFs, lay: Layout): Promise<void> {
  const door = storageDoor(fs, lay.root);
  await door.delete(lay.journalFile);
  await clearNames(fs, lay);
  let names: string[] = [];
  try {
    names = (await fs.readdir(lay.stateDir, { withFileTypes: true })).map((e) => e.name);
  } catch {
    return;
  }
  for (const n of names) {
    // A leftover (or a link planted there) is removed itself, never followed.
    if (/^\.?pending-manifests\.json\..*\.tmp$/.test(n)) await door.delete(`${lay.stateDir}/${n}`, { marker: true });
  }
}
