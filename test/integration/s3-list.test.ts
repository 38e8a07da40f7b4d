import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runRegprune } from '../helpers/cli.js';
import { pushImage, pushIndex, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// `regprune list --config <the registry's config.yml>` end to end: the real
// registry's s3 driver writes to a Swift bucket over HTTP pushes, and regprune
// lists the bucket from the same config file.

const BUCKET = 'listing';

interface ListJson {
  version: number;
  root: string;
  tags: Array<{ repository: string; tag: string; digest: string; pushedAt: string }>;
  repositories: number;
  warnings: number;
  stats?: { keys: number; linksRead: number; requests: Record<string, number>; retries: number };
}

describe('regprune list --config on S3', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  const pushed: Array<{ repository: string; tag: string; digest: string }> = [];

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    reg = await startS3Registry(swift, BUCKET);
    const add = (repository: string, tag: string, digest: string) => pushed.push({ repository, tag, digest });
    add('team/app', 'v1', (await pushImage(reg.url, 'team/app', 'v1', { seed: 'l-v1', layers: ['l-base'] })).manifest.digest);
    add('team/app', 'v2', (await pushImage(reg.url, 'team/app', 'v2', { seed: 'l-v2', layers: ['l-base'] })).manifest.digest);
    const multi = await pushIndex(reg.url, 'team/app/api', 'multi', {
      children: [
        { seed: 'l-amd64', platform: { os: 'linux', architecture: 'amd64' } },
        { seed: 'l-arm64', platform: { os: 'linux', architecture: 'arm64' } },
      ],
    });
    add('team/app/api', 'multi', multi.manifest.digest);
    add('solo', 'latest', (await pushImage(reg.url, 'solo', 'latest', { seed: 'l-solo', format: 'oci' })).manifest.digest);
  });
  afterAll(async () => {
    await reg?.stop();
    await swift?.stop();
  });

  test('--json lists exactly the pushed tags and digests, with request counts in stats, nothing on stderr', async () => {
    const r = await runRegprune(['list', '--config', reg.configPath, '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as ListJson;
    const key = (t: { repository: string; tag: string }) => `${t.repository}:${t.tag}`;
    expect(out.tags.map(({ repository, tag, digest }) => ({ repository, tag, digest })).sort((a, b) => key(a).localeCompare(key(b)))).toEqual(
      [...pushed].sort((a, b) => key(a).localeCompare(key(b))),
    );
    expect(out.root).toBe(`s3://${BUCKET}/reg`);
    expect(out.repositories).toBe(3);
    expect(out.warnings).toBe(0);
    // Pages of 1000 keys of docker/registry/v2/ (regprune's .regprune/ is not read by list).
    expect(out.stats?.requests).toEqual({ list: Math.ceil(out.stats!.keys / 1000), get: 0, head: 0, put: 0, delete: 0 });
    expect(out.stats?.linksRead).toBe(0);
    expect(out.stats?.retries).toBe(0);
    for (const t of out.tags) expect(Math.abs(Date.parse(t.pushedAt) - Date.now())).toBeLessThan(10 * 60_000);
  });

  test('the table lists the same tags; --repo filters as on a filesystem', async () => {
    const r = await runRegprune(['list', '--config', reg.configPath, '--repo', 'team/**']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^REPOSITORY +TAG +DIGEST +PUSHED\n/);
    expect(r.stdout).toMatch(/team\/app\/api +multi +sha256:/);
    expect(r.stdout).not.toMatch(/solo/);
    expect(r.stdout).toMatch(/3 tags in 2 repositories\n$/);
  });

  test('REGISTRY_STORAGE_S3_BUCKET in the environment overrides the file, as for the registry', async () => {
    await swift.createBucket('empty');
    const r = await runRegprune(['list', '--config', reg.configPath, '--json'], { env: { REGISTRY_STORAGE_S3_BUCKET: 'empty' } });
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as ListJson;
    expect(out.root).toBe('s3://empty/reg');
    expect(out.tags).toEqual([]);
  });

  test('a bucket that does not exist: a failure naming the bucket', async () => {
    const r = await runRegprune(['list', '--config', reg.configPath], { env: { REGISTRY_STORAGE_S3_BUCKET: 'nosuchbucket' } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^regprune: listing s3:\/\/nosuchbucket\/reg\/docker\/registry\/v2\/ \(bucket nosuchbucket\): HTTP 404 NoSuchBucket/);
    expect(r.stderr).toMatch(/\nhint: check storage\.s3\.bucket in the config \(and REGISTRY_STORAGE_S3_BUCKET in the environment\)\n$/);
  });

  test('du, check and prune --dry-run on a bucket that does not exist fail naming it, as list does', async () => {
    for (const args of [['du'], ['check'], ['prune', 'team/app:v1', '--dry-run']]) {
      const r = await runRegprune([...args, '--config', reg.configPath], { env: { REGISTRY_STORAGE_S3_BUCKET: 'nosuchbucket' } });
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(1);
      expect(r.stderr, args[0]).toMatch(/^regprune: listing s3:\/\/nosuchbucket\/reg\/docker\/registry\/v2\/ \(bucket nosuchbucket\): HTTP 404 NoSuchBucket/);
    }
  });
});

describe('regprune list --config (not S3)', () => {
  let reg: RunningRegistry;
  setupSuite(async () => {
    reg = await startRegistry();
    await pushImage(reg.url, 'team/app', 'v1', { seed: 'lf-v1' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  test('a filesystem config lists the same as --root on its rootdirectory', async () => {
    const a = await runRegprune(['list', '--config', reg.configPath, '--json']);
    const b = await runRegprune(['list', '--root', reg.root, '--json']);
    expect(a.exitCode).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect((JSON.parse(a.stdout) as ListJson).tags).toHaveLength(1);
  });

  test('prune --dry-run, du and check with a filesystem config give what --root gives', async () => {
    for (const args of [['prune', 'team/app:v1', '--dry-run', '--json'], ['du', '--json'], ['check', '--json']]) {
      const a = await runRegprune([...args, '--config', reg.configPath]);
      const b = await runRegprune([...args, '--root', reg.root]);
      expect(a.exitCode, a.stderr).toBe(0);
      const strip = (text: string) => ({ ...(JSON.parse(text) as Record<string, unknown>), createdAt: null });
      expect(strip(a.stdout), args[0]).toEqual(strip(b.stdout));
    }
  });

  test('--config with --root is a usage error', async () => {
    const r = await runRegprune(['list', '--config', reg.configPath, '--root', reg.root]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--config and --root both say where the storage is; give one/);
  });

  test('another driver is a usage error naming it; a missing file names the path', async () => {
    const gcs = join(reg.root, '..', 'gcs.yml');
    await writeFile(gcs, 'version: 0.1\nstorage:\n  gcs:\n    bucket: b\n');
    const r = await runRegprune(['list', '--config', gcs]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(`regprune: --config ${gcs}: storage driver "gcs" is not supported by regprune (filesystem and s3 are)\n`);
    const missing = await runRegprune(['list', '--config', '/nonexistent/config.yml']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/--config \/nonexistent\/config\.yml: cannot read the registry configuration: no such file/);
  });
});
