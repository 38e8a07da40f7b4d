import { createHash } from 'node:crypto';
import type { Digest, RepositoryName, TagName } from '../../model/names.js';
import { isTagName, repositoryNameProblem } from '../../model/names.js';
import { mapLimit } from '../../util/limit.js';
import { linkProblem } from '../links.js';
import { CURRENT, MANIFESTS, TAGS } from '../paths.js';
import type { RepositoryRecord, TagRecord } from '../walk.js';
import type { WarningSink } from '../warnings.js';
import type { ObjectStore, S3ObjectInfo } from './client.js';
import { classifyRepositoryKey, repositoriesPrefix } from './keys.js';

/**
 * A read-only walk of the registry's tree in a bucket, listing first: one
 * ListObjectsV2 stream over `repositories/` (pages of 1000 keys) gives every
 * repository, tag, revision and layer link by name. A link's content is
 * implied by its name nearly everywhere, and a single-PUT object's ETag is the
 * MD5 of its content, so links are verified without reading them:
 *
 * - a revision or layer link must read `sha256:<its dir name>`;
 * - a tag's `current/link` must equal one of the tag's `index/` entries
 *   (the registry writes both on every push).
 *
 * Only links whose ETag does not match (multipart ETags never do; nor does a
 * link with a trailing newline) are read with a GET.
 */

/** What the filesystem walk gives per repository, and what the graph needs from `_manifests/revisions` and `_layers`. */
export interface S3RepositoryRecord extends RepositoryRecord {
  /** Revisions whose link reads exactly `sha256:<dir name>`, sorted. */
  readonly revisions: readonly Digest[];
  /** `_layers` links that read exactly `sha256:<dir name>`, sorted. */
  readonly linkedLayers: readonly Digest[];
  /**
   * Why the repository's revisions or layer links are not understood exactly
   * (each also reported as a warning); non-empty means nothing of it may be removed.
   */
  readonly problems: readonly string[];
}

export interface S3WalkOptions {
  /** Only read the tags of repositories for which this returns true. */
  readonly includeRepository?: (name: RepositoryName) => boolean;
  readonly onWarning?: WarningSink;
  readonly onProgress?: (progress: { keys: number; repositories: number }) => void;
  /** GETs of links in flight at once (the store bounds all requests too). */
  readonly concurrency?: number;
  /** How a key is named in warnings, e.g. `s3://bucket/key`. */
  readonly describe?: (key: string) => string;
}

export interface S3Walk {
  readonly repositories: S3RepositoryRecord[];
  /** Keys listed under `repositories/`. */
  readonly keys: number;
  /** Links read with a GET because their ETag did not prove their content. */
  readonly linksRead: number;
}

interface TagAcc {
  current: S3ObjectInfo | undefined;
  /** index entry hex by MD5 of its expected content */
  readonly index: Map<string, string>;
}

interface RepoAcc {
  readonly tags: Map<string, TagAcc>;
  /** By dir hex: null when the listing's ETag already proved the link (only unproven objects are kept: at 100k tags, most keys). */
  readonly revisions: Map<string, S3ObjectInfo | null>;
  readonly layers: Map<string, S3ObjectInfo | null>;
}

const LINK_SIZE = 'sha256:'.length + 64;

export function linkEtag(digest: Digest | string): string {
  return createHash('md5').update(digest).digest('hex');
}

function byName<T extends string>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function walkS3(store: ObjectStore, rootPrefix: string, options: S3WalkOptions = {}): Promise<S3Walk> {
  const warn: WarningSink = options.onWarning ?? (() => {});
  const describe = options.describe ?? ((key: string) => key);
  const prefix = repositoriesPrefix(rootPrefix);
  const repos = new Map<string, RepoAcc>();
  let keys = 0;
  let linksRead = 0;

  const repoAcc = (name: string): RepoAcc => {
    let acc = repos.get(name);
    if (acc === undefined) {
      acc = { tags: new Map(), revisions: new Map(), layers: new Map() };
      repos.set(name, acc);
    }
    return acc;
  };
  const tagAcc = (repo: RepoAcc, tag: string): TagAcc => {
    let acc = repo.tags.get(tag);
    if (acc === undefined) {
      acc = { current: undefined, index: new Map() };
      repo.tags.set(tag, acc);
    }
    return acc;
  };

  const proven = (object: S3ObjectInfo, digest: string) => object.size === LINK_SIZE && object.etag === linkEtag(digest);

  await store.list(prefix, (page) => {
    for (const object of page) {
      keys++;
      const k = classifyRepositoryKey(object.key.slice(prefix.length));
      if (k.kind === 'none') continue;
      const repo = repoAcc(k.repository);
      switch (k.kind) {
        case 'tag-current':
          tagAcc(repo, k.tag).current = object;
          break;
        case 'tag-index':
          tagAcc(repo, k.tag).index.set(linkEtag(`sha256:${k.hex}`), k.hex);
          break;
        case 'tag-other':
          tagAcc(repo, k.tag);
          break;
        case 'revision':
          repo.revisions.set(k.hex, proven(object, `sha256:${k.hex}`) ? null : object);
          break;
        case 'layer':
          repo.layers.set(k.hex, proven(object, `sha256:${k.hex}`) ? null : object);
          break;
        case 'other':
          break;
      }
    }
    options.onProgress?.({ keys, repositories: repos.size });
  });

  const key = (repository: string, rest: string) => `${prefix}${repository}/${rest}`;

  /** Reads a link whose ETag did not prove its content: its digest, or undefined (reported). */
  const readLink = async (k: string, what: string): Promise<{ digest: Digest; lastModified: Date } | undefined> => {
    linksRead++;
    const got = await store.get(k);
    if (got === undefined) {
      warn({ code: 'missing-link', path: describe(k), message: `${what} disappeared during the run` });
      return undefined;
    }
    const text = got.body.toString('utf8');
    const problem = got.body.length > 256 ? `link file is ${got.body.length} bytes, expected 71` : linkProblem(text);
    if (problem !== undefined) {
      warn({ code: 'bad-link', path: describe(k), message: `${problem}; ${what}` });
      return undefined;
    }
    return { digest: text as Digest, lastModified: got.lastModified };
  };

  /** Links named by their content (revisions, layers): the digests that read right. */
  const verifyNamed = async (
    repository: string,
    links: Map<string, S3ObjectInfo | null>,
    kind: 'revision' | 'layer link',
    problems: string[],
  ): Promise<Digest[]> => {
    const ok: Digest[] = [];
    const unproven: S3ObjectInfo[] = [];
    for (const [hex, object] of links) {
      if (object === null) ok.push(`sha256:${hex}` as Digest);
      else unproven.push(object);
    }
    await mapLimit(unproven, options.concurrency ?? 16, async (object) => {
      const hex = object.key.split('/').at(-2)!;
      const read = await readLink(object.key, `${kind} of ${repository} not understood`);
      if (read === undefined) {
        problems.push(`${kind} ${describe(object.key)} not understood`);
        return;
      }
      if (read.digest !== `sha256:${hex}`) {
        warn({ code: 'bad-link', path: describe(object.key), message: `${kind} reads ${read.digest}, not its directory's digest` });
        problems.push(`${kind} ${describe(object.key)} names another digest`);
        return;
      }
      ok.push(read.digest);
    });
    return ok.sort(byName);
  };

  const readTag = async (repository: RepositoryName, tag: string, acc: TagAcc): Promise<TagRecord | undefined> => {
    const dir = key(repository, `${MANIFESTS}/${TAGS}/${tag}`);
    if (!isTagName(tag)) {
      warn({ code: 'bad-name', path: describe(dir), message: `tag name ${JSON.stringify(tag)} is outside the tag grammar; never selected` });
      return undefined;
    }
    const current = acc.current;
    if (current === undefined) {
      warn({ code: 'missing-link', path: describe(`${dir}/${CURRENT}`), message: 'tag directory has no current/link; never selected' });
      return undefined;
    }
    const indexed = current.size === LINK_SIZE ? acc.index.get(current.etag) : undefined;
    if (indexed !== undefined) {
      return { repository, tag: tag as TagName, digest: `sha256:${indexed}` as Digest, pushedAt: current.lastModified };
    }
    const read = await readLink(current.key, 'tag never selected');
    if (read === undefined) return undefined;
    return { repository, tag: tag as TagName, digest: read.digest, pushedAt: read.lastModified };
  };

  const out: S3RepositoryRecord[] = [];
  const names = [...repos.keys()].sort(byName);
  await mapLimit(names, 4, async (name) => {
    const acc = repos.get(name)!;
    const problem = repositoryNameProblem(name);
    if (problem !== undefined) {
      warn({ code: 'bad-name', path: describe(`${prefix}${name}`), message: `${problem}; repository skipped` });
      return;
    }
    const repository = name as RepositoryName;
    if (options.includeRepository !== undefined && !options.includeRepository(repository)) return;
    const tagNames = [...acc.tags.keys()].sort(byName);
    const read = await mapLimit(tagNames, options.concurrency ?? 16, (t) => readTag(repository, t, acc.tags.get(t)!));
    const tags = read.filter((t): t is TagRecord => t !== undefined);
    const problems: string[] = [];
    const revisions = await verifyNamed(name, acc.revisions, 'revision', problems);
    const linkedLayers = await verifyNamed(name, acc.layers, 'layer link', problems);
    out.push({ name: repository, tags, unreadableTags: read.length - tags.length, revisions, linkedLayers, problems });
  });
  out.sort((a, b) => byName(a.name, b.name));
  return { repositories: out, keys, linksRead };
}
