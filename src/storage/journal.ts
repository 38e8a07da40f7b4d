import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest, isRepositoryName } from '../model/names.js';
import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';
import type { WarningSink } from './warnings.js';

/**
 * The manifests an apply set out to unlink. Tags go first and their
 * manifests after; a run killed in between would leave manifests that look
 * "already untagged" to the next run, which leaves those alone. The journal
 * tells the next run to finish them (each still re-checked).
 */
export interface JournalEntry {
  readonly repository: RepositoryName;
  readonly digest: Digest;
}

const VERSION = 1;

export async function readJournal(fs: StorageFs, lay: Layout, warn: WarningSink = () => {}): Promise<JournalEntry[]> {
  let text: string;
  try {
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
    warn({ code: 'unexpected', path: lay.journalFile, message: `${(err as Error).message}; ignored (nothing is removed because of it)` });
    return [];
  }
}

/** Written atomically (temp file + rename), so a crash never leaves half a journal. */
export async function writeJournal(fs: StorageFs, lay: Layout, entries: readonly { repository: string; digest: string }[], runId: string): Promise<void> {
  await fs.mkdir(lay.stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${lay.journalFile}.${runId}.tmp`;
  const doc = { version: VERSION, runId, manifests: entries.map((e) => ({ repository: e.repository, digest: e.digest })) };
  await fs.writeFile(tmp, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
  await fs.rename(tmp, lay.journalFile);
}

export async function clearJournal(fs: StorageFs, lay: Layout): Promise<void> {
  await fs.rm(lay.journalFile, { recursive: false, force: true });
}
