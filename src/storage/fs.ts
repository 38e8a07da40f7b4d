/**
 * The filesystem regprune needs: a small subset of `node:fs/promises`, so that
 * production passes the real module and unit tests pass memfs's `promises`.
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
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
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
  writeFile(path: string, data: string | Uint8Array, options?: { flag?: string; mode?: number }): Promise<void>;
  appendFile(path: string, data: string): Promise<void>;
  mkdir(path: string, options: { recursive: true; mode?: number }): Promise<string | undefined>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { recursive: boolean; force: boolean }): Promise<void>;
  utimes(path: string, atime: Date, mtime: Date): Promise<void>;
  /** Only for the root the user gives: symlinks inside the tree are never followed. */
  realpath(path: string): Promise<string>;
}

/**
 * A Date becomes float seconds on its way to the kernel, and 46.816 s can be
 * stored as 46.815999 s, which reads back a millisecond early. Half a
 * microsecond more lands on the intended millisecond.
 */
function exactSeconds(d: Date): number {
  return d.getTime() / 1000 + 5e-7;
}

interface SyncFs {
  readdirSync(path: string, options: { withFileTypes: true }): Array<{ name: string | Uint8Array } & Omit<DirEntry, 'name'>>;
  lstatSync(path: string): FileStats;
  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: 'utf8'): string | Uint8Array;
  writeFileSync(path: string, data: string | Uint8Array, options?: { flag?: string; mode?: number }): void;
  appendFileSync(path: string, data: string): void;
  mkdirSync(path: string, options: { recursive: true; mode?: number }): string | undefined;
  renameSync(from: string, to: string): void;
  rmSync(path: string, options: { recursive: boolean; force: boolean }): void;
  utimesSync(path: string, atime: number, mtime: number): void;
  realpathSync(path: string): string | Uint8Array;
  promises?: { rm?(path: string, options: { recursive: boolean; force: boolean }): Promise<void> };
}

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
  return {
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
    writeFile: async (path, data, options) => f.writeFileSync(path, data, options),
    appendFile: async (path, data) => f.appendFileSync(path, data),
    mkdir: async (path, options) => f.mkdirSync(path, options),
    rename: async (from, to) => f.renameSync(from, to),
    // Removal is the exception: each unlink and rmdir waits on the filesystem's
    // journal, and in the thread pool several overlap (a plan's tag directories
    // went 2x faster than with one at a time; `rm -rf` does one at a time).
    rm: f.promises?.rm === undefined ? async (path, options) => f.rmSync(path, options) : (path, options) => (f.promises as Required<NonNullable<SyncFs['promises']>>).rm(path, options),
    utimes: async (path, atime, mtime) => f.utimesSync(path, exactSeconds(atime), exactSeconds(mtime)),
    realpath: async (path) => String(f.realpathSync(path)),
  };
}
