import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName, TagName } from '../model/names.js';
import { isTagName, repositoryNameProblem } from '../model/names.js';
import { limiter, mapLimit, type Limiter } from '../util/limit.js';
import { lstatMany, type DirEntry, type FileStats, type StorageFs } from './fs.js';
import { readLinks, type LinkRead } from './links.js';
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
  /**
   * Called with each repository once its tags are read (and awaited, so the walk goes on at the
   * pace of what it does): the plan reads the repository's manifests there, while the walk
   * reads the next repositories' tags.
   */
  readonly onRepository?: (record: RepositoryRecord) => Promise<void>;
  /** Shares tag digest strings with the manifest cache (a tag per manifest, 100k at scale). */
  readonly intern?: (d: Digest) => Digest;
}

export const DEFAULT_CONCURRENCY = 64;
/** Directories (and repositories) walked at once; each reads its tags with 4x as many. */
const WORKERS = 4;
/** Tags read in one batch of calls. */
const TAG_BATCH = 512;

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

  const done = async (record: RepositoryRecord): Promise<void> => {
    found.push(record);
    progress.repositories++;
    progress.tags += record.tags.length;
    options.onProgress?.({ ...progress });
    await options.onRepository?.(record);
  };
  const readRepository = async (name: RepositoryName): Promise<void> => done(await readRepositoryTags(fs, lay, name, io, warn, options.intern));

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
          else children.push(() => done({ name: repo, tags: [], unreadableTags: manifests === undefined ? 0 : 1 }));
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
  /** A tag directory's name, if it may hold a tag (reported otherwise). */
  const tagOf = (entry: DirEntry): TagName | undefined => {
    if (entry.isDirectory() && isTagName(entry.name)) return entry.name;
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
    return entry.name;
  };
  // All tags of the repository at once: each `current` must not be a symbolic link (reading
  // current/link would follow it), then each link is read without following one.
  const readTags = async (entries: readonly DirEntry[]): Promise<TagRecord[]> => {
    const names = entries.map(tagOf).filter((t): t is TagName => t !== undefined);
    const currentDirs = names.map((t) => lay.tagCurrentDir(repo, t));
    const currents = await io.run(() => lstatMany(fs, currentDirs));
    const linked: TagName[] = [];
    names.forEach((tag, i) => {
      const st = currents[i] as FileStats | Error;
      const currentDir = currentDirs[i] as string;
      if (st instanceof Error) {
        const missing = errnoCode(st) === 'ENOENT';
        warn({
          code: missing ? 'missing-link' : 'unreadable',
          path: currentDir,
          message: missing ? 'tag directory has no current/link; never selected' : `cannot stat: ${st.message}`,
        });
      } else if (st.isSymbolicLink()) {
        warn({ code: 'symlink', path: currentDir, message: 'current is a symbolic link; not followed, tag never selected' });
      } else linked.push(tag);
    });
    const links = await io.run(() => readLinks(fs, linked.map((t) => lay.tagCurrentLink(repo, t))));
    const tags: TagRecord[] = [];
    linked.forEach((tag, i) => {
      const link = links[i] as LinkRead;
      if (!link.ok) warn({ ...link.warning, message: `${link.warning.message}; tag never selected` });
      else tags.push({ repository: repo, tag, digest: intern(link.digest), pushedAt: new Date(link.mtimeMs) });
    });
    return tags;
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
  // Batches of a few hundred: one message each to the reader thread, and progress between them.
  const tags: TagRecord[] = [];
  for (let i = 0; i < entries.length; i += TAG_BATCH) tags.push(...(await readTags(entries.slice(i, i + TAG_BATCH))));
  tags.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  return { name: repo, tags, unreadableTags: entries.length - tags.length };
}
