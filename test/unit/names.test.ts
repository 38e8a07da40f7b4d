import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/model/errors.js';
import {
  MAX_REPOSITORY_NAME,
  digestHex,
  formatTagRef,
  isDigest,
  isTagName,
  parseDigest,
  parseTagRef,
  repositoryNameProblem,
  shortDigest,
} from '../../src/model/names.js';

const HEX = 'a'.repeat(64);

/** The usage error `fn` throws (fails the test when it does not throw one). */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError, nothing was thrown');
}

describe('parseTagRef', () => {
  const good: Array<[name: string, text: string, repository: string, tag: string]> = [
    ['single-component repository', 'i1:T12', 'i1', 'T12'],
    ['nested repository', 'team/app/api:v1', 'team/app/api', 'v1'],
    ['domain with port: the tag is after the last colon', 'host:5000/app:v1', 'host:5000/app', 'v1'],
    ['separators in components', 'my-org/app_x.y__z:1.0.0-rc.1', 'my-org/app_x.y__z', '1.0.0-rc.1'],
    ['tag of exactly 128 characters', `app:${'t'.repeat(128)}`, 'app', 't'.repeat(128)],
    ['tag starting with underscore', 'app:_tmp', 'app', '_tmp'],
    ['repository of exactly 255 characters', `${'r'.repeat(255)}:v1`, 'r'.repeat(255), 'v1'],
  ];
  it.each(good)('%s: %s', (_name, text, repository, tag) => {
    const ref = parseTagRef(text);
    expect(ref).toEqual({ repository, tag });
    expect(formatTagRef(ref)).toBe(text);
  });

  const bad: Array<[name: string, text: string, message: string]> = [
    ['no tag after the colon', 'i1:', 'tag reference "i1:": missing tag after \':\''],
    ['no repository before the colon', ':t', 'tag reference ":t": missing repository before \':\''],
    ['no colon at all', 'i1', 'tag reference "i1": expected REPOSITORY:TAG, e.g. team/app:v1'],
    ['colon only in the domain', 'host:5000/app', 'tag reference "host:5000/app": expected REPOSITORY:TAG, e.g. team/app:v1'],
    [
      'uppercase repository',
      'I1:T12',
      'tag reference "I1:T12": repository "I1": invalid repository name component "I1" (lowercase letters, digits and single separators . _ __ - only)',
    ],
    [
      'path traversal',
      '../../etc:x',
      'tag reference "../../etc:x": repository "../../etc": invalid repository name component ".." (lowercase letters, digits and single separators . _ __ - only)',
    ],
    [
      'repository of 300 characters',
      `${'r'.repeat(300)}:v1`,
      `tag reference "${'r'.repeat(300)}:v1": repository "${'r'.repeat(300)}": repository name longer than 255 characters`,
    ],
    [
      'tag of 129 characters',
      `app:${'t'.repeat(129)}`,
      `tag reference "app:${'t'.repeat(129)}": tag "${'t'.repeat(129)}": not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)`,
    ],
    [
      'tag starting with a dot',
      'app:.hidden',
      'tag reference "app:.hidden": tag ".hidden": not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)',
    ],
    [
      'tag starting with a dash',
      'app:-rf',
      'tag reference "app:-rf": tag "-rf": not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)',
    ],
    [
      'digest reference instead of a tag',
      `app@sha256:${HEX}`,
      `tag reference "app@sha256:${HEX}": repository "app@sha256": invalid repository name component "app@sha256" (lowercase letters, digits and single separators . _ __ - only)`,
    ],
  ];
  it.each(bad)('%s: %s', (_name, text, message) => {
    const err = usageError(() => parseTagRef(text));
    expect(err.code).toBe('USAGE');
    expect(err.message).toBe(message);
  });
});

describe('repositoryNameProblem', () => {
  const cases: Array<[name: string, repository: string, problem: string | undefined]> = [
    ['one component', 'app', undefined],
    ['nested', 'team/app/api', undefined],
    ['dots, underscores, double underscore, dash runs', 'a.b_c__d---e', undefined],
    ['domain with port', 'localhost:5000/app', undefined],
    ['uppercase allowed in the domain component only', 'Registry.Example/app', undefined],
    ['exactly 255 characters', 'r'.repeat(MAX_REPOSITORY_NAME), undefined],
    ['empty', '', 'empty repository name'],
    ['256 characters', 'r'.repeat(256), 'repository name longer than 255 characters'],
    ['uppercase single component', 'App', 'invalid repository name component "App" (lowercase letters, digits and single separators . _ __ - only)'],
    ['uppercase after the first component', 'team/API', 'invalid repository name component "API" (lowercase letters, digits and single separators . _ __ - only)'],
    ['port without a following component', 'host:5000', 'invalid repository name component "host:5000" (lowercase letters, digits and single separators . _ __ - only)'],
    ['empty component', 'team//app', 'invalid repository name component "" (lowercase letters, digits and single separators . _ __ - only)'],
    ['trailing slash', 'team/', 'invalid repository name component "" (lowercase letters, digits and single separators . _ __ - only)'],
    ['leading separator', '-app', 'invalid repository name component "-app" (lowercase letters, digits and single separators . _ __ - only)'],
    ['trailing separator', 'app.', 'invalid repository name component "app." (lowercase letters, digits and single separators . _ __ - only)'],
    ['two dots', 'a..b', 'invalid repository name component "a..b" (lowercase letters, digits and single separators . _ __ - only)'],
    ['three underscores', 'a___b', 'invalid repository name component "a___b" (lowercase letters, digits and single separators . _ __ - only)'],
    ['reserved-looking component', 'team/_layers', 'invalid repository name component "_layers" (lowercase letters, digits and single separators . _ __ - only)'],
    ['dot-dot', 'team/..', 'invalid repository name component ".." (lowercase letters, digits and single separators . _ __ - only)'],
  ];
  it.each(cases)('%s: %j', (_name, repository, problem) => {
    expect(repositoryNameProblem(repository)).toBe(problem);
  });
});

describe('isTagName', () => {
  const cases: Array<[string, boolean]> = [
    ['v1', true],
    ['T12', true],
    ['_x', true],
    ['1.0.0-rc.1', true],
    ['t'.repeat(128), true],
    ['t'.repeat(129), false],
    ['', false],
    ['.x', false],
    ['-x', false],
    ['a/b', false],
    ['a:b', false],
    ['a b', false],
  ];
  it.each(cases)('%j -> %s', (tag, ok) => {
    expect(isTagName(tag)).toBe(ok);
  });
});

describe('isDigest', () => {
  const cases: Array<[name: string, value: string, ok: boolean]> = [
    ['sha256 with 64 lowercase hex', `sha256:${HEX}`, true],
    ['all hex digits', `sha256:0123456789abcdef${'0'.repeat(48)}`, true],
    ['uppercase hex', `sha256:${'A'.repeat(64)}`, false],
    ['63 hex', `sha256:${'a'.repeat(63)}`, false],
    ['65 hex', `sha256:${'a'.repeat(65)}`, false],
    ['sha512', `sha512:${'a'.repeat(128)}`, false],
    ['trailing newline', `sha256:${HEX}\n`, false],
    ['no algorithm', HEX, false],
    ['cosign tag form', `sha256-${HEX}`, false],
    ['empty', '', false],
  ];
  it.each(cases)('%s', (_name, value, ok) => {
    expect(isDigest(value)).toBe(ok);
  });

  it('parseDigest names the argument; digestHex and shortDigest slice the digest', () => {
    expect(usageError(() => parseDigest('sha256:xyz', '--digest')).message).toBe('--digest "sha256:xyz": not a sha256 digest');
    const d = parseDigest(`sha256:0123456789abcdef${'0'.repeat(48)}`);
    expect(digestHex(d)).toBe(`0123456789abcdef${'0'.repeat(48)}`);
    expect(shortDigest(d)).toBe('sha256:0123456789ab');
  });
});
