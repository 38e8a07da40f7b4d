import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode, type Pair } from 'yaml';
import { parseDuration, parseInstant, type Duration } from '../model/duration.js';
import { UsageError } from '../model/errors.js';
import { parseRepoGlob, parseTagPattern, type RepoGlob, type TagPattern } from '../model/pattern.js';

/**
 * A retention policy file, parsed: an ordered list of rules. Each repository
 * is governed by the first rule whose `repositories` match it (minus its
 * `excludeRepositories`); repositories no rule matches are left alone.
 *
 * Pure: text in, a Policy or a list of problems with line and column out.
 * JSON is read by the same parser (YAML 1.2 is a superset of JSON), so JSON
 * files get line numbers too.
 */

export const POLICY_VERSION = 1;

export interface KeepSemver {
  /** Keep the newest N patch releases of each MAJOR.MINOR. */
  readonly perMinor: number;
}

export interface PolicyRule {
  /** 1-based position in the file: `rule 2`. */
  readonly index: number;
  /** Where the rule starts in the file (1-based). */
  readonly line: number;
  readonly col: number;
  readonly repositories: readonly RepoGlob[];
  readonly excludeRepositories: readonly RepoGlob[];
  /** Filters: a tag is selected when it matches every kind given (patterns OR-ed). */
  readonly tags: readonly TagPattern[];
  readonly olderThan?: Duration;
  readonly before?: Date;
  /** Protection: always wins over the filters. */
  readonly keep: readonly TagPattern[];
  readonly keepLast?: number;
  readonly keepLatest: boolean;
  readonly keepSemver?: KeepSemver;
  /** Also remove manifests that were already untagged in the repositories this rule governs. */
  readonly untagged: boolean;
}

export interface Policy {
  readonly rules: readonly PolicyRule[];
}

export interface PolicyProblem {
  readonly severity: 'error' | 'warning';
  /** 1-based. */
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export type PolicyParse =
  | { readonly ok: true; readonly policy: Policy; readonly warnings: readonly PolicyProblem[] }
  | { readonly ok: false; readonly errors: readonly PolicyProblem[]; readonly warnings: readonly PolicyProblem[] };

/** `FILE:LINE:COL: message` (warnings say so), the form editors and CI annotate. */
export function formatProblem(file: string, p: PolicyProblem): string {
  return `${file}:${p.line}:${p.col}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}

export const RULE_KEYS = [
  'repositories',
  'excludeRepositories',
  'tags',
  'olderThan',
  'before',
  'keep',
  'keepLast',
  'keepLatest',
  'keepSemver',
  'untagged',
] as const;
const TOP_KEYS = ['version', 'rules'] as const;
const SEMVER_KEYS = ['perMinor'] as const;

/** True for a rule that protects every tag (`keep: ["*"]`): it exists to say "never touch". */
export function keepsEverything(rule: Pick<PolicyRule, 'keep'>): boolean {
  return rule.keep.some(matchesEveryTag);
}

// A keep pattern "keeps everything" when it is a glob of only stars, or a
// regex that matches every probe (tags are 1-128 of [A-Za-z0-9_.-]).
const PROBES = ['a', 'Z', '0', '_', 'latest', 'v1.2.3', 'pr-17', 'a.b-c_D', 'x'.repeat(128)];
function matchesEveryTag(p: TagPattern): boolean {
  if (p.kind === 'glob') return /^\*+$/.test(p.text);
  return PROBES.every((t) => p.test(t));
}

export function hasRuleFilters(rule: Pick<PolicyRule, 'tags' | 'olderThan' | 'before'>): boolean {
  return rule.tags.length > 0 || rule.olderThan !== undefined || rule.before !== undefined;
}

const WILDCARD = /[*?[\]{}!]/;

/**
 * Whether every repository `later` can match is also matched by `earlier`.
 * Conservative (false when unsure): `**` covers everything, a glob covers
 * itself, a literal name is tested directly, and `P**` with a literal P covers
 * any glob that starts with P.
 */
export function globCovers(earlier: RepoGlob, later: RepoGlob): boolean {
  if (earlier.text === later.text) return true;
  if (/^\*\*$/.test(earlier.text)) return true;
  if (!WILDCARD.test(later.text)) return earlier.test(later.text);
  const m = /^([^*?[\]{}!]*)\*\*$/.exec(earlier.text);
  return m !== null && m[1] !== undefined && later.text.startsWith(m[1]);
}

function typeName(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
    return `${typeof v} ${String(v)}`;
  }
  return 'something else';
}

function closest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, '');
  const exact = known.find((k) => norm(k) === norm(key));
  if (exact !== undefined) return exact;
  const prefix = known.find((k) => norm(key).length >= 3 && norm(k).startsWith(norm(key)));
  if (prefix !== undefined) return prefix;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The shared parsers (durations, dates, patterns) name the key they were given; anything else is a bug. */
function why(err: unknown): string {
  if (err instanceof UsageError) return err.message;
  throw err;
}

class Checker {
  readonly errors: PolicyProblem[] = [];
  readonly warnings: PolicyProblem[] = [];
  constructor(private readonly lines: LineCounter) {}

  at(node: { range?: [number, number, number] | null | undefined } | null | undefined, fallback = 0): { line: number; col: number } {
    const offset = node?.range?.[0] ?? fallback;
    return this.lines.linePos(offset);
  }

  error(node: Parameters<Checker['at']>[0], message: string, fallback = 0): void {
    this.errors.push({ severity: 'error', ...this.at(node, fallback), message });
  }

  warn(node: Parameters<Checker['at']>[0], message: string, fallback = 0): void {
    this.warnings.push({ severity: 'warning', ...this.at(node, fallback), message });
  }

  /** A mapping's pairs by key; unknown keys are reported (with a suggestion) and skipped. */
  pairs(map: YamlNode, known: readonly string[], where: string): Map<string, Pair<YamlNode, YamlNode | null>> {
    const out = new Map<string, Pair<YamlNode, YamlNode | null>>();
    if (!isMap(map)) return out;
    for (const pair of map.items as Pair<YamlNode, YamlNode | null>[]) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string') {
        this.error(pair.key, `${where}: keys must be plain names, got ${typeName(pair.key)}`);
        continue;
      }
      if (!known.includes(key)) {
        const hint = closest(key, known);
        this.error(
          pair.key,
          `${where}: unknown key ${JSON.stringify(key)}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}; known keys: ${known.join(', ')}`,
        );
        continue;
      }
      out.set(key, pair);
    }
    return out;
  }

  string(node: YamlNode | null, what: string, expected: string): string | undefined {
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    this.error(node, `${what}: expected ${expected}, got ${typeName(node)}${isScalar(node) && typeof node.value === 'number' ? ' (quote it)' : ''}`);
    return undefined;
  }

  list<T>(node: YamlNode | null, what: string, item: (n: YamlNode | null, text: string) => T): T[] | undefined {
    if (!isSeq(node)) {
      this.error(node, `${what}: expected a list of strings, e.g. ["a", "b"], got ${typeName(node)}`);
      return undefined;
    }
    const out: T[] = [];
    for (const n of node.items as (YamlNode | null)[]) {
      const text = this.string(n, what, 'a string');
      if (text === undefined) continue;
      try {
        out.push(item(n, text));
      } catch (err) {
        this.error(n, why(err));
      }
    }
    return out;
  }

  boolean(node: YamlNode | null, what: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.error(node, `${what}: expected true or false, got ${typeName(node)}`);
    return undefined;
  }

  count(node: YamlNode | null, what: string, min: number): number | undefined {
    if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value) && node.value >= min) return node.value;
    this.error(node, `${what}: expected a whole number ${min === 0 ? '0 or more' : `${min} or more`}, got ${typeName(node)}`);
    return undefined;
  }
}

const isEmptyList = (node: YamlNode | null) => isSeq(node) && node.items.length === 0;

function parseRule(c: Checker, node: YamlNode | null, index: number, fallback: number): PolicyRule | undefined {
  const where = `rule ${index}`;
  if (!isMap(node)) {
    c.error(node, `${where}: expected a mapping with at least "repositories", got ${typeName(node)}`, fallback);
    return undefined;
  }
  const errorsBefore = c.errors.length;
  const pairs = c.pairs(node, RULE_KEYS, where);
  const value = (key: (typeof RULE_KEYS)[number]) => pairs.get(key)?.value ?? null;
  const has = (key: (typeof RULE_KEYS)[number]) => pairs.has(key);

  let repositories: RepoGlob[] | undefined;
  if (!has('repositories')) c.error(node, `${where}: "repositories" is required (a list of globs such as ["team/*"], or ["**"] for all)`);
  else {
    repositories = c.list(value('repositories'), `${where}: repositories`, (_, t) => parseRepoGlob(t, `${where}: repositories glob`));
    if (isEmptyList(value('repositories'))) {
      c.error(value('repositories'), `${where}: repositories: empty list; the rule would govern no repository (use ["**"] for all)`);
    }
  }
  const excludeRepositories = has('excludeRepositories')
    ? c.list(value('excludeRepositories'), `${where}: excludeRepositories`, (_, t) => parseRepoGlob(t, `${where}: excludeRepositories glob`))
    : [];
  const tags = has('tags') ? c.list(value('tags'), `${where}: tags`, (_, t) => parseTagPattern(t, `${where}: tags pattern`)) : [];
  if (isEmptyList(value('tags'))) {
    c.error(value('tags'), `${where}: tags: empty list matches no tag; omit "tags" to select tags whatever their name`);
  }
  const keep = has('keep') ? c.list(value('keep'), `${where}: keep`, (_, t) => parseTagPattern(t, `${where}: keep pattern`)) : [];

  let olderThan: Duration | undefined;
  if (has('olderThan')) {
    const text = c.string(value('olderThan'), `${where}: olderThan`, 'a duration such as "7d", "12h", "6mo"');
    if (text !== undefined) {
      try {
        olderThan = parseDuration(text, `${where}: olderThan`);
      } catch (err) {
        c.error(value('olderThan'), why(err));
      }
    }
  }
  let before: Date | undefined;
  if (has('before')) {
    const text = c.string(value('before'), `${where}: before`, 'an ISO 8601 date such as "2026-09-01"');
    if (text !== undefined) {
      try {
        before = parseInstant(text, `${where}: before`);
      } catch (err) {
        c.error(value('before'), why(err));
      }
    }
  }
  if (has('olderThan') && has('before')) {
    c.error(pairs.get('before')?.key as YamlNode, `${where}: olderThan and before both give a push-time cutoff; use one of them`);
  }
  const keepLast = has('keepLast') ? c.count(value('keepLast'), `${where}: keepLast`, 0) : undefined;
  const keepLatest = has('keepLatest') ? c.boolean(value('keepLatest'), `${where}: keepLatest`) : true;
  const untagged = has('untagged') ? c.boolean(value('untagged'), `${where}: untagged`) : false;

  let keepSemver: KeepSemver | undefined;
  if (has('keepSemver')) {
    const sv = value('keepSemver');
    if (!isMap(sv)) c.error(sv, `${where}: keepSemver: expected a mapping such as {perMinor: 2}, got ${typeName(sv)}`);
    else {
      const per = c.pairs(sv, SEMVER_KEYS, `${where}: keepSemver`).get('perMinor');
      if (per === undefined) c.error(sv, `${where}: keepSemver: "perMinor" is required, e.g. {perMinor: 2}`);
      else {
        const n = c.count(per.value, `${where}: keepSemver: perMinor`, 1);
        if (n !== undefined) keepSemver = { perMinor: n };
      }
    }
  }

  if (c.errors.length > errorsBefore || repositories === undefined || excludeRepositories === undefined || tags === undefined || keep === undefined) {
    return undefined;
  }
  if (keepLatest === undefined || untagged === undefined) return undefined;
  const start = c.at(node);
  return {
    index,
    line: start.line,
    col: start.col,
    repositories,
    excludeRepositories,
    tags,
    ...(olderThan === undefined ? {} : { olderThan }),
    ...(before === undefined ? {} : { before }),
    keep,
    ...(keepLast === undefined ? {} : { keepLast }),
    keepLatest,
    ...(keepSemver === undefined ? {} : { keepSemver }),
    untagged,
  };
}

/** Reachability and usefulness across rules: errors for dead rules, warnings for dead globs and no-op rules. */
function checkRules(c: Checker, rules: readonly PolicyRule[], nodes: ReadonlyMap<number, YamlNode>): void {
  for (const [j, rule] of rules.entries()) {
    const node = nodes.get(rule.index);
    const reposNode = isMap(node) ? (node.get('repositories', true) as YamlNode | undefined) : undefined;
    const globNodes = isSeq(reposNode) ? (reposNode.items as YamlNode[]) : [];
    // An earlier rule with excludeRepositories lets those repositories fall through, so it shadows nothing.
    const earlier = rules.slice(0, j).filter((r) => r.excludeRepositories.length === 0);
    const shadowedBy = rule.repositories.map((g) => {
      for (const r of earlier) {
        const by = r.repositories.find((e) => globCovers(e, g));
        if (by !== undefined) return { rule: r, glob: by };
      }
      return undefined;
    });
    if (shadowedBy.length > 0 && shadowedBy.every((s) => s !== undefined)) {
      const by = [...new Map(shadowedBy.map((s) => [s?.rule.index, s])).values()]
        .map((s) => `rule ${s?.rule.index} (${JSON.stringify(s?.glob.text)})`)
        .join(', ');
      c.error(reposNode ?? node, `rule ${rule.index} is unreachable: every repository it matches is already governed by ${by}; move it up or remove it`);
      continue;
    }
    for (const [i, s] of shadowedBy.entries()) {
      if (s === undefined) continue;
      c.warn(
        globNodes[i] ?? reposNode ?? node,
        `rule ${rule.index}: repositories glob ${JSON.stringify(rule.repositories[i]?.text)} never applies: rule ${s.rule.index} (${JSON.stringify(s.glob.text)}) governs those repositories first`,
      );
    }
    if (!hasRuleFilters(rule) && !keepsEverything(rule) && !rule.untagged) {
      c.warn(
        node,
        `rule ${rule.index} removes nothing: it has no "tags", "olderThan" or "before" filter, so it only protects the repositories it governs; ` +
          'add a filter, or say so with keep: ["*"]',
      );
    }
  }
}

export function parsePolicy(text: string): PolicyParse {
  const lines = new LineCounter();
  const c = new Checker(lines);
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) {
    c.errors.push({ severity: 'error', ...lines.linePos(e.pos[0]), message: `${e.message.split('\n')[0] ?? e.message}` });
  }
  for (const w of doc.warnings) {
    c.warnings.push({ severity: 'warning', ...lines.linePos(w.pos[0]), message: `${w.message.split('\n')[0] ?? w.message}` });
  }
  if (c.errors.length > 0) return { ok: false, errors: sortProblems(c.errors), warnings: sortProblems(c.warnings) };

  const root = doc.contents as YamlNode | null;
  if (!isMap(root)) {
    c.error(root, `a policy is a mapping with a "rules" list, got ${typeName(root)}`);
    return { ok: false, errors: sortProblems(c.errors), warnings: sortProblems(c.warnings) };
  }
  const top = c.pairs(root, TOP_KEYS, 'policy');
  const version = top.get('version');
  if (version !== undefined && !(isScalar(version.value) && version.value.value === POLICY_VERSION)) {
    c.error(version.value ?? version.key as YamlNode, `policy: version: only ${POLICY_VERSION} is known, got ${typeName(version.value)}`);
  }
  const rulesPair = top.get('rules');
  const rules: PolicyRule[] = [];
  const nodes = new Map<number, YamlNode>();
  if (rulesPair === undefined) c.error(root, 'policy: "rules" is required: a list of rules, the first matching rule governs a repository');
  else if (!isSeq(rulesPair.value)) c.error(rulesPair.value ?? (rulesPair.key as YamlNode), `policy: rules: expected a list of rules, got ${typeName(rulesPair.value)}`);
  else if (rulesPair.value.items.length === 0) c.error(rulesPair.value, 'policy: rules: empty list; a policy needs at least one rule');
  else {
    const fallback = (rulesPair.key as YamlNode).range?.[0] ?? 0;
    for (const [i, item] of (rulesPair.value.items as (YamlNode | null)[]).entries()) {
      const rule = parseRule(c, item, i + 1, fallback);
      if (item !== null) nodes.set(i + 1, item);
      if (rule !== undefined) rules.push(rule);
    }
  }
  // Only judge reachability when every rule parsed: a broken rule would skew it.
  if (c.errors.length === 0) checkRules(c, rules, nodes);
  if (c.errors.length > 0) return { ok: false, errors: sortProblems(c.errors), warnings: sortProblems(c.warnings) };
  return { ok: true, policy: { rules }, warnings: sortProblems(c.warnings) };
}

function sortProblems(list: readonly PolicyProblem[]): PolicyProblem[] {
  return [...list].sort((a, b) => a.line - b.line || a.col - b.col);
}
