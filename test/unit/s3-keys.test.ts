import { describe, expect, test } from 'vitest';
import { classifyRepositoryKey, repositoriesPrefix } from '../../src/storage/s3/keys.js';

const HEX = 'ab'.repeat(32);

describe('classifyRepositoryKey', () => {
  test.each([
    ['a tag current link', 'team/app/_manifests/tags/v1/current/link', { kind: 'tag-current', repository: 'team/app', tag: 'v1' }],
    ['a tag index entry', `app/_manifests/tags/v1/index/sha256/${HEX}/link`, { kind: 'tag-index', repository: 'app', tag: 'v1', hex: HEX }],
    ['a revision link', `a/b/c/_manifests/revisions/sha256/${HEX}/link`, { kind: 'revision', repository: 'a/b/c', hex: HEX }],
    ['a layer link', `app/_layers/sha256/${HEX}/link`, { kind: 'layer', repository: 'app', hex: HEX }],
    ['a v3.1 temp link in a tag: the tag exists', 'app/_manifests/tags/v1/current/link.1234.tmp', { kind: 'tag-other', repository: 'app', tag: 'v1' }],
    ['a temp revision link', `app/_manifests/revisions/sha256/${HEX}/link.x.tmp`, { kind: 'other', repository: 'app' }],
    ['a revision dir not named by a digest', 'app/_manifests/revisions/sha256/XYZ/link', { kind: 'other', repository: 'app' }],
    ['a layer link of another algorithm', `app/_layers/sha512/${HEX}/link`, { kind: 'other', repository: 'app' }],
    ['an upload: not a repository marker', 'app/_uploads/u/data', { kind: 'none' }],
    ['no repository before the marker', '_manifests/tags/v1/current/link', { kind: 'none' }],
    ['a stray object without a marker', 'app/readme', { kind: 'none' }],
    ['a component starting with _ that is no marker', 'team/_x/app/_manifests/tags/v1/current/link', { kind: 'none' }],
    ['the nested repository below another', 'team/app/api/_manifests/tags/v1/current/link', { kind: 'tag-current', repository: 'team/app/api', tag: 'v1' }],
  ])('%s', (_name, rel, want) => {
    expect(classifyRepositoryKey(rel)).toEqual(want);
  });

  test('repositories prefix under a rootdirectory and at the bucket root', () => {
    expect(repositoriesPrefix('reg/')).toBe('reg/docker/registry/v2/repositories/');
    expect(repositoriesPrefix('')).toBe('docker/registry/v2/repositories/');
  });
});
