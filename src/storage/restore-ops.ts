import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest } from '../model/names.js';
import type { StorageFs } from './fs.js';
import { linkContent } from './paths.js';

/**
 * Writes a link file the way the registry does: exactly `sha256:<hex>`, no
 * newline (a newline makes garbage-collect abort). Created with O_EXCL: an
 * existing link is never overwritten (for a tag's current/link, an existing
 * one means the tag was pushed again). `mtime` sets the file's mtime, which
 * for current/link is the tag's push time.
 */
export async function createLink(fs: StorageFs, path: string, digest: Digest, mtime?: Date): Promise<'created' | 'exists'> {
  await fs.mkdir(posix.dirname(path), { recursive: true });
  try {
    await fs.writeFile(path, linkContent(digest), { flag: 'wx' });
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return 'exists';
    throw err;
  }
  if (mtime !== undefined) await fs.utimes(path, mtime, mtime);
  return 'created';
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
