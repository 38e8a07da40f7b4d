import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { REGPRUNE_BIN, REPO_ROOT, runRegprune } from '../helpers/cli.js';
import { expectManifestStatus, pullAndVerify, pushImage, runGarbageCollect, type RunningRegistry } from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';
import { parseRegistryConfig, type S3StorageConfig } from '../../src/config/registry-config.js';
import { openS3, type ObjectStore } from '../../src/storage/s3/client.js';
import { mapLimit } from '../../src/util/limit.js';

// SIGTERM during an apply on a bucket (a container's PID 1 gets SIGTERM on
// stop), as test/integration/signals.test.ts does on a filesystem: the tags
// in hand are finished (each tag goes whole or not at all: no tag directory
// is left without its current/link), nothing more starts, the bucket's lock
// is released, exit 143; the next run finishes the rest and garbage-collect
// then frees the manifest, while the kept tags pull.

const BUCKET = 'signals';
const TAGS = 400;
const REPOS = 'reg/docker/registry/v2/repositories/';

describe('SIGTERM during an S3 apply', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  let store: ObjectStore;
  let cacheDir: string;
  let keep: string;
  let doomed: string;
  const env = () => ({ REGPRUNE_CACHE_DIR: cacheDir, NO_COLOR: '1' });

  setupSuite(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'regprune-s3-signals-'));
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    reg = await startS3Registry(swift, BUCKET);
    keep = (await pushImage(reg.url, 'app', 'keep', { seed: 'ss-keep', layers: ['ss-base'] })).manifest.digest;
    doomed = (await pushImage(reg.url, 'app', 't0', { seed: 'ss-doomed', layers: ['ss-base', 'ss-doomed/top'] })).manifest.digest;
    const config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'c.yml') as S3StorageConfig;
    store = await openS3(config);
    // Many tags on the doomed manifest, written as the registry writes a tag (index entry, then current/link).
    const hex = doomed.slice('sha256:'.length);
    await mapLimit([...Array(TAGS - 1).keys()].map((i) => `t${i + 1}`), 16, async (t) => {
      await store.put(`${REPOS}app/_manifests/tags/${t}/index/sha256/${hex}/link`, doomed);
      await store.put(`${REPOS}app/_manifests/tags/${t}/current/link`, doomed);
    });
    await reg.stop();
  });

  afterAll(async () => {
    store?.close();
    await reg?.stop();
    await swift?.stop();
    if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
  });

  const tagKeys = async () => (await swift.listObjects(BUCKET, `${REPOS}app/_manifests/tags/`)).map((o) => o.name);
  const tagNames = (keys: readonly string[]) => new Set(keys.map((k) => k.slice(`${REPOS}app/_manifests/tags/`.length).split('/')[0]!));

  test('the tags in hand finish, nothing is half-done, the lock is released, exit 143; the rerun converges', async () => {
    const all = await tagKeys();
    expect(tagNames(all).size).toBe(TAGS + 1);
    const child = execa(process.execPath, [REGPRUNE_BIN, 'prune', '--tag', 't*', '--config', reg.configPath, '--yes', '--quiet'], {
      reject: false,
      cwd: REPO_ROOT,
      stdin: 'ignore',
      env: env(),
      timeout: 120_000,
    });
    // Apply has begun once a tag's objects are gone.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if ((await tagKeys()).length < all.length) break;
      if (Date.now() > deadline) throw new Error('apply never started');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode, r.stderr).toBe(143);
    expect(r.stderr).toContain('regprune: SIGTERM: finishing the entries in hand, then stopping');
    expect(r.stderr).toMatch(/regprune: interrupted \(SIGTERM\): the entries in hand were finished, nothing more was removed/);

    const left = await tagKeys();
    const remaining = [...tagNames(left)].filter((t) => /^t\d+$/.test(t));
    expect(remaining.length, 'stopped before the end').toBeGreaterThan(0);
    expect(remaining.length).toBeLessThan(TAGS);
    // Nothing half-done: every tag left has its current/link and its index entry.
    for (const t of tagNames(left)) {
      expect(left, t).toContain(`${REPOS}app/_manifests/tags/${t}/current/link`);
      expect(left.filter((k) => k.startsWith(`${REPOS}app/_manifests/tags/${t}/index/`)), t).toHaveLength(1);
    }
    // The manifest is still there (its tags were not all removed), and the bucket's lock is released.
    expect(await store.head(`${REPOS}app/_manifests/revisions/sha256/${doomed.slice(7)}/link`)).toBeDefined();
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/locks/')).map((o) => o.name)).toEqual([]);

    const again = await runRegprune(['prune', '--tag', 't*', '--config', reg.configPath, '--yes', '--json'], { env: env(), timeoutMs: 120_000 });
    expect(again.exitCode, again.stderr).toBe(0);
    const out = JSON.parse(again.stdout) as { results: { tags: Record<string, number>; manifests: Record<string, number> } };
    expect(out.results.tags).toEqual({ removed: remaining.length, missing: 0, changed: 0, failed: 0 });
    expect(out.results.manifests['removed']).toBe(1);
    expect([...tagNames(await tagKeys())]).toEqual(['keep']);
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);

    const gc = await runGarbageCollect(reg.configPath, []);
    expect(gc.exitCode, gc.stderr).toBe(0);
    await reg.restart();
    expect((await pullAndVerify(reg.url, 'app', 'keep')).digest).toBe(keep);
    await expectManifestStatus(reg.url, 'app', 't1', 404);
    await expectManifestStatus(reg.url, 'app', doomed, 404);
  }, 300_000);
});
