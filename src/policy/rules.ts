import { cutoffBefore } from '../model/duration.js';
import type { RepositoryName, TagName, TagRef } from '../model/names.js';
import { formatTagRef } from '../model/names.js';
import type { RepoGlob, TagPattern } from '../model/pattern.js';
import type { Policy, PolicyRule } from './file.js';
import { reasonInterner, tagDecision, type Selection, type TagDecision, type TagFacts } from './select.js';

/**
 * Applies a policy file: each repository is governed by the first rule whose
 * `repositories` match it and whose `excludeRepositories` do not; within it,
 * tags are selected and protected as by the command-line selector, with the
 * rule's own keys. Pure: the same inputs give the same decisions.
 */

/** What the command line adds to a policy (see docs/policy.md, "Command-line flags"). */
export interface PolicyOverrides {
  /** Exact tags to remove as well, wherever they are, unless protected. */
  readonly refs: readonly TagRef[];
  /** Only these repositories are considered (empty: all). */
  readonly repos: readonly RepoGlob[];
  readonly excludeRepos: readonly RepoGlob[];
  /** Added to every rule's protection. */
  readonly keep: readonly TagPattern[];
  readonly keepLast?: number;
}

export const NO_OVERRIDES: PolicyOverrides = { refs: [], repos: [], excludeRepos: [], keep: [] };

/** Same shape as plan/build's Decide (policy/ does not import plan/). */
export type PolicyDecide = (
  repositories: ReadonlyMap<RepositoryName, readonly TagFacts[]>,
  dependent: (t: TagFacts) => boolean,
) => Selection;

export interface PolicyDecider {
  readonly decide: PolicyDecide;
  /** Where already-untagged manifests also go; undefined when no rule asks for `untagged`. */
  readonly untaggedIn: ((repository: RepositoryName) => boolean) | undefined;
  /** The rule governing `repository`, or undefined (left alone: no rule matches, or outside --repo). */
  readonly ruleFor: (repository: string) => PolicyRule | undefined;
}

export function ruleMatches(rule: PolicyRule, repository: string): boolean {
  return rule.repositories.some((g) => g.test(repository)) && !rule.excludeRepositories.some((g) => g.test(repository));
}

/** The first rule that matches, ignoring command-line scope. */
export function governingRule(policy: Policy, repository: string): PolicyRule | undefined {
  return policy.rules.find((r) => ruleMatches(r, repository));
}

/** A semantic-version tag: `v?MAJOR.MINOR.PATCH` with an optional `-prerelease` (tags cannot hold `+build`). */
export interface SemverTag {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly prerelease?: string;
}

const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

export function parseSemverTag(tag: string): SemverTag | undefined {
  const m = SEMVER.exec(tag);
  if (m === null) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (![major, minor, patch].every(Number.isSafeInteger)) return undefined;
  return { major, minor, patch, ...(m[4] === undefined ? {} : { prerelease: m[4] }) };
}

/**
 * Tags kept by `keepSemver: {perMinor: n}`: for each MAJOR.MINOR, the tags of
 * the n highest PATCH releases (by version, not push time). Prereleases are
 * neither kept nor counted: `1.4.0-rc.1` does not use up one of the n.
 * `v1.4.2` and `1.4.2` are one version; both tags are kept.
 */
export function semverKept(tags: readonly { tag: string }[], perMinor: number): Map<string, string> {
  const groups = new Map<string, Set<number>>();
  const parsed = new Map<string, SemverTag>();
  for (const { tag } of tags) {
    const v = parseSemverTag(tag);
    if (v === undefined || v.prerelease !== undefined) continue;
    parsed.set(tag, v);
    const key = `${v.major}.${v.minor}`;
    const set = groups.get(key) ?? new Set<number>();
    set.add(v.patch);
    groups.set(key, set);
  }
  const newest = new Map<string, Set<number>>();
  for (const [key, patches] of groups) newest.set(key, new Set([...patches].sort((a, b) => b - a).slice(0, perMinor)));
  const kept = new Map<string, string>();
  for (const [tag, v] of parsed) {
    const key = `${v.major}.${v.minor}`;
    if (newest.get(key)?.has(v.patch) === true) kept.set(tag, `${key}.x`);
  }
  return kept;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

/** The `n` most recently pushed tags (ties broken by name, so the result is stable). */
function newestTags(tags: readonly TagFacts[], n: number | undefined): Set<TagName> {
  if (n === undefined || n <= 0) return new Set();
  const sorted = [...tags].sort(
    (a, b) => b.pushedAt.getTime() - a.pushedAt.getTime() || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0),
  );
  return new Set(sorted.slice(0, n).map((t) => t.tag));
}

interface Protection {
  readonly rule: PolicyRule | undefined;
  readonly newest: ReadonlySet<TagName>;
  readonly newestCli: ReadonlySet<TagName>;
  readonly semver: ReadonlyMap<string, string>;
}

/** Why a keep key protects `t`, or undefined. The file's keys by name, the command line's by flag. */
function protection(p: Protection, o: PolicyOverrides, t: TagFacts): string | undefined {
  const rule = p.rule;
  if ((rule?.keepLatest ?? true) && t.tag === 'latest') return 'kept: latest';
  const keep = rule?.keep.find((k) => k.test(t.tag));
  if (keep !== undefined) return `kept: keep ${keep.text}`;
  const cliKeep = o.keep.find((k) => k.test(t.tag));
  if (cliKeep !== undefined) return `kept: --keep ${cliKeep.text}`;
  if (p.newest.has(t.tag)) return `kept: keepLast ${rule?.keepLast}`;
  if (p.newestCli.has(t.tag)) return `kept: --keep-last ${o.keepLast}`;
  const minor = p.semver.get(t.tag);
  if (minor !== undefined) return `kept: keepSemver perMinor ${rule?.keepSemver?.perMinor} (newest of ${minor})`;
  return undefined;
}

/** Why the rule's filters select `t`, or why not. */
function filter(rule: PolicyRule, t: TagFacts, now: Date): { selected: boolean; reason: string } {
  if (rule.tags.length === 0 && rule.olderThan === undefined && rule.before === undefined) {
    return { selected: false, reason: 'kept: rule has no tags, olderThan or before filter' };
  }
  const parts: string[] = [];
  if (rule.tags.length > 0) {
    const match = rule.tags.find((p) => p.test(t.tag));
    if (match === undefined) return { selected: false, reason: `kept: matches none of tags` };
    parts.push(`matches ${match.text}`);
  }
  const pushed = day(t.pushedAt);
  if (rule.olderThan !== undefined) {
    if (!(t.pushedAt.getTime() < cutoffBefore(now, rule.olderThan).getTime())) {
      return { selected: false, reason: `kept: pushed ${pushed}, within ${rule.olderThan.text}` };
    }
    parts.push(`older than ${rule.olderThan.text}`);
  }
  if (rule.before !== undefined) {
    // As in select.ts: a bare date reads as itself, a cutoff with a time of day keeps it.
    const before = rule.before.toISOString().replace('T00:00:00.000Z', '');
    if (!(t.pushedAt.getTime() < rule.before.getTime())) {
      return { selected: false, reason: `kept: pushed ${pushed}, not before ${before}` };
    }
    parts.push(`pushed before ${before}`);
  }
  const time = rule.olderThan !== undefined || rule.before !== undefined ? ` (pushed ${pushed})` : '';
  return { selected: true, reason: `${parts.join(', ')}${time}` };
}

/**
 * Builds the decision function for a policy plus command-line additions.
 *
 * In a governed repository a tag goes when the rule's filters select it (or
 * it is named) and nothing protects it; protection (the rule's keys and the
 * command line's --keep/--keep-last) always wins. Repositories no rule
 * governs get no decision unless a tag there is named. Every reason starts
 * with the rule: `rule 2: older than 7d (pushed 2026-11-01)`.
 */
export function decideByPolicy(policy: Policy, overrides: PolicyOverrides, now: Date): PolicyDecider {
  const inScope = (repository: string) =>
    !overrides.excludeRepos.some((g) => g.test(repository)) &&
    (overrides.repos.length === 0 || overrides.repos.some((g) => g.test(repository)));
  const ruleFor = (repository: string) => (inScope(repository) ? governingRule(policy, repository) : undefined);

  const decide: PolicyDecide = (repositories, dependent) => {
    const named = new Map<string, TagRef>();
    for (const ref of overrides.refs) named.set(formatTagRef(ref), ref);
    const found = new Set<string>();
    const decisions: TagDecision[] = [];
    const once = reasonInterner();
    for (const repository of [...repositories.keys()].sort()) {
      const tags = repositories.get(repository) ?? [];
      // A named tag outside --repo is still protected by the rule that governs
      // its repository; only the rule's filters are limited to the scope.
      const rule = governingRule(policy, repository);
      const scoped = rule !== undefined && inScope(repository);
      const namedHere = tags.some((t) => named.has(formatTagRef(t)));
      if (!scoped && !namedHere) continue;
      const prefix = rule === undefined ? 'no rule: ' : `rule ${rule.index}: `;
      // Signature-like tags follow their subject: they neither count towards
      // keepLast nor match filters; naming one still removes it.
      const counted = tags.filter((t) => !dependent(t));
      const p: Protection = {
        rule,
        newest: newestTags(counted, rule?.keepLast),
        newestCli: newestTags(counted, overrides.keepLast),
        semver: rule?.keepSemver === undefined ? new Map() : semverKept(counted, rule.keepSemver.perMinor),
      };
      for (const t of [...tags].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))) {
        const key = formatTagRef(t);
        const isNamed = named.has(key);
        if (isNamed) found.add(key);
        if (!scoped && !isNamed) continue;
        const decision = (verdict: 'keep' | 'remove', reason: string, n = false): TagDecision => tagDecision(t, verdict, once(`${prefix}${reason}`), n);
        if (!isNamed && dependent(t)) {
          decisions.push(decision('keep', 'kept: follows its subject'));
          continue;
        }
        const kept = protection(p, overrides, t);
        if (kept !== undefined) {
          decisions.push(decision('keep', kept, isNamed));
          continue;
        }
        if (isNamed) {
          decisions.push(decision('remove', 'named', true));
          continue;
        }
        const f = !scoped ? { selected: false, reason: 'kept: not named' } : filter(rule, t, now);
        decisions.push(decision(f.selected ? 'remove' : 'keep', f.reason));
      }
    }
    const missing = [...named.entries()].filter(([key]) => !found.has(key)).map(([, ref]) => ref);
    return { decisions, missing };
  };

  const untaggedIn = policy.rules.some((r) => r.untagged)
    ? (repository: RepositoryName) => ruleFor(repository)?.untagged === true
    : undefined;
  return { decide, untaggedIn, ruleFor };
}
