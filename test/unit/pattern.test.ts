import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/model/errors.js';
import { parseRepoGlob, parseTagPattern } from '../../src/model/pattern.js';

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError, nothing was thrown');
}

describe('parseTagPattern: globs', () => {
  const cases: Array<[pattern: string, matches: string[], misses: string[]]> = [
    ['3.3.0-alpha.*', ['3.3.0-alpha.1', '3.3.0-alpha.', '3.3.0-alpha.12.b'], ['3.3.0-alphaX1', '3.3.0-beta.1', 'x3.3.0-alpha.1', '3.3.0-alpha']],
    ['v?.*', ['v1.2', 'v9.', 'vx.y'], ['v12.2', 'v.2', 'x1.2']],
    ['{a,b}-*', ['a-1', 'b-', 'b-x-y'], ['c-1', 'ab-1', '-1']],
    ['[0-9]*', ['1abc', '9', '42'], ['abc', '', 'v1']],
    ['[!0-9]*', ['abc', 'v1'], ['1abc']],
    ['pr-**', ['pr-1', 'pr-'], ['pr', 'xpr-1']],
    ['latest', ['latest'], ['latest2', 'xlatest']],
    ['v1+2', ['v1+2'], ['v112', 'v12']],
    ['a|b', ['a|b'], ['a', 'b']],
    ['1.0', ['1.0'], ['1x0']],
  ];
  it.each(cases)('%s', (pattern, matches, misses) => {
    const p = parseTagPattern(pattern);
    expect(p.kind).toBe('glob');
    expect(p.text).toBe(pattern);
    for (const tag of matches) expect(p.test(tag), `${pattern} should match ${tag}`).toBe(true);
    for (const tag of misses) expect(p.test(tag), `${pattern} should not match ${tag}`).toBe(false);
  });
});

describe('parseTagPattern: regular expressions', () => {
  const cases: Array<[pattern: string, matches: string[], misses: string[]]> = [
    ['/^v\\d+$/', ['v1', 'v123'], ['v1.2', 'xv1', 'V1']],
    ['/^V\\d+$/i', ['v1', 'V1'], ['v1.2']],
    ['/alpha/', ['1.0-alpha.2', 'alpha'], ['1.0-beta']],
    // A g or y flag would make test() stateful: the second call on the same tag must still match.
    ['/a/g', ['a', 'a', 'ba', 'ba'], ['b']],
    ['/a/y', ['a', 'a', 'ba', 'ba'], ['b']],
  ];
  it.each(cases)('%s', (pattern, matches, misses) => {
    const p = parseTagPattern(pattern);
    expect(p.kind).toBe('regex');
    expect(p.text).toBe(pattern);
    for (const tag of matches) expect(p.test(tag), `${pattern} should match ${tag}`).toBe(true);
    for (const tag of misses) expect(p.test(tag), `${pattern} should not match ${tag}`).toBe(false);
  });
});

describe('parseTagPattern: errors name the argument', () => {
  const cases: Array<[name: string, pattern: string, what: string, message: RegExp | string]> = [
    ['invalid regex under --tag', '/[/', '--tag', /^--tag "\/\[\/": invalid regular expression: .*Unterminated character class/],
    ['invalid regex under --keep', '/(a/', '--keep', /^--keep "\/\(a\/": invalid regular expression: .*Unterminated group/],
    ['unknown regex flag', '/a/q', '--tag', '--tag "/a/q": invalid regular expression: Invalid flags supplied to RegExp constructor \'q\''],
    ['unclosed class', 'v[0-9', '--tag', '--tag "v[0-9": unclosed \'[\''],
    ['unclosed brace', '{a,b-*', '--keep', '--keep "{a,b-*": unclosed \'{\''],
    ['empty', '', '--keep', '--keep: empty pattern'],
  ];
  it.each(cases)('%s', (_name, pattern, what, message) => {
    const got = usageMessage(() => parseTagPattern(pattern, what));
    if (typeof message === 'string') expect(got).toBe(message);
    else expect(got).toMatch(message);
  });
});

describe('parseRepoGlob', () => {
  const cases: Array<[pattern: string, matches: string[], misses: string[]]> = [
    ['team/*', ['team/app', 'team/x'], ['team/app/api', 'team', 'other/app']],
    ['team/app/api', ['team/app/api'], ['team/app', 'team/app/api/v2', 'team/app/apix']],
    ['**', ['a', 'team/app', 'team/app/api'], []],
    ['team/**', ['team/app', 'team/app/api'], ['team', 'teamx/app', 'other/team/app']],
    ['**/api', ['api', 'team/api', 'team/app/api'], ['team/apix', 'xapi', 'team/xapi', 'api/v2']],
    ['team/*/api', ['team/app/api'], ['team/a/b/api', 'team/api']],
    ['*', ['app', 'i1'], ['team/app']],
    ['i?', ['i1', 'i5'], ['i10', 'i']],
    ['{team,ops}/*', ['team/app', 'ops/db'], ['dev/app']],
    ['localhost:5000/*', ['localhost:5000/app'], ['localhost/app']],
    ['a.b', ['a.b'], ['axb']],
  ];
  it.each(cases)('%s', (pattern, matches, misses) => {
    const g = parseRepoGlob(pattern);
    expect(g.text).toBe(pattern);
    for (const repo of matches) expect(g.test(repo), `${pattern} should match ${repo}`).toBe(true);
    for (const repo of misses) expect(g.test(repo), `${pattern} should not match ${repo}`).toBe(false);
  });

  const bad: Array<[name: string, pattern: string, what: string, message: string]> = [
    ['uppercase', 'Team/*', '--repo', '--repo "Team/*": repository names are lowercase; unexpected character in pattern'],
    ['space', 'team app', '--exclude-repo', '--exclude-repo "team app": repository names are lowercase; unexpected character in pattern'],
    ['unclosed class', 'i[0-9', '--repo', '--repo "i[0-9": unclosed \'[\''],
    ['unclosed brace', '{a,b', '--repo', '--repo "{a,b": unclosed \'{\''],
    ['empty', '', '--exclude-repo', '--exclude-repo: empty pattern'],
  ];
  it.each(bad)('%s', (_name, pattern, what, message) => {
    expect(usageMessage(() => parseRepoGlob(pattern, what))).toBe(message);
  });
});
