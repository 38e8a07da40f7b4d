import type { Digest, RepositoryName, TagName } from '../model/names.js';
import { digestHex } from '../model/names.js';

/**
 * The whole on-disk layout of the filesystem storage driver, in one place
 * (after distribution's registry/storage/paths.go). No other module spells
 * `_manifests`, `_layers` or `blobs`.
 *
 *   <root>/docker/registry/v2/
 *     blobs/sha256/<hex[0:2]>/<hex>/data
 *     repositories/<name...>/
 *       _layers/sha256/<hex>/link
 *       _manifests/revisions/sha256/<hex>/link
 *       _manifests/tags/<tag>/current/link
 *       _manifests/tags/<tag>/index/sha256/<hex>/link
 *       _uploads/<uuid>/...
 *
 * regprune's own state (lock, trash) lives in `<root>/.regprune/`, outside
 * `docker/registry/v2`, where the registry never looks.
 */
export const V2_SUFFIX = 'docker/registry/v2';
export const LAYERS = '_layers';
export const MANIFESTS = '_manifests';
export const UPLOADS = '_uploads';
export const TAGS = 'tags';
export const REVISIONS = 'revisions';
export const CURRENT = 'current';
export const INDEX = 'index';
export const LINK = 'link';
export const DATA = 'data';
export const ALGORITHM = 'sha256';
/** regprune's own state under the rootdirectory (lock, trash, journal), outside docker/registry/v2. */
export const STATE_DIR = '.regprune';

/**
 * Joins path parts with `/`. The parts are a normalized root and validated
 * names, so posix.join's normalization (a measurable cost at 100k tags) is
 * not needed; only a root of `/` needs care.
 */
function join(first: string, ...rest: string[]): string {
  let path = first === '/' ? '' : first;
  for (const part of rest) path += `/${part}`;
  return path;
}

export interface Layout {
  readonly root: string;
  readonly v2: string;
  readonly repositories: string;
  readonly blobs: string;
  readonly stateDir: string;
  readonly lockFile: string;
  readonly trashDir: string;
  /** Manifests a run set out to unlink; a run that dies leaves it for the next to finish. */
  readonly journalFile: string;
  /** The same, written as empty files when the disk has no byte free (`<runId>/<repository...>/@<digest>`). */
  readonly journalDir: string;
  repository(repo: RepositoryName): string;
  tags(repo: RepositoryName): string;
  tag(repo: RepositoryName, tag: TagName): string;
  tagCurrentDir(repo: RepositoryName, tag: TagName): string;
  tagCurrentLink(repo: RepositoryName, tag: TagName): string;
  tagIndexLink(repo: RepositoryName, tag: TagName, digest: Digest): string;
  revisions(repo: RepositoryName): string;
  revision(repo: RepositoryName, digest: Digest): string;
  revisionLink(repo: RepositoryName, digest: Digest): string;
  layers(repo: RepositoryName): string;
  layer(repo: RepositoryName, digest: Digest): string;
  layerLink(repo: RepositoryName, digest: Digest): string;
  uploads(repo: RepositoryName): string;
  /** An upload's `data` and `startedat` files (`<uploads>/<uuid>/...`). */
  uploadFile(repo: RepositoryName, uuid: string, file: 'data' | 'startedat'): string;
  blobShards(): string;
  blob(digest: Digest): string;
  blobData(digest: Digest): string;
}

export function layout(root: string): Layout {
  const v2 = join(root, V2_SUFFIX);
  const repositories = join(v2, 'repositories');
  const blobs = join(v2, 'blobs');
  const stateDir = join(root, STATE_DIR);
  const repository = (repo: RepositoryName) => join(repositories, repo);
  const tags = (repo: RepositoryName) => join(repository(repo), MANIFESTS, TAGS);
  const tag = (repo: RepositoryName, t: TagName) => join(tags(repo), t);
  const revisions = (repo: RepositoryName) => join(repository(repo), MANIFESTS, REVISIONS, ALGORITHM);
  const revision = (repo: RepositoryName, d: Digest) => join(revisions(repo), digestHex(d));
  const layers = (repo: RepositoryName) => join(repository(repo), LAYERS, ALGORITHM);
  const layer = (repo: RepositoryName, d: Digest) => join(layers(repo), digestHex(d));
  const blob = (d: Digest) => {
    const hex = digestHex(d);
    return join(blobs, ALGORITHM, hex.slice(0, 2), hex);
  };
  return {
    root,
    v2,
    repositories,
    blobs,
    stateDir,
    lockFile: join(stateDir, 'lock'),
    trashDir: join(stateDir, 'trash'),
    journalFile: join(stateDir, 'pending-manifests.json'),
    journalDir: join(stateDir, 'pending-manifests.d'),
    repository,
    tags,
    tag,
    tagCurrentDir: (repo, t) => join(tag(repo, t), CURRENT),
    tagCurrentLink: (repo, t) => join(tag(repo, t), CURRENT, LINK),
    tagIndexLink: (repo, t, d) => join(tag(repo, t), INDEX, ALGORITHM, digestHex(d), LINK),
    revisions,
    revision,
    revisionLink: (repo, d) => join(revision(repo, d), LINK),
    layers,
    layer,
    layerLink: (repo, d) => join(layer(repo, d), LINK),
    uploads: (repo) => join(repository(repo), UPLOADS),
    uploadFile: (repo, uuid, file) => join(repository(repo), UPLOADS, uuid, file),
    blobShards: () => join(blobs, ALGORITHM),
    blob,
    blobData: (d) => join(blob(d), DATA),
  };
}

/** The content of a link file: exactly `sha256:<hex>`, 71 bytes, no newline. */
export function linkContent(digest: Digest): string {
  return digest;
}

/** Names of the registry's reserved children of a repository directory. */
export function isReservedRepoChild(name: string): boolean {
  return name.startsWith('_');
}

/** v2.8 recognises a repository by `_layers`, v3 by `_manifests`; accept either. */
export function isRepositoryMarker(name: string): boolean {
  return name === LAYERS || name === MANIFESTS;
}
