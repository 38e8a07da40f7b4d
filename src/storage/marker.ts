import { RegpruneError, errnoCode, ioError } from '../model/errors.js';
import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';

/** A file regprune wrote under `<root>/.regprune/` so that another place can show it sees the same storage. */
export interface StorageMarker {
  /** Host path of the marker. */
  readonly path: string;
  /** Path relative to the root: `.regprune/marker-<token>`. */
  readonly relative: string;
  /** What the file holds (one line). */
  readonly content: string;
  remove(): Promise<void>;
}

const TOKEN = /^[A-Za-z0-9-]{8,64}$/;

/**
 * Writes `<root>/.regprune/marker-<token>` (O_EXCL, never through a symlink:
 * `.regprune` must be a real directory). The caller removes it.
 */
export async function writeMarker(fs: StorageFs, lay: Layout, token: string): Promise<StorageMarker> {
  if (!TOKEN.test(token)) throw new RegpruneError('INTERNAL', `marker token ${JSON.stringify(token)}: expected 8-64 of [A-Za-z0-9-]`);
  try {
    await fs.mkdir(lay.stateDir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw ioError(`creating ${lay.stateDir} for the storage marker`, err);
  }
  const st = await fs.lstat(lay.stateDir).catch((err: unknown) => {
    throw ioError(`checking ${lay.stateDir}`, err);
  });
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new RegpruneError('IO', `${lay.stateDir} is not a directory (a symlink?); regprune writes nothing through it`);
  }
  const name = `marker-${token}`;
  const path = `${lay.stateDir}/${name}`;
  const content = `regprune storage marker ${token}\n`;
  try {
    await fs.writeFile(path, content, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    throw ioError(`writing the storage marker ${path}`, err);
  }
  return {
    path,
    relative: path.slice(lay.root === '/' ? 1 : lay.root.length + 1),
    content,
    async remove() {
      try {
        await fs.rm(path, { recursive: false, force: true });
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw ioError(`removing the storage marker ${path}`, err);
      }
    },
  };
}
