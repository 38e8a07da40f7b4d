import { describe, expect, test } from 'vitest';
import { parseDuration } from '../../src/model/duration.js';
import { parseTagRef, type Digest, type RepositoryName, type TagName } from '../../src/model/names.js';
import { parseRepoGlob, parseTagPattern } from '../../src/model/pattern.js';
import { buildPlan } from '../../src/plan/build.js';
import { parsePolicy, type Policy } from '../../src/policy/file.js';
import {
  NO_OVERRIDES,
  decideByPolicy,
  governingRule,
  parseSemverTag,
  semverKept,
  type PolicyOverrides,
} from '../../src/policy/rules.js';
import type { TagFacts } from '../../src/policy/select.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const now = new Date('2026-11-23T12:00:00Z');
const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;

function policy(text: string): Policy {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'));
  return r.policy;
}

/** `repo: [[tag, ageInDays], ...]` */
function tags(spec: Record<string, readonly (readonly [string, number])[]>): Map<RepositoryName, TagFacts[]> {
  return new Map(
    Object.entries(spec).map(([repo, list]) => [
      repo as RepositoryName,
      list.map(([tag, age]) => ({ repository: repo as RepositoryName, tag: tag as TagName, digest: DIGEST, pushedAt: daysAgo(now, age) })),
    ]),
  );
}

/** `repo:tag -> verdict reason`, for whole-table comparisons. */
function run(p: Policy, repos: Map<RepositoryName, TagFacts[]>, overrides: PolicyOverrides = NO_OVERRIDES, dependent: (t: TagFacts) => boolean = () => false) {
  const sel = decideByPolicy(p, overrides, now).decide(repos, dependent);
  return {
    decisions: Object.fromEntries(sel.decisions.map((d) => [`${d.repository}:${d.tag}`, `${d.verdict} ${d.reason}`])),
    missing: sel.missing.map((r) => `${r.repository}:${r.tag}`),
  };
}

const ISSUE_POLICY = policy(`rules:
  - repositories: ["releases/**"]
    keep: ["*"]
  - repositories: ["team/*"]
    tags: ["pr-*", "/^feature-.+/"]
    olderThan: 7d
    keepLast: 3
  - repositories: ["**"]
    olderThan: 90d
    keep: ["latest", '/^v\\d+\\.\\d+\\.\\d+$/']
    untagged: true
`);

const ISSUE_TAGS = tags({
  'releases/x': [
    ['v1.0.0', 400],
    ['old-junk', 400],
  ],
  'team/app': [
    ['pr-1', 30],
    ['pr-2', 20],
    ['feature-login', 10],
    ['pr-3', 3],
    ['pr-4', 2],
    ['pr-5', 1],
    ['main', 300],
  ],
  'team/app/api': [['pr-9', 30]],
  other: [
    ['latest', 200],
    ['v2.1.0', 200],
    ['nightly', 100],
    ['fresh', 10],
  ],
});

describe('decideByPolicy: the example from the issue', () => {
  test('every tag is decided by the first matching rule, and the reason names it', () => {
    expect(run(ISSUE_POLICY, ISSUE_TAGS).decisions).toEqual({
      'other:fresh': 'keep rule 3: kept: pushed 2026-11-13, within 90d',
      'other:latest': 'keep rule 3: kept: latest',
      'other:nightly': 'remove rule 3: older than 90d (pushed 2026-08-15)',
      'other:v2.1.0': 'keep rule 3: kept: keep /^v\\d+\\.\\d+\\.\\d+$/',
      'releases/x:old-junk': 'keep rule 1: kept: keep *',
      'releases/x:v1.0.0': 'keep rule 1: kept: keep *',
      'team/app:feature-login': 'remove rule 2: matches /^feature-.+/, older than 7d (pushed 2026-11-13)',
      'team/app:main': 'keep rule 2: kept: matches none of tags',
      'team/app:pr-1': 'remove rule 2: matches pr-*, older than 7d (pushed 2026-10-24)',
      'team/app:pr-2': 'remove rule 2: matches pr-*, older than 7d (pushed 2026-11-03)',
      'team/app:pr-3': 'keep rule 2: kept: keepLast 3',
      'team/app:pr-4': 'keep rule 2: kept: keepLast 3',
      'team/app:pr-5': 'keep rule 2: kept: keepLast 3',
      // team/* is one component: team/app/api falls through to rule 3 (30d < 90d).
      'team/app/api:pr-9': 'keep rule 3: kept: pushed 2026-10-24, within 90d',
    });
  });

  test('untagged applies where the governing rule says so', () => {
    const d = decideByPolicy(ISSUE_POLICY, NO_OVERRIDES, now);
    expect(d.untaggedIn?.('other' as RepositoryName)).toBe(true);
    expect(d.untaggedIn?.('team/app/api' as RepositoryName)).toBe(true);
    expect(d.untaggedIn?.('team/app' as RepositoryName)).toBe(false);
    expect(d.untaggedIn?.('releases/x' as RepositoryName)).toBe(false);
  });

  test('no untaggedIn at all when no rule asks for it', () => {
    expect(decideByPolicy(policy('rules:\n  - repositories: [a]\n    olderThan: 1d\n'), NO_OVERRIDES, now).untaggedIn).toBeUndefined();
  });
});

describe('rule matching and first-match precedence', () => {
  const p = policy(`rules:
  - repositories: ["team/app"]
    olderThan: 1d
  - repositories: ["team/**"]
    excludeRepositories: ["team/legacy/**"]
    olderThan: 30d
  - repositories: ["*"]
    tags: ["tmp-*"]
`);
  test.each([
    { repo: 'team/app', rule: 1 },
    { repo: 'team/web', rule: 2 },
    { repo: 'team/app/api', rule: 2 },
    { repo: 'team/legacy/x', rule: undefined }, // excluded from 2, and * is one component
    { repo: 'solo', rule: 3 },
    { repo: 'deep/er', rule: undefined },
  ])('$repo -> rule $rule', ({ repo, rule }) => {
    expect(governingRule(p, repo)?.index).toBe(rule);
  });

  test('repositories no rule matches are left alone: no decision at all', () => {
    const r = run(p, tags({ 'deep/er': [['tmp-1', 500]], solo: [['tmp-1', 500], ['keep', 500]] }));
    expect(r.decisions).toEqual({
      'solo:keep': 'keep rule 3: kept: matches none of tags',
      'solo:tmp-1': 'remove rule 3: matches tmp-*',
    });
  });

  test('an earlier, stricter rule wins even where a later rule would remove', () => {
    const q = policy('rules:\n  - repositories: ["a"]\n    olderThan: 1y\n  - repositories: ["**"]\n    olderThan: 1d\n');
    expect(run(q, tags({ a: [['x', 30]], b: [['x', 30]] })).decisions).toEqual({
      'a:x': 'keep rule 1: kept: pushed 2026-10-24, within 1y',
      'b:x': 'remove rule 2: older than 1d (pushed 2026-10-24)',
    });
  });
});

describe('rule keys', () => {
  test.each([
    {
      name: 'no filter: nothing selected',
      rule: 'keepLast: 1',
      tags: [['a', 500], ['b', 1]] as const,
      want: { 'r:a': 'keep rule 1: kept: rule has no tags, olderThan or before filter', 'r:b': 'keep rule 1: kept: keepLast 1' },
    },
    {
      name: 'before',
      rule: 'before: 2026-11-01',
      tags: [['a', 30], ['b', 10]] as const,
      want: { 'r:a': 'remove rule 1: pushed before 2026-11-01 (pushed 2026-10-24)', 'r:b': 'keep rule 1: kept: pushed 2026-11-13, not before 2026-11-01' },
    },
    {
      name: 'before with a time of day keeps it in both reasons',
      rule: 'before: "2026-10-24T13:00:00Z"',
      tags: [['a', 30], ['b', 10]] as const,
      want: {
        'r:a': 'remove rule 1: pushed before 2026-10-24T13:00:00.000Z (pushed 2026-10-24)',
        'r:b': 'keep rule 1: kept: pushed 2026-11-13, not before 2026-10-24T13:00:00.000Z',
      },
    },
    {
      name: 'tags alone (no time)',
      rule: 'tags: ["pr-*"]',
      tags: [['pr-1', 0], ['main', 0]] as const,
      want: { 'r:pr-1': 'remove rule 1: matches pr-*', 'r:main': 'keep rule 1: kept: matches none of tags' },
    },
    {
      name: 'latest kept by default',
      rule: 'olderThan: 1d',
      tags: [['latest', 30]] as const,
      want: { 'r:latest': 'keep rule 1: kept: latest' },
    },
    {
      name: 'keepLatest: false',
      rule: 'olderThan: 1d\n    keepLatest: false',
      tags: [['latest', 30]] as const,
      want: { 'r:latest': 'remove rule 1: older than 1d (pushed 2026-10-24)' },
    },
    {
      name: 'keepLast 0 keeps none',
      rule: 'olderThan: 1d\n    keepLast: 0',
      tags: [['a', 30]] as const,
      want: { 'r:a': 'remove rule 1: older than 1d (pushed 2026-10-24)' },
    },
    {
      name: 'keep beats filters',
      rule: 'olderThan: 1d\n    keep: ["stable", "/^rel-/"]',
      tags: [['stable', 30], ['rel-1', 30], ['x', 30]] as const,
      want: { 'r:stable': 'keep rule 1: kept: keep stable', 'r:rel-1': 'keep rule 1: kept: keep /^rel-/', 'r:x': 'remove rule 1: older than 1d (pushed 2026-10-24)' },
    },
  ])('$name', ({ rule, tags: list, want }) => {
    const p = policy(`rules:\n  - repositories: ["r"]\n    ${rule}\n`);
    expect(run(p, tags({ r: list })).decisions).toEqual(want);
  });
});

describe('keepSemver', () => {
  test.each([
    { tag: 'v1.2.3', want: { major: 1, minor: 2, patch: 3 } },
    { tag: '1.2.3', want: { major: 1, minor: 2, patch: 3 } },
    { tag: 'v1.2.3-rc.1', want: { major: 1, minor: 2, patch: 3, prerelease: 'rc.1' } },
    { tag: 'v1.2', want: undefined },
    { tag: 'v01.2.3', want: undefined },
    { tag: 'V1.2.3', want: undefined },
    { tag: 'v1.2.3-', want: undefined },
    { tag: 'v1.2.3.4', want: undefined },
    { tag: 'latest', want: undefined },
  ])('parseSemverTag($tag)', ({ tag, want }) => {
    expect(parseSemverTag(tag)).toEqual(want);
  });

  test('the newest N patch releases of each major.minor, by version not push time; prereleases neither kept nor counted', () => {
    const list = ['v1.4.0', 'v1.4.1', 'v1.4.2', '1.4.2', 'v1.4.3-rc.1', 'v1.5.0', 'v2.0.10', 'v2.0.9', 'v2.0.1', 'junk'].map((tag) => ({ tag }));
    expect(Object.fromEntries(semverKept(list, 2))).toEqual({
      'v1.4.1': '1.4.x',
      'v1.4.2': '1.4.x',
      '1.4.2': '1.4.x',
      'v1.5.0': '1.5.x',
      'v2.0.10': '2.0.x',
      'v2.0.9': '2.0.x',
    });
  });

  test('as a rule key: protects, and implies nothing else', () => {
    const p = policy('rules:\n  - repositories: ["r"]\n    olderThan: 30d\n    keepSemver: {perMinor: 2}\n');
    const r = run(p, tags({ r: [['v1.0.0', 300], ['v1.0.1', 200], ['v1.0.2', 100], ['v1.1.0', 400], ['v1.0.3-rc.1', 90], ['nightly', 90]] }));
    expect(r.decisions).toEqual({
      'r:v1.0.0': 'remove rule 1: older than 30d (pushed 2026-01-27)',
      'r:v1.0.1': 'keep rule 1: kept: keepSemver perMinor 2 (newest of 1.0.x)',
      'r:v1.0.2': 'keep rule 1: kept: keepSemver perMinor 2 (newest of 1.0.x)',
      'r:v1.1.0': 'keep rule 1: kept: keepSemver perMinor 2 (newest of 1.1.x)',
      'r:v1.0.3-rc.1': 'remove rule 1: older than 30d (pushed 2026-08-25)',
      'r:nightly': 'remove rule 1: older than 30d (pushed 2026-08-25)',
    });
  });
});

describe('command-line overrides', () => {
  const p = policy(`rules:
  - repositories: ["team/*"]
    olderThan: 7d
    keepLast: 1
  - repositories: ["ci/**"]
    keep: ["*"]
`);
  const repos = tags({
    'team/app': [['a', 30], ['b', 20], ['c', 10], ['latest', 40]],
    'team/web': [['a', 30]],
    'ci/cache': [['x', 30]],
    loose: [['old', 300], ['latest', 300]],
  });
  const o = (extra: Partial<PolicyOverrides>): PolicyOverrides => ({ ...NO_OVERRIDES, ...extra });

  test.each([
    {
      name: 'none',
      overrides: NO_OVERRIDES,
      want: {
        'ci/cache:x': 'keep rule 2: kept: keep *',
        'team/app:a': 'remove rule 1: older than 7d (pushed 2026-10-24)',
        'team/app:b': 'remove rule 1: older than 7d (pushed 2026-11-03)',
        'team/app:c': 'keep rule 1: kept: keepLast 1',
        'team/app:latest': 'keep rule 1: kept: latest',
        'team/web:a': 'keep rule 1: kept: keepLast 1',
      },
    },
    {
      name: '--keep adds to every rule',
      overrides: o({ keep: [parseTagPattern('a', '--keep')] }),
      want: {
        'ci/cache:x': 'keep rule 2: kept: keep *',
        'team/app:a': 'keep rule 1: kept: --keep a',
        'team/app:b': 'remove rule 1: older than 7d (pushed 2026-11-03)',
        'team/app:c': 'keep rule 1: kept: keepLast 1',
        'team/app:latest': 'keep rule 1: kept: latest',
        'team/web:a': 'keep rule 1: kept: --keep a',
      },
    },
    {
      name: '--keep-last adds to every rule (the larger protects more)',
      overrides: o({ keepLast: 2 }),
      want: {
        'ci/cache:x': 'keep rule 2: kept: keep *',
        'team/app:a': 'remove rule 1: older than 7d (pushed 2026-10-24)',
        'team/app:b': 'keep rule 1: kept: --keep-last 2',
        'team/app:c': 'keep rule 1: kept: keepLast 1',
        'team/app:latest': 'keep rule 1: kept: latest',
        'team/web:a': 'keep rule 1: kept: keepLast 1',
      },
    },
    {
      name: '--repo restricts which repositories are considered',
      overrides: o({ repos: [parseRepoGlob('team/web')] }),
      want: { 'team/web:a': 'keep rule 1: kept: keepLast 1' },
    },
    {
      name: '--exclude-repo too',
      overrides: o({ excludeRepos: [parseRepoGlob('team/app')] }),
      want: { 'ci/cache:x': 'keep rule 2: kept: keep *', 'team/web:a': 'keep rule 1: kept: keepLast 1' },
    },
    {
      name: 'named refs: removed unless protected (by the governing rule even outside --repo, and by --keep)',
      overrides: o({
        refs: ['team/app:c', 'loose:old', 'loose:latest', 'ci/cache:x', 'loose:gone'].map(parseTagRef),
        repos: [parseRepoGlob('nothing')],
      }),
      want: {
        'ci/cache:x': 'keep rule 2: kept: keep *',
        'loose:latest': 'keep no rule: kept: latest',
        'loose:old': 'remove no rule: named',
        'team/app:c': 'keep rule 1: kept: keepLast 1',
      },
      missing: ['loose:gone'],
    },
  ])('$name', ({ overrides, want, missing }) => {
    const r = run(p, repos, overrides);
    expect(r.decisions).toEqual(want);
    expect(r.missing).toEqual(missing ?? []);
  });

  test('--repo also limits untagged', () => {
    const q = policy('rules:\n  - repositories: ["**"]\n    untagged: true\n');
    const d = decideByPolicy(q, o({ repos: [parseRepoGlob('a')] }), now);
    expect(d.untaggedIn?.('a' as RepositoryName)).toBe(true);
    expect(d.untaggedIn?.('b' as RepositoryName)).toBe(false);
  });
});

test('signature-like tags follow their subject: not counted for keepLast, not filtered', () => {
  const p = policy('rules:\n  - repositories: ["r"]\n    olderThan: 1d\n    keepLast: 1\n');
  const r = run(p, tags({ r: [['sha256-abc.sig', 0], ['a', 30], ['b', 20]] }), NO_OVERRIDES, (t) => t.tag.endsWith('.sig'));
  expect(r.decisions).toEqual({
    'r:sha256-abc.sig': 'keep rule 1: kept: follows its subject',
    'r:a': 'remove rule 1: older than 1d (pushed 2026-10-24)',
    'r:b': 'keep rule 1: kept: keepLast 1',
  });
});

test('olderThan uses the duration as parsed (calendar months)', () => {
  const p = policy('rules:\n  - repositories: ["r"]\n    olderThan: 1mo\n');
  expect(parseDuration('1mo').text).toBe('1mo');
  const r = run(p, tags({ r: [['a', 32], ['b', 29]] }));
  expect(r.decisions['r:a']).toMatch(/^remove rule 1: older than 1mo/);
  expect(r.decisions['r:b']).toMatch(/^keep rule 1: kept: pushed .*, within 1mo$/);
});

test('through buildPlan: the plan carries the rule in every reason, untagged where the rule asks', async () => {
  const reg = new MemRegistry();
  const a = reg.putImage('team/app', { seed: 'a', layers: ['base', 'a1'] });
  const b = reg.putImage('team/app', { seed: 'b', layers: ['base', 'b1'] });
  const u = reg.putImage('other', { seed: 'u', layers: ['base', 'u1'] });
  const v = reg.putImage('other', { seed: 'v', layers: ['base', 'v1'] });
  reg.tag('team/app', 'pr-1', a.manifest.digest, daysAgo(now, 30));
  reg.tag('team/app', 'main', b.manifest.digest, daysAgo(now, 30));
  reg.tag('other', 'v1.0.0', v.manifest.digest, daysAgo(now, 300));
  const p = policy(`rules:
  - repositories: ["team/*"]
    tags: ["pr-*"]
    olderThan: 7d
  - repositories: ["**"]
    olderThan: 90d
    keep: ["v*"]
    untagged: true
`);
  const d = decideByPolicy(p, NO_OVERRIDES, now);
  const plan = await buildPlan({ fs: reg.fs, layout: reg.lay, now, decide: d.decide, ...(d.untaggedIn === undefined ? {} : { untaggedIn: d.untaggedIn }) });
  expect(plan.tags.map((t) => `${t.repository}:${t.tag} ${t.reason}`)).toEqual(['team/app:pr-1 rule 1: matches pr-*, older than 7d (pushed 2026-10-24)']);
  expect(plan.kept.map((t) => `${t.repository}:${t.tag} ${t.reason}`).sort()).toEqual([
    'other:v1.0.0 rule 2: kept: keep v*',
    'team/app:main rule 1: kept: matches none of tags',
  ]);
  expect(plan.manifests.map((m) => `${m.repository}@${m.digest}`).sort()).toEqual(
    [`other@${u.manifest.digest}`, `team/app@${a.manifest.digest}`].sort(),
  );
});

test('the policy modules stay pure: no filesystem, process or CLI imports', async () => {
  const { readFile } = await import('node:fs/promises');
  for (const file of ['file.ts', 'rules.ts']) {
    const text = await readFile(new URL(`../../src/policy/${file}`, import.meta.url), 'utf8');
    const imports = [...text.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports.length, file).toBeGreaterThan(0);
    for (const spec of imports) expect(spec, `${file} imports ${spec}`).toMatch(/^(?:\.\.?\/(?!.*\/cli\/)|yaml$|date-fns$)/);
  }
});
