import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';

/**
 * The first symbolic link among the directories from the storage's v2 dir down
 * to `path` (inclusive), or undefined. Removal renames by path, and the kernel
 * follows a symlinked directory anywhere on that path: checked right before
 * removing, so an entry is never removed through a link that appeared after
 * the plan (say, a repository moved to another disk and linked back).
 */
export async function symlinkOnPath(fs: StorageFs, lay: Layout, path: string): Promise<string | undefined> {
  if (!path.startsWith(`${lay.v2}/`)) return path;
  let current = lay.v2;
  const parts = path.slice(lay.v2.length + 1).split('/');
  for (const part of ['', ...parts]) {
    if (part !== '') current = `${current}/${part}`;
    try {
      if ((await fs.lstat(current)).isSymbolicLink()) return current;
    } catch {
      // A missing component is not a link; the removal itself reports it.
      return undefined;
    }
  }
  return undefined;
}
