import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/model/duration.js';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { RAW, type StorageFs } from '../../src/storage/fs.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// A push interleaved with apply, step by step (found by
// test/integration/concurrent.test.ts, which hits it now and then): the
// registry's manifest PUT writes the revision link first and the tag links
// after. When that PUT lands while apply unlinks the manifest (tag already
// removed earlier in the same run), apply can take the revision into its
// trash right after the registry re-linked it, re-check the tags before the
// registry writes the tag, and discard the revision: the push answered 201,
// yet its tag points at a manifest the repository no longer links (404, and
// garbage-collect then deletes the manifest blob).

const NOW = new Date('2026-11-23T12:00:00Z');
const APP = 'app' as RepositoryName;
const OLD = 'old' as TagName;
const OLDER_THAN_30D: Selector = { refs: [], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true, olderThan: parseDuration('30d') };

describe('a push of a planned manifest during its removal', () => {
  it('the pushed tag still resolves after apply (registry order: revision link, then tag links)', async () => {
    const reg = new MemRegistry();
    const m = reg.putImage('app', { seed: 'm', layers: ['base', 'm'] });
    const n = reg.putImage('app', { seed: 'n', layers: ['base', 'n'] });
    reg.tag('app', 'old', m.manifest.digest, daysAgo(NOW, 60));
    reg.tag('app', 'new', n.manifest.digest, daysAgo(NOW, 1));
    const plan = await buildPlan({ fs: reg.fs, layout: reg.lay, now: NOW, decide: (r, d) => selectTags(r, OLDER_THAN_30D, NOW, d) });
    expect(plan.tags.map((t) => t.tag)).toEqual(['old']);
    expect(plan.manifests.map((x) => x.digest)).toEqual([m.manifest.digest]);

    // The registry's PUT /v2/app/manifests/old of the same manifest, in its two steps.
    const revisionDir = reg.lay.revision(APP, m.manifest.digest);
    let step = 0;
    const fs: StorageFs = {
      ...reg.fs,
      [RAW]: {
        ...reg.fs[RAW],
        rename: async (from: string, to: string) => {
          if (from === revisionDir && step === 0) {
            // Step 1 (linkBlob): the revision link is written again, just before apply takes it.
            reg.write(reg.lay.revisionLink(APP, m.manifest.digest), m.manifest.digest);
            step = 1;
          }
          return reg.fs[RAW].rename(from, to);
        },
      },
      readdir: async (path, options) => {
        const entries = await reg.fs.readdir(path, options);
        if (path === reg.lay.tags(APP) && step === 1) {
          // Step 2 (Tag): the tag links, just after apply listed the tags again.
          reg.tag('app', 'old', m.manifest.digest, NOW);
          step = 2;
        }
        return entries;
      },
    };
    const report = await applyPlan({ fs, layout: reg.lay, plan, runId: 'race' });
    expect(step, 'the interleaving happened').toBe(2);
    expect(report.tags.map((t) => [t.tag, t.result])).toEqual([['old', 'removed']]);

    // The push succeeded, so its tag must resolve: current/link names a manifest the repository links.
    expect(Buffer.from(await reg.fs.readFile(reg.lay.tagCurrentLink(APP, OLD))).toString()).toBe(m.manifest.digest);
    expect(reg.exists(reg.lay.revisionLink(APP, m.manifest.digest)), `${posix.relative(reg.root, revisionDir)} was unlinked under the pushed tag`).toBe(true);
  });
});
