import { RegpruneError } from '../model/errors.js';
import { storageDoor } from './door.js';
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
  // Through the door: `.regprune` (and the root's path below it) is never a symlink followed.
  const door = storageDoor(fs, lay.root);
  await door.ensureDir(lay.stateDir, { mode: 0o755 });
  const name = `marker-${token}`;
  const path = `${lay.stateDir}/${name}`;
  const content = `regprune storage marker ${token}\n`;
  if ((await door.createFile(path, content, { mode: 0o644 })) === 'exists') {
    throw new RegpruneError('IO', `the storage marker ${path} exists already`);
  }
  return {
    path,
    relative: path.slice(lay.root === '/' ? 1 : lay.root.length + 1),
    content,
    async remove() {
      await door.delete(path);
    },
  };
}
