import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { ObjectStore, S3ObjectInfo } from '../../src/storage/s3/client.js';
import { openS3View } from '../../src/storage/s3/view.js';
import { walkRepositories } from '../../src/storage/walk.js';
import type { StorageWarning } from '../../src/storage/warnings.js';

// The listing view's handling of keys a filesystem cannot hold, on a bucket
// held in memory (the real-bucket version, with apply and the registry, is
// test/integration/s3-odd-keys.test.ts): the filesystem walk on the view ends,
// reads no such key, and a warning names it.

const D = `sha256:${'ab'.repeat(32)}`;
const R = 'reg/docker/registry/v2/repositories/';
const tag = (repo: string, t: string) => [`${R}${repo}/_manifests/tags/${t}/current/link`, `${R}${repo}/_manifests/tags/${t}/index/sha256/${'ab'.repeat(32)}/link`];

/** Objects by key, listed in key order (one page), each with the ETag of a single PUT. */
function memoryStore(objects: Record<string, string>): ObjectStore {
  const when = new Date('2026-11-01T00:00:00Z');
  const info = (key: string): S3ObjectInfo => ({ key, size: Buffer.byteLength(objects[key]!), etag: createHash('md5').update(objects[key]!).digest('hex'), lastModified: when });
  const refuse = () => Promise.reject(new Error('read-only in this test'));
  return {
    list: async (prefix, onPage) => {
      await onPage(Object.keys(objects).filter((k) => k.startsWith(prefix)).sort().map(info));
    },
    get: async (key) => (key in objects ? { body: Buffer.from(objects[key]!), etag: info(key).etag, lastModified: when } : undefined),
    head: async (key) => (key in objects ? info(key) : undefined),
    put: refuse,
    delete: refuse,
    stats: () => ({ requests: { list: 0, get: 0, head: 0, put: 0, delete: 0 }, retries: 0 }),
    close: () => {},
  };
}

async function walk(keys: readonly string[]) {
  const objects = Object.fromEntries(keys.map((k) => [k, k.endsWith('/') ? '' : D]));
  const view = await openS3View(memoryStore(objects), 'reg/');
  const warnings: StorageWarning[] = [];
  const repos = await walkRepositories(view.fs, view.layout, { onWarning: (w) => warnings.push(w) });
  return { tags: repos.flatMap((r) => r.tags.map((t) => `${r.name}:${t.tag}`)).sort(), warnings: warnings.map((w) => `${w.path}: ${w.message}`) };
}

describe('the S3 view and odd keys', () => {
  test('a clean tree, with directory markers: every tag, no warning', async () => {
    const got = await walk([...tag('app', 'v1'), ...tag('team/app', 'v2'), `${R}app/_manifests/tags/`, `${R}app/`, `${R}app/_manifests/tags/v1/`]);
    expect(got).toEqual({ tags: ['app:v1', 'team/app:v2'], warnings: [] });
  });

  test.each([
    ['`..` below repositories/', `${R}../escape/_manifests/tags/a/current/link`, []],
    ['`.` below repositories/', `${R}./app/_manifests/tags/a/current/link`, []],
    ['an empty segment in a repository', `${R}app//_manifests/tags/a/current/link`, ['team/app:v2']],
    ['an empty segment in a tag', `${R}app/_manifests/tags/v1//current/link`, ['team/app:v2']],
    ['`..` in a tag', `${R}app/_manifests/tags/v1/../../../../x`, ['team/app:v2']],
    ['an object that is also a prefix', `${R}app/_manifests/tags/v1/current/link/x`, ['team/app:v2']],
    ['a tag directory that is also an object', `${R}app/_manifests/tags/v1`, ['team/app:v2']],
    ['a foreign object in a tag', `${R}app/_manifests/tags/v1/notes`, ['team/app:v2']],
    ['an upper-case index entry', `${R}app/_manifests/tags/v1/index/sha256/${'AB'.repeat(32)}/link`, ['team/app:v2']],
    ['a repository that is also an object', `${R}team/app`, ['app:v1']],
  ])('%s: the walk ends, the key is named, what holds it is not read', async (_name, odd, tags) => {
    const got = await walk([...tag('app', 'v1'), ...tag('team/app', 'v2'), odd]);
    expect(got.tags).toEqual(tags);
    expect(got.warnings.join('\n')).toContain(JSON.stringify(odd));
  });
});
