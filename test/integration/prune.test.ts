import { utimes } from 'node:fs/promises';
import { afterAll, describe, expect, test } from 'vitest';
import { setupSuite } from '../helpers/suite.js';
import { parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import {
  expectManifestStatus,
  pullAndVerify,
  pushImage,
  pushIndex,
  startRegistry,
  tagManifest,
  type RunningRegistry,
} from '../helpers/registry.js';

// Issue 2, done when: on a registry where i1 has T11..T13, i2 (multi-platform)
// T21..T24 and i5 T51..T52, `prune i1:T12 i2:T22 i5:T52 --yes` leaves every
// other tag pulling byte for byte, even a tag that shared T12's manifest.

interface Expected {
  repo: string;
  tag: string;
  digest: string;
}

const platforms = (seed: string) => [
  { seed: `${seed}/amd64`, platform: { os: 'linux', architecture: 'amd64' }, layers: ['shared-base', `${seed}/amd64/top`] },
  { seed: `${seed}/arm64`, platform: { os: 'linux', architecture: 'arm64' }, layers: ['shared-base-arm', `${seed}/arm64/top`] },
];

describe('prune on the real registry', () => {
  let reg: RunningRegistry;
  const pushed: Expected[] = [];

  setupSuite(async () => {
    reg = await startRegistry();
    const add = (repo: string, tag: string, digest: string) => pushed.push({ repo, tag, digest });
    for (const t of ['T11', 'T12', 'T13']) {
      const img = await pushImage(reg.url, 'i1', t, { seed: `i1/${t}`, layers: ['shared-base', `i1/${t}/top`] });
      add('i1', t, img.manifest.digest);
      if (t === 'T12') {
        await tagManifest(reg.url, 'i1', 'T12-promoted', img.manifest);
        add('i1', 'T12-promoted', img.manifest.digest);
      }
    }
    for (const t of ['T21', 'T22', 'T23', 'T24']) {
      const idx = await pushIndex(reg.url, 'i2', t, { format: t === 'T24' ? 'oci' : 'docker', children: platforms(`i2/${t}`) });
      add('i2', t, idx.manifest.digest);
    }
    for (const t of ['T51', 'T52']) {
      const img = await pushImage(reg.url, 'i5', t, { format: 'oci', seed: `i5/${t}`, layers: ['shared-base-oci', `i5/${t}/top`] });
      add('i5', t, img.manifest.digest);
    }
    const nested = await pushImage(reg.url, 'team/app/api', 'v1.2.3', { seed: 'api', layers: ['shared-base'] });
    add('team/app/api', 'v1.2.3', nested.manifest.digest);
    const parent = await pushImage(reg.url, 'team/app', 'latest', { seed: 'app', layers: ['shared-base'] });
    add('team/app', 'latest', parent.manifest.digest);
  });

  afterAll(async () => {
    await reg?.stop();
  });

  test('list --json sees every tag, nested names included, with digests', async () => {
    const r = await runRegprune(['list', '--root', reg.root, '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { version: number; root: string; tags: Array<{ repository: string; tag: string; digest: string; pushedAt: string }> };
    expect(out.version).toBe(1);
    expect(out.root).toBe(reg.root);
    const seen = out.tags.map((t) => `${t.repository}:${t.tag}=${t.digest}`).sort();
    expect(seen).toEqual(pushed.map((p) => `${p.repo}:${p.tag}=${p.digest}`).sort());
    for (const t of out.tags) expect(Number.isNaN(Date.parse(t.pushedAt))).toBe(false);
  });

  test('the docker/registry/v2 directory is accepted as --root too', async () => {
    const r = await runRegprune(['list', '--root', layout(reg.root).v2, '--json']);
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as { root: string }).root).toBe(reg.root);
  });

  test('prune i1:T12 i2:T22 i5:T52 --yes removes exactly those, and every other tag pulls byte for byte', async () => {
    const dry = await runRegprune(['prune', 'i1:T12', 'i2:T22', 'i5:T52', '--root', reg.root, '--dry-run', '--json']);
    expect(dry.exitCode).toBe(0);
    const plan = JSON.parse(dry.stdout) as { dryRun: boolean; tags: Array<{ repository: string; tag: string; reason: string }> };
    expect(plan.dryRun).toBe(true);
    expect(plan.tags.map((t) => `${t.repository}:${t.tag}:${t.reason}`)).toEqual(['i1:T12:named', 'i2:T22:named', 'i5:T52:named']);

    const run = await runRegprune(['prune', 'i1:T12', 'i2:T22', 'i5:T52', '--root', reg.root, '--yes', '--json']);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    // The one-line summary of the run is a member of the JSON object.
    expect((JSON.parse(run.stdout) as { summary: string }).summary).toMatch(/^regprune: ok: removed 3 tags, unlinked \d+ manifests; garbage-collect not run \([\d.]+ KiB to free\); [\d.]+s \(exit 0\)$/);
    const done = JSON.parse(run.stdout) as { dryRun: boolean; tags: Array<{ repository: string; tag: string }> };
    expect(done.dryRun).toBe(false);
    expect(done.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual(['i1:T12', 'i2:T22', 'i5:T52']);

    const removed = new Set(['i1:T12', 'i2:T22', 'i5:T52']);
    for (const p of pushed) {
      if (removed.has(`${p.repo}:${p.tag}`)) {
        await expectManifestStatus(reg.url, p.repo, p.tag, 404);
      } else {
        const pulled = await pullAndVerify(reg.url, p.repo, p.tag);
        expect(pulled.digest, `${p.repo}:${p.tag}`).toBe(p.digest);
      }
    }
    // The manifest T12 shared with T12-promoted is still there, by digest too.
    const t12 = pushed.find((p) => p.tag === 'T12');
    await pullAndVerify(reg.url, 'i1', t12?.digest ?? '');
  });

  test('a named tag that does not exist is reported, exit 1, and the rest still happens', async () => {
    const r = await runRegprune(['prune', 'i1:nope', 'i1:T11', '--root', reg.root, '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('named tag i1:nope does not exist');
    await expectManifestStatus(reg.url, 'i1', 'T11', 404);
    await pullAndVerify(reg.url, 'i1', 'T13');
  });

  test('--older-than with keep rules, on push times (mtime of current/link)', async () => {
    const lay = layout(reg.root);
    const now = Date.now();
    const age = async (repo: string, tag: string, days: number) => {
      const t = new Date(now - days * 86_400_000);
      await utimes(lay.tagCurrentLink(parseRepositoryName(repo), parseTagName(tag)), t, t);
    };
    await age('i2', 'T21', 90);
    await age('i2', 'T23', 60);
    await age('i2', 'T24', 45);
    await age('team/app', 'latest', 400);
    const r = await runRegprune(['prune', '--older-than', '30d', '--keep-last', '1', '--root', reg.root, '--yes', '--json']);
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { tags: Array<{ repository: string; tag: string; reason: string }> };
    // T24 is i2's newest (--keep-last 1); team/app:latest is kept as latest.
    expect(out.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual(['i2:T21', 'i2:T23']);
    expect(out.tags[0]?.reason).toMatch(/^older than 30d \(pushed \d{4}-\d{2}-\d{2}\)$/);
    await expectManifestStatus(reg.url, 'i2', 'T21', 404);
    await expectManifestStatus(reg.url, 'i2', 'T23', 404);
    for (const ref of ['i2:T24', 'team/app:latest', 'team/app/api:v1.2.3', 'i5:T51', 'i1:T13', 'i1:T12-promoted']) {
      const [repo, tag] = ref.split(':') as [string, string];
      await pullAndVerify(reg.url, repo, tag);
    }
  });

  test('without a TTY, prune refuses to remove unless --yes or --dry-run (exit 2, nothing touched)', async () => {
    const r = await runRegprune(['prune', 'i1:T13', '--root', reg.root]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('pass --yes');
    await pullAndVerify(reg.url, 'i1', 'T13');
  });

  test('no selector is a usage error, never "remove everything"', async () => {
    const r = await runRegprune(['prune', '--root', reg.root, '--yes']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('nothing selected');
    await pullAndVerify(reg.url, 'i1', 'T13');
  });
});
