import { ALGORITHM, CURRENT, INDEX, LAYERS, LINK, MANIFESTS, REVISIONS, TAGS, V2_SUFFIX, isRepositoryMarker } from '../paths.js';

/**
 * The registry's tree as object keys: `<rootdirectory>/docker/registry/v2/...`
 * with the filesystem layout below it (storage/paths.ts), one object per
 * file, no directories. A repository "directory" exists when some key lies
 * under `<name>/_layers/` or `<name>/_manifests/`.
 */

/** Key prefix of `repositories/` for a key prefix of the rootdirectory (`''` or `reg/`). */
export function repositoriesPrefix(rootPrefix: string): string {
  return `${rootPrefix}${V2_SUFFIX}/repositories/`;
}

/** Key prefix of the blob store. */
export function blobsPrefix(rootPrefix: string): string {
  return `${rootPrefix}${V2_SUFFIX}/blobs/${ALGORITHM}/`;
}

export type RepositoryKey =
  | { readonly kind: 'tag-current'; readonly repository: string; readonly tag: string }
  | { readonly kind: 'tag-index'; readonly repository: string; readonly tag: string; readonly hex: string }
  /** Some other object in a tag's directory: the tag exists (and is not understood without current/link). */
  | { readonly kind: 'tag-other'; readonly repository: string; readonly tag: string }
  | { readonly kind: 'revision'; readonly repository: string; readonly hex: string }
  | { readonly kind: 'layer'; readonly repository: string; readonly hex: string }
  /** Under a repository's `_manifests` or `_layers`, but not a link the registry reads (temp files, odd names). */
  | { readonly kind: 'other'; readonly repository: string }
  /** Not under a repository marker at all (uploads, stray objects). */
  | { readonly kind: 'none' };

const HEX = /^[a-f0-9]{64}$/;

/**
 * What a key below `repositories/` is (`rel` is the key without that prefix).
 * The repository name is everything before the first component that starts
 * with `_` (no name component may), unvalidated.
 */
export function classifyRepositoryKey(rel: string): RepositoryKey {
  const parts = rel.split('/');
  const at = parts.findIndex((p) => p.startsWith('_'));
  if (at <= 0) return { kind: 'none' };
  const marker = parts[at]!;
  if (!isRepositoryMarker(marker)) return { kind: 'none' };
  const repository = parts.slice(0, at).join('/');
  const rest = parts.slice(at + 1);
  const other = { kind: 'other', repository } as const;
  if (marker === LAYERS) {
    if (rest.length === 3 && rest[0] === ALGORITHM && HEX.test(rest[1]!) && rest[2] === LINK) return { kind: 'layer', repository, hex: rest[1]! };
    return other;
  }
  if (rest[0] === REVISIONS) {
    if (rest.length === 4 && rest[1] === ALGORITHM && HEX.test(rest[2]!) && rest[3] === LINK) return { kind: 'revision', repository, hex: rest[2]! };
    return other;
  }
  if (rest[0] === TAGS && rest.length >= 4 && rest[1] !== '') {
    const tag = rest[1]!;
    if (rest.length === 4 && rest[2] === CURRENT && rest[3] === LINK) return { kind: 'tag-current', repository, tag };
    if (rest.length === 6 && rest[2] === INDEX && rest[3] === ALGORITHM && HEX.test(rest[4]!) && rest[5] === LINK) {
      return { kind: 'tag-index', repository, tag, hex: rest[4]! };
    }
    return { kind: 'tag-other', repository, tag };
  }
  return other;
}
