import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { parseTagRef, type RepositoryName } from '../../src/model/names.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { writeJournal } from '../../src/storage/journal.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const now = new Date('2026-11-23T12:00:00Z');
const named = (...refs: string[]): Selector => ({ refs: refs.map(parseTagRef), repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true });
const plan = (reg: MemRegistry, sel: Selector) =>
  buildPlan({ fs: reg.fs, layout: reg.lay, now, decide: (r, dep) => selectTags(r, sel, now, dep) });

describe('the pending-manifests journal (a run killed between tags and manifests)', () => {
  it('the next run finishes the manifests the killed run orphaned, and only those', async () => {
    const reg = new MemRegistry();
    const gone = reg.putIndex('app', {
      children: [
        { seed: 'x/amd', platform: { os: 'linux', architecture: 'amd64' }, layers: ['base'] },
        { seed: 'x/arm', platform: { os: 'linux', architecture: 'arm64' }, layers: ['base-arm'] },
      ],
    });
    const stays = reg.putImage('app', { seed: 'y', layers: ['base'] });
    const untaggedBefore = reg.putImage('app', { seed: 'z', layers: ['z'] });
    reg.tag('app', 'old', gone.manifest.digest, daysAgo(now, 90));
    reg.tag('app', 'new', stays.manifest.digest, daysAgo(now, 1));

    const first = await plan(reg, named('app:old'));
    expect(first.manifests).toHaveLength(3);
    // Simulate the kill: the journal is written and the tag is gone, the manifests are not.
    await writeJournal(reg.fs, reg.lay, first.manifests, 'killed');
    reg.vol.rmSync(reg.lay.tag('app' as RepositoryName, 'old' as never), { recursive: true });

    const second = await plan(reg, named('app:nothing-left'));
    expect(second.tags).toEqual([]);
    expect(second.manifests.map((m) => m.digest).sort()).toEqual(first.manifests.map((m) => m.digest).sort());
    for (const m of second.manifests) expect(m.reason).toBe('orphaned by an interrupted run');
    expect(second.reclaimableBytes).toBe(first.reclaimableBytes);
    expect(second.manifests.some((m) => m.digest === untaggedBefore.manifest.digest)).toBe(false);

    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: second, runId: 'resume' });
    expect(report.manifests.every((m) => m.result === 'removed')).toBe(true);
    expect(reg.exists(reg.lay.journalFile)).toBe(false);
    expect(reg.exists(reg.lay.revisionLink('app' as RepositoryName, untaggedBefore.manifest.digest))).toBe(true);
  });

  it('a journalled manifest that a tag reaches again is kept', async () => {
    const reg = new MemRegistry();
    const img = reg.putImage('app', { seed: 'a', layers: ['a'] });
    await writeJournal(reg.fs, reg.lay, [{ repository: 'app', digest: img.manifest.digest }], 'killed');
    reg.tag('app', 'repushed', img.manifest.digest, daysAgo(now, 0));
    const p = await plan(reg, named('app:nope'));
    expect(p.manifests).toEqual([]);
  });

  it('a corrupt journal is reported and ignored: nothing is removed because of it', async () => {
    const reg = new MemRegistry();
    reg.putImage('app', { seed: 'a', layers: ['a'] });
    reg.write(reg.lay.journalFile, '{"version":1,"manif');
    const p = await plan(reg, named('app:nope'));
    expect(p.manifests).toEqual([]);
    expect(p.warnings.map((w) => w.path)).toContain(reg.lay.journalFile);
  });
});
