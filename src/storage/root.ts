import { posix } from 'node:path';
import { RegpruneError, errnoCode } from '../model/errors.js';
import type { StorageFs } from './fs.js';
import { V2_SUFFIX, layout, type Layout } from './paths.js';

async function isDir(fs: StorageFs, path: string): Promise<boolean> {
  try {
    return (await fs.lstat(path)).isDirectory();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/**
 * Accepts the filesystem driver's `rootdirectory` or its `docker/registry/v2`
 * directory, and returns the layout rooted at the `rootdirectory`.
 * `dir` must be absolute (the CLI resolves it).
 */
export async function resolveRoot(fs: StorageFs, dir: string): Promise<Layout> {
  const normalized = posix.normalize(dir).replace(/\/+$/, '') || '/';
  const notRoot = (hint?: string) =>
    new RegpruneError('NOT_A_ROOT', `${dir} is not a registry storage root (no ${V2_SUFFIX}/repositories)`, {
      hint:
        hint ??
        'pass the storage driver rootdirectory with --root: /var/lib/registry in the registry:2/3 images, /var/lib/docker-registry for Debian\'s docker-registry',
    });
  let real = normalized;
  try {
    let st = await fs.lstat(normalized);
    if (st.isSymbolicLink()) {
      // The root the user names may be a symlink (/var/lib/registry -> /data/registry);
      // it is followed once, here, and nothing below it ever is.
      real = await fs.realpath(normalized);
      st = await fs.lstat(real);
    }
    if (!st.isDirectory()) return Promise.reject(notRoot(`${dir} is not a directory; pass the directory itself`));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw notRoot(`${dir} does not exist`);
    throw new RegpruneError('NOT_A_ROOT', `${dir}: ${(err as Error).message}`, { cause: err });
  }
  const direct = layout(real);
  if (await isDir(fs, direct.repositories)) return direct;
  if (real.endsWith(`/${V2_SUFFIX}`) && (await isDir(fs, posix.join(real, 'repositories')))) {
    return layout(real.slice(0, -(V2_SUFFIX.length + 1)) || '/');
  }
  throw notRoot();
}
