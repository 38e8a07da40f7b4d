import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parseRegistryConfig, s3KeyPrefix, type S3StorageConfig } from '../../src/config/registry-config.js';
import { openS3, type ObjectStore } from '../../src/storage/s3/client.js';
import { runRegprune } from '../helpers/cli.js';
import { pushImage, pushIndex, pushSignature, type BuiltManifest, type RunningRegistry } from '../helpers/registry.js';
import type { PlanJson } from '../helpers/plan-json.js';
import { setupSuite } from '../helpers/suite.js';
import { s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// Manifests a plan reads from the bucket the real registry wrote, and the cache
// of manifest bytes on local disk ($REGPRUNE_CACHE_DIR) that makes a later run
// GET only the manifests pushed since. Every figure comes from the CLI's JSON
// `stats` (what the view answered from where) and the request counts.

const BUCKET = 'manifests';

describe('S3 manifests: one GET each, then from the cache on local disk', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  let store: ObjectStore;
  let prefix: string;
  let cacheDir: string;
  const pushed: BuiltManifest[] = [];

  const cacheFile = (digest: string) => join(cacheDir, 's3-manifests', 'sha256', digest.slice(7, 9), digest.slice(7));
  const cachedHexes = async (): Promise<string[]> => {
    const shards = await readdir(join(cacheDir, 's3-manifests', 'sha256')).catch(() => [] as string[]);
    const out: string[] = [];
    for (const s of shards) out.push(...(await readdir(join(cacheDir, 's3-manifests', 'sha256', s))));
    return out.sort();
  };
  /** A dry-run plan of the bucket, removing team/app:v1, with this test's cache. */
  const plan = async (): Promise<PlanJson> => {
    const r = await runRegprune(['prune', '--config', reg.configPath, 'team/app:v1', '--dry-run', '--json'], { env: { REGPRUNE_CACHE_DIR: cacheDir } });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    return JSON.parse(r.stdout) as PlanJson;
  };
  const digestsOf = (p: PlanJson) => ({ tags: p.tags.map((t) => t.digest).sort(), manifests: p.manifests.map((m) => m.digest).sort(), bytes: p.reclaimableBytes });

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

  let first: PlanJson;
  test('first run: one GET per manifest (index children and the signature included), each cached as the bytes pushed', async () => {
    first = await plan();
    expect(first.stats.requests?.['get']).toBe(pushed.length);
    expect(first.stats.manifestsFetched).toBe(pushed.length);
    expect(first.stats.manifestsCached).toBe(0);
    expect(first.stats.linksRead).toBe(0);
    // v1 goes with its signature (its referrer and its tag); the index and its children stay.
    expect(first.tags.map((t) => t.digest).sort()).toEqual([pushed[0]!.digest, pushed[4]!.digest].sort());
    expect(first.manifests.map((m) => m.digest).sort()).toEqual([pushed[0]!.digest, pushed[4]!.digest].sort());
    expect(await cachedHexes()).toEqual(pushed.map((m) => m.digest.slice(7)).sort());
    for (const m of pushed) expect(await readFile(cacheFile(m.digest))).toEqual(m.bytes);
  });

  test('second run: no GET, the same plan; a new push costs exactly one GET', async () => {
    const again = await plan();
    expect(again.stats.requests?.['get']).toBe(0);
    expect(again.stats.manifestsCached).toBe(pushed.length);
    expect(digestsOf(again)).toEqual(digestsOf(first));

    const v2 = await pushImage(reg.url, 'team/app', 'v2', { seed: 'm-v2', layers: ['m-base'] });
    const third = await plan();
    expect(third.stats.requests?.['get']).toBe(1);
    expect(third.stats.manifestsFetched).toBe(1);
    expect(third.stats.manifestsCached).toBe(pushed.length);
    expect(await readFile(cacheFile(v2.manifest.digest))).toEqual(v2.manifest.bytes);
    // v2 shares m-base with v1: the same removals, fewer bytes freed.
    expect(digestsOf(third).manifests).toEqual(digestsOf(first).manifests);
    expect(third.reclaimableBytes).toBeLessThan(first.reclaimableBytes);
    first = third;
  });

  test('a cache file that is not its digest\'s bytes (cut short, or altered) is never believed: fetched again and replaced', async () => {
    const victim = pushed[1]!; // the index: wrong bytes would change what it references
    await writeFile(cacheFile(victim.digest), victim.bytes.subarray(0, 40));
    const cut = await plan();
    expect(cut.stats.requests?.['get']).toBe(1);
    expect(digestsOf(cut)).toEqual(digestsOf(first));
    expect(await readFile(cacheFile(victim.digest))).toEqual(victim.bytes);

    // Another manifest's bytes under the index's name: an index with no children would free them.
    await writeFile(cacheFile(victim.digest), pushed[2]!.bytes);
    const altered = await plan();
    expect(altered.stats.requests?.['get']).toBe(1);
    expect(digestsOf(altered)).toEqual(digestsOf(first));
    expect(await readFile(cacheFile(victim.digest))).toEqual(victim.bytes);
  });

  test('a manifest blob in the bucket whose bytes do not hash to its digest: read as the registry reads it, never cached, fetched on every run', async () => {
    // The registry reads a manifest blob without hashing it; garbage-collect marks what these bytes (v1's) reference.
    const fakeHex = 'ab'.repeat(32);
    const revisionKey = `${prefix}docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/${fakeHex}/link`;
    const blobKey = `${prefix}docker/registry/v2/blobs/sha256/ab/${fakeHex}/data`;
    await store.put(blobKey, pushed[0]!.bytes);
    await store.put(revisionKey, `sha256:${fakeHex}`);
    try {
      for (let run = 0; run < 2; run++) {
        const out = await plan();
        expect(out.stats.requests?.['get']).toBe(1);
        expect(out.stats.manifestsFetched).toBe(1);
        expect(digestsOf(out).manifests).toEqual(digestsOf(first).manifests);
        // v1's layers and config stay referenced by the unknown revision: less is freed.
        expect(out.reclaimableBytes).toBeLessThan(first.reclaimableBytes);
        expect(await cachedHexes()).not.toContain(fakeHex);
      }
    } finally {
      await store.delete(revisionKey);
      await store.delete(blobKey);
    }
    // Gone again: the plan is the one before.
    expect(digestsOf(await plan())).toEqual(digestsOf(first));
  });
});
