import { describe, expect, it } from 'vitest';
import { ManifestCache, readManifestsWith } from '../../src/graph/load.js';
import { DigestMarks } from '../../src/graph/digest-table.js';
import { parseDuration } from '../../src/model/duration.js';
import type { RepositoryName } from '../../src/model/names.js';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { limiter } from '../../src/util/limit.js';
import { buildSignature } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// The apply keeps only what reachability follows of the plan's manifest cache
// (children, subject): the blob references behind the byte figures go.

const NOW = new Date('2026-11-23T12:00:00Z');
const OLDER_THAN_30D: Selector = { refs: [], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true, olderThan: parseDuration('30d') };

function tree() {
  const reg = new MemRegistry();
  const image = reg.putImage('app', { seed: 'image', layers: ['base', 'top'] });
  const multi = reg.putIndex('app', {
    children: [
      { seed: 'm-amd', platform: { os: 'linux', architecture: 'amd64' } },
      { seed: 'm-arm', platform: { os: 'linux', architecture: 'arm64' } },
    ],
  });
  const sig = reg.putImage('app', buildSignature(image.manifest, { subject: true }));
  reg.tag('app', 'image', image.manifest.digest, daysAgo(NOW, 5));
  reg.tag('app', 'multi', multi.manifest.digest, daysAgo(NOW, 45));
  reg.tag('app', 'sig', sig.manifest.digest, daysAgo(NOW, 5));
  return { reg, image, multi, sig };
}

describe('ManifestCache.releaseBlobRefs', () => {
  it('keeps children and subjects (also of manifests read afterwards) and refuses the blob data it dropped', async () => {
    const { reg, image, multi, sig } = tree();
    const cache = new ManifestCache(reg.fs, reg.lay, limiter(4));
    await cache.loadClosure([image.manifest.digest, multi.manifest.digest]);
    const children = [...cache.children(multi.manifest.digest)];
    expect(children).toHaveLength(2);
    expect(cache.refs(image.manifest.digest)?.blobs).toHaveLength(3);

    cache.releaseBlobRefs();
    expect(cache.children(multi.manifest.digest)).toEqual(children);
    expect(cache.children(image.manifest.digest)).toEqual([]);
    // Read after the release: still followed.
    await cache.loadClosure([sig.manifest.digest]);
    expect(cache.subject(sig.manifest.digest)).toBe(image.manifest.digest);
    const late = reg.putIndex('app', { children: [{ seed: 'late-amd', platform: { os: 'linux', architecture: 'amd64' } }] });
    await cache.loadClosure([late.manifest.digest]);
    expect(cache.children(late.manifest.digest)).toHaveLength(1);

    expect(() => cache.table).toThrow(/released/);
    expect(() => cache.peek(image.manifest.digest)).toThrow(/released/);
    expect(() => cache.refs(image.manifest.digest)).toThrow(/released/);
    expect(() => cache.size(image.manifest.digest)).toThrow(/released/);
    expect(() => cache.mark(image.manifest.digest, new DigestMarks())).toThrow(/released/);
  });

  it('an apply on the released cache still sees a tag pushed onto a planned index, children included', async () => {
    const { reg, multi } = tree();
    const cache = new ManifestCache(reg.fs, reg.lay, limiter(4));
    const plan = await buildPlan({ fs: reg.fs, layout: reg.lay, now: NOW, cache, decide: (repos, dep) => selectTags(repos, OLDER_THAN_30D, NOW, dep) });
    expect(plan.manifests.map((m) => m.digest).sort()).toEqual([multi.manifest.digest, ...multi.children.map((c) => c.manifest.digest)].sort());
    cache.releaseBlobRefs();
    // Pushed again under another name after the plan: the index and both children stay.
    reg.tag('app', 'again', multi.manifest.digest, NOW);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan, cache, runId: 'released' });
    expect(report.tags.map((t) => [t.tag, t.result])).toEqual([['multi', 'removed']]);
    expect(report.manifests.map((m) => m.result)).toEqual(['changed', 'changed', 'changed']);
    for (const d of [multi.manifest.digest, ...multi.children.map((c) => c.manifest.digest)]) {
      expect(reg.exists(reg.lay.revisionLink('app' as RepositoryName, d))).toBe(true);
    }
  });
});

describe('ManifestCache with a manifest thread that fails', () => {
  it('reads the batch itself, the same way: the same entries as without a thread', async () => {
    const { reg, image, multi, sig } = tree();
    const digests = [image.manifest.digest, multi.manifest.digest, sig.manifest.digest];
    const plain = new ManifestCache(reg.fs, reg.lay, limiter(4));
    await plain.loadClosure(digests);
    let asked = 0;
    const failing = {
      ...reg.fs,
    } as typeof reg.fs;
    readManifestsWith(failing, {
      read: () => {
        asked++;
        return Promise.reject(new Error('manifest thread failed: Worker terminated due to reaching memory limit: JS heap out of memory'));
      },
    });
    const viaThread = new ManifestCache(failing, reg.lay, limiter(4));
    await viaThread.loadClosure(digests);
    expect(asked).toBeGreaterThan(0);
    const all = [...digests, ...plain.children(multi.manifest.digest)];
    expect(all).toHaveLength(5);
    for (const d of all) expect(viaThread.peek(d)).toEqual(plain.peek(d));
  });
});
