import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/model/duration.js';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import { parseTagRef } from '../../src/model/names.js';
import { parseTagPattern } from '../../src/model/pattern.js';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import type { ManifestOutcome, Plan, TagOutcome } from '../../src/plan/plan.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { RAW, type StorageFs } from '../../src/storage/fs.js';
import { buildSignature, signatureTag, type BuiltImage } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

function selector(refs: string[], extra: Partial<Selector> = {}): Selector {
  return { refs: refs.map(parseTagRef), repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true, ...extra };
}

function plan(reg: MemRegistry, sel: Selector): Promise<Plan> {
  return buildPlan({ fs: reg.fs, layout: reg.lay, now: NOW, decide: (repos, dep) => selectTags(repos, sel, NOW, dep) });
}

/** Regular files under the root (memfs lists empty directories as null). */
function files(reg: MemRegistry): string[] {
  return Object.entries(reg.vol.toJSON(reg.root))
    .filter(([, content]) => content !== null)
    .map(([path]) => path)
    .sort();
}

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/**
 * app: v1 (old), v2 (old, signed), v3 (new), latest -> v3, a multi-platform
 * `multi` (old); solo: one old tag (every tag of the repository goes).
 */
function tree() {
  const reg = new MemRegistry();
  const [v1, v2, v3] = [1, 2, 3].map((n) => reg.putImage('app', { seed: `v${n}`, layers: ['base', `v${n}`] })) as [BuiltImage, BuiltImage, BuiltImage];
  const sig2 = reg.putImage('app', buildSignature(v2.manifest));
  const multi = reg.putIndex('app', {
    children: [
      { seed: 'm-amd', platform: { os: 'linux', architecture: 'amd64' } },
      { seed: 'm-arm', platform: { os: 'linux', architecture: 'arm64' } },
    ],
  });
  reg.tag('app', 'v1', v1.manifest.digest, daysAgo(NOW, 90));
  reg.tag('app', 'v2', v2.manifest.digest, daysAgo(NOW, 60));
  reg.tag('app', signatureTag(v2.manifest.digest), sig2.manifest.digest, daysAgo(NOW, 60));
  reg.tag('app', 'v3', v3.manifest.digest, daysAgo(NOW, 5));
  reg.tag('app', 'latest', v3.manifest.digest, daysAgo(NOW, 5));
  reg.tag('app', 'multi', multi.manifest.digest, daysAgo(NOW, 45));
  const solo = reg.putImage('solo', { seed: 'solo' });
  reg.tag('solo', 'only', solo.manifest.digest, daysAgo(NOW, 100));
  // An upload in progress: never touched.
  reg.write(reg.lay.uploadFile(R('app'), '8e0c3d7a-0000-4000-8000-000000000000', 'data'), 'partial');
  return { reg, v1, v2, v3, sig2, multi, solo };
}

const OLDER_THAN_30D = selector([], { olderThan: parseDuration('30d') });

describe('applyPlan', () => {
  it('removes exactly the planned tag dirs and revision dirs, nothing else', async () => {
    const { reg } = tree();
    const p = await plan(reg, OLDER_THAN_30D);
    expect(p.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual([
      'app:multi',
      `app:${signatureTag(tree().v2.manifest.digest)}`,
      'app:v1',
      'app:v2',
      'solo:only',
    ]);
    expect(p.manifests).toHaveLength(7);
    const before = files(reg);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'run1' });
    const after = files(reg);

    const planned = [
      ...p.tags.map((t) => reg.lay.tag(R(t.repository), T(t.tag))),
      ...p.manifests.map((m) => reg.lay.revision(R(m.repository), m.digest as never)),
    ];
    const removed = before.filter((f) => !after.includes(f));
    const added = after.filter((f) => !before.includes(f));
    expect(removed.filter((f) => !planned.some((d) => under(f, d)))).toEqual([]);
    expect(added).toEqual([]);
    for (const dir of planned) expect(reg.exists(dir), dir).toBe(false);
    // Every file of every planned dir went (the removal is whole).
    expect(before.filter((f) => planned.some((d) => under(f, d))).every((f) => removed.includes(f))).toBe(true);

    // What the registry needs to keep recognising the repositories stays, even for solo (no tag left).
    for (const repo of ['app', 'solo'].map(R)) {
      expect(reg.exists(reg.lay.repository(repo))).toBe(true);
      expect(reg.exists(posix.dirname(reg.lay.layers(repo)))).toBe(true);
      expect(reg.exists(reg.lay.tags(repo))).toBe(true);
      expect(reg.exists(reg.lay.revisions(repo))).toBe(true);
    }
    expect(reg.vol.readdirSync(reg.lay.tags(R('solo')))).toEqual([]);
    expect(reg.exists(reg.lay.uploadFile(R('app'), '8e0c3d7a-0000-4000-8000-000000000000', 'data'))).toBe(true);

    // The dry-run plan is what apply did.
    expect(report.tags.map(({ result, detail, ...t }) => ({ result, detail, t }))).toEqual(p.tags.map((t) => ({ result: 'removed', detail: undefined, t })));
    const strip = ({ result: _r, detail: _d, ...m }: ManifestOutcome) => m;
    expect(report.manifests.map((m) => m.result)).toEqual(p.manifests.map(() => 'removed'));
    expect(report.manifests.map(strip).sort((a, b) => (a.digest < b.digest ? -1 : 1))).toEqual(
      [...p.manifests].sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    );
    expect(report.trashFinished).toBe(0);
  });

  it('renames into <root>/.regprune/trash (outside docker/registry/v2) and leaves it empty', async () => {
    const { reg } = tree();
    expect(reg.lay.trashDir).toBe('/srv/registry/.regprune/trash');
    expect(under(reg.lay.trashDir, reg.lay.v2)).toBe(false);
    const p = await plan(reg, selector(['app:v1', 'solo:only']));
    const renames: Array<[string, string]> = [];
    const fs: StorageFs = { ...reg.fs, [RAW]: { ...reg.fs[RAW], rename: (from: string, to: string) => (renames.push([from, to]), reg.fs[RAW].rename(from, to)) } };
    const report = await applyPlan({ fs, layout: reg.lay, plan: p, runId: 'run7' });
    expect(report.tags.map((t) => t.result)).toEqual(['removed', 'removed']);
    const planned = [
      ...p.tags.map((t) => reg.lay.tag(R(t.repository), T(t.tag))),
      ...p.manifests.map((m) => reg.lay.revision(R(m.repository), m.digest as never)),
    ];
    // Every planned dir was renamed into the trash under this run's id; nothing else was renamed there.
    const intoTrash = renames.filter(([, to]) => under(to, reg.lay.trashDir));
    expect(intoTrash.map(([from]) => from).sort()).toEqual([...planned].sort());
    for (const [, to] of intoTrash) expect(posix.basename(to)).toMatch(/^run7-\d+$/);
    // The only other renames are regprune's own state files.
    expect(renames.filter(([from, to]) => !under(to, reg.lay.trashDir) && !(under(from, reg.lay.stateDir) && under(to, reg.lay.stateDir)))).toEqual([]);
    expect(reg.vol.readdirSync(reg.lay.trashDir)).toEqual([]);
  });

  it('a tag pushed to another digest between plan and apply: changed, left in place', async () => {
    const { reg, v1, v3 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    reg.tag('app', 'v1', v3.manifest.digest, NOW);
    const outcomes: Array<TagOutcome | ManifestOutcome> = [];
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r', onOutcome: (o) => outcomes.push(o) });
    expect(report.tags.map((t) => [t.tag, t.result, t.detail])).toEqual([['v1', 'changed', `now points to ${v3.manifest.digest}; left in place`]]);
    expect(reg.vol.readFileSync(reg.lay.tagCurrentLink(R('app'), T('v1')), 'utf8')).toBe(v3.manifest.digest);
    // Its old manifest is unreachable either way: it goes.
    expect(report.manifests.map((m) => [m.digest, m.result])).toEqual([[v1.manifest.digest, 'removed']]);
    expect(outcomes).toEqual([...report.tags, ...report.manifests]);
  });

  it('a plan entry whose names do not parse (a plan file is input): failed, and nothing of it is touched', async () => {
    const { reg } = tree();
    const p = await plan(reg, selector(['app:v1', 'solo:only']));
    const bad: Plan = {
      ...p,
      tags: p.tags.map((t) => (t.repository === 'solo' ? { ...t, repository: 'solo/../app' } : t)),
      manifests: p.manifests.map((m) => (m.repository === 'solo' ? { ...m, digest: 'sha256:../../x' } : m)),
    };
    const before = files(reg);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: bad, runId: 'bad' });
    const failedTags = report.tags.filter((t) => t.result === 'failed');
    expect(failedTags.map((t) => [t.repository, t.detail?.startsWith('invalid plan entry: ')])).toEqual([['solo/../app', true]]);
    const failedManifests = report.manifests.filter((m) => m.result === 'failed');
    expect(failedManifests.length).toBeGreaterThan(0);
    for (const m of failedManifests) expect([m.repository, m.detail?.startsWith('invalid plan entry: ')]).toEqual(['solo', true]);
    // app:v1 went; solo is as it was.
    const after = files(reg);
    expect(after.filter((f) => f.includes('/repositories/solo/'))).toEqual(before.filter((f) => f.includes('/repositories/solo/')));
    expect(report.tags.find((t) => t.tag === 'v1')?.result).toBe('removed');
  });

  it('a tag already gone: missing', async () => {
    const { reg, v1 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    reg.vol.rmSync(reg.lay.tag(R('app'), T('v1')), { recursive: true });
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.tags.map((t) => [t.tag, t.result, t.detail])).toEqual([['v1', 'missing', undefined]]);
    expect(report.manifests.map((m) => [m.digest, m.result])).toEqual([[v1.manifest.digest, 'removed']]);
  });

  it('a manifest already unlinked: missing', async () => {
    const { reg, v1 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    reg.vol.rmSync(reg.lay.revision(R('app'), v1.manifest.digest), { recursive: true });
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.manifests.map((m) => [m.digest, m.result])).toEqual([[v1.manifest.digest, 'missing']]);
  });

  it('a tag whose link became malformed: failed, left in place', async () => {
    const { reg, v1 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    const link = reg.lay.tagCurrentLink(R('app'), T('v1'));
    reg.write(link, `${v1.manifest.digest}\n`);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.tags.map((t) => [t.result, t.detail])).toEqual([
      ['failed', `${link}: link ends with a newline (garbage-collect aborts on it: invalid checksum digest length); left in place`],
    ]);
    expect(reg.exists(link)).toBe(true);
    // The repository's tags cannot all be read now: its manifest is not removed either.
    expect(report.manifests.map((m) => m.result)).toEqual(['failed']);
    expect(reg.exists(reg.lay.revisionLink(R('app'), v1.manifest.digest))).toBe(true);
  });

  it('a manifest that a new tag points at before apply: changed, revision kept', async () => {
    const { reg, v1 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    expect(p.manifests.map((m) => m.digest)).toEqual([v1.manifest.digest]);
    reg.tag('app', 'rescued', v1.manifest.digest, NOW);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.tags.map((t) => t.result)).toEqual(['removed']);
    expect(report.manifests.map((m) => [m.result, m.detail])).toEqual([['changed', 'reachable from a tag again; left in place']]);
    expect(reg.exists(reg.lay.revisionLink(R('app'), v1.manifest.digest))).toBe(true);
  });

  it('a child of a planned index that a new tag points at: changed, kept', async () => {
    const { reg, multi } = tree();
    const p = await plan(reg, selector(['app:multi']));
    expect(p.manifests).toHaveLength(3);
    const child = (multi.children[0] as BuiltImage).manifest.digest;
    reg.tag('app', 'amd', child, NOW);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.manifests.filter((m) => m.result !== 'removed').map((m) => [m.digest, m.result])).toEqual([[child, 'changed']]);
    expect(reg.exists(reg.lay.revisionLink(R('app'), child))).toBe(true);
    expect(reg.exists(reg.lay.revisionLink(R('app'), multi.manifest.digest))).toBe(false);
  });

  it('finishes the trash an interrupted earlier run left', async () => {
    const { reg } = tree();
    reg.write(posix.join(reg.lay.trashDir, 'old-1', 'current', 'link'), 'sha256:x');
    reg.write(posix.join(reg.lay.trashDir, 'old-2', 'link'), 'sha256:y');
    reg.vol.mkdirSync(posix.join(reg.lay.trashDir, 'old-3'), { recursive: true });
    const p = await plan(reg, selector(['app:v1']));
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report.trashFinished).toBe(3);
    expect(reg.vol.readdirSync(reg.lay.trashDir)).toEqual([]);
  });

  it('a push in flight of a planned manifest (its revision link rewritten during the run, its tag not written yet): changed, kept', async () => {
    const { reg, v1 } = tree();
    const p = await plan(reg, selector(['app:v1']));
    expect(p.manifests.map((m) => m.digest)).toContain(v1.manifest.digest);
    // The run started (the CLI passes its lock's mtime) before the registry's manifest PUT
    // rewrote the revision link; the tag the push is for comes after, too late for any re-check.
    const link = reg.lay.revisionLink(R('app'), v1.manifest.digest);
    const since = reg.vol.lstatSync(link).mtimeMs - 1;
    reg.vol.utimesSync(link, new Date(since + 500), new Date(since + 500));
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'run1', pushesSinceMs: since });
    const m = report.manifests.find((o) => o.digest === v1.manifest.digest);
    expect(m?.result).toBe('changed');
    expect(m?.detail).toMatch(/push in flight/);
    expect(reg.vol.existsSync(link)).toBe(true);
    expect(report.tags.map((t) => `${t.tag}:${t.result}`)).toEqual(['v1:removed']);
    // Without the run's start, the same tree loses the manifest: the check is what keeps it.
    const again = tree();
    const p2 = await plan(again.reg, selector(['app:v1']));
    const r2 = await applyPlan({ fs: again.reg.fs, layout: again.reg.lay, plan: p2, runId: 'run1' });
    expect(r2.manifests.find((o) => o.digest === again.v1.manifest.digest)?.result).toBe('removed');
  });

  it('an empty plan changes nothing in docker/registry/v2', async () => {
    const { reg } = tree();
    const p = await plan(reg, selector([], { tags: [parseTagPattern('nomatch')] }));
    expect([p.tags, p.manifests]).toEqual([[], []]);
    const before = files(reg);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(report).toEqual({ tags: [], manifests: [], trashFinished: 0 });
    expect(files(reg)).toEqual(before);
  });
});

describe('stopping: a signal, or an audit log that cannot be written', () => {
  it('aborted after the first removal: the entry in hand finishes, nothing more starts, INTERRUPTED; the journal keeps every planned manifest', async () => {
    const { reg } = tree();
    const p = await plan(reg, selector(['app:v1', 'app:v2', 'app:multi', 'solo:only']));
    const stop = new AbortController();
    const seen: string[] = [];
    const err = await applyPlan({
      fs: reg.fs,
      layout: reg.lay,
      plan: p,
      runId: 'sig',
      concurrency: 1,
      signal: stop.signal,
      onOutcome: (o) => {
        seen.push(`${'tag' in o ? o.tag : o.digest}=${o.result}`);
        stop.abort('SIGTERM');
      },
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('INTERRUPTED');
    expect((err as Error).message).toMatch(/^interrupted \(SIGTERM\)/);
    // The entries in hand (a repository's tags go up to four at a time) finished; nothing started after.
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBeLessThanOrEqual(4);
    for (const o of seen) expect(o).toMatch(/=removed$/);
    const gone = p.tags.filter((t) => !reg.exists(reg.lay.tag(R(t.repository), T(t.tag))));
    expect(gone).toHaveLength(seen.length);
    expect(reg.exists(reg.lay.tag(R('solo'), T('only'))), 'the next repository never started').toBe(true);
    for (const m of p.manifests) expect(reg.exists(reg.lay.revision(R(m.repository), m.digest as never))).toBe(true);
    expect(reg.vol.readdirSync(reg.lay.trashDir)).toEqual([]);
    const journal = JSON.parse(reg.vol.readFileSync(reg.lay.journalFile, 'utf8') as string) as { manifests: unknown[] };
    expect(journal.manifests).toHaveLength(p.manifests.length);
  });

  it('beforeRemove throwing (the audit log is full) stops before that removal: only what was logged ahead is gone', async () => {
    const { reg } = tree();
    const p = await plan(reg, selector(['app:v1', 'app:v2', 'app:multi', 'solo:only']));
    const logged: string[] = [];
    const err = await applyPlan({
      fs: reg.fs,
      layout: reg.lay,
      plan: p,
      runId: 'full',
      concurrency: 1,
      beforeRemove: (e) => {
        if (logged.length === 2) throw Object.assign(new Error('writing /var/log/x: ENOSPC'), { code: 'ENOSPC' });
        logged.push('tag' in e ? `${e.repository}:${e.tag}` : `${e.repository}@${e.digest}`);
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('writing /var/log/x: ENOSPC');
    const goneTags = p.tags.filter((t) => !reg.exists(reg.lay.tag(R(t.repository), T(t.tag)))).map((t) => `${t.repository}:${t.tag}`);
    const goneManifests = p.manifests.filter((m) => !reg.exists(reg.lay.revision(R(m.repository), m.digest as never))).map((m) => `${m.repository}@${m.digest}`);
    expect([...goneTags, ...goneManifests].sort()).toEqual([...logged].sort());
    expect(logged).toHaveLength(2);
  });
});
