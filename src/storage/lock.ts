import { posix } from 'node:path';
import { RegpruneError, errnoCode, ioError } from '../model/errors.js';
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
  /** Removes the lock file if it is still ours (idempotent). */
  release(): Promise<void>;
}

function format(owner: LockOwner): string {
  return `${JSON.stringify({ pid: owner.pid, startedAt: owner.startedAt, hostname: owner.hostname })}\n`;
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

async function readText(fs: StorageFs, path: string): Promise<string | undefined> {
  try {
    return Buffer.from(await fs.readFile(path)).toString('utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw ioError(`reading lock ${path}`, err);
  }
}

function lockedError(owner: LockOwner | undefined, root: string, path: string, host: LockHost): RegpruneError {
  const who = owner === undefined ? 'unknown pid, started at an unknown time' : `pid ${owner.pid}, started ${owner.startedAt}`;
  const elsewhere = owner !== undefined && owner.hostname !== host.hostname;
  return new RegpruneError('LOCKED', `another regprune run (${who}) holds the lock on ${root}`, {
    hint: elsewhere
      ? `the lock ${path} was taken on host ${owner.hostname}; regprune cannot tell from here whether that run is alive. If it is not, remove the file.`
      : owner === undefined
        ? `the lock ${path} is unreadable; if no regprune run is active, remove it`
        : `wait for it to finish (the lock is ${path})`,
  });
}

/**
 * Takes the exclusive lock of a storage root: `<root>/.regprune/lock`,
 * created with O_EXCL so two runs can never both create it. A lock left by a
 * process that is gone (same host, pid not alive) is taken over: it is first
 * renamed aside (one rename wins when two runs race for it) and checked to be
 * the stale one before a new lock is created. Locks from another host are
 * never taken over.
 */
export async function acquireLock(fs: StorageFs, lay: Layout, host: LockHost): Promise<HeldLock> {
  const path = lay.lockFile;
  const mine = format({ pid: host.pid, startedAt: host.now.toISOString(), hostname: host.hostname });
  try {
    await fs.mkdir(posix.dirname(path), { recursive: true, mode: 0o755 });
  } catch (err) {
    throw ioError(`creating ${posix.dirname(path)} for the lock`, err);
  }
  let tookOver: LockOwner | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(path, mine, { flag: 'wx', mode: 0o644 });
      return held(fs, path, mine, tookOver);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw ioError(`creating lock ${path}`, err);
    }
    const text = await readText(fs, path);
    if (text === undefined) continue; // released meanwhile: try again
    const owner = parseLock(text);
    // Same host and our own pid: that process is gone (we do not hold the lock yet). This is
    // the usual case in a container, where every run is pid 1: give it a fixed hostname.
    const gone = owner !== undefined && owner.hostname === host.hostname && (owner.pid === host.pid || !host.isAlive(owner.pid));
    if (owner === undefined || !gone) {
      throw lockedError(owner, lay.root, path, host);
    }
    // Stale: move it aside, and make sure what moved is the file just read.
    const aside = `${path}.stale-${host.pid}-${attempt}`;
    try {
      await fs.rename(path, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw ioError(`taking over stale lock ${path}`, err);
    }
    const moved = await readText(fs, aside);
    if (moved !== text) {
      // Another run took it over first and this moved its fresh lock: put it back.
      try {
        await fs.rename(aside, path);
      } catch {
        // its owner finds it missing at release: harmless
      }
      throw lockedError(parseLock(moved ?? ''), lay.root, path, host);
    }
    await fs.rm(aside, { recursive: false, force: true });
    tookOver = owner;
  }
  throw lockedError(undefined, lay.root, path, host);
}

function held(fs: StorageFs, path: string, mine: string, tookOver: LockOwner | undefined): HeldLock {
  let released = false;
  return {
    path,
    tookOver,
    async release() {
      if (released) return;
      released = true;
      const text = await readText(fs, path).catch(() => undefined);
      if (text === mine) await fs.rm(path, { recursive: false, force: true });
    },
  };
}
