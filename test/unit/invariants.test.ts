import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { parseDuration } from '../../src/model/duration.js';
import { parseRepositoryName, parseTagName, type Digest } from '../../src/model/names.js';
import { parseTagPattern } from '../../src/model/pattern.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { buildSignature, signatureTag, type BuiltImage, type BuiltIndex } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// Invariants under random input: random trees (shared layers, indexes,
// signatures, untagged manifests) and random selections.

const now = new Date('2026-11-23T12:00:00Z');

function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface World {
  reg: MemRegistry;
  tags: Array<{ repo: string; tag: string; digest: Digest }>;
}

function randomWorld(seed: number): World {
  const rnd = prng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const reg = new MemRegistry();
  const tags: World['tags'] = [];
  const repos = ['a', 'b', 'team/c', 'team/c/d'].slice(0, 1 + Math.floor(rnd() * 4));
  const layerPool = Array.from({ length: 6 }, (_, i) => `pool-${seed % 3}-${i}`);
  for (const repo of repos) {
    const manifests: Array<BuiltImage | BuiltIndex> = [];
    const n = 1 + Math.floor(rnd() * 6);
    for (let i = 0; i < n; i++) {
      const layers = [pick(layerPool), `${repo}/${i}/own`];
      if (rnd() < 0.25) {
        manifests.push(
          reg.putIndex(repo, {
            format: rnd() < 0.5 ? 'docker' : 'oci',
            children: [
              { seed: `${seed}/${repo}/${i}/amd`, platform: { os: 'linux', architecture: 'amd64' }, layers },
              { seed: `${seed}/${repo}/${i}/arm`, platform: { os: 'linux', architecture: 'arm64' }, layers: [pick(layerPool)] },
            ],
          }),
        );
      } else {
        manifests.push(reg.putImage(repo, { seed: `${seed}/${repo}/${i}`, layers, format: rnd() < 0.5 ? 'docker' : 'oci' }));
      }
    }
    // Tags: most manifests tagged, some twice, some untagged.
    let t = 0;
    for (const m of manifests) {
      const copies = rnd() < 0.2 ? 0 : rnd() < 0.2 ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        const tag = rnd() < 0.1 ? 'latest' : `t${t++}`;
        if (tags.some((x) => x.repo === repo && x.tag === tag)) continue;
        reg.tag(repo, tag, m.manifest.digest, daysAgo(now, Math.floor(rnd() * 120)));
        tags.push({ repo, tag, digest: m.manifest.digest });
      }
      if (copies > 0 && rnd() < 0.3) {
        const sig = reg.putImage(repo, buildSignature(m.manifest, { subject: rnd() < 0.5 }));
        const sigTag = signatureTag(m.manifest.digest);
        reg.tag(repo, sigTag, sig.manifest.digest, daysAgo(now, Math.floor(rnd() * 120)));
        tags.push({ repo, tag: sigTag, digest: sig.manifest.digest });
      }
    }
  }
  return { reg, tags };
}

function randomSelector(seed: number, world: World): Selector {
  const rnd = prng(seed * 7919 + 1);
  const refs = world.tags.filter(() => rnd() < 0.15).map((t) => ({ repository: parseRepositoryName(t.repo), tag: parseTagName(t.tag) }));
  const olderThan = rnd() < 0.6 ? parseDuration(`${1 + Math.floor(rnd() * 90)}d`) : undefined;
  const tagsPattern = rnd() < 0.3 ? [parseTagPattern('t*')] : [];
  const keepLast = rnd() < 0.5 ? Math.floor(rnd() * 3) : undefined;
  return {
    refs,
    repos: [],
    excludeRepos: [],
    tags: tagsPattern,
    ...(olderThan === undefined ? {} : { olderThan }),
    keep: rnd() < 0.3 ? [parseTagPattern('t1')] : [],
    ...(keepLast === undefined ? {} : { keepLast }),
    keepLatest: rnd() < 0.8,
  };
}

/** An independent mark-and-sweep over the tree, as garbage-collect (no -m) does it. */
function markAndSweep(reg: MemRegistry): { marked: Set<string>; freedBytes: number } {
  const files = reg.vol.toJSON(reg.root) as Record<string, string | null>;
  const marked = new Set<string>();
  for (const path of Object.keys(files)) {
    const m = /\/_manifests\/revisions\/sha256\/([a-f0-9]{64})\/link$/.exec(path);
    if (m === null) continue;
    const digest = `sha256:${m[1]}`;
    marked.add(digest);
    const data = files[`${reg.lay.blobs}/sha256/${m[1]?.slice(0, 2)}/${m[1]}/data`];
    if (data === undefined || data === null) continue;
    const doc = JSON.parse(data) as { config?: { digest: string }; layers?: Array<{ digest: string }>; manifests?: Array<{ digest: string }> };
    if (doc.config !== undefined) marked.add(doc.config.digest);
    for (const l of doc.layers ?? []) marked.add(l.digest);
    for (const c of doc.manifests ?? []) marked.add(c.digest);
  }
  let freedBytes = 0;
  for (const path of Object.keys(files)) {
    const m = /\/blobs\/sha256\/[a-f0-9]{2}\/([a-f0-9]{64})\/data$/.exec(path);
    // Sizes from stat: toJSON decodes bytes as UTF-8, which changes the length of binary layers.
    if (m !== null && !marked.has(`sha256:${m[1]}`)) freedBytes += reg.vol.statSync(path).size;
  }
  return { marked, freedBytes };
}

/** Manifests reachable from `tags` through index children and (OCI) referrers. */
function reachable(reg: MemRegistry, repo: string, roots: readonly string[]): Set<string> {
  const files = reg.vol.toJSON(reg.root) as Record<string, string | null>;
  const read = (d: string) => {
    const hex = d.slice(7);
    const data = files[`${reg.lay.blobs}/sha256/${hex.slice(0, 2)}/${hex}/data`];
    return data === undefined || data === null ? undefined : (JSON.parse(data) as { manifests?: Array<{ digest: string }>; subject?: { digest: string } });
  };
  const revisions = Object.keys(files)
    .map((p) => new RegExp(`/repositories/${repo}/_manifests/revisions/sha256/([a-f0-9]{64})/link$`).exec(p)?.[1])
    .filter((x): x is string => x !== undefined)
    .map((h) => `sha256:${h}`);
  const out = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    if (out.has(d)) continue;
    out.add(d);
    for (const c of read(d)?.manifests ?? []) stack.push(c.digest);
    for (const r of revisions) if (read(r)?.subject?.digest === d) stack.push(r);
  }
  return out;
}

describe('invariants over random trees and selections', () => {
  const seeds = Array.from({ length: 150 }, (_, i) => i + 1);
  it.each(seeds)('seed %i', async (seed) => {
    const world = randomWorld(seed);
    const selector = randomSelector(seed, world);
    const untagged = seed % 4 === 0;
    const plan = await buildPlan({
      fs: world.reg.fs,
      layout: world.reg.lay,
      now,
      decide: (repos, dependent) => selectTags(repos, selector, now, dependent),
      ...(untagged ? { untaggedIn: () => true } : {}),
    });
    const before = markAndSweep(world.reg);
    expect(before.freedBytes, 'the random tree starts clean').toBe(0);

    // Keep rules win: no protected tag is planned for removal.
    const removing = new Set(plan.tags.map((t) => `${t.repository}:${t.tag}`));
    for (const t of world.tags) {
      const ref = `${t.repo}:${t.tag}`;
      if (!removing.has(ref)) continue;
      const named = selector.refs.some((r) => `${r.repository}:${r.tag}` === ref);
      if (selector.keepLatest) expect(t.tag, `${ref} is latest`).not.toBe('latest');
      if (selector.keep.some((p) => p.test(t.tag))) expect.fail(`${ref} matches --keep but was planned for removal`);
      if (!named && !t.tag.startsWith('sha256-') && selector.olderThan === undefined && selector.tags.length === 0) {
        expect.fail(`${ref} was neither named nor filtered`);
      }
    }

    const report = await applyPlan({ fs: world.reg.fs, layout: world.reg.lay, plan, runId: `s${seed}` });
    // The dry-run plan equals what the apply did.
    expect(report.tags.map((o) => `${o.repository}:${o.tag}:${o.result}`)).toEqual(plan.tags.map((t) => `${t.repository}:${t.tag}:removed`));
    expect(report.manifests.map((o) => `${o.repository}@${o.digest}:${o.result}`).sort()).toEqual(
      plan.manifests.map((m) => `${m.repository}@${m.digest}:removed`).sort(),
    );
    // Nothing reachable from a kept tag was unlinked.
    const kept = world.tags.filter((t) => !removing.has(`${t.repo}:${t.tag}`));
    for (const repo of new Set(world.tags.map((t) => t.repo))) {
      const roots = kept.filter((t) => t.repo === repo).map((t) => t.digest);
      for (const d of reachable(world.reg, repo, roots)) {
        const hex = d.slice(7);
        expect(world.reg.exists(world.reg.lay.revisionLink(parseRepositoryName(repo), d as Digest)), `${repo}@${hex} reachable from a kept tag`).toBe(true);
      }
    }
    // Predicted bytes equal what a mark-and-sweep over the resulting tree frees.
    const after = markAndSweep(world.reg);
    expect(after.freedBytes).toBe(plan.reclaimableBytes);
  });
});
