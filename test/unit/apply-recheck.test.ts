import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { parseTagRef, type RepositoryName, type TagName } from '../../src/model/names.js';
import { selectTags } from '../../src/policy/select.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const now = new Date('2026-11-23T12:00:00Z');

describe('re-check before removal', () => {
  it('a tag pushed again with the same digest after the plan is left in place as changed', async () => {
    const reg = new MemRegistry();
    const img = reg.putImage('app', { seed: 'a', layers: ['a'] });
    reg.tag('app', 'v1', img.manifest.digest, daysAgo(now, 60));
    const sel = { refs: [parseTagRef('app:v1')], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true };
    const plan = await buildPlan({ fs: reg.fs, layout: reg.lay, now, decide: (r, d) => selectTags(r, sel, now, d) });
    expect(plan.tags).toHaveLength(1);
    expect(plan.manifests).toHaveLength(1);
    // The same manifest pushed under the same tag: only current/link's mtime changes.
    reg.tag('app', 'v1', img.manifest.digest, now);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan, runId: 'r' });
    expect(report.tags.map((t) => [t.result, t.detail])).toEqual([['changed', 'pushed again since the plan; left in place']]);
    expect(report.manifests.map((m) => m.result)).toEqual(['changed']);
    expect(reg.exists(reg.lay.tagCurrentLink('app' as RepositoryName, 'v1' as TagName))).toBe(true);
    expect(reg.exists(reg.lay.revisionLink('app' as RepositoryName, img.manifest.digest))).toBe(true);
  });
});
