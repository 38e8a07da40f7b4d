import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RAW, storageFs } from '../../src/storage/fs.js';
import type { ObjectStore, RequestKind, S3ObjectInfo } from '../../src/storage/s3/client.js';
import { acquireS3Lock } from '../../src/storage/s3/lock.js';
import { openS3View } from '../../src/storage/s3/view.js';

// The bucket view and the bucket lock over an in-memory object store (what
// memfs is for the filesystem). The real S3 API runs in
// test/integration/s3-prune.test.ts.

class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, { body: Buffer; lastModified: Date }>();
  readonly requests: Record<RequestKind, number> = { list: 0, get: 0, head: 0, put: 0, delete: 0 };
  /** The bucket's clock (seconds resolution, as S3's LastModified). */
  clock = 1_700_000_000_000;
  private info(key: string): S3ObjectInfo {
    const o = this.objects.get(key)!;
    return { key, size: o.body.length, etag: createHash('md5').update(o.body).digest('hex'), lastModified: o.lastModified };
  }
  async list(prefix: string, onPage: (objects: readonly S3ObjectInfo[]) => void | Promise<void>): Promise<void> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (let i = 0; i === 0 || i < keys.length; i += 1000) {
      this.requests.list++;
      await onPage(keys.slice(i, i + 1000).map((k) => this.info(k)));
    }
  }
  async get(key: string) {
    this.requests.get++;
    const o = this.objects.get(key);
    return o === undefined ? undefined : { body: o.body, etag: this.info(key).etag, lastModified: o.lastModified };
  }
  async head(key: string) {
    this.requests.head++;
    if (!this.objects.has(key)) return undefined;
    const { key: _k, ...rest } = this.info(key);
    return rest;
  }
  async put(key: string, body: Buffer | string) {
    this.requests.put++;
    const b = Buffer.from(body);
    this.objects.set(key, { body: b, lastModified: new Date(Math.floor(this.clock / 1000) * 1000) });
    return { etag: createHash('md5').update(b).digest('hex') };
  }
  async delete(key: string) {
    this.requests.delete++;
    this.objects.delete(key);
  }
  stats() {
    return { requests: { ...this.requests }, retries: 0 };
  }
  close() {}
}

const HEX_A = 'a'.repeat(64);
const HEX_B = 'b'.repeat(64);
const V2 = 'reg/docker/registry/v2';

describe('the bucket as a read-only tree (S3 view)', () => {
  const store = new MemoryStore();
  void store.put(`${V2}/repositories/team/app/_manifests/tags/v1/current/link`, `sha256:${HEX_A}`);
  void store.put(`${V2}/repositories/team/app/_manifests/tags/v1/index/sha256/${HEX_A}/link`, `sha256:${HEX_A}`);
  void store.put(`${V2}/repositories/team/app/_manifests/revisions/sha256/${HEX_A}/link`, `sha256:${HEX_A}`);
  // A revision link that does not read its own digest: the listing cannot prove it, so it is read.
  void store.put(`${V2}/repositories/team/app/_manifests/revisions/sha256/${HEX_B}/link`, `sha256:${HEX_A}`);
  void store.put(`${V2}/blobs/sha256/aa/${HEX_A}/data`, '{"schemaVersion":2}');

  it('lists directories from key prefixes; files carry size and LastModified; nothing is requested before the first read', async () => {
    const view = await openS3View(store, 'reg/');
    expect(store.requests.list).toBe(0);
    expect(view.layout.root).toBe('/reg');
    const repoDir = '/reg/docker/registry/v2/repositories/team/app';
    expect((await view.fs.readdir(`${repoDir}/_manifests`, { withFileTypes: true })).map((e) => [e.name, e.isDirectory()])).toEqual([
      ['revisions', true],
      ['tags', true],
    ]);
    expect(store.requests.list).toBe(1); // docker/registry/v2/ only: .regprune/ is listed when first read
    const st = await view.fs.lstat(`${repoDir}/_manifests/tags/v1/current/link`);
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(71);
    expect(st.mtimeMs % 1000).toBe(0);
    expect((await view.fs.lstat(`${repoDir}/_manifests/tags`)).isDirectory()).toBe(true);
    await expect(view.fs.lstat(`${repoDir}/_manifests/nothing`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(view.fs.readdir(`${repoDir}/_manifests/tags/v1/current/link`, { withFileTypes: true })).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(store.requests.list).toBe(1);
    await expect(view.fs.lstat('/reg/.regprune/journal.json')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(store.requests.list).toBe(2);
  });

  it('proves links from ETags without a GET, and reads the rest', async () => {
    const view = await openS3View(store, 'reg/');
    const repoDir = '/reg/docker/registry/v2/repositories/team/app/_manifests';
    const gets = store.requests.get;
    expect(await view.fs.readText(`${repoDir}/tags/v1/current/link`)).toBe(`sha256:${HEX_A}`);
    expect(await view.fs.readText(`${repoDir}/revisions/sha256/${HEX_A}/link`)).toBe(`sha256:${HEX_A}`);
    expect(store.requests.get).toBe(gets);
    expect(await view.fs.readText(`${repoDir}/revisions/sha256/${HEX_B}/link`)).toBe(`sha256:${HEX_A}`);
    expect(store.requests.get).toBe(gets + 1);
    expect(view.stats()).toMatchObject({ linksProven: 2, linksRead: 1 });
  });

  it('keeps manifest bytes in the local cache; a cache file cut short is fetched again and replaced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-view-cache-'));
    try {
      const bytes = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}');
      const hex = createHash('sha256').update(bytes).digest('hex');
      await store.put(`${V2}/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`, bytes);
      const manifestCache = { fs: storageFs(nodeFs), dir: join(dir, 'cache') };
      const path = `/reg/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
      const cacheFile = join(dir, 'cache', 'sha256', hex.slice(0, 2), hex);
      const read = async () => {
        const view = await openS3View(store, 'reg/', { manifestCache });
        expect(Buffer.from(await view.fs.readFile(path)).equals(bytes)).toBe(true);
        return view.stats();
      };
      expect(await read()).toMatchObject({ manifestsFetched: 1, manifestsCached: 0 });
      expect(await read()).toMatchObject({ manifestsFetched: 0, manifestsCached: 1 });
      // A run killed while writing it (the cache is not fsynced): the bytes no longer hash to the digest.
      await writeFile(cacheFile, bytes.subarray(0, 10));
      expect(await read()).toMatchObject({ manifestsFetched: 1, manifestsCached: 0 });
      expect((await readFile(cacheFile)).equals(bytes)).toBe(true);
      expect(await read()).toMatchObject({ manifestsFetched: 0, manifestsCached: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses every change: the view is read-only', async () => {
    const view = await openS3View(store, 'reg/');
    expect(() => view.fs[RAW].unlink('/reg/x')).toThrow(/read-only here: unlink refused/);
  });
});

describe('the bucket lock (listed lock objects, earliest LastModified wins)', () => {
  const host = (pid: number, hostname = 'host-a') => ({ pid, hostname, now: new Date('2026-11-29T12:00:00Z'), isAlive: (p: number) => p !== 999 });
  const target = (store: MemoryStore) => ({ store, location: 's3://b/reg', rootPrefix: 'reg/' });

  it('two overlapping runs: the later one is refused, its object removed; the holder releases its own', async () => {
    const store = new MemoryStore();
    // Run A writes; during its settle, run B writes a second later; both then list.
    let release!: () => void;
    const aSettled = new Promise<void>((r) => (release = r));
    const a = acquireS3Lock(target(store), host(1), { sleep: () => aSettled });
    await new Promise((r) => setTimeout(r, 0));
    store.clock += 1000;
    const b = acquireS3Lock(target(store), host(2, 'host-b'), { sleep: async () => {} });
    await expect(b).rejects.toThrow(/another regprune run holds the lock on s3:\/\/b\/reg \(pid 1 on host-a/);
    release();
    const held = await a;
    expect([...store.objects.keys()]).toEqual([held.path]);
    await held.release();
    expect(store.objects.size).toBe(0);
  });

  it('a lock of a dead process on this host is taken over; an expired one is ignored', async () => {
    const store = new MemoryStore();
    await store.put('reg/.regprune/locks/000000000000001-dead', JSON.stringify({ pid: 999, hostname: 'host-a', startedAt: 'x', id: 'dead' }));
    const held = await acquireS3Lock(target(store), host(1), { sleep: async () => {} });
    expect(held.tookOver?.pid).toBe(999);
    await held.release();
    await store.put('reg/.regprune/locks/000000000000002-old', JSON.stringify({ pid: 5, hostname: 'host-c', startedAt: 'x', id: 'old' }));
    store.clock += 7 * 3600 * 1000;
    const again = await acquireS3Lock(target(store), host(1), { sleep: async () => {} });
    expect([...store.objects.keys()]).toEqual([again.path]);
    await again.release();
  });
});
