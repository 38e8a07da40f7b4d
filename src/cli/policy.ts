import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError, errnoCode } from '../model/errors.js';
import type { RepositoryName } from '../model/names.js';
import type { Decide } from '../plan/build.js';
import type { Plan, PlannedTag } from '../plan/plan.js';
import { formatProblem, hasRuleFilters, keepsEverything, parsePolicy, type Policy, type PolicyProblem, type PolicyRule } from '../policy/file.js';
import { decideByPolicy, governingRule, type PolicyOverrides } from '../policy/rules.js';
import type { CliDeps } from './deps.js';
import { humanBytes, plural, pushedCell, table } from './render.js';

/** The policy file as the CLI reads it: through deps.fs, relative to deps.cwd. */
export interface LoadedPolicy {
  readonly file: string;
  readonly policy: Policy;
  readonly warnings: readonly PolicyProblem[];
}

export type PolicyLoad = LoadedPolicy | { readonly file: string; readonly errors: readonly PolicyProblem[]; readonly warnings: readonly PolicyProblem[] };

export async function readPolicyFile(file: string, deps: CliDeps): Promise<PolicyLoad> {
  if (file.trim() === '') throw new UsageError('--policy: empty path');
  const path = isAbsolute(file) ? file : resolve(deps.cwd, file);
  let bytes: Uint8Array;
  try {
    bytes = await deps.fs.readFile(path);
  } catch (err) {
    const code = errnoCode(err);
    throw new UsageError(`reading policy file ${file}: ${code === 'ENOENT' ? 'no such file' : err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new UsageError(`reading policy file ${file}: not UTF-8 text`, { cause: err });
  }
  const parsed = parsePolicy(text);
  return parsed.ok ? { file, policy: parsed.policy, warnings: parsed.warnings } : { file, errors: parsed.errors, warnings: parsed.warnings };
}

export function problemLines(file: string, problems: readonly PolicyProblem[]): string {
  return problems.map((p) => `${formatProblem(file, p)}\n`).join('');
}

/** `--policy FILE` for prune; the flags it conflicts with are refused by preparePolicy. */
export function addPolicyOptions(cmd: Command): Command {
  return cmd
    .option('--policy <file>', 'apply the retention rules in FILE (YAML or JSON; see docs/policy.md); --keep, --keep-last, --repo, --exclude-repo and REPO:TAG add to it')
    .option('--explain', 'with --policy: list, per repository, the rule that applied and why each tag stays or goes');
}

export interface PolicyOptionValues {
  policy?: string;
  explain?: boolean;
}

/** The selector flags that would make a policy ambiguous (each one says what to write in the file instead). */
interface ConflictingOptions {
  tag?: string[];
  olderThan?: string;
  before?: string;
  keepLatest: boolean;
  untagged?: boolean;
}

const CONFLICTS: readonly { flag: string; given: (o: ConflictingOptions) => boolean; instead: string }[] = [
  { flag: '--tag', given: (o) => (o.tag?.length ?? 0) > 0, instead: '"tags" in the rules it should apply to' },
  { flag: '--older-than', given: (o) => o.olderThan !== undefined, instead: '"olderThan" in the rules it should apply to' },
  { flag: '--before', given: (o) => o.before !== undefined, instead: '"before" in the rules it should apply to' },
  { flag: '--no-keep-latest', given: (o) => !o.keepLatest, instead: '"keepLatest: false" in the rules where latest may go' },
  { flag: '--untagged', given: (o) => o.untagged === true, instead: '"untagged: true" in the rules it should apply to' },
];

/** A repository the policy run looked at, and the rule that governed it (undefined: left alone). */
export interface GovernedRepository {
  readonly repository: RepositoryName;
  readonly rule: PolicyRule | undefined;
  readonly tags: number;
}

export interface PreparedPolicy extends LoadedPolicy {
  readonly decide: Decide;
  /** Spread into buildPlan's input. */
  readonly untagged: { untaggedIn?: (repository: RepositoryName) => boolean };
  /** Filled when decide runs: every repository in the storage, in order. */
  readonly repositories: GovernedRepository[];
}

/**
 * Reads and checks `--policy FILE` (errors: a usage error listing every
 * FILE:LINE:COL problem; nothing is touched) and refuses flags that would
 * make it ambiguous. Warnings go to stderr unless quiet.
 */
export async function loadPolicyForPrune(
  opts: PolicyOptionValues & ConflictingOptions & { quiet?: boolean },
  deps: CliDeps,
): Promise<LoadedPolicy | undefined> {
  if (opts.policy === undefined) {
    if (opts.explain === true) throw new UsageError('--explain shows which policy rule applied: it needs --policy FILE', { hint: 'without a policy, --verbose lists the kept tags and why' });
    return undefined;
  }
  for (const c of CONFLICTS) {
    if (c.given(opts)) {
      throw new UsageError(`${c.flag} cannot be combined with --policy: it would be unclear which rules it changes`, {
        hint: `write ${c.instead}; --keep, --keep-last, --repo, --exclude-repo and REPO:TAG do combine`,
      });
    }
  }
  const loaded = await readPolicyFile(opts.policy, deps);
  if ('errors' in loaded) {
    throw new UsageError(
      `policy file ${loaded.file} is invalid (${plural(loaded.errors.length, 'problem')}); nothing was touched:\n${problemLines(loaded.file, loaded.errors).trimEnd()}`,
      { hint: `regprune policy check ${loaded.file}` },
    );
  }
  if (opts.quiet !== true) deps.stderr.write(problemLines(loaded.file, loaded.warnings));
  return loaded;
}

/** The decision hook for buildPlan: the policy plus what the command line adds (a Selector is one). */
export function preparePolicy(loaded: LoadedPolicy, overrides: PolicyOverrides, now: Date): PreparedPolicy {
  const decider = decideByPolicy(loaded.policy, overrides, now);
  const repositories: GovernedRepository[] = [];
  const decide: Decide = (repos, dependent) => {
    repositories.length = 0;
    for (const [repository, tags] of [...repos].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      repositories.push({ repository, rule: decider.ruleFor(repository), tags: tags.length });
    }
    return decider.decide(repos, dependent);
  };
  return {
    ...loaded,
    decide,
    untagged: decider.untaggedIn === undefined ? {} : { untaggedIn: decider.untaggedIn },
    repositories,
  };
}

const quoteList = (items: readonly { text: string }[]) => items.map((i) => i.text).join(', ');

/** One line per rule: what it governs, what it removes, what it keeps. */
export function describeRule(rule: PolicyRule): string {
  const where = `${quoteList(rule.repositories)}${rule.excludeRepositories.length > 0 ? ` except ${quoteList(rule.excludeRepositories)}` : ''}`;
  const parts: string[] = [];
  if (keepsEverything(rule)) parts.push('keep every tag');
  else {
    if (!hasRuleFilters(rule)) parts.push('remove no tag');
    else {
      const what: string[] = [];
      if (rule.tags.length > 0) what.push(`matching ${rule.tags.map((t) => t.text).join(' or ')}`);
      if (rule.olderThan !== undefined) what.push(`older than ${rule.olderThan.text}`);
      if (rule.before !== undefined) what.push(`pushed before ${rule.before.toISOString().replace('T00:00:00.000Z', '')}`);
      parts.push(`remove tags ${what.join(' and ')}`);
    }
    const keep: string[] = [];
    if (rule.keepLatest) keep.push('latest');
    for (const k of rule.keep) keep.push(k.text);
    if (rule.keepLast !== undefined && rule.keepLast > 0) keep.push(`the last ${rule.keepLast} pushed`);
    if (rule.keepSemver !== undefined) keep.push(`the newest ${rule.keepSemver.perMinor} patch releases of each major.minor`);
    if (keep.length > 0) parts.push(`keep ${[...new Set(keep)].join(', ')}`);
  }
  if (rule.untagged) parts.push('also remove untagged manifests');
  return `rule ${rule.index} (line ${rule.line}): ${where}: ${parts.join('; ')}`;
}

/**
 * `--explain`: per repository, the rule that governed it and every tag with
 * its verdict and reason (the rule is in the heading, so not repeated).
 * `summary`: end with what the run would do (a run that removes reports its outcome instead).
 */
export function renderExplain(deps: CliDeps, p: PreparedPolicy, plan: Plan, now: Date, opts: { summary: boolean; dryRun: boolean }): void {
  const out = deps.stdout;
  const byRepo = new Map<string, { tag: PlannedTag; verdict: 'remove' | 'keep' }[]>();
  for (const [list, verdict] of [
    [plan.tags, 'remove'],
    [plan.kept, 'keep'],
  ] as const) {
    for (const t of list) {
      const rows = byRepo.get(t.repository) ?? [];
      rows.push({ tag: t, verdict });
      byRepo.set(t.repository, rows);
    }
  }
  const unmatched: GovernedRepository[] = [];
  const outside: GovernedRepository[] = [];
  let first = true;
  const heading = (text: string) => {
    out.write(`${first ? '' : '\n'}${text}\n`);
    first = false;
  };
  for (const r of p.repositories) {
    const rows = byRepo.get(r.repository);
    const manifests = plan.manifests.filter((m) => m.repository === r.repository).length;
    if (r.rule === undefined && rows === undefined && manifests === 0) {
      (governingRule(p.policy, r.repository) === undefined ? unmatched : outside).push(r);
      continue;
    }
    heading(`${r.repository}: ${r.rule === undefined ? 'no rule applies (named tags only)' : describeRule(r.rule)}`);
    const sorted = [...(rows ?? [])].sort((a, b) => (a.tag.tag < b.tag.tag ? -1 : a.tag.tag > b.tag.tag ? 1 : 0));
    if (sorted.length > 0) {
      const body = table(
        ['', 'TAG', 'PUSHED', 'WHY'],
        sorted.map(({ tag, verdict }) => [verdict, tag.tag, pushedCell(tag.pushedAt, now), tag.reason.replace(/^(?:rule \d+|no rule): /, '')]),
      );
      out.write(body.split('\n').map((l) => (l === '' ? l : `  ${l}`)).join('\n'));
    } else out.write('  (no tags)\n');
    if (manifests > 0) out.write(`  and ${plural(manifests, 'manifest')} unlinked\n`);
  }
  if (unmatched.length > 0) {
    heading('left alone, no rule matches:');
    for (const r of unmatched) out.write(`  ${r.repository} (${plural(r.tags, 'tag')})\n`);
  }
  if (outside.length > 0) {
    heading('left alone, outside --repo/--exclude-repo:');
    for (const r of outside) out.write(`  ${r.repository} (${plural(r.tags, 'tag')})\n`);
  }
  for (const b of plan.blocked) out.write(`${b.repository}: ${b.reason}\n`);
  if (!opts.summary) return;
  const repoCount = new Set(plan.tags.map((t) => t.repository)).size;
  const what =
    plan.tags.length === 0 && plan.manifests.length === 0
      ? 'Nothing to remove'
      : `Would remove ${plural(plan.tags.length, 'tag')} from ${plural(repoCount, 'repository', 'repositories')} and unlink ${plural(plan.manifests.length, 'manifest')}; ` +
        `garbage-collect would then free ${plan.exact ? '' : 'at least '}${humanBytes(plan.reclaimableBytes + plan.unreferencedBytes)}` +
        (plan.unreferencedBlobs > 0 ? `, ${humanBytes(plan.reclaimableBytes)} of it because of this run` : '');
  out.write(`\n${what} (policy ${p.file}, ${plural(p.policy.rules.length, 'rule')}).\n${opts.dryRun ? 'Dry run: nothing was changed.\n' : ''}`);
}
