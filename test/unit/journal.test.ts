import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { parseTagRef, type RepositoryName } from '../../src/model/names.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { clearJournal, readJournal, writeJournal } from '../../src/storage/journal.js';
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

  it('is written atomically under an unpredictable temp name created exclusively: a link planted at the old predictable name is never written through', async () => {
    const reg = new MemRegistry();
    reg.vol.mkdirSync(reg.lay.stateDir, { recursive: true });
    reg.vol.mkdirSync('/victim');
    // The name older versions used for the temp file.
    reg.vol.symlinkSync('/victim/owned', `${reg.lay.journalFile}.run1.tmp`);
    const d = `sha256:${'b'.repeat(64)}`;
    await writeJournal(reg.fs, reg.lay, [{ repository: 'app', digest: d }], 'run1');
    expect(reg.vol.readdirSync('/victim')).toEqual([]);
    expect(JSON.parse(reg.vol.readFileSync(reg.lay.journalFile, 'utf8') as string)).toMatchObject({ version: 1, runId: 'run1', manifests: [{ repository: 'app', digest: d }] });
    // No temp file is left beside it (only the planted link, which clearJournal then removes as a leftover).
    expect(reg.vol.readdirSync(reg.lay.stateDir).sort()).toEqual(['pending-manifests.json', 'pending-manifests.json.run1.tmp']);
    await clearJournal(reg.fs, reg.lay);
    expect(reg.vol.readdirSync(reg.lay.stateDir)).toEqual([]);
  });

  it('a journal replaced by a symlink is not followed: ignored with a warning, and writing it is refused', async () => {
    const reg = new MemRegistry();
    reg.vol.mkdirSync(reg.lay.stateDir, { recursive: true });
    reg.vol.mkdirSync('/victim');
    reg.vol.writeFileSync('/victim/j.json', JSON.stringify({ version: 1, manifests: [{ repository: 'app', digest: `sha256:${'c'.repeat(64)}` }] }));
    reg.vol.symlinkSync('/victim/j.json', reg.lay.journalFile);
    const warnings: string[] = [];
    expect(await readJournal(reg.fs, reg.lay, (w) => warnings.push(w.message))).toEqual([]);
    expect(warnings[0]).toMatch(/not a regular file/);
    await expect(writeJournal(reg.fs, reg.lay, [], 'r')).rejects.toThrow(/is a symbolic link|not a regular file/);
    expect(reg.vol.readFileSync('/victim/j.json', 'utf8')).toContain('cccc');
  });
});
