import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import { DATA, MANIFESTS, layout } from '../../src/storage/paths.js';

/**
 * Looks at a registry root directly, independently of regprune's own walk,
 * so tests can check regprune against it. Paths come from storage/paths.
 */

async function entries(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Sum of the sizes of every `blobs/sha256/<xx>/<hex>/data`: what garbage-collect can free. */
export async function blobStoreBytes(root: string): Promise<number> {
  const shards = layout(root).blobShards();
  let total = 0;
  for (const shard of await entries(shards)) {
    if (!shard.isDirectory()) continue;
    for (const blob of await entries(join(shards, shard.name))) {
      if (!blob.isDirectory()) continue;
      try {
        total += (await stat(join(shards, shard.name, blob.name, DATA))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return total;
}

/** Digests (`sha256:<hex>`) of every blob with a `data` file. */
export async function blobDigests(root: string): Promise<string[]> {
  const shards = layout(root).blobShards();
  const out: string[] = [];
  for (const shard of await entries(shards)) {
    for (const blob of await entries(join(shards, shard.name))) {
      const found = (await entries(join(shards, shard.name, blob.name))).some((e) => e.name === DATA && e.isFile());
      if (found) out.push(`sha256:${blob.name}`);
    }
  }
  return out.sort();
}

/** Repository names under `repositories/` (a dir with `_manifests` is one; names nest). */
export async function repositoriesOnDisk(root: string): Promise<string[]> {
  const base = layout(root).repositories;
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const children = await entries(rel === '' ? base : join(base, rel));
    if (children.some((c) => c.name === MANIFESTS && c.isDirectory())) out.push(rel);
    for (const c of children) {
      if (c.isDirectory() && !c.name.startsWith('_')) await visit(rel === '' ? c.name : `${rel}/${c.name}`);
    }
  };
  await visit('');
  return out.sort();
}

/** Every `repo:tag` with a tag directory, and the digest its current/link names. */
export async function tagsOnDisk(root: string): Promise<Map<string, string>> {
  const lay = layout(root);
  const out = new Map<string, string>();
  for (const repo of await repositoriesOnDisk(root)) {
    // Unchecked casts on purpose: this reports what is on disk, valid names or not.
    const name = repo as RepositoryName;
    for (const t of await entries(lay.tags(name))) {
      if (!t.isDirectory()) continue;
      const link = lay.tagCurrentLink(name, t.name as TagName);
      let digest = '';
      try {
        digest = await readFile(link, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      out.set(`${repo}:${t.name}`, digest);
    }
  }
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Removes every repository's `_uploads` dir (what finished pushes leave behind); returns how many. */
export async function removeUploads(root: string): Promise<number> {
  let removed = 0;
  for (const repo of await repositoriesOnDisk(root)) {
    const dir = layout(root).uploads(repo as RepositoryName);
    try {
      await stat(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    await rm(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}
