import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest } from '../model/names.js';
import type { StorageDoor } from './door.js';
import type { StorageFs } from './fs.js';
import { linkContent } from './paths.js';

/**
 * Writes a link file the way the registry does: exactly `sha256:<hex>`, no
 * newline (a newline makes garbage-collect abort). Created with O_EXCL: an
 * existing link is never overwritten (for a tag's current/link, an existing
 * one means the tag was pushed again). `mtime` sets the file's mtime, which
 * for current/link is the tag's push time.
 */
export async function createLink(door: StorageDoor, path: string, digest: Digest, mtime?: Date): Promise<'created' | 'exists'> {
  // Owned like the directory it goes in: run as root against a registry that runs as another
  // user, a root-owned tag dir makes the next push of that tag fail (mkdir: permission denied).
  await door.ensureDir(posix.dirname(path), { ownerLikeParent: true });
  return door.createFile(path, linkContent(digest), { ownerLikeParent: true, ...(mtime === undefined ? {} : { mtime }) });
}

/** Whether a path exists (without following a final symlink). */
export async function exists(fs: StorageFs, path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}
