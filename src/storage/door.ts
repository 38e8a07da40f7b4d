import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { posix } from 'node:path';
import { RegpruneError, UsageError, errnoCode, ioError } from '../model/errors.js';
import { RAW, type FileStats, type RawFs, type StorageFs } from './fs.js';

/**
 * The one door through which regprune changes a disk. Shaped like the
 * registry's storage driver seam (PutContent, Move, Delete): the rest of the
 * code names what to change, the driver keeps its own safety mechanics. This
 * is the filesystem driver's: every path is resolved component by component
 * below the root, no symbolic link is followed (the root itself, as the user
 * gave it, is the only exception), and files are created exclusively
 * (O_EXCL | O_NOFOLLOW), flushed, and renamed into place where they replace
 * something.
 *
 * Node has no openat(): each component is lstat'ed, then the call is made by
 * path. What remains is a race: a process that can write inside the tree
 * (the registry's user) could swap a checked directory for a symlink between
 * the check and the call. Moves re-check the identity (dev/ino) of both
 * parents afterwards and report a swap; the other calls do not.
 */
export interface StorageDoor {
  readonly root: string;
  /** Creates `path` and any missing parents below the root (like `mkdir -p`, never through a symlink). */
  ensureDir(path: string, opts?: { mode?: number; ownerLikeParent?: boolean }): Promise<void>;
  /**
   * Creates a file that must not exist yet, writes and flushes it; 'exists' when it was there.
   * `flush: false` skips the fsync, for caches whose content is checked on every read.
   */
  createFile(path: string, data: string | Uint8Array, opts?: { mode?: number; mtime?: Date; ownerLikeParent?: boolean; flush?: boolean }): Promise<'created' | 'exists'>;
  /** Replaces `path` atomically: unpredictable temp name, created exclusively, flushed, renamed. */
  putAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void>;
  /** Renames; 'missing' when `from` is not there. `marker`: `from` may be a symlink (a lock), moved as itself. */
  move(from: string, to: string, opts?: { marker?: boolean }): Promise<'moved' | 'missing'>;
  /** Removes a file, or a directory with everything in it; 'missing' when it was not there. `marker`: `path` may be a symlink (a lock), unlinked itself. */
  delete(path: string, opts?: { marker?: boolean }): Promise<'deleted' | 'missing'>;
  /** Creates a symbolic link holding `text` (a marker, never followed: the lock); 'exists' when `path` exists. */
  createMarker(path: string, text: string): Promise<'created' | 'exists'>;
  /** Whether two existing paths below the root are on the same filesystem (a rename between them works). */
  sameFilesystem(a: string, b: string): Promise<boolean>;
  /**
   * The first symbolic link among the components of `path` below the root (inclusive), or
   * undefined; a missing component ends the look (the removal itself reports it). For reads
   * right before a removal: nothing is read through a link.
   */
  linkOnPath(path: string): Promise<string | undefined>;
}

interface Walked {
  /** The deepest existing directory on the path (the parent when the path exists). */
  readonly parent: string;
  readonly parentStat: FileStats;
  /** The path itself, when it exists. */
  readonly stat: FileStats | undefined;
  /** Components below `parent` that do not exist (empty when the path exists). */
  readonly missing: readonly string[];
}

export function unsafePath(op: string, path: string, why: string): RegpruneError {
  return new RegpruneError('UNSAFE', `refusing to ${op} ${path}: ${why}`, {
    hint: 'regprune never follows a symbolic link below the storage root; move the link away (or make it a real directory) and run again',
  });
}

const O_CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

export function storageDoor(fs: StorageFs, root: string): StorageDoor {
  const raw: RawFs = fs[RAW];
  const base = root === '/' ? '' : root;

  const lstatOrUndefined = async (path: string): Promise<FileStats | undefined> => {
    try {
      return await fs.lstat(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw ioError(`lstat ${path}`, err);
    }
  };

  /**
   * Directories proven real (no link on the way from the root) by an earlier walk of this
   * door, with their identity: the parents that mutations happen in (a repository's
   * `_manifests/tags`, its `revisions/sha256`, the trash). Only parents are kept, so there
   * are a few per repository, never one per entry.
   *
   * Why one lstat of such a parent is as good as lstat'ing every component from the root
   * again: lstat(path) resolves every component but the last, following links. If
   * `team` were swapped for a link (to /etc, or anywhere), the path would resolve to another
   * directory, and no two live directories share (dev, ino): the identity check fails, and
   * the walk starts again from the root, where it finds the link and refuses. If the
   * identity matches, the path leads to the very directory that was walked, and the call
   * below it changes what a fresh walk would have let it change. A directory removed and
   * its number reused by a new one (ABA) is caught by the birth time where the filesystem
   * keeps one (statx: ext4, XFS, btrfs, tmpfs). The check is still made right before each
   * mutation, so the window is the same as that of a walk from the root (Node has no
   * openat(): check, then call by path), and moves still re-check both parents after.
   * At 100k entries this is 1 lstat where there were 8 to 12 (repositories are nested
   * several directories below the root).
   */
  const verified = new Map<string, FileStats>();
  const MAX_VERIFIED = 20_000;
  const sameDir = (a: FileStats, b: FileStats | undefined) =>
    b !== undefined && !b.isSymbolicLink() && b.isDirectory() && a.dev === b.dev && a.ino === b.ino && (a.birthtimeMs ?? 0) === (b.birthtimeMs ?? 0);
  const remember = (dir: string, st: FileStats) => {
    if (dir === root) return;
    if (verified.size >= MAX_VERIFIED) verified.clear();
    verified.set(dir, st);
  };

  /** The deepest remembered ancestor of `path` that is still the same directory, or undefined (then: from the root). */
  const anchorOf = async (path: string): Promise<{ dir: string; stat: FileStats } | undefined> => {
    if (verified.size === 0) return undefined;
    for (let cut = path.lastIndexOf('/'); cut > base.length; cut = path.lastIndexOf('/', cut - 1)) {
      const dir = path.slice(0, cut);
      const known = verified.get(dir);
      if (known === undefined) continue;
      const now = await lstatOrUndefined(dir);
      if (sameDir(known, now)) return { dir, stat: now as FileStats };
      // Replaced, moved or gone: nothing remembered is trusted any more; walk from the root.
      verified.clear();
      return undefined;
    }
    return undefined;
  };

  /** Every component below the root: must be a real directory (the last may be anything but a link, or missing). */
  const walk = async (op: string, path: string, linkTail = false, rememberParent = false): Promise<Walked> => {
    if (!path.startsWith(`${base}/`) || path.length === base.length + 1) throw unsafePath(op, path, `not below the storage root ${root}`);
    const parts = path.slice(base.length + 1).split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..')) throw unsafePath(op, path, 'not a plain path');
    const anchor = await anchorOf(path);
    let current = root;
    let currentStat: FileStats;
    let from = 0;
    if (anchor !== undefined) {
      current = anchor.dir;
      currentStat = anchor.stat;
      from = anchor.dir.slice(base.length + 1).split('/').length;
    } else {
      currentStat = await fs.lstat(root).catch((err: unknown) => Promise.reject(ioError(`lstat ${root}`, err)));
    }
    for (let i = from; i < parts.length; i++) {
      const next = `${current === '/' ? '' : current}/${parts[i] as string}`;
      const st = await lstatOrUndefined(next);
      const last = i === parts.length - 1;
      if (st === undefined) {
        if (last && rememberParent) remember(current, currentStat);
        return { parent: current, parentStat: currentStat, stat: undefined, missing: parts.slice(i) };
      }
      if (st.isSymbolicLink() && !(last && linkTail)) throw Object.assign(unsafePath(op, path, `${next} is a symbolic link`), { link: next });
      if (last) {
        if (rememberParent) remember(current, currentStat);
        return { parent: current, parentStat: currentStat, stat: st, missing: [] };
      }
      if (!st.isDirectory()) throw unsafePath(op, path, `${next} is not a directory`);
      current = next;
      currentStat = st;
    }
    throw unsafePath(op, path, 'empty path');
  };

  const linkOnPath: StorageDoor['linkOnPath'] = async (path) => {
    try {
      await walk('read', path);
      return undefined;
    } catch (err) {
      const link = (err as { link?: unknown }).link;
      if (typeof link === 'string') return link;
      throw err;
    }
  };

  const sameId = (a: FileStats, b: FileStats | undefined) => b !== undefined && a.dev === b.dev && a.ino === b.ino;

  const chownLike = (path: string, parent: FileStats) => {
    try {
      raw.lchown(path, parent.uid, parent.gid);
    } catch (err) {
      throw ioError(`chown ${path} to ${parent.uid}:${parent.gid}`, err);
    }
  };

  const writeNew = (path: string, data: string | Uint8Array, mode: number, mtime?: Date, owner?: FileStats, flush = true): 'created' | 'exists' => {
    let fd: number;
    try {
      fd = raw.open(path, O_CREATE_NEW, mode);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return 'exists';
      throw ioError(`create ${path}`, err);
    }
    try {
      raw.write(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      // On the descriptor: no path to swap. Owner before mtime (some filesystems touch it on chown).
      if (owner !== undefined) {
        const st = raw.fstat(fd);
        if (st.uid !== owner.uid || st.gid !== owner.gid) raw.fchown(fd, owner.uid, owner.gid);
      }
      if (mtime !== undefined) raw.futimes(fd, mtime, mtime);
      if (flush) raw.fsync(fd);
    } catch (err) {
      try {
        raw.close(fd);
      } finally {
        // Never leave a half-written file behind (a full disk is the usual cause).
        try {
          raw.unlink(path);
        } catch {
          // already gone
        }
      }
      throw ioError(`write ${path}`, err);
    }
    try {
      raw.close(fd);
    } catch (err) {
      throw ioError(`close ${path}`, err);
    }
    return 'created';
  };

  const syncDir = (dir: string) => {
    // A directory's fsync makes a rename or create in it durable; not every filesystem allows it.
    try {
      const fd = raw.open(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0) | (constants.O_NOFOLLOW ?? 0), 0);
      try {
        raw.fsync(fd);
      } finally {
        raw.close(fd);
      }
    } catch {
      // best effort
    }
  };

  const ensureDir: StorageDoor['ensureDir'] = async (path, opts = {}) => {
    const w = await walk('create directory', path);
    if (w.stat !== undefined) {
      if (!w.stat.isDirectory()) throw unsafePath('create directory', path, 'it exists and is not a directory');
      return;
    }
    let dir = w.parent;
    let parentStat = w.parentStat;
    for (const part of w.missing) {
      const next = `${dir === '/' ? '' : dir}/${part}`;
      try {
        raw.mkdir(next, opts.mode ?? 0o755);
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw ioError(`mkdir ${next}`, err);
      }
      const st = await fs.lstat(next);
      if (st.isSymbolicLink() || !st.isDirectory()) throw unsafePath('create directory', path, `${next} was replaced by something else`);
      if (opts.ownerLikeParent === true && (st.uid !== parentStat.uid || st.gid !== parentStat.gid)) chownLike(next, parentStat);
      dir = next;
      parentStat = await fs.lstat(next);
    }
  };

  const createFile: StorageDoor['createFile'] = async (path, data, opts = {}) => {
    // An existing last component (a link too) is 'exists': O_EXCL never follows it.
    const w = await walk('create', path, true);
    if (w.stat !== undefined) return 'exists';
    if (w.missing.length !== 1) throw ioError(`create ${path}`, new Error(`${w.parent}/${w.missing[0] ?? ''} does not exist`));
    // Owned like the directory it goes in (restore as root into a registry run by another user).
    return writeNew(path, data, opts.mode ?? 0o644, opts.mtime, opts.ownerLikeParent === true ? w.parentStat : undefined, opts.flush ?? true);
  };

  const putAtomic: StorageDoor['putAtomic'] = async (path, data, mode) => {
    const w = await walk('write', path);
    if (w.missing.length > 1) throw ioError(`write ${path}`, new Error(`${w.parent} has no ${w.missing[0] ?? ''}`));
    if (w.stat !== undefined && !w.stat.isFile()) throw unsafePath('write', path, 'it exists and is not a regular file');
    const tmp = `${posix.dirname(path)}/.${posix.basename(path)}.${randomBytes(12).toString('hex')}.tmp`;
    if (writeNew(tmp, data, mode) === 'exists') throw ioError(`create ${tmp}`, new Error('exists'));
    try {
      await raw.rename(tmp, path);
    } catch (err) {
      try {
        raw.unlink(tmp);
      } catch {
        // gone
      }
      throw ioError(`rename ${tmp} to ${path}`, err);
    }
    syncDir(posix.dirname(path));
  };

  const move: StorageDoor['move'] = async (from, to, opts = {}) => {
    const a = await walk('move', from, opts.marker === true, true);
    if (a.stat === undefined) return 'missing';
    const b = await walk('move into', to, false, true);
    if (b.missing.length > 1) throw ioError(`move ${from} to ${to}`, new Error(`${b.parent} has no ${b.missing[0] ?? ''}`));
    try {
      await raw.rename(from, to);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 'missing';
      throw Object.assign(ioError(`move ${from} to ${to}`, err), { errno: errnoCode(err) });
    }
    // A parent swapped for a symlink between the check and the rename: say so loudly.
    const [pa, pb] = await Promise.all([lstatOrUndefined(a.parent), lstatOrUndefined(b.parent)]);
    if (!sameId(a.parentStat, pa) || !sameId(b.parentStat, pb)) {
      verified.clear();
      throw unsafePath('move', from, `a parent directory changed during the rename (to ${to})`);
    }
    return 'moved';
  };

  const del: StorageDoor['delete'] = async (path, opts = {}) => {
    const w = await walk('delete', path, opts.marker === true, true);
    if (w.stat === undefined) return 'missing';
    try {
      // rm -r removes links it meets inside, never what they point to.
      await raw.rm(path, { recursive: true, force: true });
    } catch (err) {
      throw ioError(`delete ${path}`, err);
    }
    return 'deleted';
  };

  const createMarker: StorageDoor['createMarker'] = async (path, text) => {
    const w = await walk('create', path, true);
    if (w.stat !== undefined) return 'exists';
    if (w.missing.length !== 1) throw ioError(`create ${path}`, new Error(`${w.parent}/${w.missing[0] ?? ''} does not exist`));
    try {
      // A short symlink is created in one step and needs no data block (tmpfs, ext4 and XFS keep it in the inode):
      // there is no half-written state, and it works on a full disk.
      raw.symlink(text, path);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return 'exists';
      throw ioError(`create ${path}`, err);
    }
    syncDir(posix.dirname(path));
    return 'created';
  };

  const sameFilesystem: StorageDoor['sameFilesystem'] = async (a, b) => {
    const [sa, sb] = await Promise.all([fs.lstat(a), fs.lstat(b)]);
    return sa.dev === sb.dev;
  };

  return { root, ensureDir, createFile, putAtomic, move, delete: del, createMarker, sameFilesystem, linkOnPath };
}

/**
 * A file outside the root that regprune appends to (the audit log, --log):
 * not a symbolic link, a regular file (created if missing), in a directory
 * that exists, writable. Each append is flushed before it returns.
 */
export class AppendOnlyFile {
  private fd: number | undefined;
  private constructor(
    private readonly raw: RawFs,
    readonly path: string,
  ) {}

  /** Checks `path` without creating anything (dry runs too); usage errors (exit 2) name the problem. */
  static async check(fs: StorageFs, path: string, flag: string): Promise<void> {
    const dir = posix.dirname(path);
    let d: FileStats;
    try {
      d = await fs.lstat(dir);
      if (d.isSymbolicLink()) d = await fs.lstat(await fs.realpath(dir));
    } catch (err) {
      throw new UsageError(`${flag} ${path}: directory ${dir} ${errnoCode(err) === 'ENOENT' ? 'does not exist' : `cannot be used: ${(err as Error).message}`}`);
    }
    if (!d.isDirectory()) throw new UsageError(`${flag} ${path}: ${dir} is not a directory`);
    let st: FileStats | undefined;
    try {
      st = await fs.lstat(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new UsageError(`${flag} ${path}: ${(err as Error).message}`);
    }
    if (st?.isSymbolicLink() === true) throw new UsageError(`${flag} ${path} is a symbolic link; give the file itself`);
    if (st !== undefined && !st.isFile()) throw new UsageError(`${flag} ${path} is not a regular file`);
    if (!fs[RAW].writable(st === undefined ? dir : path)) throw new UsageError(`${flag} ${path} is not writable`);
  }

  static async open(fs: StorageFs, path: string, flag: string): Promise<AppendOnlyFile> {
    await AppendOnlyFile.check(fs, path, flag);
    const f = new AppendOnlyFile(fs[RAW], path);
    try {
      f.fd = f.raw.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0), 0o640);
    } catch (err) {
      throw ioError(`opening ${path}`, err);
    }
    if (!f.raw.fstat(f.fd).isFile()) {
      f.close();
      throw new UsageError(`${flag} ${path} is not a regular file`);
    }
    return f;
  }

  /** Appends and flushes to disk; throws (naming the file) when either fails. */
  append(text: string): void {
    if (this.fd === undefined) throw ioError(`writing ${this.path}`, new Error('closed'));
    try {
      this.raw.write(this.fd, Buffer.from(text, 'utf8'));
      this.raw.fsync(this.fd);
    } catch (err) {
      throw ioError(`writing ${this.path}`, err);
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      this.raw.close(fd);
    } catch {
      // nothing to flush: every append was
    }
  }
}
