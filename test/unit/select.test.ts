import { describe, expect, it } from 'vitest';
import { parseDuration, parseInstant } from '../../src/model/duration.js';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { parseTagRef } from '../../src/model/names.js';
import { parseRepoGlob, parseTagPattern } from '../../src/model/pattern.js';
import { selectTags, type TagFacts } from '../../src/policy/select.js';
import { hasFilters, inRepositoryScope, isEmptySelection, type Selector } from '../../src/policy/selector.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const SUBJECT = digest(1);
const SIG = `sha256-${SUBJECT.slice(7)}.sig`;

/** `repo:tag@n pushed-iso` rows -> the map selectTags takes (tags in the order given). */
function tree(rows: Array<[ref: string, digestN: number, pushedAt: string]>): Map<RepositoryName, TagFacts[]> {
  const out = new Map<RepositoryName, TagFacts[]>();
  for (const [ref, n, pushed] of rows) {
    const colon = ref.lastIndexOf(':');
    const repository = ref.slice(0, colon) as RepositoryName;
    const facts: TagFacts = { repository, tag: ref.slice(colon + 1) as TagName, digest: digest(n), pushedAt: new Date(pushed) };
    out.set(repository, [...(out.get(repository) ?? []), facts]);
  }
  return out;
}

interface SelectorArgs {
  refs?: string[];
  repo?: string[];
  excludeRepo?: string[];
  tag?: string[];
  olderThan?: string;
  before?: string;
  keep?: string[];
  keepLast?: number;
  keepLatest?: boolean;
}

function selector(a: SelectorArgs): Selector {
  return {
    refs: (a.refs ?? []).map(parseTagRef),
    repos: (a.repo ?? []).map((g) => parseRepoGlob(g)),
    excludeRepos: (a.excludeRepo ?? []).map((g) => parseRepoGlob(g, '--exclude-repo')),
    tags: (a.tag ?? []).map((p) => parseTagPattern(p)),
    ...(a.olderThan === undefined ? {} : { olderThan: parseDuration(a.olderThan) }),
    ...(a.before === undefined ? {} : { before: parseInstant(a.before) }),
    keep: (a.keep ?? []).map((p) => parseTagPattern(p, '--keep')),
    ...(a.keepLast === undefined ? {} : { keepLast: a.keepLast }),
    keepLatest: a.keepLatest ?? true,
  };
}

// i1: T11 old, T12 and T13 share a manifest; latest; i2: two tags; team/app, team/app/api.
const TREE = tree([
  ['i1:T11', 11, '2026-08-01T00:00:00Z'],
  ['i1:T12', 12, '2026-09-01T00:00:00Z'],
  ['i1:T13', 12, '2026-10-15T00:00:00Z'],
  ['i1:latest', 12, '2026-10-15T00:00:00Z'],
  ['i2:T21', 21, '2026-07-01T00:00:00Z'],
  ['i2:T22', 22, '2026-11-20T00:00:00Z'],
  ['team/app:pr-1', 31, '2026-09-30T00:00:00Z'],
  ['team/app:v1.0', 32, '2026-06-01T00:00:00Z'],
  ['team/app/api:pr-2', 41, '2026-05-01T00:00:00Z'],
]);

/** Every decision as `repo:tag verdict reason` (named marked with *). */
function lines(args: SelectorArgs, repos = TREE, dependent?: (t: TagFacts) => boolean): string[] {
  const sel = selectTags(repos, selector(args), NOW, dependent);
  return sel.decisions.map((d) => `${d.repository}:${d.tag}${d.named ? '*' : ''} ${d.verdict} ${d.reason}`);
}

describe('selectTags', () => {
  const cases: Array<[name: string, args: SelectorArgs, expected: string[]]> = [
    ['named refs only: only the named tags are decided', { refs: ['i1:T12', 'i2:T21'] }, ['i1:T12* remove named', 'i2:T21* remove named']],
    [
      'a named tag sharing its manifest with another tag: only the named one goes',
      { refs: ['i1:T13'] },
      ['i1:T13* remove named'],
    ],
    [
      '--tag patterns are OR-ed',
      { tag: ['pr-*', 'T2?'] },
      [
        'i1:T11 keep kept: tag does not match --tag',
        'i1:T12 keep kept: tag does not match --tag',
        'i1:T13 keep kept: tag does not match --tag',
        'i1:latest keep kept: tag does not match --tag',
        'i2:T21 remove matches T2?',
        'i2:T22 remove matches T2?',
        'team/app:pr-1 remove matches pr-*',
        'team/app:v1.0 keep kept: tag does not match --tag',
        'team/app/api:pr-2 remove matches pr-*',
      ],
    ],
    [
      '--older-than: strictly older than the cutoff (2026-10-24T12:00Z) goes',
      { olderThan: '30d', repo: ['i1'] },
      [
        'i1:T11 remove older than 30d (pushed 2026-08-01)',
        'i1:T12 remove older than 30d (pushed 2026-09-01)',
        'i1:T13 remove older than 30d (pushed 2026-10-15)',
        'i1:latest keep kept: latest',
      ],
    ],
    [
      '--before: strictly before the instant goes; equal stays',
      { before: '2026-09-01', repo: ['i1'] },
      [
        'i1:T11 remove pushed before 2026-09-01 (pushed 2026-08-01)',
        'i1:T12 keep kept: pushed 2026-09-01, not before 2026-09-01',
        'i1:T13 keep kept: pushed 2026-10-15, not before 2026-09-01',
        'i1:latest keep kept: pushed 2026-10-15, not before 2026-09-01',
      ],
    ],
    [
      '--before with a time of day',
      { before: '2026-09-01T00:00:01Z', repo: ['i1'], tag: ['T1*'] },
      [
        'i1:T11 remove matches T1*, pushed before 2026-09-01T00:00:01.000Z (pushed 2026-08-01)',
        'i1:T12 remove matches T1*, pushed before 2026-09-01T00:00:01.000Z (pushed 2026-09-01)',
        'i1:T13 keep kept: pushed 2026-10-15, not before 2026-09-01T00:00:01.000Z',
        'i1:latest keep kept: tag does not match --tag',
      ],
    ],
    [
      'filters are AND-ed',
      { tag: ['pr-*'], olderThan: '60d' },
      [
        'i1:T11 keep kept: tag does not match --tag',
        'i1:T12 keep kept: tag does not match --tag',
        'i1:T13 keep kept: tag does not match --tag',
        'i1:latest keep kept: tag does not match --tag',
        'i2:T21 keep kept: tag does not match --tag',
        'i2:T22 keep kept: tag does not match --tag',
        'team/app:pr-1 keep kept: pushed 2026-09-30, within 60d',
        'team/app:v1.0 keep kept: tag does not match --tag',
        'team/app/api:pr-2 remove matches pr-*, older than 60d (pushed 2026-05-01)',
      ],
    ],
    [
      '--repo scope: team/* is one component deep',
      { repo: ['team/*'], tag: ['pr-*'] },
      ['team/app:pr-1 remove matches pr-*', 'team/app:v1.0 keep kept: tag does not match --tag'],
    ],
    [
      '--repo team/** and --exclude-repo: exclusion wins',
      { repo: ['team/**'], excludeRepo: ['**/api'], tag: ['pr-*'] },
      ['team/app:pr-1 remove matches pr-*', 'team/app:v1.0 keep kept: tag does not match --tag'],
    ],
    [
      '--exclude-repo alone scopes filters to the rest',
      { excludeRepo: ['i*', 'team/**'], olderThan: '30d' },
      [],
    ],
    [
      'named refs are not limited by --repo or --exclude-repo (they apply to the filters)',
      { refs: ['i2:T22'], excludeRepo: ['i2'], repo: ['team/**'], tag: ['nomatch'] },
      [
        'i2:T22* remove named',
        'team/app:pr-1 keep kept: tag does not match --tag',
        'team/app:v1.0 keep kept: tag does not match --tag',
        'team/app/api:pr-2 keep kept: tag does not match --tag',
      ],
    ],
    [
      '--keep wins over filters, first matching pattern named',
      { repo: ['i1'], olderThan: '30d', keep: ['T11', 'T1*'] },
      ['i1:T11 keep kept: --keep T11', 'i1:T12 keep kept: --keep T1*', 'i1:T13 keep kept: --keep T1*', 'i1:latest keep kept: latest'],
    ],
    [
      '--keep-last counts the newest pushes per repository, whatever the filters match',
      { tag: ['T*', 'pr-*'], keepLast: 1 },
      [
        // i1: T13 and latest were pushed at the same instant; the tie goes to the name (T13 < latest).
        'i1:T11 remove matches T*',
        'i1:T12 remove matches T*',
        'i1:T13 keep kept: --keep-last 1',
        'i1:latest keep kept: tag does not match --tag',
        'i2:T21 remove matches T*',
        'i2:T22 keep kept: --keep-last 1',
        'team/app:pr-1 keep kept: --keep-last 1',
        'team/app:v1.0 keep kept: tag does not match --tag',
        'team/app/api:pr-2 keep kept: --keep-last 1',
      ],
    ],
    [
      '--keep-last 0 keeps nothing extra',
      { repo: ['i2'], olderThan: '1d', keepLast: 0 },
      ['i2:T21 remove older than 1d (pushed 2026-07-01)', 'i2:T22 remove older than 1d (pushed 2026-11-20)'],
    ],
    [
      'latest is removable with keepLatest false',
      { repo: ['i1'], tag: ['*'], keepLatest: false, keepLast: 1 },
      ['i1:T11 remove matches *', 'i1:T12 remove matches *', 'i1:T13 keep kept: --keep-last 1', 'i1:latest remove matches *'],
    ],
    [
      'keep reasons in order: latest, --keep, --keep-last',
      { repo: ['i1'], tag: ['*'], keep: ['latest', 'T13'], keepLast: 4 },
      ['i1:T11 keep kept: --keep-last 4', 'i1:T12 keep kept: --keep-last 4', 'i1:T13 keep kept: --keep T13', 'i1:latest keep kept: latest'],
    ],
    [
      'named but kept: the decision says why and stays marked as named',
      { refs: ['i1:latest', 'i1:T11', 'i2:T22'], keep: ['T1*'], keepLast: 1 },
      ['i1:T11* keep kept: --keep T1*', 'i1:latest* keep kept: latest', 'i2:T22* keep kept: --keep-last 1'],
    ],
    [
      'named and matching a filter: the reason is "named"',
      { refs: ['i2:T21'], olderThan: '30d', repo: ['i2'] },
      ['i2:T21* remove named', 'i2:T22 keep kept: pushed 2026-11-20, within 30d'],
    ],
  ];
  it.each(cases)('%s', (_name, args, expected) => {
    expect(lines(args)).toEqual(expected);
  });

  it('decisions carry the tag facts', () => {
    const sel = selectTags(TREE, selector({ refs: ['i1:T12'] }), NOW);
    expect(sel.decisions).toEqual([
      { repository: 'i1', tag: 'T12', digest: digest(12), pushedAt: new Date('2026-09-01T00:00:00Z'), verdict: 'remove', reason: 'named', named: true },
    ]);
    expect(sel.missing).toEqual([]);
  });

  it('--older-than boundary: exactly at the cutoff stays, one millisecond before goes', () => {
    const repos = tree([
      ['b:at-cutoff', 1, '2026-10-24T12:00:00.000Z'],
      ['b:before-cutoff', 2, '2026-10-24T11:59:59.999Z'],
    ]);
    expect(lines({ olderThan: '30d' }, repos)).toEqual([
      'b:at-cutoff keep kept: pushed 2026-10-24, within 30d',
      'b:before-cutoff remove older than 30d (pushed 2026-10-24)',
    ]);
  });

  it('named refs that do not exist are reported as missing, the rest is still decided', () => {
    const sel = selectTags(TREE, selector({ refs: ['i1:T12', 'i1:nope', 'ghost:v1', 'i1:T12'] }), NOW);
    expect(sel.decisions.map((d) => `${d.repository}:${d.tag} ${d.verdict}`)).toEqual(['i1:T12 remove']);
    expect(sel.missing).toEqual([
      { repository: 'i1', tag: 'nope' },
      { repository: 'ghost', tag: 'v1' },
    ]);
  });

  it('decisions are sorted by repository then tag, whatever the input order', () => {
    const repos = new Map<RepositoryName, TagFacts[]>([
      ['zz' as RepositoryName, [...(tree([['zz:b', 1, '2026-01-01T00:00:00Z'], ['zz:a', 2, '2026-01-01T00:00:00Z']]).values())].flat()],
      ['aa' as RepositoryName, [...(tree([['aa:y', 3, '2026-01-01T00:00:00Z'], ['aa:x', 4, '2026-01-01T00:00:00Z']]).values())].flat()],
    ]);
    expect(lines({ tag: ['*'] }, repos).map((l) => l.split(' ')[0])).toEqual(['aa:x', 'aa:y', 'zz:a', 'zz:b']);
  });

  describe('the dependent predicate (signature tags follow their subject)', () => {
    const repos = tree([
      ['s:v1', 1, '2026-11-01T00:00:00Z'],
      ['s:v0', 5, '2026-01-01T00:00:00Z'],
      [`s:${SIG}`, 2, '2026-11-22T00:00:00Z'],
    ]);
    const dependent = (t: TagFacts) => t.tag.startsWith('sha256-');

    it('not matched by filters and not counted by --keep-last', () => {
      expect(lines({ tag: ['*'], keepLast: 1 }, repos, dependent)).toEqual([
        `s:${SIG} keep kept: follows its subject`,
        's:v0 remove matches *',
        's:v1 keep kept: --keep-last 1',
      ]);
    });

    it('without the predicate the signature is an ordinary (newest) tag', () => {
      expect(lines({ tag: ['*'], keepLast: 1 }, repos)).toEqual([
        `s:${SIG} keep kept: --keep-last 1`,
        's:v0 remove matches *',
        's:v1 remove matches *',
      ]);
    });

    it('naming a dependent tag still removes it', () => {
      expect(lines({ refs: [`s:${SIG}`] }, repos, dependent)).toEqual([`s:${SIG}* remove named`]);
    });
  });
});

describe('selector predicates', () => {
  const cases: Array<[name: string, args: SelectorArgs, empty: boolean, filters: boolean]> = [
    ['nothing', {}, true, false],
    ['keep rules only', { keep: ['*'], keepLast: 3, keepLatest: false }, true, false],
    ['scope only', { repo: ['**'], excludeRepo: ['x'] }, true, false],
    ['a named ref', { refs: ['i1:T12'] }, false, false],
    ['--tag', { tag: ['*'] }, false, true],
    ['--older-than', { olderThan: '1d' }, false, true],
    ['--before', { before: '2026-01-01' }, false, true],
  ];
  it.each(cases)('%s', (_name, args, empty, filters) => {
    expect(isEmptySelection(selector(args))).toBe(empty);
    expect(hasFilters(selector(args))).toBe(filters);
  });

  it('inRepositoryScope: no --repo means every repository; --exclude-repo wins', () => {
    expect(inRepositoryScope(selector({}), 'any/thing')).toBe(true);
    expect(inRepositoryScope(selector({ repo: ['team/*'] }), 'team/app')).toBe(true);
    expect(inRepositoryScope(selector({ repo: ['team/*'] }), 'team/app/api')).toBe(false);
    expect(inRepositoryScope(selector({ repo: ['team/**'], excludeRepo: ['team/app'] }), 'team/app')).toBe(false);
    expect(inRepositoryScope(selector({ excludeRepo: ['team/app'] }), 'team/app/api')).toBe(true);
  });
});
