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

/** Adapts anything shaped like `fs.promises` (node or memfs) to StorageFs. */
export function storageFs(promises: unknown): StorageFs {
  const p = promises as {
    readdir(path: string, options: { withFileTypes: true }): Promise<Array<{ name: string | Uint8Array } & Omit<DirEntry, 'name'>>>;
    utimes(path: string, atime: number, mtime: number): Promise<void>;
  } & Omit<StorageFs, 'readdir' | 'utimes'>;
  return {
    readdir: async (path, options) => {
      const entries = await p.readdir(path, options);
      return entries.map((e) =>
        typeof e.name === 'string'
          ? (e as DirEntry)
          : {
              name: Buffer.from(e.name).toString('utf8'),
              isDirectory: () => e.isDirectory(),
              isFile: () => e.isFile(),
              isSymbolicLink: () => e.isSymbolicLink(),
            },
      );
    },
    lstat: (path) => p.lstat(path),
    readFile: (path) => p.readFile(path),
    writeFile: (path, data, options) => p.writeFile(path, data, options),
    appendFile: (path, data) => p.appendFile(path, data),
    mkdir: (path, options) => p.mkdir(path, options),
    rename: (from, to) => p.rename(from, to),
    rm: (path, options) => p.rm(path, options),
    utimes: (path, atime, mtime) => p.utimes(path, exactSeconds(atime), exactSeconds(mtime)),
    realpath: async (path) => String(await p.realpath(path)),
  };
}
