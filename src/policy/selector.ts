import type { Duration } from '../model/duration.js';
import type { TagRef } from '../model/names.js';
import type { RepoGlob, TagPattern } from '../model/pattern.js';

/** What the user asked for, parsed. Built at the CLI edge, consumed by selectTags. */
export interface Selector {
  /** Exact `REPO:TAG` references: removed unless a keep rule protects them. */
  readonly refs: readonly TagRef[];
  /** Repository scope for the filters (empty: every repository). */
  readonly repos: readonly RepoGlob[];
  readonly excludeRepos: readonly RepoGlob[];
  /** Filters: a tag is selected when it matches every kind given (patterns OR-ed). */
  readonly tags: readonly TagPattern[];
  readonly olderThan?: Duration;
  readonly before?: Date;
  /** Keep rules: always win. */
  readonly keep: readonly TagPattern[];
  readonly keepLast?: number;
  readonly keepLatest: boolean;
}

export function hasFilters(selector: Selector): boolean {
  return selector.tags.length > 0 || selector.olderThan !== undefined || selector.before !== undefined;
}

/** Destructive by request only: a selector that names nothing and filters nothing selects nothing. */
export function isEmptySelection(selector: Selector): boolean {
  return selector.refs.length === 0 && !hasFilters(selector);
}

export function inRepositoryScope(selector: Selector, repository: string): boolean {
  if (selector.excludeRepos.some((g) => g.test(repository))) return false;
  return selector.repos.length === 0 || selector.repos.some((g) => g.test(repository));
}
