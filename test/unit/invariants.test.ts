import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import { parseDuration } from '../../src/model/duration.js';
import { parseRepositoryName, parseTagName, type Digest } from '../../src/model/names.js';
import { parseTagPattern } from '../../src/model/pattern.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { MediaType, buildImage, buildSignature, descriptorOf, manifestFrom, signatureTag, type BuiltImage, type BuiltIndex, type BuiltManifest } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';
import { prng } from '../helpers/oracle-tree.js';

// Invariants under random input: random trees (shared layers, indexes, an
// index inside an index, index children shared between indexes or tagged
// directly, signatures, untagged referrers, untagged manifests, the same
// manifest in two repositories) and random selections. Checked: keep rules
// (--keep, latest, --keep-last) win; a removed tag is named, or matches every
// filter, or is the signature of a removed manifest; nothing a kept tag
// reaches is unlinked; the plan equals the apply; the bytes are exact.

const now = new Date('2026-11-23T12:00:00Z');


interface World {
  reg: MemRegistry;
  tags: Array<{ repo: string; tag: string; digest: Digest; pushedAt: Date }>;
  /** What this tree has (the last test checks that the seeds make each of them). */
  features: Set<string>;
}

/** An index over existing manifests (images or indexes), written with its revision link. */
function putRawIndex(reg: MemRegistry, repo: string, children: readonly BuiltManifest[], format: 'docker' | 'oci'): BuiltManifest {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList;
  const manifest = manifestFrom(mediaType, {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c, i) => ({ ...descriptorOf(c), platform: { os: 'linux', architecture: `arch${i}` } })),
  });
  reg.blob(manifest);
  reg.write(reg.lay.revisionLink(parseRepositoryName(repo), manifest.digest), manifest.digest);
  return manifest;
}

function randomWorld(seed: number): World {
  const rnd = prng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const reg = new MemRegistry();
  const tags: World['tags'] = [];
  const features = new Set<string>();
  const repos = ['a', 'b', 'team/c', 'team/c/d'].slice(0, 1 + Math.floor(rnd() * 4));
  const layerPool = Array.from({ length: 6 }, (_, i) => `pool-${seed % 3}-${i}`);
  const images = new Map<string, BuiltImage[]>();
  const tag = (repo: string, name: string, digest: Digest) => {
    if (tags.some((x) => x.repo === repo && x.tag === name)) return;
    const pushedAt = daysAgo(now, Math.floor(rnd() * 120));
    reg.tag(repo, name, digest, pushedAt);
    tags.push({ repo, tag: name, digest, pushedAt });
  };
  for (const repo of repos) {
    const manifests: BuiltManifest[] = [];
    const here: BuiltImage[] = [];
    const n = 1 + Math.floor(rnd() * 6);
    let t = 0;
    const nextTag = () => (rnd() < 0.1 ? 'latest' : `t${t++}`);
    for (let i = 0; i < n; i++) {
      const layers = [pick(layerPool), `${repo}/${i}/own`];
      const r = rnd();
      if (r < 0.25) {
        const format = rnd() < 0.5 ? 'docker' : 'oci';
        const idx: BuiltIndex = reg.putIndex(repo, {
          format,
          children: [
            { seed: `${seed}/${repo}/${i}/amd`, platform: { os: 'linux', architecture: 'amd64' }, layers },
            { seed: `${seed}/${repo}/${i}/arm`, platform: { os: 'linux', architecture: 'arm64' }, layers: [pick(layerPool)] },
          ],
        });
        here.push(...idx.children);
        if (here.length > 2 && rnd() < 0.4) {
          // Another index sharing a child with this one (and one of its own).
          const own = reg.putImage(repo, { seed: `${seed}/${repo}/${i}/own`, layers: [pick(layerPool)], format });
          manifests.push(putRawIndex(reg, repo, [idx.children[0]?.manifest as BuiltManifest, own.manifest], format));
          features.add('shared-child');
        }
        if (rnd() < 0.25) {
          tag(repo, nextTag(), pick(idx.children).manifest.digest);
          features.add('child-tagged');
        }
        manifests.push(idx.manifest);
      } else if (r < 0.35) {
        // An index inside an index (OCI), sometimes with a child shared with an earlier image.
        const inner = reg.putIndex(repo, {
          format: 'oci',
          children: [
            { seed: `${seed}/${repo}/${i}/in-amd`, platform: { os: 'linux', architecture: 'amd64' }, layers },
            { seed: `${seed}/${repo}/${i}/in-arm`, platform: { os: 'linux', architecture: 'arm64' }, layers: [pick(layerPool)] },
          ],
        });
        here.push(...inner.children);
        const other = reg.putImage(repo, { seed: `${seed}/${repo}/${i}/out`, layers: [pick(layerPool)], format: 'oci' });
        const extra = here.length > 3 && rnd() < 0.5 ? [pick(here).manifest] : [];
        manifests.push(putRawIndex(reg, repo, [inner.manifest, other.manifest, ...extra], 'oci'));
        features.add('nested-index');
        if (extra.length > 0) features.add('shared-child');
        if (rnd() < 0.3) {
          tag(repo, nextTag(), inner.manifest.digest);
          features.add('inner-index-tagged');
        }
      } else {
        const img = reg.putImage(repo, { seed: `${seed}/${repo}/${i}`, layers, format: rnd() < 0.5 ? 'docker' : 'oci' });
        here.push(img);
        manifests.push(img.manifest);
      }
    }
    // Tags: most manifests tagged, some twice, some untagged.
    for (const m of manifests) {
      const copies = rnd() < 0.2 ? 0 : rnd() < 0.2 ? 2 : 1;
      for (let c = 0; c < copies; c++) tag(repo, nextTag(), m.digest);
      if (copies > 0 && rnd() < 0.3) {
        const sig = reg.putImage(repo, buildSignature(m, { subject: rnd() < 0.5 }));
        tag(repo, signatureTag(m.digest), sig.manifest.digest);
      }
      if (rnd() < 0.2) {
        // An untagged OCI referrer (an SBOM, say) of this manifest.
        const ref = reg.putImage(repo, buildImage({ seed: `${seed}/${repo}/ref/${m.digest}`, format: 'oci', subject: descriptorOf(m), layers: [`${m.digest}/sbom`] }));
        manifests.push(ref.manifest);
        features.add('untagged-referrer');
      }
    }
    images.set(repo, here);
  }
  // The same manifest in a second repository (a cross-repository mount), tagged there or not.
  if (repos.length > 1 && rnd() < 0.5) {
    const [from, to] = [pick(repos), pick(repos)];
    const img = pick(images.get(from) ?? []);
    if (from !== to && img !== undefined) {
      reg.putImage(to, img);
      features.add('two-repositories');
      if (rnd() < 0.5) tag(to, 'mounted', img.manifest.digest);
    }
  }
  return { reg, tags, features };
}

function randomSelector(seed: number, world: World): Selector & { olderThanDays?: number } {
  const rnd = prng(seed * 7919 + 1);
  const refs = world.tags.filter(() => rnd() < 0.15).map((t) => ({ repository: parseRepositoryName(t.repo), tag: parseTagName(t.tag) }));
  const olderThanDays = rnd() < 0.6 ? 1 + Math.floor(rnd() * 90) : undefined;
  const olderThan = olderThanDays === undefined ? undefined : parseDuration(`${olderThanDays}d`);
  const tagsPattern = rnd() < 0.3 ? [parseTagPattern('t*')] : [];
  const keepLast = rnd() < 0.5 ? Math.floor(rnd() * 3) : undefined;
  return {
    refs,
    repos: [],
    excludeRepos: [],
    tags: tagsPattern,
    ...(olderThan === undefined ? {} : { olderThan, olderThanDays }),
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
  it('the seeds make every kind of tree the invariants are about', () => {
    const counts = new Map<string, number>();
    let keepLast = 0;
    for (const seed of seeds) {
      const world = randomWorld(seed);
      for (const f of world.features) counts.set(f, (counts.get(f) ?? 0) + 1);
      if ((randomSelector(seed, world).keepLast ?? 0) > 0) keepLast++;
    }
    for (const f of ['nested-index', 'inner-index-tagged', 'shared-child', 'child-tagged', 'untagged-referrer', 'two-repositories']) {
      expect(counts.get(f) ?? 0, f).toBeGreaterThanOrEqual(10);
    }
    expect(keepLast).toBeGreaterThanOrEqual(30);
  });

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
    // Signature-like tags whose subject is in the repository follow the subject: they neither count
    // for --keep-last nor match filters (src/policy/select.ts); computed here from the tree itself.
    const dependent = (t: World['tags'][number]) => {
      const m = /^sha256-([a-f0-9]{64})(?:\.(?:sig|att|sbom))?$/.exec(t.tag);
      const subject = m === null ? undefined : (`sha256:${m[1]}` as Digest);
      return subject !== undefined && subject !== t.digest && world.reg.exists(world.reg.lay.revisionLink(parseRepositoryName(t.repo), subject));
    };
    const protectedByKeepLast = new Set<string>();
    if (selector.keepLast !== undefined && selector.keepLast > 0) {
      for (const repo of new Set(world.tags.map((t) => t.repo))) {
        const newest = world.tags
          .filter((t) => t.repo === repo && !dependent(t))
          .sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime() || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
          .slice(0, selector.keepLast);
        for (const t of newest) protectedByKeepLast.add(`${t.repo}:${t.tag}`);
      }
    }
    for (const t of world.tags) {
      const ref = `${t.repo}:${t.tag}`;
      if (!removing.has(ref)) continue;
      const named = selector.refs.some((r) => `${r.repository}:${r.tag}` === ref);
      if (selector.keepLatest) expect(t.tag, `${ref} is latest`).not.toBe('latest');
      if (selector.keep.some((p) => p.test(t.tag))) expect.fail(`${ref} matches --keep but was planned for removal`);
      if (protectedByKeepLast.has(ref)) expect.fail(`${ref} is one of the ${selector.keepLast} newest tags of ${t.repo} (--keep-last) but was planned for removal`);
      if (named || dependent(t)) continue;
      // Unnamed and not a signature: it goes only because it matches every filter given.
      if (selector.olderThan === undefined && selector.tags.length === 0) expect.fail(`${ref} was neither named nor filtered`);
      if (selector.olderThanDays !== undefined) {
        expect(t.pushedAt.getTime(), `${ref} (pushed ${t.pushedAt.toISOString()}) removed, but not older than ${selector.olderThanDays}d`).toBeLessThan(
          now.getTime() - selector.olderThanDays * 86_400_000,
        );
      }
      if (selector.tags.length > 0 && !selector.tags.some((p) => p.test(t.tag))) expect.fail(`${ref} removed, but does not match --tag ${selector.tags.map((p) => p.text).join(' ')}`);
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
