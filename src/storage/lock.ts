import { RegpruneError, errnoCode, ioError } from '../model/errors.js';
import { storageDoor, type StorageDoor } from './door.js';
import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';

/** What a lock file says: who holds it. */
export interface LockOwner {
  readonly pid: number;
  /** ISO 8601 UTC. */
  readonly startedAt: string;
  readonly hostname: string;
}

/** This process, as the lock needs to know it (the CLI passes pid, host, clock and a liveness check). */
export interface LockHost {
  readonly pid: number;
  readonly hostname: string;
  readonly now: Date;
  /** Whether `pid` is a live process on this host. */
  isAlive(pid: number): boolean;
}

export interface HeldLock {
  readonly path: string;
  /** Set when a stale lock (its process gone) was taken over. */
  readonly tookOver: LockOwner | undefined;
  /** Set when an empty or cut-short lock file (a crash, a full disk) was taken over. */
  readonly tookOverHalfWritten: boolean;
  /**
   * When the lock was created, by the filesystem's own clock (its mtime): a
   * revision link written at or after this was written during this run.
   */
  readonly takenAtMs: number;
  /** Removes the lock file if it is still ours (idempotent). */
  release(): Promise<void>;
}

/** Reads a lock file's owner; undefined when the text is not a lock (e.g. caught half-written). */
export function parseLock(text: string): LockOwner | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0 && typeof v.startedAt === 'string' && typeof v.hostname === 'string') {
      return { pid: v.pid, startedAt: v.startedAt, hostname: v.hostname };
    }
  } catch {
    // not JSON
  }
  return undefined;
}

/** What is at the lock path: a marker (symlink text), a file's text (older versions), or nothing. */
async function readLock(fs: StorageFs, path: string): Promise<{ text: string; kind: 'marker' | 'file'; mtimeMs: number } | undefined> {
  try {
    const st = await fs.lstat(path);
    if (st.isSymbolicLink()) return { text: await fs.readlink(path), kind: 'marker', mtimeMs: st.mtimeMs };
    if (st.isFile()) return { text: Buffer.from(await fs.readFile(path)).toString('utf8'), kind: 'file', mtimeMs: st.mtimeMs };
    return { text: '', kind: 'file', mtimeMs: Number.POSITIVE_INFINITY };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw ioError(`reading lock ${path}`, err);
  }
}

/** A lock file older versions (or a crash, or a full disk) left empty or cut short: stale once it is this old. */
const HALF_WRITTEN_STALE_MS = 10_000;

function lockedError(owner: LockOwner | undefined, root: string, path: string, host: LockHost): RegpruneError {
  const who = owner === undefined ? 'unknown pid, started at an unknown time' : `pid ${owner.pid}, started ${owner.startedAt}`;
  const elsewhere = owner !== undefined && owner.hostname.slice(0, 48) !== host.hostname.slice(0, 48);
  return new RegpruneError('LOCKED', `another regprune run (${who}) holds the lock on ${root}`, {
    hint: elsewhere
      ? `the lock ${path} was taken on host ${owner.hostname}; regprune cannot tell from here whether that run is alive. If it is not, remove the file.`
      : owner === undefined
        ? `the lock ${path} is unreadable; if no regprune run is active, remove it`
        : `wait for it to finish (the lock is ${path})`,
  });
}

/**
 * Takes the exclusive lock of a storage root: `<root>/.regprune/lock`, a
 * symbolic link whose text names the owner (never followed: only read). One
 * symlink() creates it whole or not at all, and it needs no free byte (the
 * text lives in the inode), so a crash or a full disk never leaves half a
 * lock. A lock left by a process that is gone (same host, pid not alive), or
 * an empty or cut-short lock file from an older version or a crash, is taken
 * over: it is first renamed aside (one rename wins when two runs race for it)
 * and checked to be the stale one before a new lock is created. Locks from
 * another host are never taken over.
 */
export async function acquireLock(fs: StorageFs, lay: Layout, host: LockHost): Promise<HeldLock> {
  const door = storageDoor(fs, lay.root);
  const path = lay.lockFile;
  const hostname = host.hostname.slice(0, 48);
  const mine = JSON.stringify({ pid: host.pid, startedAt: host.now.toISOString(), hostname });
  await door.ensureDir(lay.stateDir, { mode: 0o755 });
  let tookOver: LockOwner | undefined;
  let halfWritten = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    if ((await door.createMarker(path, mine)) === 'created') return held(fs, door, path, mine, tookOver, halfWritten, (await fs.lstat(path)).mtimeMs);
    const found = await readLock(fs, path);
    if (found === undefined) continue; // released meanwhile: try again
    const owner = parseLock(found.text);
    // Same host and our own pid: that process is gone (we do not hold the lock yet). This is
    // the usual case in a container, where every run is pid 1: give it a fixed hostname.
    const gone = owner !== undefined && owner.hostname.slice(0, 48) === hostname && (owner.pid === host.pid || !host.isAlive(owner.pid));
    const broken = owner === undefined && found.kind === 'file' && host.now.getTime() - found.mtimeMs > HALF_WRITTEN_STALE_MS;
    if (!gone && !broken) throw lockedError(owner, lay.root, path, host);
    // Stale: move it aside, and make sure what moved is what was just read.
    const aside = `${path}.stale-${host.pid}-${attempt}`;
    if ((await door.move(path, aside, { marker: true })) === 'missing') continue;
    const moved = await readLock(fs, aside);
    if (moved?.text !== found.text) {
      // Another run took it over first and this moved its fresh lock: put it back.
      await door.move(aside, path, { marker: true }).catch(() => undefined); // its owner finds it missing at release: harmless
      throw lockedError(parseLock(moved?.text ?? ''), lay.root, path, host);
    }
    await door.delete(aside, { marker: true });
    if (owner !== undefined) tookOver = owner;
    else halfWritten = true;
  }
  throw lockedError(undefined, lay.root, path, host);
}

function held(fs: StorageFs, door: StorageDoor, path: string, mine: string, tookOver: LockOwner | undefined, halfWritten: boolean, takenAtMs: number): HeldLock {
  let released = false;
  return {
    path,
    tookOver,
    tookOverHalfWritten: halfWritten,
    takenAtMs,
    async release() {
      if (released) return;
      released = true;
      const found = await readLock(fs, path).catch(() => undefined);
      if (found?.text === mine) await door.delete(path, { marker: true });
    },
  };
}
