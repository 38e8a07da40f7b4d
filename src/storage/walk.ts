import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName, TagName } from '../model/names.js';
import { isTagName, repositoryNameProblem } from '../model/names.js';
import { limiter, mapLimit, type Limiter } from '../util/limit.js';
import type { DirEntry, StorageFs } from './fs.js';
import { readLink } from './links.js';
import { MANIFESTS, isRepositoryMarker, isReservedRepoChild, type Layout } from './paths.js';
import type { WarningSink } from './warnings.js';

export interface TagRecord {
  readonly repository: RepositoryName;
  readonly tag: TagName;
  readonly digest: Digest;
  /** mtime of current/link: rewritten on every push of the tag. */
  readonly pushedAt: Date;
}

export interface RepositoryRecord {
  readonly name: RepositoryName;
  /** Sorted by tag name. */
  readonly tags: readonly TagRecord[];
  /** Tag directories that could not be read exactly (reported as warnings, never selected). */
  readonly unreadableTags: number;
}

export interface WalkOptions {
  /** Only read the tags of repositories for which this returns true (all are still descended). */
  readonly includeRepository?: (name: RepositoryName) => boolean;
  readonly onWarning?: WarningSink;
  readonly onProgress?: (progress: { repositories: number; tags: number }) => void;
  readonly concurrency?: number;
  /** Shares tag digest strings with the manifest cache (a tag per manifest, 100k at scale). */
  readonly intern?: (d: Digest) => Digest;
}

export const DEFAULT_CONCURRENCY = 64;
/** Directories (and repositories) walked at once; each reads its tags with 4x as many. */
const WORKERS = 4;

async function readDir(
  fs: StorageFs,
  io: Limiter,
  path: string,
  warn: WarningSink,
): Promise<DirEntry[] | undefined> {
  try {
    return await io.run(() => fs.readdir(path, { withFileTypes: true }));
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
    warn({ code: 'unreadable', path, message: `cannot list directory: ${(err as Error).message}` });
    return undefined;
  }
}

/**
 * Finds every repository under `repositories/` at any depth and reads its
 * tags. Never descends into `_layers`, `_uploads`, `_manifests/revisions`
 * or a tag's `index/`: those hold most of the tree's entries.
 * Tags that cannot be read exactly are reported and left out.
 */
export async function walkRepositories(fs: StorageFs, lay: Layout, options: WalkOptions = {}): Promise<RepositoryRecord[]> {
  const io = limiter(options.concurrency ?? DEFAULT_CONCURRENCY);
  const warn: WarningSink = options.onWarning ?? (() => {});
  const found: RepositoryRecord[] = [];
  const progress = { repositories: 0, tags: 0 };

  const readRepository = async (name: RepositoryName): Promise<void> => {
    const record = await readRepositoryTags(fs, lay, name, io, warn, options.intern);
    found.push(record);
    progress.repositories++;
    progress.tags += record.tags.length;
    options.onProgress?.({ ...progress });
  };

  const visit = async (dir: string, name: string): Promise<void> => {
    const entries = await readDir(fs, io, dir, warn);
    if (entries === undefined) return;
    // Tasks, run by a few workers: starting them all at once would queue a
    // closure per tag of the whole tree (hundreds of MB at 100k tags).
    const children: Array<() => Promise<void>> = [];
    let isRepository = false;
    for (const entry of entries) {
      if (isRepositoryMarker(entry.name) && name !== '') {
        if (entry.isDirectory()) isRepository = true;
        else if (entry.isSymbolicLink()) {
          warn({ code: 'symlink', path: posix.join(dir, entry.name), message: 'symbolic link in repository; not followed' });
        }
        continue;
      }
      if (isReservedRepoChild(entry.name)) continue;
      const path = posix.join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        warn({ code: 'symlink', path, message: 'symbolic link under repositories; not followed' });
        continue;
      }
      if (!entry.isDirectory()) continue;
      children.push(() => visit(path, name === '' ? entry.name : `${name}/${entry.name}`));
    }
    if (isRepository) {
      const problem = repositoryNameProblem(name);
      if (problem !== undefined) {
        warn({ code: 'bad-name', path: dir, message: `${problem}; repository skipped` });
      } else {
        const repo = name as RepositoryName;
        if (options.includeRepository === undefined || options.includeRepository(repo)) {
          const manifests = entries.find((e) => e.name === MANIFESTS);
          if (manifests?.isDirectory() === true) children.push(() => readRepository(repo));
          // A symlinked _manifests (warned above) hides the tags: say they could not be
          // read, so the plan treats the repository as not understood rather than untagged.
          else found.push({ name: repo, tags: [], unreadableTags: manifests === undefined ? 0 : 1 });
        }
      }
    }
    await mapLimit(children, WORKERS, (task) => task());
  };

  await visit(lay.repositories, '');
  found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return found;
}

/**
 * Reads the tags of one repository (also used to re-check a repository right
 * before removing from it).
 */
export async function readRepositoryTags(
  fs: StorageFs,
  lay: Layout,
  repo: RepositoryName,
  io: Limiter = limiter(DEFAULT_CONCURRENCY),
  warn: WarningSink = () => {},
  intern: (d: Digest) => Digest = (d) => d,
): Promise<RepositoryRecord> {
  const tagsDir = lay.tags(repo);
  const readTag = async (entry: DirEntry): Promise<TagRecord | undefined> => {
    const dir = posix.join(tagsDir, entry.name);
    if (entry.isSymbolicLink()) {
      warn({ code: 'symlink', path: dir, message: 'tag directory is a symbolic link; not followed, never selected' });
      return undefined;
    }
    if (!entry.isDirectory()) {
      warn({ code: 'unexpected', path: dir, message: 'not a directory in the tags directory; ignored' });
      return undefined;
    }
    if (!isTagName(entry.name)) {
      warn({ code: 'bad-name', path: dir, message: `tag name ${JSON.stringify(entry.name)} is outside the tag grammar; never selected` });
      return undefined;
    }
    const tag = entry.name;
    const currentDir = lay.tagCurrentDir(repo, tag);
    try {
      const st = await io.run(() => fs.lstat(currentDir));
      if (st.isSymbolicLink()) {
        warn({ code: 'symlink', path: currentDir, message: 'current is a symbolic link; not followed, tag never selected' });
        return undefined;
      }
    } catch (err) {
      const missing = errnoCode(err) === 'ENOENT';
      warn({
        code: missing ? 'missing-link' : 'unreadable',
        path: currentDir,
        message: missing ? 'tag directory has no current/link; never selected' : `cannot stat: ${(err as Error).message}`,
      });
      return undefined;
    }
    const link = await io.run(() => readLink(fs, lay.tagCurrentLink(repo, tag)));
    if (!link.ok) {
      warn({ ...link.warning, message: `${link.warning.message}; tag never selected` });
      return undefined;
    }
    return { repository: repo, tag, digest: intern(link.digest), pushedAt: new Date(link.mtimeMs) };
  };

  // Tags that cannot be listed are not "no tags": the repository's manifests would look
  // untagged (and go with --untagged). A symlinked tags dir would be read and removed through.
  let entries: DirEntry[];
  try {
    const st = await io.run(() => fs.lstat(tagsDir));
    if (st.isSymbolicLink()) {
      warn({ code: 'symlink', path: tagsDir, message: 'tags directory is a symbolic link; not followed, no tag of the repository selected' });
      return { name: repo, tags: [], unreadableTags: 1 };
    }
    entries = await io.run(() => fs.readdir(tagsDir, { withFileTypes: true }));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') {
      warn({ code: 'unreadable', path: tagsDir, message: `cannot list directory: ${(err as Error).message}; no tag of the repository selected` });
      return { name: repo, tags: [], unreadableTags: 1 };
    }
    entries = [];
  }
  const read = await mapLimit(entries, WORKERS * 4, readTag);
  const tags = read.filter((t): t is TagRecord => t !== undefined);
  tags.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  return { name: repo, tags, unreadableTags: read.length - tags.length };
}
