import { execFileSync } from 'node:child_process';
import { access } from 'node:fs/promises';
import { afterAll, describe, expect, test } from 'vitest';
import { pullAndVerify, pushImage, runGarbageCollect, type PushedImage, type RunningRegistry } from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// The S3 harness itself: OpenStack Swift's S3 API on 127.0.0.1 with the real
// registry's s3 driver on top. If these fail, every S3 test checks nothing.

const BUCKET = 'harness';

describe('S3 harness (Swift + registry s3 driver)', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  let pushed: PushedImage;

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    reg = await startS3Registry(swift, BUCKET);
    pushed = await pushImage(reg.url, 'team/app', 'v1', { seed: 's3-h', layers: ['s3-h/base', 's3-h/top'] });
  });
  afterAll(async () => {
    await reg?.stop();
    await swift?.stop();
  });

  test('a push lands in the bucket under rootdirectory with the filesystem layout', async () => {
    const names = (await swift.listObjects(BUCKET)).map((o) => o.name);
    const hex = pushed.manifest.digest.slice('sha256:'.length);
    expect(names).toContain('reg/docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link');
    expect(names).toContain(`reg/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/${hex}/link`);
    expect(names).toContain(`reg/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
  });

  test('a link written by the registry has the md5 of its content as ETag', async () => {
    const { createHash } = await import('node:crypto');
    const objects = await swift.listObjects(BUCKET, 'reg/docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link');
    expect(objects).toHaveLength(1);
    expect(objects[0]!.hash).toBe(createHash('md5').update(pushed.manifest.digest).digest('hex'));
  });

  test('the pushed image pulls byte for byte, and garbage-collect --dry-run runs on the bucket', async () => {
    await pullAndVerify(reg.url, 'team/app', 'v1');
    const gc = await runGarbageCollect(reg.configPath, ['--dry-run']);
    expect(gc.stderr).not.toMatch(/panic/);
    expect(gc.exitCode).toBe(0);
    expect(gc.stdout).toMatch(/4 blobs marked, 0 blobs and 0 manifests eligible for deletion/);
  });

  test('stop() ends every Swift process (workers too) and removes its temp dir', async () => {
    const other = await startSwift();
    const groupMembers = () =>
      execFileSync('ps', ['-eo', 'pid=,pgid='], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.trim().split(/\s+/).map(Number))
        .filter(([, pgid]) => pgid !== undefined && other.groups.includes(pgid))
        .map(([pid]) => pid);
    // memcached, account, container, object, proxy; Swift servers fork a worker each.
    expect(other.groups).toHaveLength(5);
    expect(groupMembers().length).toBeGreaterThanOrEqual(9);
    await other.stop();
    expect(groupMembers()).toEqual([]);
    await expect(access(other.dir)).rejects.toThrow(/ENOENT/);
    await expect(fetch(`${other.endpoint}/healthcheck`)).rejects.toThrow();
  });

  test('without the Swift packages, start-up fails saying what to install', async () => {
    const path = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      await expect(startSwift()).rejects.toThrow(
        /cannot start OpenStack Swift: missing on PATH: memcached, swift-ring-builder, swift-account-server, .*apt-get install -y swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached/,
      );
    } finally {
      process.env['PATH'] = path;
    }
  });
});
