import { createHash } from 'node:crypto';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { parseRegistryConfig, type S3StorageConfig } from '../../src/config/registry-config.js';
import { openS3, type ObjectStore, type S3ObjectInfo } from '../../src/storage/s3/client.js';
import { setupSuite } from '../helpers/suite.js';
import { s3StorageYaml, startSwift, type RunningSwift } from '../helpers/swift.js';

// The S3 request layer against a real S3 API (OpenStack Swift's s3api on 127.0.0.1).

const BUCKET = 'client';
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

describe('S3 client on Swift', () => {
  let swift: RunningSwift;
  let store: ObjectStore;
  const keys = Array.from({ length: 1005 }, (_, i) => `p/k${String(i).padStart(5, '0')}`);

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    // The same config text the registry reads.
    const config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'config.yml') as S3StorageConfig;
    store = await openS3(config, { concurrency: 16 });
    await Promise.all(keys.map((k) => store.put(k, `sha256:${k}`)));
    await store.put('q/outside', 'x');
  });
  afterAll(async () => {
    store?.close();
    await swift?.stop();
  });

  test('put gives the md5 ETag; the puts are counted', () => {
    expect(store.stats().requests.put).toBe(keys.length + 1);
    expect(store.stats().retries).toBe(0);
  });

  test('an empty body is put with its length: the SDK has nothing to warn about on stderr', async () => {
    const warn = vi.spyOn(console, 'warn');
    try {
      const { etag } = await store.put('q/empty', '');
      expect(etag).toBe(md5(''));
      expect((await store.head('q/empty'))?.size).toBe(0);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
      await store.delete('q/empty');
    }
  });

  test('list pages a prefix at 1000 keys with continuation, in key order, with ETags = md5 of content', async () => {
    const before = store.stats().requests.list;
    const pages: S3ObjectInfo[][] = [];
    await store.list('p/', (page) => void pages.push([...page]));
    expect(pages.map((p) => p.length)).toEqual([1000, 5]);
    expect(store.stats().requests.list - before).toBe(2);
    const all = pages.flat();
    expect(all.map((o) => o.key)).toEqual(keys);
    expect(all[7]!.etag).toBe(md5(`sha256:${keys[7]}`));
    expect(all[7]!.size).toBe(`sha256:${keys[7]}`.length);
    expect(Math.abs(all[7]!.lastModified.getTime() - Date.now())).toBeLessThan(5 * 60_000);
  });

  test('get and head return content and metadata; a missing key is undefined', async () => {
    const got = await store.get(keys[3]!);
    expect(got?.body.toString()).toBe(`sha256:${keys[3]}`);
    expect(got?.etag).toBe(md5(`sha256:${keys[3]}`));
    const head = await store.head(keys[3]!);
    expect(head).toMatchObject({ size: `sha256:${keys[3]}`.length, etag: md5(`sha256:${keys[3]}`) });
    expect(await store.get('p/none')).toBeUndefined();
    expect(await store.head('p/none')).toBeUndefined();
  });

  test('delete removes the object; every kind of request is counted', async () => {
    const before = store.stats().requests;
    await store.delete('q/outside');
    expect(await store.get('q/outside')).toBeUndefined();
    const after = store.stats().requests;
    expect(after.delete - before.delete).toBe(1);
    expect(after.get - before.get).toBe(1);
  });

  test('a wrong secret is an error naming the bucket and the status, not a retry loop', async () => {
    const bad = parseRegistryConfig(
      ['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET).map((l) => l.replace(/secretkey: .*/, 'secretkey: wrong'))].join('\n'),
      {},
      'c.yml',
    ) as S3StorageConfig;
    const other = await openS3(bad);
    try {
      await expect(other.list('p/', () => {})).rejects.toThrow(/listing s3:\/\/client\/p\/ \(bucket client\): HTTP 403/);
      expect(other.stats()).toEqual({ requests: { list: 1, get: 0, head: 0, put: 0, delete: 0 }, retries: 0 });
    } finally {
      other.close();
    }
  });
});
