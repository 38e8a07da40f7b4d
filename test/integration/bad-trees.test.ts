import { appendFile, lstat, readdir, readFile, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import {
  expectManifestStatus,
  findRegistryBinary,
  manifestStatus,
  pullAndVerify,
  pushImage,
  runGarbageCollect,
  startRegistry,
  type PushedImage,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';

// Issue 6, bad trees where the real registry cares: a tag link with a
// trailing newline (the registry answers 500 for the tag and
// `garbage-collect -m` aborts on it), and a revision whose blob data was
// deleted (the registry answers 404). regprune warns with the path, never
// selects what it cannot read, keeps every manifest of that repository,
// exits 3, and the rest of the prune happens; afterwards garbage-collect
// (without -m) and a restart leave every kept tag pulling.

const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;
const DAY = 86_400_000;
const PRUNE = ['prune', '--older-than', '30d', '--yes', '--json', '--quiet'];

interface PruneJson {
  tags: Array<{ repository: string; tag: string }>;
  manifests: Array<{ repository: string; digest: string }>;
  blocked: Array<{ repository: string; reason: string }>;
  warnings: Array<{ code: string; path: string; message: string }>;
  notRemoved: { tags: unknown[]; manifests: unknown[] };
}

/** Every entry under `dir` with type, bytes and mtime: what "changes nothing" is checked against. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (d: string) => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      const st = await lstat(p);
      if (e.isDirectory()) {
        out.set(p, 'dir');
        await visit(p);
      } else out.set(p, `${(await readFile(p)).toString('base64')} ${st.mtimeMs}`);
    }
  };
  await visit(dir);
  return out;
}

/** Pushes `repo:tag` and back-dates its push time (mtime of current/link) by `days`. */
async function push(reg: RunningRegistry, repo: string, tag: string, days: number): Promise<PushedImage> {
  const img = await pushImage(reg.url, repo, tag, { seed: `${repo}/${tag}`, layers: ['base', `${repo}/${tag}`] });
  const at = new Date(Date.now() - days * DAY);
  await utimes(layout(reg.root).tagCurrentLink(R(repo), T(tag)), at, at);
  return img;
}

const refs = (list: ReadonlyArray<{ repository: string; tag: string }>) => list.map((t) => `${t.repository}:${t.tag}`).sort();

describe('bad trees on the real registry', () => {
  let reg: RunningRegistry | undefined;
  setupSuite(async () => {
    // Fails every test (not skips) when the registry binary is missing.
    await findRegistryBinary();
  });
  afterEach(async () => {
    await reg?.stop();
    reg = undefined;
  });

  test('a tag link with a trailing newline: the registry fails on it, regprune warns and leaves the repository\'s manifests alone', async () => {
    reg = await startRegistry();
    const lay = layout(reg.root);
    const oldA = await push(reg, 'app', 'old-a', 60);
    await push(reg, 'app', 'old-b', 50);
    const fresh = await push(reg, 'app', 'new', 1);
    // `bad` is the only tag on its manifest: if regprune took the tag for absent, that manifest would go.
    const bad = await push(reg, 'app', 'bad', 90);
    await push(reg, 'other', 'old', 70);
    const otherNew = await push(reg, 'other', 'new', 2);
    const badLink = lay.tagCurrentLink(R('app'), T('bad'));
    await appendFile(badLink, '\n');
    await utimes(badLink, new Date(Date.now() - 90 * DAY), new Date(Date.now() - 90 * DAY));

    // What the registry makes of it: the tag answers 500, and garbage-collect -m aborts
    // (--dry-run: nothing is deleted either way). Without -m tag links are not read.
    expect(await manifestStatus(reg.url, 'app', 'bad')).toBe(500);
    const gcM = await runGarbageCollect(reg.configPath, ['-m', '--dry-run']);
    expect(gcM.exitCode).not.toBe(0);
    expect(gcM.stderr).toContain('invalid checksum digest length');

    const revisionsBefore = await snapshot(join(lay.repository(R('app')), '_manifests', 'revisions'));
    const badBefore = await snapshot(lay.tag(R('app'), T('bad')));
    const r = await runRegprune([...PRUNE, '--root', reg.root]);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toContain(`warning: ${badLink}: link ends with a newline (garbage-collect aborts on it: invalid checksum digest length); tag never selected\n`);
    const out = JSON.parse(r.stdout) as PruneJson;
    expect(out.warnings).toEqual([
      { code: 'bad-link', path: badLink, message: 'link ends with a newline (garbage-collect aborts on it: invalid checksum digest length); tag never selected' },
    ]);
    // The old tags go (app:bad never), no manifest of app does, the rest of the run happened.
    expect(refs(out.tags)).toEqual(['app:old-a', 'app:old-b', 'other:old']);
    expect(out.manifests.map((m) => m.repository)).toEqual(['other']);
    expect(out.blocked).toEqual([{ repository: 'app', reason: 'no manifest removed: 1 tag(s) could not be read' }]);
    expect(out.notRemoved).toEqual({ tags: [], manifests: [] });
    expect(await snapshot(join(lay.repository(R('app')), '_manifests', 'revisions'))).toEqual(revisionsBefore);
    expect(await snapshot(lay.tag(R('app'), T('bad')))).toEqual(badBefore);

    // Garbage-collect (without -m) and restart: every kept tag pulls, the pruned ones are gone.
    await reg.stop();
    const gc = await runGarbageCollect(reg.configPath);
    expect(gc.exitCode, gc.stderr).toBe(0);
    await reg.restart();
    expect((await pullAndVerify(reg.url, 'app', 'new')).digest).toBe(fresh.manifest.digest);
    expect((await pullAndVerify(reg.url, 'other', 'new')).digest).toBe(otherNew.manifest.digest);
    // app's manifests were all kept: the old ones still pull by digest, including the bad tag's.
    expect((await pullAndVerify(reg.url, 'app', oldA.manifest.digest)).digest).toBe(oldA.manifest.digest);
    expect((await pullAndVerify(reg.url, 'app', bad.manifest.digest)).digest).toBe(bad.manifest.digest);
    await expectManifestStatus(reg.url, 'app', 'old-a', 404);
    await expectManifestStatus(reg.url, 'other', 'old', 404);
    expect(await readFile(badLink, 'utf8')).toBe(`${bad.manifest.digest}\n`);
  });

  test('a revision whose blob data was deleted: 404 from the registry, regprune warns and keeps every manifest of the repository', async () => {
    reg = await startRegistry();
    const lay = layout(reg.root);
    const old = await push(reg, 'lost', 'old', 60);
    const kept = await push(reg, 'lost', 'new', 1);
    const broken = await push(reg, 'lost', 'broken', 50);
    await push(reg, 'other', 'old', 70);
    const otherNew = await push(reg, 'other', 'new', 2);
    await rm(lay.blobData(broken.manifest.digest));
    expect(await manifestStatus(reg.url, 'lost', 'broken')).toBe(404);
    // The registry's blob cache remembers the deleted blob until a restart; regprune reads the disk.
    await reg.restart();

    const revisionsBefore = await snapshot(join(lay.repository(R('lost')), '_manifests', 'revisions'));
    const r = await runRegprune([...PRUNE, '--root', reg.root]);
    expect(r.exitCode, r.stderr).toBe(3);
    const revision = lay.revision(R('lost'), broken.manifest.digest);
    const message = 'manifest blob is missing; kept, with everything in lost it might reference';
    expect(r.stderr).toContain(`warning: ${revision}: ${message}\n`);
    const out = JSON.parse(r.stdout) as PruneJson;
    expect(out.warnings).toEqual([{ code: 'missing-blob', path: revision, message }]);
    // Its tags are readable, so the old ones go; no manifest of lost does.
    expect(refs(out.tags)).toEqual(['lost:broken', 'lost:old', 'other:old']);
    expect(out.manifests.map((m) => m.repository)).toEqual(['other']);
    expect(out.blocked).toEqual([{ repository: 'lost', reason: `no manifest removed: manifest ${broken.manifest.digest}: manifest blob is missing` }]);
    expect(await snapshot(join(lay.repository(R('lost')), '_manifests', 'revisions'))).toEqual(revisionsBefore);

    await reg.stop();
    const gc = await runGarbageCollect(reg.configPath);
    expect(gc.exitCode, gc.stderr).toBe(0);
    await reg.restart();
    expect((await pullAndVerify(reg.url, 'lost', 'new')).digest).toBe(kept.manifest.digest);
    expect((await pullAndVerify(reg.url, 'lost', old.manifest.digest)).digest).toBe(old.manifest.digest);
    expect((await pullAndVerify(reg.url, 'other', 'new')).digest).toBe(otherNew.manifest.digest);
    await expectManifestStatus(reg.url, 'other', 'old', 404);
    await expectManifestStatus(reg.url, 'lost', 'old', 404);
  });
});
