import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest, isRepositoryName } from '../model/names.js';
import { limiter, mapLimit } from '../util/limit.js';
import { storageDoor } from './door.js';
import type { StorageFs } from './fs.js';
import { symlinkOnPath } from './nofollow.js';
import { ALGORITHM, isRepositoryMarker, isReservedRepoChild, type Layout } from './paths.js';
import type { WarningSink } from './warnings.js';

export interface LayerLinkSweep {
  /** `_layers/sha256/<hex>` entries removed because their blob data is gone. */
  readonly removed: number;
  /** Repositories looked at. */
  readonly repositories: number;
}

async function list(fs: StorageFs, dir: string, warn: WarningSink) {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') warn({ code: 'unreadable', path: dir, message: `cannot list directory: ${(err as Error).message}` });
    return [];
  }
}

/** Every repository under `repositories/` (a dir with `_layers` or `_manifests`), at any depth. */
export async function listRepositoryNames(fs: StorageFs, lay: Layout, warn: WarningSink = () => {}): Promise<RepositoryName[]> {
  const io = limiter(32);
  const found: RepositoryName[] = [];
  const visit = async (dir: string, name: string): Promise<void> => {
    const entries = await io.run(() => list(fs, dir, warn));
    if (name !== '' && entries.some((e) => isRepositoryMarker(e.name) && e.isDirectory())) {
      if (isRepositoryName(name)) found.push(name);
    }
    await Promise.all(
      entries
        .filter((e) => e.isDirectory() && !isReservedRepoChild(e.name))
        .map((e) => visit(posix.join(dir, e.name), name === '' ? e.name : `${name}/${e.name}`)),
    );
  };
  await visit(lay.repositories, '');
  return found.sort();
}

async function blobPresent(fs: StorageFs, lay: Layout, d: Digest): Promise<boolean> {
  try {
    await fs.lstat(lay.blobData(d));
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Removes `_layers/sha256/<hex>` entries whose blob data is gone: 2.8's
 * garbage-collect deletes the blob and leaves the repository's link (v3
 * removes it). `_layers` and `_layers/sha256` themselves always stay: on 2.8 a
 * repository without `_layers` drops out of the catalog.
 *
 * `present` is the blob store as just measured; each candidate is checked
 * again on disk right before it goes, because a push writes the blob data
 * first and the link after, so a link whose data appeared since is kept.
 */
export async function removeDanglingLayerLinks(
  fs: StorageFs,
  lay: Layout,
  present: ReadonlySet<Digest> | ReadonlyMap<Digest, unknown>,
  warn: WarningSink = () => {},
  concurrency = 16,
): Promise<LayerLinkSweep> {
  const door = storageDoor(fs, lay.root);
  const repos = await listRepositoryNames(fs, lay, warn);
  let removed = 0;
  await mapLimit(repos, concurrency, async (repo) => {
    const dir = lay.layers(repo);
    // readdir follows a symlinked directory: look at the path first, and never list through a link.
    const linked = await symlinkOnPath(fs, lay, dir);
    if (linked !== undefined) {
      warn({ code: 'symlink', path: linked, message: 'symbolic link; not followed, dangling layer links under it left in place' });
      return;
    }
    for (const e of await list(fs, dir, warn)) {
      const d = `${ALGORITHM}:${e.name}`;
      if (!e.isDirectory() || !isDigest(d) || present.has(d)) continue;
      const path = lay.layer(repo, d);
      try {
        if (await blobPresent(fs, lay, d)) continue;
        if ((await door.delete(path)) === 'deleted') removed++;
      } catch (err) {
        warn({ code: 'unreadable', path, message: `cannot remove dangling layer link: ${(err as Error).message}` });
      }
    }
  });
  return { removed, repositories: repos.length };
}
