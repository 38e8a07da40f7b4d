import * as nodeFs from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parseRegistryConfig, s3KeyPrefix, type S3StorageConfig } from '../../src/config/registry-config.js';
import { parseManifest } from '../../src/graph/manifest.js';
import type { Digest } from '../../src/model/names.js';
import { storageFs } from '../../src/storage/fs.js';
import { openS3, type ObjectStore } from '../../src/storage/s3/client.js';
import { ManifestDiskCache, blobDataKey, readManifests } from '../../src/storage/s3/manifests.js';
import { pushImage, pushIndex, pushSignature, type BuiltManifest, type RunningRegistry } from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// Manifests read from the bucket the real registry wrote, and the parsed cache
// on local disk that makes a second run GET only manifests pushed since.

const BUCKET = 'manifests';
const fs = storageFs(nodeFs);

describe('S3 manifests with a disk cache', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  let store: ObjectStore;
  let prefix: string;
  let cacheDir: string;
  const pushed: BuiltManifest[] = [];

  /** Every revision link's digest, from the key names. */
  const revisions = async (): Promise<Digest[]> => {
    const out: Digest[] = [];
    await store.list(`${prefix}docker/registry/v2/repositories/`, (page) => {
      for (const o of page) {
        const m = /\/_manifests\/revisions\/sha256\/([a-f0-9]{64})\/link$/.exec(o.key);
        if (m !== null) out.push(`sha256:${m[1]}` as Digest);
      }
    });
    return out;
  };

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    reg = await startS3Registry(swift, BUCKET);
    const v1 = await pushImage(reg.url, 'team/app', 'v1', { seed: 'm-v1', layers: ['m-base', 'm-v1/top'] });
    const multi = await pushIndex(reg.url, 'team/app', 'multi', {
      format: 'oci',
      children: [
        { seed: 'm-amd64', platform: { os: 'linux', architecture: 'amd64' } },
        { seed: 'm-arm64', platform: { os: 'linux', architecture: 'arm64' } },
      ],
    });
    const sig = await pushSignature(reg.url, 'team/app', v1.manifest, { subject: true });
    pushed.push(v1.manifest, multi.manifest, ...multi.children.map((c) => c.manifest), sig.manifest);
    const config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'c.yml') as S3StorageConfig;
    store = await openS3(config);
    prefix = s3KeyPrefix(config.rootdirectory);
    cacheDir = await mkdtemp(join(tmpdir(), 'regprune-manifest-cache-'));
  });
  afterAll(async () => {
    store?.close();
    await reg?.stop();
    await swift?.stop();
    if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
  });

  test('first run: one GET per manifest (index children followed), refs as parsed from the pushed bytes', async () => {
    const roots = await revisions();
    expect(roots).toHaveLength(pushed.length);
    const cache = await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)');
    const before = store.stats().requests.get;
    const { manifests, stats } = await readManifests(store, prefix, roots, { cache });
    expect(stats).toEqual({ gets: pushed.length, cached: 0 });
    expect(store.stats().requests.get - before).toBe(pushed.length);
    for (const m of pushed) {
      const parsed = parseManifest(m.bytes);
      expect(manifests.get(m.digest)).toEqual({ ok: true, size: m.bytes.length, refs: parsed.ok ? parsed.refs : undefined });
    }
    const sig = manifests.get(pushed.at(-1)!.digest);
    expect(sig?.ok === true ? sig.refs.subject : undefined).toBe(pushed[0]!.digest);
  });

  test('an index alone as root loads its children too', async () => {
    const { manifests } = await readManifests(store, prefix, [pushed[1]!.digest]);
    expect([...manifests.keys()].sort()).toEqual([pushed[1]!.digest, pushed[2]!.digest, pushed[3]!.digest].sort());
  });

  test('second run from the cache on disk: no GET; a new push costs one GET', async () => {
    const cache = await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)');
    expect(cache.size).toBe(pushed.length);
    const before = store.stats().requests.get;
    const again = await readManifests(store, prefix, await revisions(), { cache });
    expect(again.stats).toEqual({ gets: 0, cached: pushed.length });
    expect(store.stats().requests.get - before).toBe(0);

    const v2 = await pushImage(reg.url, 'team/app', 'v2', { seed: 'm-v2', layers: ['m-base'] });
    const third = await readManifests(store, prefix, await revisions(), { cache: await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)') });
    expect(third.stats).toEqual({ gets: 1, cached: pushed.length });
    expect(third.manifests.get(v2.manifest.digest)?.ok).toBe(true);
  });

  test('another parser starts a fresh cache; a line cut short by a killed run is ignored', async () => {
    const other = await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.2.0');
    expect(other.size).toBe(0);
    const cache = await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)');
    const n = cache.size;
    await appendFile(cache.file, '{"d":"sha256:00');
    expect((await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)')).size).toBe(n);
  });

  test('a blob whose bytes do not hash to its digest is not understood and not cached; a missing one is missing', async () => {
    const fake = `sha256:${'ab'.repeat(32)}` as Digest;
    const absent = `sha256:${'cd'.repeat(32)}` as Digest;
    await store.put(blobDataKey(prefix, fake), pushed[0]!.bytes);
    const cache = await ManifestDiskCache.open(fs, cacheDir, 'regprune 0.1.0 (test)');
    const { manifests } = await readManifests(store, prefix, [fake, absent], { cache });
    expect(manifests.get(fake)).toEqual({ ok: false, missing: false, problem: 'manifest blob content does not match its digest' });
    expect(manifests.get(absent)).toEqual({ ok: false, missing: true, problem: 'manifest blob is missing' });
    expect(cache.get(fake)).toBeUndefined();
  });
});
