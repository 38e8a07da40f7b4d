import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { runRegprune } from '../helpers/cli.js';
import { expectManifestStatus, pullAndVerify, pushImage, runGarbageCollect, startRegistry, type BuiltManifest, type RunningRegistry } from '../helpers/registry.js';
import { comparablePlan, type PlanJson } from '../helpers/plan-json.js';
import { setupSuite } from '../helpers/suite.js';
import { startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// Age and keep-last selection on a bucket: push time is the LastModified of
// a tag's current/link. The same tags are pushed to a filesystem registry and
// to one on a Swift bucket in two rounds more than a minute apart, so that
// `--older-than 1m` splits them for real; `--keep-last 2` then keeps the
// newest of the old round (pushed a second after the others: S3's
// LastModified has one-second resolution). The bucket's prune removes what
// the filesystem's selects, garbage-collect frees the predicted bytes, and
// every kept tag pulls.

const BUCKET = 'ages';
const ARGS = ['--older-than', '1m', '--keep-last', '2', '--json'];

const selected = (p: PlanJson) => p.tags.map((t) => `${t.repository}:${t.tag}`).sort();
// Reasons name the push date, which differs between the two pushes of each tag.
const comparable = (p: PlanJson) => comparablePlan(p, { reason: (r) => r.replace(/\(pushed [^)]*\)/, '') });

describe('prune --older-than --keep-last --config on a bucket selects and frees what it does on a filesystem', () => {
  let swift: RunningSwift;
  let s3reg: RunningRegistry;
  let fsreg: RunningRegistry;
  let cacheDir: string;
  const manifests = new Map<string, BuiltManifest>();
  let oldDone: number;
  const env = () => ({ REGPRUNE_CACHE_DIR: cacheDir });

  /** One push to both registries at once (their push times then differ by the same little). */
  const push = async (repo: string, tag: string, layers: string[]) => {
    const [p] = await Promise.all([pushImage(s3reg.url, repo, tag, { seed: `age/${repo}/${tag}`, layers }), pushImage(fsreg.url, repo, tag, { seed: `age/${repo}/${tag}`, layers })]);
    manifests.set(`${repo}:${tag}`, p.manifest);
  };
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  setupSuite(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'regprune-s3-age-'));
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    [s3reg, fsreg] = await Promise.all([startS3Registry(swift, BUCKET), startRegistry()]);
    // Round 1 (old): a1-a3 and b1-b2, then a second later a4 and b3 (the newest old ones).
    for (const t of ['a1', 'a2', 'a3']) await push('a', t, ['age/base', `age/a/${t}`]);
    for (const t of ['b1', 'b2']) await push('b', t, ['age/base', `age/b/${t}`]);
    await pause(1100);
    await push('a', 'a4', ['age/base', 'age/a/a4']);
    await push('b', 'b3', ['age/base', 'age/b/b3']);
    oldDone = Date.now();
  });

  /** Round 2 (new), over a minute after round 1: a5 and b4. */
  const roundTwo = async () => {
    await pause(Math.max(0, oldDone + 62_000 - Date.now()));
    await push('a', 'a5', ['age/base', 'age/a/a5']);
    await push('b', 'b4', ['age/base', 'age/b/b4']);
  };

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && s3reg !== undefined) console.error(`--- s3 registry output ---\n${s3reg.logs()}`);
  });

  afterAll(async () => {
    await s3reg?.stop();
    await fsreg?.stop();
    await swift?.stop();
    if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
  });

  test('the same selection and bytes as on the filesystem; applied, garbage-collect frees them; every kept tag pulls', async () => {
    await roundTwo();
    const onFs = await runRegprune(['prune', ...ARGS, '--root', fsreg.root, '--dry-run', '--verbose']);
    const onS3 = await runRegprune(['prune', ...ARGS, '--config', s3reg.configPath, '--dry-run', '--verbose'], { env: env() });
    expect(onFs.exitCode, onFs.stderr).toBe(0);
    expect(onS3.exitCode, onS3.stderr).toBe(0);
    const a = JSON.parse(onFs.stdout) as PlanJson;
    const b = JSON.parse(onS3.stdout) as PlanJson;
    expect(selected(b)).toEqual(['a:a1', 'a:a2', 'a:a3', 'b:b1', 'b:b2']);
    expect(b.tags.every((t) => t.reason.startsWith('older than 1m'))).toBe(true);
    // The newest old tag of each repository is kept by --keep-last; the new round is not old enough.
    expect((b.kept ?? []).filter((t) => t.reason === 'kept: --keep-last 2').map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(['a:a4', 'b:b3']);
    expect((b.kept ?? []).map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(['a:a4', 'a:a5', 'b:b3', 'b:b4']);
    expect(b.manifests.map((m) => m.digest).sort()).toEqual(selected(b).map((k) => manifests.get(k)!.digest).sort());
    expect(b.reclaimableBytes).toBeGreaterThan(0);
    expect(comparable(b)).toEqual(comparable(a));

    await s3reg.stop();
    const blobBytes = async () => (await swift.listObjects(BUCKET, 'reg/docker/registry/v2/blobs/')).reduce((n, o) => n + o.bytes, 0);
    const before = await blobBytes();
    const run = await runRegprune(['prune', ...ARGS, '--config', s3reg.configPath, '--yes'], { env: env() });
    expect(run.exitCode, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as PlanJson;
    expect(selected(out)).toEqual(selected(b));
    expect(out.reclaimableBytes).toBe(b.reclaimableBytes);
    expect(out.results?.tags).toEqual({ removed: 5, missing: 0, changed: 0, failed: 0 });
    expect(out.results?.manifests['removed']).toBe(5);
    expect((await swift.listObjects(BUCKET, 'reg/.regprune/')).map((o) => o.name)).toEqual([]);

    const gc = await runGarbageCollect(s3reg.configPath, []);
    expect(gc.exitCode, `${gc.stdout}\n${gc.stderr}`).toBe(0);
    expect(before - (await blobBytes())).toBe(out.reclaimableBytes + out.unreferencedBytes);

    await s3reg.restart();
    for (const [key, m] of manifests) {
      const [repo, tag] = key.split(':') as [string, string];
      if (selected(out).includes(key)) await expectManifestStatus(s3reg.url, repo, tag, 404);
      else expect((await pullAndVerify(s3reg.url, repo, tag)).digest, key).toBe(m.digest);
    }
  }, 300_000);
});
