import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fg from 'fast-glob';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { applyAges, type AppliedAge } from '../../fixtures/ages.mjs';
import { runRegprune } from '../helpers/cli.js';
import {
  blobStoreBytes,
  expectManifestStatus,
  pullAndVerify,
  runGarbageCollect,
  startRegistry,
  tagsOnDisk,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { buildSample } from '../helpers/sample.js';

// The built CLI on a copy of the bundled sample, checked against the real
// registry: what the demo shows, then applied, then garbage-collected.
// Needs the build (test/run.sh and `npm run demo` build first).

const FIXTURE = fileURLToPath(new URL('../../fixtures/sample-registry', import.meta.url));
const AGES = fileURLToPath(new URL('../../fixtures/sample-ages.json', import.meta.url));
const sample = buildSample();

// What fixtures/README.md says `--older-than 30d --keep-last 2` selects.
const SELECTED = [
  'i1:T11',
  'i1:T12',
  'i1:T13',
  'i2:T21',
  'i2:T22',
  'team/app/api:v1.0.0',
  'team/app/api:v1.2.3',
  'team/app:main-41',
  'team/app:pr-17',
].sort();
const DEMO = ['--older-than', '30d', '--keep-last', '2'];

interface PlanJson {
  version: number;
  tags: Array<{ repository: string; tag: string; digest: string; pushedAt: string; reason: string }>;
  reclaimableBytes: number;
}

async function treeSnapshot(root: string): Promise<string[]> {
  const files = await fg('**', { cwd: root, dot: true, ignore: ['.regprune/**'] });
  return Promise.all(files.sort().map(async (f) => `${f} ${(await readFile(join(root, f))).toString('base64')}`));
}

describe('regprune on the sample registry', () => {
  let copy: string;
  let applied: AppliedAge[];
  let reg: RunningRegistry | undefined;

  setupSuite(async () => {
    copy = await mkdtemp(join(tmpdir(), 'regprune-sample-cli-'));
    await cp(FIXTURE, copy, { recursive: true });
    // The CLI reads the real clock; no age is within days of 30d, so this is stable.
    applied = await applyAges(copy, AGES, new Date());
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && reg !== undefined) console.error(`--- registry output ---\n${reg.logs()}`);
  });

  afterAll(async () => {
    await reg?.stop();
    if (copy !== undefined) await rm(copy, { recursive: true, force: true });
  });

  test('list --json reports every tag with its digest and push time', async () => {
    const run = await runRegprune(['list', '--root', copy, '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { version: number; tags: PlanJson['tags'] };
    expect(out.version).toBe(1);
    const got = Object.fromEntries(out.tags.map((t) => [`${t.repository}:${t.tag}`, [t.digest, t.pushedAt]]));
    const want = Object.fromEntries(
      applied.map((a) => {
        const key = `${a.repository}:${a.tag}`;
        return [key, [sample.tags.get(key)?.manifest.digest, a.pushedAt.toISOString()]];
      }),
    );
    expect(got).toEqual(want);
  });

  test('the demo dry run selects what the README says and changes nothing', async () => {
    const before = await treeSnapshot(copy);
    const run = await runRegprune(['prune', '--root', copy, ...DEMO, '--dry-run', '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const plan = JSON.parse(run.stdout) as PlanJson;
    expect(plan.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(SELECTED);
    expect(plan.reclaimableBytes).toBeGreaterThan(0);
    expect(await treeSnapshot(copy)).toEqual(before);
  });

  test('applied, then garbage-collected: frees the predicted bytes, and everything kept still pulls', async () => {
    // The registry is stopped while regprune and garbage-collect work, as they must be run.
    reg = await startRegistry({ root: copy });
    await reg.stop();
    const before = await blobStoreBytes(copy);

    const run = await runRegprune(['prune', '--root', copy, ...DEMO, '--yes', '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const plan = JSON.parse(run.stdout) as PlanJson;
    expect(plan.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(SELECTED);
    expect([...(await tagsOnDisk(copy)).keys()].sort()).toEqual([...sample.tags.keys()].filter((k) => !SELECTED.includes(k)).sort());

    const gc = await runGarbageCollect(reg.configPath, []);
    expect(gc.exitCode, `${gc.stdout}\n${gc.stderr}`).toBe(0);
    expect(before - (await blobStoreBytes(copy))).toBe(plan.reclaimableBytes);

    await reg.restart();
    for (const [key, t] of sample.tags) {
      if (SELECTED.includes(key)) {
        await expectManifestStatus(reg.url, t.repository, t.tag, 404);
      } else {
        const pulled = await pullAndVerify(reg.url, t.repository, t.tag);
        expect(pulled.digest, key).toBe(t.manifest.digest);
      }
    }
    // Untagged manifests are left alone without --untagged.
    for (const u of sample.untagged) await pullAndVerify(reg.url, u.repository, u.manifest.digest);
  });
});
