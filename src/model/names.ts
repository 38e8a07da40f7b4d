import { UsageError } from './errors.js';

declare const repoBrand: unique symbol;
declare const tagBrand: unique symbol;
declare const digestBrand: unique symbol;

/** A repository name that matched the distribution grammar, e.g. `team/app/api`. */
export type RepositoryName = string & { readonly [repoBrand]: true };
/** A tag that matched `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. */
export type TagName = string & { readonly [tagBrand]: true };
/** A content digest `sha256:<64 lowercase hex>`; the only algorithm the registry writes. */
export type Digest = string & { readonly [digestBrand]: true };

export interface TagRef {
  readonly repository: RepositoryName;
  readonly tag: TagName;
}

// One path component of a repository name (reference/regexp.go in distribution).
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
// An optional leading domain component (host[:port]) is allowed by the grammar.
const DOMAIN = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
export const MAX_REPOSITORY_NAME = 255;

/** Why `name` is not a repository name, or undefined when it is one. */
export function repositoryNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty repository name';
  if (name.length > MAX_REPOSITORY_NAME) return `repository name longer than ${MAX_REPOSITORY_NAME} characters`;
  const parts = name.split('/');
  for (const [i, part] of parts.entries()) {
    if (COMPONENT.test(part)) continue;
    if (i === 0 && parts.length > 1 && DOMAIN.test(part)) continue;
    return `invalid repository name component ${JSON.stringify(part)} (lowercase letters, digits and single separators . _ __ - only)`;
  }
  return undefined;
}

export function isRepositoryName(name: string): name is RepositoryName {
  return repositoryNameProblem(name) === undefined;
}

export function parseRepositoryName(name: string, what = 'repository'): RepositoryName {
  const problem = repositoryNameProblem(name);
  if (problem !== undefined) throw new UsageError(`${what} ${JSON.stringify(name)}: ${problem}`);
  return name as RepositoryName;
}

export function isTagName(tag: string): tag is TagName {
  return TAG.test(tag);
}

export function parseTagName(tag: string, what = 'tag'): TagName {
  if (!isTagName(tag)) {
    throw new UsageError(
      `${what} ${JSON.stringify(tag)}: not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)`,
    );
  }
  return tag;
}

export function isDigest(value: string): value is Digest {
  return DIGEST.test(value);
}

export function parseDigest(value: string, what = 'digest'): Digest {
  if (!isDigest(value)) throw new UsageError(`${what} ${JSON.stringify(value)}: not a sha256 digest`);
  return value;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** `sha256:` + 12 hex: enough to tell manifests apart in a table. */
export function shortDigest(digest: Digest): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

/**
 * Parses `REPO:TAG` as given on the command line. The tag is after the last
 * colon; a colon inside the repository (a registry port) is allowed only in
 * the domain component, so `host:5000/app:v1` parses as repo `host:5000/app`.
 */
export function parseTagRef(text: string): TagRef {
  const colon = text.lastIndexOf(':');
  const slash = text.lastIndexOf('/');
  if (colon < 0 || colon < slash) {
    throw new UsageError(`tag reference ${JSON.stringify(text)}: expected REPOSITORY:TAG, e.g. team/app:v1`);
  }
  const repo = text.slice(0, colon);
  const tag = text.slice(colon + 1);
  if (repo === '') throw new UsageError(`tag reference ${JSON.stringify(text)}: missing repository before ':'`);
  if (tag === '') throw new UsageError(`tag reference ${JSON.stringify(text)}: missing tag after ':'`);
  return {
    repository: parseRepositoryName(repo, `tag reference ${JSON.stringify(text)}: repository`),
    tag: parseTagName(tag, `tag reference ${JSON.stringify(text)}: tag`),
  };
}

export function formatTagRef(ref: TagRef): string {
  return `${ref.repository}:${ref.tag}`;
}
