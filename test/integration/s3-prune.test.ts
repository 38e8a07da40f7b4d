import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { REGPRUNE_BIN, runRegprune } from '../helpers/cli.js';
import { expectManifestStatus, pullAndVerify, pushImage, runGarbageCollect, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { pushSample, type Sample } from '../helpers/sample.js';
import { comparablePlan, type PlanJson } from '../helpers/plan-json.js';
import { setupSuite } from '../helpers/suite.js';
import { s3StorageYaml, startS3Registry, startSwift, type RunningSwift, type SwiftObject } from '../helpers/swift.js';
import { parseRegistryConfig, type S3StorageConfig } from '../../src/config/registry-config.js';
import { openS3 } from '../../src/storage/s3/client.js';

// prune, du and check with --config on a bucket, mirroring the filesystem: the
// same sample pushed to a filesystem registry and to an s3 one (Swift's S3 API)
// gives the same plan; applied on the bucket, garbage-collect frees exactly the
// predicted bytes and everything kept pulls byte for byte.

const BUCKET = 'pruning';
const SEED = ['i1:T12', 'i2:T22', 'i5:T52'];

const listingOf = (objects: readonly SwiftObject[]) => objects.map((o) => `${o.name} ${o.bytes} ${o.hash} ${o.last_modified}`);

describe('prune --config on S3 (Swift), against the same sample on a filesystem', () => {
  let swift: RunningSwift;
  let s3reg: RunningRegistry;
  let fsreg: RunningRegistry;
  let sample: Sample;
  let cacheDir: string;
  const env = () => ({ REGPRUNE_CACHE_DIR: cacheDir });

  setupSuite(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'regprune-s3-cache-'));
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    s3reg = await startS3Registry(swift, BUCKET);
    fsreg = await startRegistry();
    sample = await pushSample(s3reg.url);
    await pushSample(fsreg.url);
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && s3reg !== undefined) console.error(`--- s3 registry output ---\n${s3reg.logs()}`);
  });

  afterAll(async () => {
    await s3reg?.stop();
    await fsreg?.stop();
    await swift?.stop();
    if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
  });

  test('the seed dry run: the same plan as on the filesystem; the bucket listing is byte-identical after', async () => {
    const before = listingOf(await swift.listObjects(BUCKET));
    const onFs = await runRegprune(['prune', ...SEED, '--root', fsreg.root, '--dry-run', '--json']);
    const onS3 = await runRegprune(['prune', ...SEED, '--config', s3reg.configPath, '--dry-run', '--json'], { env: env() });
    expect(onFs.exitCode, onFs.stderr).toBe(0);
    expect(onS3.exitCode, onS3.stderr).toBe(0);
    expect(onS3.stderr).toBe('');
    const a = JSON.parse(onFs.stdout) as PlanJson;
    const b = JSON.parse(onS3.stdout) as PlanJson;
    expect(b.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(SEED);
    expect(b.reclaimableBytes).toBeGreaterThan(0);
    expect(comparablePlan(b)).toEqual(comparablePlan(a));
    expect(b.root).toBe(`s3://${BUCKET}/reg`);
    // Listing first: no link read, no write; manifests fetched once each on the first run.
    // Lists: pages of 1000 keys of docker/registry/v2/, and one of regprune's (empty) .regprune/.
    const st = b.stats;
    expect(st.requests?.['put']).toBe(0);
    expect(st.requests?.['delete']).toBe(0);
    expect(st.requests?.['list']).toBe(Math.ceil((st.keys ?? 0) / 1000) + 1);
    expect(st.linksRead).toBe(0);
    expect(st.linksProven).toBeGreaterThan(0);
    expect(st.requests?.['get']).toBe(st.manifestsFetched);
    expect(listingOf(await swift.listObjects(BUCKET))).toEqual(before);

    // A second run reads every manifest from the local cache: list requests only.
    const again = await runRegprune(['prune', ...SEED, '--config', s3reg.configPath, '--dry-run', '--json'], { env: env() });
    const c = JSON.parse(again.stdout) as PlanJson;
    expect(comparablePlan(c)).toEqual(comparablePlan(b));
    expect(c.stats.requests).toEqual({ list: st.requests?.['list'], get: 0, head: 0, put: 0, delete: 0 });
    expect(c.stats.manifestsCached).toBe(st.manifestsFetched);
    expect(listingOf(await swift.listObjects(BUCKET))).toEqual(before);
  });

  test('du and check --config give what they give on the filesystem', async () => {
    const duFs = JSON.parse((await runRegprune(['du', '--root', fsreg.root, '--json'])).stdout) as Record<string, unknown>;
    const duS3run = await runRegprune(['du', '--config', s3reg.configPath, '--json'], { env: env() });
    expect(duS3run.exitCode, duS3run.stderr).toBe(0);
    const duS3 = JSON.parse(duS3run.stdout) as Record<string, unknown>;
    for (const k of ['repositories', 'blobStore', 'exclusiveBytes', 'sharedBytes', 'unreferenced']) expect(duS3[k], k).toEqual(duFs[k]);
    expect(duS3['root']).toBe(`s3://${BUCKET}/reg`);
    const checkS3 = await runRegprune(['check', '--config', s3reg.configPath, '--json'], { env: env() });
    expect(checkS3.exitCode, checkS3.stdout).toBe(0);
    expect((JSON.parse(checkS3.stdout) as { ok: boolean }).ok).toBe(true);
  });

  test('prune --policy --config --dry-run: the same plan as on the filesystem (policy selections, untagged manifests)', async () => {
    const policy = join(cacheDir, 'policy.yaml');
    await writeFile(
      policy,
      ['rules:', '  - repositories: ["i1"]', '    tags: ["T1*"]', '    keep: ["T13"]', '    untagged: true', '  - repositories: ["team/**"]', '    tags: ["pr-*", "main-*"]', ''].join('\n'),
    );
    const onFs = await runRegprune(['prune', '--policy', policy, '--root', fsreg.root, '--dry-run', '--json']);
    const onS3 = await runRegprune(['prune', '--policy', policy, '--config', s3reg.configPath, '--dry-run', '--json'], { env: env() });
    expect(onFs.exitCode, onFs.stderr).toBe(0);
    expect(onS3.exitCode, onS3.stderr).toBe(0);
    const a = JSON.parse(onFs.stdout) as PlanJson;
    const b = JSON.parse(onS3.stdout) as PlanJson;
    expect(b.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(['i1:T11', 'i1:T12', 'team/app/api:main-7', 'team/app:main-41', 'team/app:main-42', 'team/app:pr-17']);
    expect(b.manifests.some((m) => m.reason.includes('untagged'))).toBe(true);
    expect(comparablePlan(b)).toEqual(comparablePlan(a));
  });

  test('the seed applied on the bucket: exactly those tags go; garbage-collect frees the predicted bytes; everything kept pulls after a restart', async () => {
    await s3reg.stop();
    const blobBytes = async () => (await swift.listObjects(BUCKET, 'reg/docker/registry/v2/blobs/')).reduce((n, o) => n + o.bytes, 0);
    const before = await blobBytes();
    const run = await runRegprune(['prune', ...SEED, '--config', s3reg.configPath, '--yes', '--json'], { env: env() });
    expect(run.exitCode, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as PlanJson;
    expect(out.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(SEED);
    expect(out.results?.tags).toEqual({ removed: 3, missing: 0, changed: 0, failed: 0 });
    expect(out.results?.manifests['failed']).toBe(0);
    expect(out.stats.requests?.['delete']).toBeGreaterThan(0);
    // Nothing of regprune's is left in the bucket: no journal, no lock.
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);

    const listed = JSON.parse((await runRegprune(['list', '--config', s3reg.configPath, '--json'], { env: env() })).stdout) as { tags: Array<{ repository: string; tag: string }> };
    expect(listed.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual([...sample.tags.keys()].filter((k) => !SEED.includes(k)).sort());

    const gc = await runGarbageCollect(s3reg.configPath, []);
    expect(gc.exitCode, `${gc.stdout}\n${gc.stderr}`).toBe(0);
    expect(out.unreferencedBytes).toBe(0);
    expect(before - (await blobBytes())).toBe(out.reclaimableBytes);

    await s3reg.restart();
    for (const [key, t] of sample.tags) {
      if (SEED.includes(key)) await expectManifestStatus(s3reg.url, t.repository, t.tag, 404);
      else expect((await pullAndVerify(s3reg.url, t.repository, t.tag)).digest, key).toBe(t.manifest.digest);
    }
    for (const u of sample.untagged) await pullAndVerify(s3reg.url, u.repository, u.manifest.digest);
  });

  test('a lock held by a run on another host refuses a run here, which touches nothing and leaves that lock alone', async () => {
    const config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'config.yml') as S3StorageConfig;
    const store = await openS3(config);
    const key = `reg/.regprune/locks/${Date.now().toString().padStart(15, '0')}-elsewhere`;
    try {
      await store.put(key, `${JSON.stringify({ pid: 4242, hostname: 'replica-b.example', startedAt: '2026-11-29T03:00:00.000Z', id: 'elsewhere' })}\n`);
      const before = listingOf(await swift.listObjects(BUCKET, 'reg/docker/'));
      const refused = await runRegprune(['prune', 'team/app:pr-17', '--config', s3reg.configPath, '--yes', '--json'], { env: env() });
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain('regprune: another regprune run holds the lock on s3://pruning/reg (pid 4242 on replica-b.example, started 2026-11-29T03:00:00.000Z)');
      expect(listingOf(await swift.listObjects(BUCKET, 'reg/docker/'))).toEqual(before);
      // Its own lock object is gone again; the other host's stays.
      expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([key]);
    } finally {
      await store.delete(key);
      store.close();
    }
  });

  test('two overlapping runs: never both remove; the later is refused or finds the tag already gone', async () => {
    const args = ['prune', 'team/app:pr-17', '--config', s3reg.configPath, '--yes', '--json'];
    const [x, y] = await Promise.all([runRegprune(args, { env: env() }), runRegprune(args, { env: env() })]);
    const outcome = (r: { exitCode: number; stdout: string; stderr: string }) =>
      r.exitCode === 0 ? `removed ${(JSON.parse(r.stdout) as PlanJson).results?.tags['removed']}` : /another regprune run holds the lock/.test(r.stderr) ? 'refused' : r.exitCode === 1 && /MISSING|not found/.test(r.stdout + r.stderr) ? 'gone' : `exit ${r.exitCode}: ${r.stderr}`;
    const got = [outcome(x), outcome(y)].sort();
    expect([['refused', 'removed 1'], ['gone', 'removed 1']]).toContainEqual(got);
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);
    await expectManifestStatus(s3reg.url, 'team/app', 'pr-17', 404);
    const t = sample.tags.get('team/app:main-41')!;
    expect((await pullAndVerify(s3reg.url, t.repository, t.tag)).digest).toBe(t.manifest.digest);
  });

  test('restore --config puts back what a logged prune removed from the bucket', async () => {
    const log = join(cacheDir, 'audit.log');
    const run = await runRegprune(['prune', 'team/app:main-41', '--config', s3reg.configPath, '--yes', '--json', '--log', log], { env: env() });
    expect(run.exitCode, run.stderr).toBe(0);
    await expectManifestStatus(s3reg.url, 'team/app', 'main-41', 404);
    const dry = await runRegprune(['restore', log, '--config', s3reg.configPath, '--dry-run', '--json'], { env: env() });
    expect(dry.exitCode, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { root: string; tags: Array<{ tag: string; action: string }> };
    expect(plan.root).toBe(`s3://${BUCKET}/reg`);
    expect(plan.tags.map((t) => `${t.tag} ${t.action}`)).toEqual(['main-41 restore']);
    const r = await runRegprune(['restore', log, '--config', s3reg.configPath, '--yes', '--json'], { env: env() });
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { tags: Array<{ tag: string; result: string }>; manifests: Array<{ result: string }> };
    expect(out.tags.map((t) => `${t.tag} ${t.result}`)).toEqual(['main-41 restored']);
    expect(out.manifests.map((m) => m.result)).toEqual(['restored']);
    const t = sample.tags.get('team/app:main-41')!;
    expect((await pullAndVerify(s3reg.url, t.repository, t.tag)).digest).toBe(t.manifest.digest);
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);
  });

  test('prune --gc local --config and gc local --config: the registry\'s garbage-collect runs on the bucket with the same file and frees the predicted bytes', async () => {
    await s3reg.stop();
    const blobBytes = async () => (await swift.listObjects(BUCKET, 'reg/docker/registry/v2/blobs/')).reduce((n, o) => n + o.bytes, 0);
    // AWS_CA_BUNDLE makes the 2.8 s3 driver panic at start (/work/shared/S3.md): unset for the registry regprune runs.
    const gcEnv = { ...env(), AWS_CA_BUNDLE: '' };
    const before = await blobBytes();
    const run = await runRegprune(['prune', 'team/app/api:v1.0.0', '--config', s3reg.configPath, '--gc', 'local', '--yes', '--json'], { env: gcEnv });
    expect(run.exitCode, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as PlanJson & { gc: { freedBytes: number; configUsed: string; exitCode: number; command: string[] } };
    expect(out.reclaimableBytes).toBeGreaterThan(0);
    expect(out.gc.exitCode).toBe(0);
    expect(out.gc.configUsed).toBe(s3reg.configPath);
    expect(out.gc.command).not.toContain('-m');
    // What the previous test's prune left unreferenced (it ran no garbage-collect) goes too: predicted apart.
    expect(out.unreferencedBytes).toBeGreaterThan(0);
    expect(out.exact).toBe(true);
    expect(out.gc.freedBytes).toBe(out.reclaimableBytes + out.unreferencedBytes);
    expect(before - (await blobBytes())).toBe(out.reclaimableBytes + out.unreferencedBytes);
    // Again: nothing left to free.
    const gc = await runRegprune(['gc', 'local', '--config', s3reg.configPath, '--json'], { env: gcEnv });
    expect(gc.exitCode, gc.stderr).toBe(0);
    const g = JSON.parse(gc.stdout) as { root: string; gc: { freedBytes: number; exitCode: number }; stats: { requests: Record<string, number> } };
    expect(g.root).toBe(`s3://${BUCKET}/reg`);
    expect(g.gc).toMatchObject({ exitCode: 0, freedBytes: 0 });
    expect(g.stats.requests['list']).toBeGreaterThan(0);
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);
    // Another config file for garbage-collect than the one naming the bucket: refused before anything happens.
    const other = await runRegprune(['gc', 'local', '--config', s3reg.configPath, '--gc-config', '/etc/hostname'], { env: gcEnv });
    expect(other.exitCode).toBe(2);
    expect(other.stderr).toMatch(/with an s3 --config, garbage-collect runs locally with that same file/);
    await s3reg.restart();
    await expectManifestStatus(s3reg.url, 'team/app/api', 'v1.0.0', 404);
    for (const key of ['team/app/api:v1.2.3', 'team/app/api:latest', 'team/app:latest']) {
      const t = sample.tags.get(key)!;
      expect((await pullAndVerify(s3reg.url, t.repository, t.tag)).digest, key).toBe(t.manifest.digest);
    }
  });

  test('kill -9 mid-apply, then the same run again: it converges (journal finished, lock taken over, nothing half-deleted, kept tags pull)', async () => {
    await swift.createBucket('crash');
    const reg = await startS3Registry(swift, 'crash');
    try {
      const pushed = new Map<string, string>();
      for (const repo of ['c/one', 'c/two']) {
        for (let t = 0; t < 12; t++) {
          const p = await pushImage(reg.url, repo, `b${t}`, { seed: `crash/${repo}/${t}`, layers: [`crash/base`, `crash/${repo}/${t}`] });
          pushed.set(`${repo}:b${t}`, p.manifest.digest);
        }
      }
      const doomed = [...pushed.keys()].filter((k) => Number(k.split(':b')[1]) < 9);
      const args = ['prune', ...doomed, '--config', reg.configPath, '--yes', '--json', '--quiet'];
      const child = execa(process.execPath, [REGPRUNE_BIN, ...args], { reject: false, env: { ...env(), NO_COLOR: '1' }, stdin: 'ignore' });
      // Killed as soon as its journal object is in the bucket: deletions are under way.
      const t0 = Date.now();
      let journaled = false;
      while (!journaled && Date.now() - t0 < 30_000) {
        journaled = (await swift.listObjects('crash', 'reg/.regprune/pending-manifests.json')).length > 0;
        if (!journaled) await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGKILL');
      const killed = await child;
      expect(journaled, killed.stderr).toBe(true);
      expect(killed.signal).toBe('SIGKILL');
      // Killed mid-run: its journal and its lock object are still in the bucket, for the rerun to deal with.
      const state = (await swift.listObjects('crash', 'reg/.regprune/')).map((o) => o.name);
      expect(state).toContain('reg/.regprune/pending-manifests.json');
      expect(state.some((n) => n.startsWith('reg/.regprune/locks/'))).toBe(true);

      const rerun = await runRegprune(args, { env: env() });
      // Named tags the first run already removed are reported missing (exit 1); nothing failed.
      expect([0, 1], rerun.stderr).toContain(rerun.exitCode);
      const out = JSON.parse(rerun.stdout) as PlanJson;
      expect(out.results?.tags['failed']).toBe(0);
      expect(out.results?.manifests['failed']).toBe(0);
      expect((await swift.listObjects('crash', 'reg/.regprune/')).map((o) => o.name)).toEqual([]);
      const check = await runRegprune(['check', '--config', reg.configPath, '--json'], { env: env() });
      expect(check.exitCode, check.stdout).toBe(0);
      // No tag directory is left without its current/link.
      const tagKeys = (await swift.listObjects('crash', 'reg/docker/registry/v2/repositories/')).map((o) => o.name).filter((n) => n.includes('/_manifests/tags/'));
      const tagDirs = new Set(tagKeys.map((n) => n.replace(/\/(current|index)\/.*$/, '')));
      for (const d of tagDirs) expect(tagKeys, d).toContain(`${d}/current/link`);

      await reg.stop();
      const gc = await runGarbageCollect(reg.configPath, []);
      expect(gc.exitCode, gc.stderr).toBe(0);
      await reg.restart();
      for (const [key, digest] of pushed) {
        const [repo, tag] = key.split(':') as [string, string];
        if (doomed.includes(key)) await expectManifestStatus(reg.url, repo, tag, 404);
        else expect((await pullAndVerify(reg.url, repo, tag)).digest, key).toBe(digest);
      }
    } finally {
      await reg.stop();
    }
  });

  test('pushes during apply survive: tags pushed onto manifests being removed, and new tags, all pull after garbage-collect', async () => {
    await swift.createBucket('racing');
    const reg = await startS3Registry(swift, 'racing');
    try {
      const images = new Map<string, Awaited<ReturnType<typeof pushImage>>>();
      for (let t = 0; t < 16; t++) images.set(`r:v${t}`, await pushImage(reg.url, 'r', `v${t}`, { seed: `race/${t}`, layers: ['race/base', `race/${t}`] }));
      const doomed = [...images.keys()];
      const run = runRegprune(['prune', ...doomed, '--config', reg.configPath, '--yes', '--json', '--quiet'], { env: env() });
      // Once the plan is made (its journal object is written), push while it removes: two doomed tags
      // again, then every doomed image under a new tag. A tag pushed after the plan must survive.
      const survivors: Array<[string, string]> = [];
      const pushes = (async () => {
        const t0 = Date.now();
        while ((await swift.listObjects('racing', 'reg/.regprune/pending-manifests.json')).length === 0) {
          if (Date.now() - t0 > 30_000) throw new Error('the prune never journaled its plan');
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const t of ['v3', 'v12']) {
          const image = images.get(`r:${t}`)!;
          await pushImage(reg.url, 'r', t, image);
          survivors.push([t, image.manifest.digest]);
        }
        for (const [key, image] of images) {
          const t = key.split(':')[1]!;
          await pushImage(reg.url, 'r', `keep-${t}`, image);
          survivors.push([`keep-${t}`, image.manifest.digest]);
        }
      })();
      const [r] = await Promise.all([run, pushes]);
      expect(r.exitCode, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as PlanJson & { notRemoved: { tags: Array<{ tag: string; result: string }>; manifests: unknown[] } };
      expect(out.results?.tags['failed']).toBe(0);
      expect(out.results?.manifests['failed']).toBe(0);

      await reg.stop();
      const gc = await runGarbageCollect(reg.configPath, []);
      expect(gc.exitCode, gc.stderr).toBe(0);
      await reg.restart();
      for (const [tag, digest] of survivors) expect((await pullAndVerify(reg.url, 'r', tag)).digest, tag).toBe(digest);
    } finally {
      await reg.stop();
    }
  });
});
