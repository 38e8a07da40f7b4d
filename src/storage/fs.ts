import { constants as nodeConstants, renameSync as nodeRenameSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { reassertHeapFlags } from '../util/heap.js';
import { mapLimit } from '../util/limit.js';

/**
 * The filesystem regprune needs: a small subset of `node:fs`, so that
 * production passes the real module and unit tests pass memfs.
 *
 * `StorageFs` is what the rest of the code may call: reads only. The calls
 * that change the disk (`RawFs`) sit behind the `RAW` key, and only the door
 * (src/storage/door.ts) takes them from there: every write, rename and delete
 * goes through its checks (test/unit/boundaries.test.ts fails otherwise).
 */
export interface DirEntry {
  readonly name: string;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

export interface FileStats {
  readonly size: number;
  readonly mtimeMs: number;
  readonly mtime: Date;
  readonly dev: number;
  readonly ino: number;
  readonly uid: number;
  readonly gid: number;
  /** 0 (or absent) where the filesystem keeps none. */
  readonly birthtimeMs?: number;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

/** The unsafe calls, on raw paths. Reach them only through the door. */
export interface RawFs {
  /** One directory, not recursive. */
  mkdir(path: string, mode: number): void;
  open(path: string, flags: number, mode: number): number;
  write(fd: number, data: Uint8Array): void;
  fsync(fd: number): void;
  futimes(fd: number, atime: Date, mtime: Date): void;
  fchown(fd: number, uid: number, gid: number): void;
  fstat(fd: number): FileStats;
  close(fd: number): void;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { recursive: boolean; force: boolean }): Promise<void>;
  unlink(path: string): void;
  symlink(target: string, path: string): void;
  lchown(path: string, uid: number, gid: number): void;
  /** Whether this process may write `path` (access W_OK). */
  writable(path: string): boolean;
}

export const RAW: unique symbol = Symbol('regprune.rawfs');

/** What readPlain found: the entry's stats as lstat gives them and, for a regular file, its content. */
export interface PlainRead<T extends string | Uint8Array = string | Uint8Array> {
  readonly stats: FileStats;
  /**
   * The content: only for a regular file of at most `limit` bytes (by its stats). It may be
   * longer than `limit` if the file grew meanwhile (at most `limit` + 1 bytes are read then).
   */
  readonly data?: T;
  /** Why a regular file of at most `limit` bytes could not be read (EACCES, EIO): stats were taken. */
  readonly error?: Error;
}

export interface ReadPlainOptions {
  /** Larger files are not read (Infinity: any size). */
  readonly limit: number;
  /** UTF-8 text (bytes that are not become U+FFFD) instead of bytes. */
  readonly text: boolean;
}

export interface StorageFs {
  readdir(path: string, options: { withFileTypes: true }): Promise<DirEntry[]>;
  lstat(path: string): Promise<FileStats>;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * A file's text as UTF-8 (bytes that are not become U+FFFD). For the
   * hundreds of thousands of small files a plan reads: no Buffer per file.
   */
  readText(path: string): Promise<string>;
  /**
   * lstat and read in one, for the small files a plan reads by the hundred thousand (links,
   * manifests): a symbolic link is never followed (its lstat is returned, nothing read), a
   * directory or anything else not a regular file is not read. On the real disk this is
   * open(O_NOFOLLOW | O_NONBLOCK), fstat and read on the one descriptor: one path lookup
   * instead of two, and no window between the stat and the read. ENOENT (and any error of the
   * lstat) is thrown.
   */
  readPlain(path: string, options: ReadPlainOptions & { text: true }): Promise<PlainRead<string>>;
  readPlain(path: string, options: ReadPlainOptions & { text: false }): Promise<PlainRead<Uint8Array>>;
  /** The text of a symbolic link (never followed). */
  readlink(path: string): Promise<string>;
  /** Only for the root the user gives: symlinks inside the tree are never followed. */
  realpath(path: string): Promise<string>;
  /** The mutating calls: for src/storage/door.ts only. */
  readonly [RAW]: RawFs;
}

/**
 * A Date becomes float seconds on its way to the kernel, and 46.816 s can be
 * stored as 46.815999 s, which reads back a millisecond early. Half a
 * microsecond more lands on the intended millisecond.
 */
function exactSeconds(d: Date): number {
  return d.getTime() / 1000 + 5e-7;
}

/** A StorageFs without its mutating calls. */
export type StorageReads = Omit<StorageFs, typeof RAW>;

/** The calls of node:fs (or memfs) that readPlainSync makes. */
interface PlainSyncFs {
  openSync(path: string, flags: number, mode: number): number;
  fstatSync(fd: number): FileStats;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: null): number;
  closeSync(fd: number): void;
  lstatSync(path: string): FileStats;
  readFileSync(path: string): Uint8Array;
}

/**
 * readPlain with synchronous calls. `noFollow` is O_RDONLY | O_NOFOLLOW | O_NONBLOCK (O_NONBLOCK:
 * opening a FIFO planted in the tree returns at once; it is then not read), or 0 where the module
 * cannot be trusted with O_NOFOLLOW (memfs follows links whatever the flags): lstat, then read by
 * path (memfs: a test's tree, nothing to race with). Also the body of the reader thread's call (src/storage/reader.ts), which gets its source
 * text: it refers to nothing outside itself.
 */
export function readPlainSync(f: PlainSyncFs, path: string, limit: number, text: boolean, noFollow: number): PlainRead {
  const decode = (b: Uint8Array) => (text ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8') : b);
  const byPath = (): PlainRead => {
    const stats = f.lstatSync(path);
    if (!stats.isFile() || stats.size > limit) return { stats };
    try {
      const bytes = f.readFileSync(path);
      return { stats, data: decode(bytes.length > limit ? bytes.subarray(0, limit + 1) : bytes) };
    } catch (error) {
      return { stats, error: error as Error };
    }
  };
  if (noFollow === 0) return byPath();
  let fd: number;
  try {
    fd = f.openSync(path, noFollow, 0);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') throw error;
    // ELOOP (a symbolic link), ENXIO (a socket), EACCES: the stats are lstat's, and what the open
    // said is the read's error. Never a read by path: it would follow a link swapped in meanwhile.
    const stats = f.lstatSync(path);
    if (!stats.isFile() || stats.size > limit) return { stats };
    return { stats, error: error as Error };
  }
  try {
    const stats = f.fstatSync(fd);
    if (!stats.isFile() || stats.size > limit) return { stats };
    let buf = Buffer.allocUnsafe(Math.min(stats.size, limit) + 1);
    let n = 0;
    try {
      for (;;) {
        if (n === buf.length) {
          if (n > limit) break;
          const grown = Buffer.allocUnsafe(Math.min(buf.length * 2, limit + 1));
          buf.copy(grown, 0, 0, n);
          buf = grown;
        }
        const got = f.readSync(fd, buf, n, buf.length - n, null);
        if (got === 0) break;
        n += got;
      }
    } catch (error) {
      return { stats, error: error as Error };
    }
    return { stats, data: decode(buf.subarray(0, n)) };
  } finally {
    f.closeSync(fd);
  }
}

/** Flags for readPlainSync on node:fs. */
export const NO_FOLLOW_READ = nodeConstants.O_RDONLY | nodeConstants.O_NOFOLLOW | nodeConstants.O_NONBLOCK;

/**
 * Many reads in one call, for the sets a plan reads whole (a repository's tags and revisions, a
 * batch of manifests, a shard of blobs): on the real disk a plain loop of system calls, or one
 * message to the reader thread, instead of a promise per file. Each result is what the single call
 * returns, or the error it throws. Only filesystems built here have them (registered below): a
 * wrapper (a test's fault injection) gets the single calls, through its own methods.
 */
export interface BatchReads {
  lstat(paths: readonly string[]): Promise<Array<FileStats | Error>>;
  readPlain(paths: readonly string[], options: ReadPlainOptions): Promise<Array<PlainRead | Error>>;
}

const batchReads = new WeakMap<StorageFs, BatchReads>();

function withBatchReads(fs: StorageFs, batch: BatchReads): StorageFs {
  batchReads.set(fs, batch);
  return fs;
}

/** `base` with its reads done elsewhere (src/storage/reader.ts: a reader thread); the mutating calls stay base's. */
export function withReads(base: StorageFs, reads: StorageReads, batch: BatchReads): StorageFs {
  return withBatchReads({ ...reads, [RAW]: base[RAW] }, batch);
}

/** A thrown value as an Error. */
export const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Single calls, a few at a time: a bucket's lstat may be a HEAD request. */
const ONE_BY_ONE = 16;

/** lstat of each path: its stats, or the error. */
export function lstatMany(fs: StorageFs, paths: readonly string[]): Promise<Array<FileStats | Error>> {
  const batch = batchReads.get(fs);
  if (batch !== undefined) return batch.lstat(paths);
  return mapLimit(paths, ONE_BY_ONE, (p) => fs.lstat(p).catch(asError));
}

/** readPlain of each path: what it read, or the error. */
export function readPlainMany(fs: StorageFs, paths: readonly string[], options: ReadPlainOptions): Promise<Array<PlainRead | Error>> {
  const batch = batchReads.get(fs);
  if (batch !== undefined) return batch.readPlain(paths, options);
  return mapLimit(paths, ONE_BY_ONE, (p) => (fs.readPlain(p, options as ReadPlainOptions & { text: true }) as Promise<PlainRead>).catch(asError));
}

/**
 * readPlain for backends that only have lstat and a read by path (the bucket's view): the
 * same answer, in two calls.
 */
export async function readPlainByPath(
  fs: Pick<StorageFs, 'lstat' | 'readFile' | 'readText'>,
  path: string,
  options: ReadPlainOptions,
): Promise<PlainRead> {
  const stats = await fs.lstat(path);
  if (!stats.isFile() || stats.size > options.limit) return { stats };
  try {
    return { stats, data: options.text ? await fs.readText(path) : await fs.readFile(path) };
  } catch (error) {
    return { stats, error: error as Error };
  }
}

interface SyncFs {
  readdirSync(path: string, options: { withFileTypes: true }): Array<{ name: string | Uint8Array } & Omit<DirEntry, 'name'>>;
  lstatSync(path: string): FileStats;
  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: 'utf8'): string | Uint8Array;
  readlinkSync(path: string): string | Uint8Array;
  mkdirSync(path: string, options: { mode?: number }): string | undefined;
  openSync(path: string, flags: number, mode: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  futimesSync(fd: number, atime: number, mtime: number): void;
  fchownSync(fd: number, uid: number, gid: number): void;
  fstatSync(fd: number): FileStats;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: null): number;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  rmSync(path: string, options: { recursive: boolean; force: boolean }): void;
  unlinkSync(path: string): void;
  symlinkSync(target: string, path: string): void;
  lchownSync(path: string, uid: number, gid: number): void;
  accessSync(path: string, mode: number): void;
  realpathSync(path: string): string | Uint8Array;
  promises?: { rm?(path: string, options: { recursive: boolean; force: boolean }): Promise<void> };
}

const W_OK = 2;

/**
 * Adapts a synchronous fs module (`node:fs`, or memfs's) to StorageFs.
 *
 * The calls are synchronous on purpose: a prune reads a few small files per
 * tag, and at 100k tags the promise API's per-call cost (a thread-pool round
 * trip per step; four for a readFile) was most of the run time, where a
 * direct system call costs microseconds. The interface stays async, so a
 * different backend could overlap I/O.
 */
export function storageFs(fsModule: unknown): StorageFs {
  const f = fsModule as SyncFs;
  const native = f.renameSync === nodeRenameSync;
  const isLink = (path: string) => {
    try {
      return f.lstatSync(path).isSymbolicLink();
    } catch {
      return false;
    }
  };
  const raw: RawFs = {
    mkdir: (path, mode) => void f.mkdirSync(path, { mode }),
    open: (path, flags, mode) => f.openSync(path, flags, mode),
    write: (fd, data) => {
      let off = 0;
      while (off < data.length) off += f.writeSync(fd, data, off, data.length - off);
    },
    fsync: (fd) => f.fsyncSync(fd),
    futimes: (fd, atime, mtime) => f.futimesSync(fd, exactSeconds(atime), exactSeconds(mtime)),
    fchown: (fd, uid, gid) => f.fchownSync(fd, uid, gid),
    fstat: (fd) => f.fstatSync(fd),
    close: (fd) => f.closeSync(fd),
    rename: async (from, to) => {
      // memfs follows a symlink given to rename (node never does): there, move the link itself.
      if (!native && isLink(from)) {
        f.symlinkSync(String(f.readlinkSync(from)), to);
        f.unlinkSync(from);
        return;
      }
      f.renameSync(from, to);
    },
    // Removal is the exception: each unlink and rmdir waits on the filesystem's
    // journal, and removals in other threads overlap with the checks of the next
    // entries (`rm -rf` does one at a time). On the real filesystem they go to
    // remover threads (below); Node 20's fs.promises.rm is rimraf in JavaScript: an
    // lstat, a failing rmdir, a readdir and a main-thread callback per entry, which
    // was a third of an apply's main-thread time.
    rm: async (path, options) => {
      if (native && options.recursive && options.force) return removers.remove(path);
      // memfs's rm follows a link given to it (node's unlinks the link): there, unlink it.
      if (!native && isLink(path)) return f.unlinkSync(path);
      return f.promises?.rm === undefined ? f.rmSync(path, options) : f.promises.rm(path, options);
    },
    unlink: (path) => f.unlinkSync(path),
    symlink: (target, path) => f.symlinkSync(target, path),
    lchown: (path, uid, gid) => f.lchownSync(path, uid, gid),
    writable: (path) => {
      try {
        f.accessSync(path, W_OK);
        return true;
      } catch {
        return false;
      }
    },
  };
  const lstatOne = (path: string): FileStats | Error => {
    try {
      return f.lstatSync(path);
    } catch (err) {
      return asError(err);
    }
  };
  const noFollow = native ? NO_FOLLOW_READ : 0;
  const readOne = (path: string, options: ReadPlainOptions): PlainRead | Error => {
    try {
      return readPlainSync(f, path, options.limit, options.text, noFollow);
    } catch (err) {
      return asError(err);
    }
  };
  const fs: StorageFs = {
    readdir: async (path, options) =>
      f.readdirSync(path, options).map((e) =>
        typeof e.name === 'string'
          ? (e as DirEntry)
          : {
              name: Buffer.from(e.name).toString('utf8'),
              isDirectory: () => e.isDirectory(),
              isFile: () => e.isFile(),
              isSymbolicLink: () => e.isSymbolicLink(),
            },
      ),
    lstat: async (path) => f.lstatSync(path),
    readFile: async (path) => f.readFileSync(path),
    readText: async (path) => String(f.readFileSync(path, 'utf8')),
    readPlain: (async (path: string, options: ReadPlainOptions) => readPlainSync(f, path, options.limit, options.text, noFollow)) as StorageFs['readPlain'],
    readlink: async (path) => String(f.readlinkSync(path)),
    realpath: async (path) => String(f.realpathSync(path)),
    [RAW]: raw,
  };
  return withBatchReads(fs, {
    lstat: async (paths) => paths.map(lstatOne),
    readPlain: async (paths, options) => paths.map((p) => readOne(p, options)),
  });
}

/**
 * A StorageFs that can only read: for backends that are not a disk (the
 * bucket's listing, src/storage/s3/view.ts). Any mutating call is a bug and
 * throws; changes to those backends go through their own driver.
 */
export function readOnlyFs(reads: Omit<StorageFs, typeof RAW>, what: string): StorageFs {
  const refuse = (op: string) => (): never => {
    throw new Error(`${what} is read-only here: ${op} refused`);
  };
  const raw: RawFs = {
    mkdir: refuse('mkdir'),
    open: refuse('open'),
    write: refuse('write'),
    fsync: refuse('fsync'),
    futimes: refuse('futimes'),
    fchown: refuse('fchown'),
    fstat: refuse('fstat'),
    close: refuse('close'),
    rename: refuse('rename'),
    rm: refuse('rm'),
    unlink: refuse('unlink'),
    symlink: refuse('symlink'),
    lchown: refuse('lchown'),
    writable: () => false,
  };
  return { ...reads, [RAW]: raw };
}

/**
 * The body of the remover thread: `rm -rf` of each path it is sent, with the
 * promise calls (the thread pool overlaps several removals, as the filesystem's
 * journal makes each wait; the callbacks run in this thread, not in the main
 * one). Like `rm -r`, a symbolic
 * link met anywhere is unlinked, never followed: the given path is lstat'ed
 * (the door checked it, and a lock marker is a link), and below it the entry
 * types come from readdir (d_type; Node lstats where the filesystem gives
 * none). What remains is the race every path-based remover has (rimraf's and
 * Node's too): a directory swapped for a link between the readdir that listed
 * it and the readdir of it. The door only removes inside regprune's trash (a
 * 0700 directory of the user running it, out of the registry's sight) or
 * entries it just checked, where the registry's user cannot make that swap.
 */
const REMOVER = `
const { parentPort } = require('node:worker_threads');
const fsp = require('node:fs/promises');
const ignoreGone = (err) => { if (!err || err.code !== 'ENOENT') throw err; };
async function tree(path) {
  let entries;
  try {
    entries = await fsp.readdir(path, { withFileTypes: true });
  } catch (err) {
    return ignoreGone(err);
  }
  await Promise.all(entries.map((e) => {
    const p = path + '/' + e.name;
    return e.isDirectory() ? tree(p) : fsp.unlink(p).catch(ignoreGone);
  }));
  await fsp.rmdir(path).catch(ignoreGone);
}
async function remove(path) {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch (err) {
    return ignoreGone(err);
  }
  if (st.isDirectory()) await tree(path);
  else await fsp.unlink(path).catch(ignoreGone);
}
// Paths come in batches (one message per turn of the main thread's loop, not one per entry),
// and go back the same way.
let done = [];
const flush = () => {
  const d = done;
  done = [];
  parentPort.postMessage(d);
};
const report = (r) => {
  if (done.push(r) === 1) setImmediate(flush);
};
parentPort.on('message', (batch) => {
  for (const { id, path } of batch) {
    remove(path).then(
      () => report({ id }),
      (err) => report({ id, error: { message: String(err && err.message), code: err && err.code } }),
    );
  }
});
`;

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * A few remover threads, started on the first removal. They keep the process
 * alive only while a removal is under way, so a run ends as soon as its last
 * removal has.
 */
const removers = (() => {
  let nextId = 0;
  // One thread: its removals wait on the filesystem's journal in the thread pool, several at
  // once (on ext4, 2 cores, 10k tags, one thread of plain synchronous calls took 8.2 s, four
  // such threads 5.2 s, `rm -rf` 4.9 s); each more thread costs about 8 MB.
  const size = 1;
  type Thread = { worker: Worker; pending: Map<number, Pending>; batch: Array<{ id: number; path: string }> };
  const threads: Thread[] = [];
  const start = (): Thread => {
    const pending = new Map<number, Pending>();
    // It keeps nothing between messages: a small heap (the default young generation alone may grow to tens of MB per thread).
    const worker = new Worker(REMOVER, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    worker.unref();
    // Setting up the thread's heap resets a flag the main thread's heap relies on.
    worker.once('online', reassertHeapFlags);
    worker.on('message', (done: Array<{ id: number; error?: { message: string; code?: string } }>) => {
      for (const m of done) {
        const p = pending.get(m.id);
        if (p === undefined) continue;
        pending.delete(m.id);
        if (m.error === undefined) p.resolve();
        else p.reject(Object.assign(new Error(m.error.message), m.error.code === undefined ? {} : { code: m.error.code }));
      }
      if (pending.size === 0) worker.unref();
    });
    worker.on('error', (err) => {
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      const i = threads.indexOf(t);
      if (i >= 0) threads.splice(i, 1);
    });
    const t: Thread = { worker, pending, batch: [] };
    threads.push(t);
    return t;
  };
  const flush = (t: Thread) => {
    const batch = t.batch;
    t.batch = [];
    t.worker.postMessage(batch);
  };
  return {
    remove(path: string): Promise<void> {
      let t = threads.reduce<Thread | undefined>((best, x) => (best === undefined || x.pending.size < best.pending.size ? x : best), undefined);
      if (t === undefined || (t.pending.size > 0 && threads.length < size)) t = start();
      const thread = t;
      const id = nextId++;
      return new Promise<void>((resolve, reject) => {
        if (thread.pending.size === 0) thread.worker.ref();
        thread.pending.set(id, { resolve, reject });
        thread.batch.push({ id, path });
        // Sent once the current turn is over: the removals it started go in one message.
        if (thread.batch.length === 1) setImmediate(flush, thread);
      });
    },
  };
})();
