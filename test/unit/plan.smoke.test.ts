import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../src/plan/build.js';
import { applyPlan } from '../../src/plan/apply.js';
import { selectTags } from '../../src/policy/select.js';
import { parseTagRef } from '../../src/model/names.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const now = new Date('2026-11-23T12:00:00Z');

describe('smoke', () => {
  it('removes a named tag and its orphaned manifest', async () => {
    const reg = new MemRegistry();
    const a = reg.putImage('i1', { seed: 'a', layers: ['base', 'a1'] });
    const b = reg.putImage('i1', { seed: 'b', layers: ['base', 'b1'] });
    reg.tag('i1', 'T11', a.manifest.digest, daysAgo(now, 40));
    reg.tag('i1', 'T12', b.manifest.digest, daysAgo(now, 30));
    const sel = { refs: [parseTagRef('i1:T12')], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true };
    const plan = await buildPlan({ fs: reg.fs, layout: reg.lay, now, decide: (r, dep) => selectTags(r, sel, now, dep) });
    expect(plan.tags.map((t) => t.tag)).toEqual(['T12']);
    expect(plan.manifests.map((m) => m.digest)).toEqual([b.manifest.digest]);
    expect(plan.reclaimableBytes).toBe(b.manifest.size + b.config.size + (b.layers[1]?.size ?? 0));
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan, runId: 'r1' });
    expect(report.tags.map((t) => t.result)).toEqual(['removed']);
    expect(report.manifests.map((t) => t.result)).toEqual(['removed']);
    expect(reg.exists(reg.lay.revisionLink('i1' as never, a.manifest.digest))).toBe(true);
  });
});
