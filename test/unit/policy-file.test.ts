import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { formatProblem, globCovers, keepsEverything, parsePolicy, type Policy, type PolicyProblem } from '../../src/policy/file.js';
import { parseRepoGlob, parseTagPattern } from '../../src/model/pattern.js';

const ISSUE_EXAMPLE = `rules:
  - repositories: ["releases/**"]
    keep: ["*"]                        # never touch
  - repositories: ["team/*"]
    tags: ["pr-*", "/^feature-.+/"]
    olderThan: 7d
    keepLast: 3
  - repositories: ["**"]
    olderThan: 90d
    keep: ["latest", "/^v\\\\d+\\\\.\\\\d+\\\\.\\\\d+$/"]
    untagged: true
`;

function ok(text: string): { policy: Policy; warnings: readonly PolicyProblem[] } {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(`expected a valid policy, got:\n${r.errors.map((e) => formatProblem('p.yaml', e)).join('\n')}`);
  return r;
}

function problems(text: string): string[] {
  const r = parsePolicy(text);
  if (r.ok) throw new Error('expected errors, the policy parsed');
  return r.errors.map((e) => formatProblem('p.yaml', e));
}

describe('parsePolicy: valid files', () => {
  test('the example from the issue', () => {
    const { policy, warnings } = ok(ISSUE_EXAMPLE);
    expect(warnings).toEqual([]);
    expect(policy.rules.map((r) => r.index)).toEqual([1, 2, 3]);
    const [r1, r2, r3] = policy.rules;
    expect(r1?.repositories.map((g) => g.text)).toEqual(['releases/**']);
    expect(r1?.keep.map((p) => p.text)).toEqual(['*']);
    expect(keepsEverything(r1!)).toBe(true);
    expect(r1?.line).toBe(2);
    expect(r2?.tags.map((p) => [p.text, p.kind])).toEqual([
      ['pr-*', 'glob'],
      ['/^feature-.+/', 'regex'],
    ]);
    expect(r2?.olderThan?.text).toBe('7d');
    expect(r2?.keepLast).toBe(3);
    expect(r2?.keepLatest).toBe(true);
    expect(r2?.untagged).toBe(false);
    expect(r2?.line).toBe(4);
    expect(r3?.keep[1]?.text).toBe('/^v\\d+\\.\\d+\\.\\d+$/');
    expect(r3?.keep[1]?.test('v1.2.3')).toBe(true);
    expect(r3?.keep[1]?.test('v1.2.3-rc1')).toBe(false);
    expect(r3?.untagged).toBe(true);
  });

  test('JSON is read by the same parser, with every key', () => {
    const { policy } = ok(
      JSON.stringify(
        {
          version: 1,
          rules: [
            {
              repositories: ['team/**'],
              excludeRepositories: ['team/keep'],
              tags: ['nightly-*'],
              before: '2026-09-01',
              keep: ['stable'],
              keepLast: 0,
              keepLatest: false,
              keepSemver: { perMinor: 2 },
              untagged: false,
            },
          ],
        },
        null,
        2,
      ),
    );
    const r = policy.rules[0];
    expect(r?.excludeRepositories.map((g) => g.text)).toEqual(['team/keep']);
    expect(r?.before?.toISOString()).toBe('2026-09-01T00:00:00.000Z');
    expect(r?.keepLast).toBe(0);
    expect(r?.keepLatest).toBe(false);
    expect(r?.keepSemver).toEqual({ perMinor: 2 });
  });

  test('docs/policy.example.yaml is valid, without warnings', () => {
    const text = readFileSync(new URL('../../docs/policy.example.yaml', import.meta.url), 'utf8');
    const { policy, warnings } = ok(text);
    expect(warnings).toEqual([]);
    expect(policy.rules.map((r) => r.repositories.map((g) => g.text).join(','))).toEqual(['releases/**', 'team/*', 'nightly/**', '**']);
  });

  test('durations and dates stay strings (YAML 1.2 core schema): 7d, 2026-09-01', () => {
    const { policy } = ok('rules:\n  - repositories: [a]\n    before: 2026-09-01\n');
    expect(policy.rules[0]?.before?.toISOString()).toBe('2026-09-01T00:00:00.000Z');
  });
});

interface ErrorCase {
  readonly name: string;
  readonly text: string;
  /** Exact `p.yaml:LINE:COL: message` lines, or regexes for long messages. */
  readonly errors: readonly (string | RegExp)[];
}

const ERROR_CASES: readonly ErrorCase[] = [
  { name: 'YAML syntax error', text: 'rules:\n  - repositories: [a\n', errors: [/^p\.yaml:3:1: /] },
  { name: 'duplicate key', text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    olderThan: 8d\n', errors: [/^p\.yaml:4:5: Map keys must be unique/] },
  { name: 'empty file', text: '', errors: ['p.yaml:1:1: a policy is a mapping with a "rules" list, got nothing'] },
  { name: 'top level is a list', text: '- a\n', errors: ['p.yaml:1:1: a policy is a mapping with a "rules" list, got a list'] },
  {
    name: 'unknown top-level key',
    text: 'rule:\n  - repositories: [a]\n',
    errors: [
      'p.yaml:1:1: policy: unknown key "rule" (did you mean "rules"?); known keys: version, rules',
      'p.yaml:1:1: policy: "rules" is required: a list of rules, the first matching rule governs a repository',
    ],
  },
  { name: 'unknown version', text: 'version: 2\nrules:\n  - repositories: [a]\n', errors: ['p.yaml:1:10: policy: version: only 1 is known, got number 2'] },
  { name: 'rules not a list', text: 'rules: {repositories: [a]}\n', errors: ['p.yaml:1:8: policy: rules: expected a list of rules, got a mapping'] },
  { name: 'rules empty', text: 'rules: []\n', errors: ['p.yaml:1:8: policy: rules: empty list; a policy needs at least one rule'] },
  { name: 'rule not a mapping', text: 'rules:\n  - 7\n', errors: ['p.yaml:2:5: rule 1: expected a mapping with at least "repositories", got number 7'] },
  {
    name: 'unknown rule key, with a suggestion',
    text: 'rules:\n  - repositories: [a]\n    older_than: 7d\n',
    errors: [/^p\.yaml:3:5: rule 1: unknown key "older_than" \(did you mean "olderThan"\?\); known keys: repositories, /],
  },
  {
    name: 'misspelt key, by edit distance',
    text: 'rules:\n  - repositories: [a]\n    keepLats: 3\n',
    errors: [/^p\.yaml:3:5: rule 1: unknown key "keepLats" \(did you mean "keepLast"\?\)/],
  },
  {
    name: 'repositories missing',
    text: 'rules:\n  - olderThan: 7d\n',
    errors: ['p.yaml:2:5: rule 1: "repositories" is required (a list of globs such as ["team/*"], or ["**"] for all)'],
  },
  {
    name: 'repositories empty',
    text: 'rules:\n  - repositories: []\n    olderThan: 7d\n',
    errors: ['p.yaml:2:19: rule 1: repositories: empty list; the rule would govern no repository (use ["**"] for all)'],
  },
  {
    name: 'repositories is a string, not a list',
    text: 'rules:\n  - repositories: team/*\n',
    errors: ['p.yaml:2:19: rule 1: repositories: expected a list of strings, e.g. ["a", "b"], got the string "team/*"'],
  },
  {
    name: 'bad repository glob',
    text: 'rules:\n  - repositories: ["Team/*"]\n',
    errors: ['p.yaml:2:20: rule 1: repositories glob "Team/*": repository names are lowercase; unexpected character in pattern'],
  },
  {
    name: 'bad excludeRepositories glob',
    text: 'rules:\n  - repositories: ["**"]\n    excludeRepositories: ["a/{b"]\n    olderThan: 7d\n',
    errors: [`p.yaml:3:27: rule 1: excludeRepositories glob "a/{b": unclosed '{'`],
  },
  {
    name: 'tags empty',
    text: 'rules:\n  - repositories: [a]\n    tags: []\n',
    errors: ['p.yaml:3:11: rule 1: tags: empty list matches no tag; omit "tags" to select tags whatever their name'],
  },
  {
    name: 'bad tag glob',
    text: 'rules:\n  - repositories: [a]\n    tags: ["pr-[0-9"]\n',
    errors: [`p.yaml:3:12: rule 1: tags pattern "pr-[0-9": unclosed '['`],
  },
  {
    name: 'bad tag regex',
    text: 'rules:\n  - repositories: [a]\n    keep: ["/(/"]\n',
    errors: [/^p\.yaml:3:12: rule 1: keep pattern "\/\(\/": invalid regular expression: /],
  },
  {
    name: 'tag pattern that is a number (unquoted 1.0)',
    text: 'rules:\n  - repositories: [a]\n    keep: [1.0]\n',
    errors: ['p.yaml:3:12: rule 1: keep: expected a string, got number 1 (quote it)'],
  },
  {
    name: 'bad duration',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7x\n',
    errors: [/^p\.yaml:3:16: rule 1: olderThan "7x": not a duration; use a whole number and a unit: /],
  },
  {
    name: 'duration without a unit',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7\n',
    errors: ['p.yaml:3:16: rule 1: olderThan: expected a duration such as "7d", "12h", "6mo", got number 7 (quote it)'],
  },
  {
    name: 'bad date',
    text: 'rules:\n  - repositories: [a]\n    before: "last week"\n',
    errors: [/^p\.yaml:3:13: rule 1: before "last week": not an ISO 8601 date/],
  },
  {
    name: 'olderThan with before',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    before: 2026-01-01\n',
    errors: ['p.yaml:4:5: rule 1: olderThan and before both give a push-time cutoff; use one of them'],
  },
  {
    name: 'keepLast negative',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepLast: -1\n',
    errors: ['p.yaml:4:15: rule 1: keepLast: expected a whole number 0 or more, got number -1'],
  },
  {
    name: 'keepLast as a string',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepLast: "3"\n',
    errors: ['p.yaml:4:15: rule 1: keepLast: expected a whole number 0 or more, got the string "3"'],
  },
  {
    name: 'keepLatest not a boolean (yes is a string in YAML 1.2)',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepLatest: yes\n',
    errors: ['p.yaml:4:17: rule 1: keepLatest: expected true or false, got the string "yes"'],
  },
  {
    name: 'untagged not a boolean',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    untagged: 1\n',
    errors: ['p.yaml:4:15: rule 1: untagged: expected true or false, got number 1'],
  },
  {
    name: 'keepSemver a number',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepSemver: 2\n',
    errors: ['p.yaml:4:17: rule 1: keepSemver: expected a mapping such as {perMinor: 2}, got number 2'],
  },
  {
    name: 'keepSemver perMinor 0',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepSemver: {perMinor: 0}\n',
    errors: ['p.yaml:4:28: rule 1: keepSemver: perMinor: expected a whole number 1 or more, got number 0'],
  },
  {
    name: 'keepSemver unknown key',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7d\n    keepSemver: {perMajor: 1}\n',
    errors: [
      'p.yaml:4:17: rule 1: keepSemver: "perMinor" is required, e.g. {perMinor: 2}',
      'p.yaml:4:18: rule 1: keepSemver: unknown key "perMajor" (did you mean "perMinor"?); known keys: perMinor',
    ],
  },
  {
    name: 'a rule shadowed by an earlier ** rule',
    text: 'rules:\n  - repositories: ["**"]\n    olderThan: 90d\n  - repositories: ["team/*"]\n    olderThan: 7d\n',
    errors: ['p.yaml:4:19: rule 2 is unreachable: every repository it matches is already governed by rule 1 ("**"); move it up or remove it'],
  },
  {
    name: 'a rule shadowed by the same glob',
    text: 'rules:\n  - repositories: ["team/*"]\n    olderThan: 90d\n  - repositories: ["team/*"]\n    olderThan: 7d\n',
    errors: [/^p\.yaml:4:19: rule 2 is unreachable: .* by rule 1 \("team\/\*"\);/],
  },
  {
    name: 'a rule shadowed piecewise by two earlier rules',
    text:
      'rules:\n  - repositories: ["releases/**"]\n    keep: ["*"]\n  - repositories: ["team/*"]\n    olderThan: 7d\n' +
      '  - repositories: ["releases/x", "team/app"]\n    olderThan: 1d\n',
    errors: [/^p\.yaml:6:19: rule 3 is unreachable: .* by rule 1 \("releases\/\*\*"\), rule 2 \("team\/\*"\);/],
  },
  {
    name: 'several errors, sorted by position',
    text: 'rules:\n  - repositories: [a]\n    olderThan: 7x\n  - 7\n  - repositories: []\n',
    errors: [/^p\.yaml:3:16: /, /^p\.yaml:4:5: /, /^p\.yaml:5:19: /],
  },
];

describe('parsePolicy: every validation error, with its position', () => {
  test.each(ERROR_CASES)('$name', ({ text, errors }) => {
    const got = problems(text);
    expect(got).toHaveLength(errors.length);
    for (const [i, want] of errors.entries()) {
      if (typeof want === 'string') expect(got[i]).toBe(want);
      else expect(got[i]).toMatch(want);
    }
  });
});

describe('parsePolicy: warnings (valid, but probably not what was meant)', () => {
  test.each([
    {
      name: 'a rule with no filter removes nothing',
      text: 'rules:\n  - repositories: ["team/*"]\n    keepLast: 3\n',
      warnings: [/^p\.yaml:2:5: warning: rule 1 removes nothing: it has no "tags", "olderThan" or "before" filter/],
    },
    { name: 'keep-everything rule: no warning', text: 'rules:\n  - repositories: ["releases/**"]\n    keep: ["*"]\n', warnings: [] },
    { name: 'keep-everything by regex: no warning', text: "rules:\n  - repositories: [a]\n    keep: ['/.*/']\n", warnings: [] },
    { name: 'untagged-only rule: no warning', text: 'rules:\n  - repositories: [a]\n    untagged: true\n', warnings: [] },
    {
      name: 'one glob of a rule never applies',
      text: 'rules:\n  - repositories: ["team/*"]\n    olderThan: 7d\n  - repositories: ["team/app", "other"]\n    olderThan: 1d\n',
      warnings: ['p.yaml:4:20: warning: rule 2: repositories glob "team/app" never applies: rule 1 ("team/*") governs those repositories first'],
    },
    {
      name: 'an earlier rule with excludeRepositories shadows nothing',
      text: 'rules:\n  - repositories: ["**"]\n    excludeRepositories: ["team/*"]\n    olderThan: 90d\n  - repositories: ["team/*"]\n    olderThan: 7d\n',
      warnings: [],
    },
  ])('$name', ({ text, warnings }) => {
    const { warnings: got } = ok(text);
    const lines = got.map((w) => formatProblem('p.yaml', w));
    expect(lines).toHaveLength(warnings.length);
    for (const [i, want] of warnings.entries()) {
      if (typeof want === 'string') expect(lines[i]).toBe(want);
      else expect(lines[i]).toMatch(want);
    }
  });
});

describe('globCovers', () => {
  test.each([
    { earlier: '**', later: 'anything/*', covers: true },
    { earlier: 'team/*', later: 'team/*', covers: true },
    { earlier: 'team/*', later: 'team/app', covers: true },
    { earlier: 'team/*', later: 'team/app/api', covers: false },
    { earlier: 'team/**', later: 'team/a/*', covers: true },
    { earlier: 'team/**', later: 'teams/*', covers: false },
    { earlier: 'team/*', later: 'team/a*', covers: false }, // true in fact; conservatively not claimed
    { earlier: 'a', later: 'b', covers: false },
  ])('$earlier covers $later: $covers', ({ earlier, later, covers }) => {
    expect(globCovers(parseRepoGlob(earlier), parseRepoGlob(later))).toBe(covers);
  });
});

test('keepsEverything: only patterns that match every tag', () => {
  const k = (...p: string[]) => keepsEverything({ keep: p.map((x) => parseTagPattern(x)) });
  expect(k('*')).toBe(true);
  expect(k('**')).toBe(true);
  expect(k('/.*/')).toBe(true);
  expect(k('/^/')).toBe(true);
  expect(k('latest', '*')).toBe(true);
  expect(k('v*')).toBe(false);
  expect(k('/^v/')).toBe(false);
  expect(k()).toBe(false);
});
