import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration, parseInstant } from '../../src/model/duration.js';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import { parseTagRef } from '../../src/model/names.js';
import { parseRepoGlob, parseTagPattern } from '../../src/model/pattern.js';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import type { Plan } from '../../src/plan/plan.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { buildImage, buildSignature, descriptorOf, sha256Digest, signatureTag, type Blob, type BuiltImage } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

interface SelectorArgs {
  refs?: string[];
  repo?: string[];
  excludeRepo?: string[];
  tag?: string[];
  olderThan?: string;
  before?: string;
  keep?: string[];
  keepLast?: number;
  keepLatest?: boolean;
}

function selector(a: SelectorArgs): Selector {
  return {
    refs: (a.refs ?? []).map(parseTagRef),
    repos: (a.repo ?? []).map((g) => parseRepoGlob(g)),
    excludeRepos: (a.excludeRepo ?? []).map((g) => parseRepoGlob(g)),
    tags: (a.tag ?? []).map((p) => parseTagPattern(p)),
    ...(a.olderThan === undefined ? {} : { olderThan: parseDuration(a.olderThan) }),
    ...(a.before === undefined ? {} : { before: parseInstant(a.before) }),
    keep: (a.keep ?? []).map((p) => parseTagPattern(p, '--keep')),
    ...(a.keepLast === undefined ? {} : { keepLast: a.keepLast }),
    keepLatest: a.keepLatest ?? true,
  };
}

function plan(reg: MemRegistry, args: SelectorArgs, untaggedIn?: (repo: RepositoryName) => boolean): Promise<Plan> {
  const sel = selector(args);
  return buildPlan({
    fs: reg.fs,
    layout: reg.lay,
    now: NOW,
    decide: (repos, dependent) => selectTags(repos, sel, NOW, dependent),
    ...(untaggedIn === undefined ? {} : { untaggedIn }),
  });
}

const sizeOf = (...items: Array<{ size: number }>) => items.reduce((n, i) => n + i.size, 0);
const byDigest = <T extends { digest: string }>(list: T[]) => [...list].sort((a, b) => (a.digest < b.digest ? -1 : 1));
const platform = (architecture: string) => ({ os: 'linux', architecture });

/**
 * An independent garbage-collect (without -m): marks, in every repository,
 * each manifest under _manifests/revisions and every descriptor it names
 * (config, layers, index children, schema1 blobSums), and returns the blobs
 * nothing marked, with their sizes.
 */
function markAndSweep(reg: MemRegistry): Map<string, number> {
  const v2 = posix.join(reg.root, 'docker/registry/v2');
  const paths = Object.keys(reg.vol.toJSON(v2));
  const revision = /\/repositories\/.+\/_manifests\/revisions\/sha256\/([0-9a-f]{64})\/link$/;
  const blob = /\/blobs\/sha256\/[0-9a-f]{2}\/([0-9a-f]{64})\/data$/;
  const marked = new Set<string>();
  for (const path of paths) {
    const m = revision.exec(path);
    if (m === null) continue;
    const digest = `sha256:${m[1]}`;
    marked.add(digest);
    const data = `${v2}/blobs/sha256/${m[1]?.slice(0, 2)}/${m[1]}/data`;
    if (!reg.vol.existsSync(data)) continue;
    const doc = JSON.parse(reg.vol.readFileSync(data, 'utf8') as string) as {
      config?: { digest: string };
      layers?: Array<{ digest: string }>;
      manifests?: Array<{ digest: string }>;
      fsLayers?: Array<{ blobSum: string }>;
    };
    for (const d of [doc.config, ...(doc.layers ?? []), ...(doc.manifests ?? [])]) if (d !== undefined) marked.add(d.digest);
    for (const l of doc.fsLayers ?? []) marked.add(l.blobSum);
  }
  const freed = new Map<string, number>();
  for (const path of paths) {
    const m = blob.exec(path);
    if (m === null || marked.has(`sha256:${m[1]}`)) continue;
    freed.set(`sha256:${m[1]}`, reg.vol.statSync(path).size);
  }
  return freed;
}

describe('buildPlan', () => {
  it('a tag sharing its manifest with a kept tag: the tag goes, no manifest, 0 bytes', async () => {
    const reg = new MemRegistry();
    const img = reg.putImage('i1', { seed: 'x' });
    reg.tag('i1', 'T12', img.manifest.digest, new Date('2026-09-01T00:00:00Z'));
    reg.tag('i1', 'T13', img.manifest.digest, new Date('2026-10-01T00:00:00Z'));
    const p = await plan(reg, { refs: ['i1:T12'] });
    expect(p.tags).toEqual([{ repository: 'i1', tag: 'T12', digest: img.manifest.digest, pushedAt: '2026-09-01T00:00:00.000Z', reason: 'named' }]);
    expect(p.manifests).toEqual([]);
    expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([0, 0]);
    expect(p).toMatchObject({ version: 1, root: '/srv/registry', createdAt: NOW.toISOString(), untagged: false, missing: [], blocked: [], warnings: [] });
    expect(p.stats).toEqual({ repositories: 1, tags: 2, manifests: 1 });
  });

  describe('multi-platform images', () => {
    function tree() {
      const reg = new MemRegistry();
      const index = reg.putIndex('multi', {
        children: [
          { seed: 'amd', platform: platform('amd64'), layers: ['base', 'amd-only'] },
          { seed: 'arm', platform: platform('arm64'), layers: ['base', 'arm-shared'] },
        ],
      });
      const [amd, arm] = index.children as [BuiltImage, BuiltImage];
      const other = reg.putImage('multi', { seed: 'other', layers: ['base'] });
      const elsewhere = reg.putImage('elsewhere', { seed: 'elsewhere', layers: ['arm-shared'] });
      reg.tag('multi', 'v1', index.manifest.digest, daysAgo(NOW, 40));
      reg.tag('multi', 'v1-amd64', amd.manifest.digest, daysAgo(NOW, 40));
      reg.tag('multi', 'v2', other.manifest.digest, daysAgo(NOW, 10));
      reg.tag('elsewhere', 'e1', elsewhere.manifest.digest, daysAgo(NOW, 10));
      return { reg, index, amd, arm };
    }

    it('removing the index tag unlinks the index and both children; shared layers are not counted', async () => {
      const { reg, index, amd, arm } = tree();
      reg.vol.rmSync(posix.join(reg.lay.tags(R('multi')), 'v1-amd64'), { recursive: true });
      const p = await plan(reg, { refs: ['multi:v1'] });
      expect(p.manifests).toEqual(
        byDigest([
          { repository: 'multi', digest: index.manifest.digest, reason: 'tag v1 removed' },
          { repository: 'multi', digest: amd.manifest.digest, reason: 'only reachable from removed tags' },
          { repository: 'multi', digest: arm.manifest.digest, reason: 'only reachable from removed tags' },
        ]),
      );
      // `base` is still used by multi:v2, `arm-shared` by the repository `elsewhere`.
      const amdOnly = amd.layers[1] as { size: number };
      expect(p.reclaimableBytes).toBe(sizeOf(index.manifest, amd.manifest, arm.manifest, amd.config, arm.config, amdOnly));
      expect(p.reclaimableBlobs).toBe(6);
    });

    it('a single-platform tag of a child goes while the index stays: children untouched', async () => {
      const { reg } = tree();
      const p = await plan(reg, { refs: ['multi:v1-amd64'] });
      expect(p.tags.map((t) => t.tag)).toEqual(['v1-amd64']);
      expect(p.manifests).toEqual([]);
      expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([0, 0]);
    });

    it('an unrelated single-platform image goes: only its own manifest, the index children stay', async () => {
      const { reg } = tree();
      const p = await plan(reg, { refs: ['multi:v2'] });
      const other = buildImage({ seed: 'other', layers: ['base'] });
      expect(p.manifests).toEqual([{ repository: 'multi', digest: other.manifest.digest, reason: 'tag v2 removed' }]);
      expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([sizeOf(other.manifest, other.config), 2]);
    });

    it('a tag on a child of an index that is untagged (pinned by digest) does not unlink that child', async () => {
      // v1 moved on to a new index; the old index is untagged but may still be pulled by digest,
      // and without --untagged regprune leaves untagged manifests alone: their children must stay too.
      const { reg, index, amd } = tree();
      const newer = reg.putIndex('multi', { children: [{ seed: 'amd2', platform: platform('amd64') }] });
      reg.tag('multi', 'v1', newer.manifest.digest, daysAgo(NOW, 1));
      const p = await plan(reg, { refs: ['multi:v1-amd64'] });
      expect(p.tags.map((t) => t.tag)).toEqual(['v1-amd64']);
      expect(p.manifests.map((m) => m.digest)).not.toContain(amd.manifest.digest);
      expect(p.manifests).toEqual([]);
      expect(reg.exists(reg.lay.revisionLink(R('multi'), index.manifest.digest))).toBe(true);
      expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([0, 0]);
    });
  });

  describe('signatures and referrers', () => {
    function tree() {
      const reg = new MemRegistry();
      const x = reg.putImage('s', { seed: 'x' });
      const y = reg.putImage('s', { seed: 'y' });
      const old = reg.putImage('s', { seed: 'old' });
      const sigX = reg.putImage('s', buildSignature(x.manifest));
      const sigY = reg.putImage('s', buildSignature(y.manifest));
      reg.tag('s', 'v1', x.manifest.digest, daysAgo(NOW, 100));
      reg.tag('s', 'v2', y.manifest.digest, daysAgo(NOW, 5));
      reg.tag('s', 'old', old.manifest.digest, daysAgo(NOW, 100));
      reg.tag('s', signatureTag(x.manifest.digest), sigX.manifest.digest, daysAgo(NOW, 100));
      reg.tag('s', signatureTag(y.manifest.digest), sigY.manifest.digest, daysAgo(NOW, 100));
      return { reg, x, y, old, sigX, sigY };
    }

    it('the cosign signature tag of a removed manifest goes with it', async () => {
      const { reg, x, sigX } = tree();
      const p = await plan(reg, { refs: ['s:v1'] });
      expect(p.tags.map((t) => [t.tag, t.reason])).toEqual([
        [signatureTag(x.manifest.digest), `signature of removed ${x.manifest.digest}`],
        ['v1', 'named'],
      ]);
      expect(p.manifests).toEqual(
        byDigest([
          { repository: 's', digest: x.manifest.digest, reason: 'tag v1 removed' },
          { repository: 's', digest: sigX.manifest.digest, reason: `tag ${signatureTag(x.manifest.digest)} removed` },
        ]),
      );
      expect(p.reclaimableBytes).toBe(sizeOf(x.manifest, x.config, ...x.layers, sigX.manifest, sigX.config, ...sigX.layers));
      expect(p.reclaimableBlobs).toBe(6);
    });

    it('the signature of a kept manifest is kept even when it matches --older-than', async () => {
      const { reg, x, y, old } = tree();
      const p = await plan(reg, { olderThan: '30d' });
      expect(p.tags.map((t) => [t.tag, t.reason])).toEqual([
        ['old', 'older than 30d (pushed 2026-08-15)'],
        [signatureTag(x.manifest.digest), `signature of removed ${x.manifest.digest}`],
        ['v1', 'older than 30d (pushed 2026-08-15)'],
      ]);
      expect(p.kept.map((t) => [t.tag, t.reason])).toEqual([
        [signatureTag(y.manifest.digest), `kept: signature of kept ${y.manifest.digest}`],
        ['v2', 'kept: pushed 2026-11-18, within 30d'],
      ]);
      expect(p.manifests.map((m) => m.digest)).toContain(old.manifest.digest);
    });

    it('with nothing removed in the repository, the signature follows its subject', async () => {
      const { reg, y } = tree();
      const p = await plan(reg, { olderThan: '30d', keep: ['v1', 'old'] });
      expect(p.tags).toEqual([]);
      expect(p.kept.find((t) => t.tag === signatureTag(y.manifest.digest))?.reason).toBe('kept: follows its subject');
    });

    it('the signature of an untagged manifest that stays is kept', async () => {
      const { reg, x } = tree();
      reg.vol.rmSync(reg.lay.tag(R('s'), T('v1')), { recursive: true });
      const p = await plan(reg, { olderThan: '30d', keep: ['v2'] });
      expect(p.tags.map((t) => t.tag)).toEqual(['old']);
      expect(p.kept.find((t) => t.tag === signatureTag(x.manifest.digest))?.reason).toBe(`kept: signature of untagged ${x.manifest.digest}, which stays`);
    });

    it('naming the signature tag itself removes it, not its subject', async () => {
      const { reg, x, sigX } = tree();
      const p = await plan(reg, { refs: [`s:${signatureTag(x.manifest.digest)}`] });
      expect(p.tags.map((t) => [t.tag, t.reason])).toEqual([[signatureTag(x.manifest.digest), 'named']]);
      expect(p.manifests.map((m) => m.digest)).toEqual([sigX.manifest.digest]);
    });

    it('an OCI referrer (untagged, with subject) of a removed manifest is unlinked; one of a kept manifest stays', async () => {
      const reg = new MemRegistry();
      const x = reg.putImage('r', { seed: 'x', format: 'oci' });
      const y = reg.putImage('r', { seed: 'y', format: 'oci' });
      const refX = reg.putImage('r', { seed: 'sbom-x', format: 'oci', subject: descriptorOf(x.manifest) });
      const refY = reg.putImage('r', { seed: 'sbom-y', format: 'oci', subject: descriptorOf(y.manifest) });
      reg.tag('r', 'v1', x.manifest.digest, daysAgo(NOW, 50));
      reg.tag('r', 'v2', y.manifest.digest, daysAgo(NOW, 5));
      for (const untagged of [undefined, () => true]) {
        const p = await plan(reg, { refs: ['r:v1'] }, untagged);
        expect(p.manifests).toEqual(
          byDigest([
            { repository: 'r', digest: x.manifest.digest, reason: 'tag v1 removed' },
            { repository: 'r', digest: refX.manifest.digest, reason: 'only reachable from removed tags' },
          ]),
        );
        expect(p.manifests.map((m) => m.digest)).not.toContain(refY.manifest.digest);
        expect(p.reclaimableBytes).toBe(sizeOf(x.manifest, x.config, ...x.layers, refX.manifest, refX.config, ...refX.layers));
      }
    });
  });

  describe('untagged manifests', () => {
    function tree() {
      const reg = new MemRegistry();
      const index = reg.putIndex('u', {
        children: [
          { seed: 'c1', platform: platform('amd64') },
          { seed: 'c2', platform: platform('arm64') },
        ],
      });
      const untagged = reg.putImage('u', { seed: 'untagged' });
      const w = reg.putImage('u', { seed: 'w' });
      reg.tag('u', 'v1', index.manifest.digest, daysAgo(NOW, 3));
      reg.tag('u', 'v2', w.manifest.digest, daysAgo(NOW, 3));
      return { reg, index, untagged, w };
    }

    it('are left alone without --untagged', async () => {
      const { reg, w } = tree();
      const p = await plan(reg, { refs: ['u:v2'] });
      expect(p.manifests).toEqual([{ repository: 'u', digest: w.manifest.digest, reason: 'tag v2 removed' }]);
      expect(p.untagged).toBe(false);
    });

    it('are removed with it, never the children of a kept index', async () => {
      const { reg, untagged, w } = tree();
      const p = await plan(reg, { refs: ['u:v2'] }, (r) => r === 'u');
      expect(p.manifests).toEqual(
        byDigest([
          { repository: 'u', digest: w.manifest.digest, reason: 'tag v2 removed' },
          { repository: 'u', digest: untagged.manifest.digest, reason: 'untagged (--untagged)' },
        ]),
      );
      expect(p.untagged).toBe(true);
      expect(p.reclaimableBytes).toBe(sizeOf(w.manifest, w.config, ...w.layers, untagged.manifest, untagged.config, ...untagged.layers));
    });

    it('are removed with --untagged even when no tag goes', async () => {
      const { reg, untagged } = tree();
      const p = await plan(reg, { tag: ['nomatch'] }, () => true);
      expect(p.tags).toEqual([]);
      expect(p.manifests).toEqual([{ repository: 'u', digest: untagged.manifest.digest, reason: 'untagged (--untagged)' }]);
    });

    it('only in the repositories untaggedIn names', async () => {
      const { reg } = tree();
      reg.putImage('other', { seed: 'lonely' });
      const p = await plan(reg, { tag: ['nomatch'] }, (r) => r === 'other');
      expect(p.manifests.map((m) => m.repository)).toEqual(['other']);
    });
  });

  describe('revisions as the registry sees them (issue 12)', () => {
    function tree() {
      const reg = new MemRegistry();
      const keep = reg.putImage('app', { seed: 'keep' });
      const old = reg.putImage('app', { seed: 'old', layers: ['old-own'] });
      const gone = reg.putImage('app', { seed: 'gone', layers: ['gone-own'] });
      reg.tag('app', 'keep', keep.manifest.digest, daysAgo(NOW, 1));
      reg.tag('app', 'old', old.manifest.digest, daysAgo(NOW, 90));
      // What the API's manifest DELETE leaves: the revision directory without its link.
      reg.vol.rmSync(reg.lay.revisionLink(R('app'), gone.manifest.digest));
      const other = reg.putImage('other', { seed: 'other' });
      const otherGone = reg.putImage('other', { seed: 'other-gone' });
      reg.tag('other', 'v1', other.manifest.digest, daysAgo(NOW, 1));
      reg.vol.rmSync(reg.lay.revisionLink(R('other'), otherGone.manifest.digest));
      return { reg, keep, old, gone, other, otherGone };
    }

    it('a revision dir without link is no manifest: its blobs are already unreferenced; it goes with its pruned repository only', async () => {
      const { reg, old, gone } = tree();
      const p = await plan(reg, { refs: ['app:old'] });
      expect(p.blocked).toEqual([]);
      expect(p.manifests.map((m) => m.digest)).toEqual([old.manifest.digest]);
      expect(p.leftovers).toEqual([{ repository: 'app', digest: gone.manifest.digest, reason: 'revision directory without link (left by an API delete): no manifest' }]);
      expect(p.stats.manifests).toBe(3); // keep, old, other
      const before = markAndSweep(reg);
      expect(p.unreferencedBlobs).toBe(before.size);
      expect(p.unreferencedBytes).toBe([...before.values()].reduce((n, x) => n + x, 0));
      expect(p.exact).toBe(true);
      const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 't' });
      expect(report.manifests.map((m) => m.result)).toEqual(['removed', 'removed']);
      expect(reg.vol.existsSync(reg.lay.revision(R('app'), gone.manifest.digest))).toBe(false);
      const freed = markAndSweep(reg);
      expect([...freed.values()].reduce((n, x) => n + x, 0)).toBe(p.reclaimableBytes + p.unreferencedBytes);
    });

    it('a leftover whose link is written between plan and apply (a push of that manifest) is left in place', async () => {
      const { reg, gone } = tree();
      const p = await plan(reg, { refs: ['app:old'] });
      expect(p.leftovers.map((l) => l.digest)).toEqual([gone.manifest.digest]);
      reg.write(reg.lay.revisionLink(R('app'), gone.manifest.digest), gone.manifest.digest);
      const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 't' });
      expect(report.manifests.find((m) => m.digest === gone.manifest.digest)?.result).toBe('changed');
      expect(reg.vol.existsSync(reg.lay.revisionLink(R('app'), gone.manifest.digest))).toBe(true);
    });

    it.each([
      ['empty', ''],
      ['a trailing newline', 'NL'],
      ['another digest', 'OTHER'],
    ])('a revision link that is %s: a warning naming the path, the repository blocked, the figure not exact', async (_name, kind) => {
      const { reg, keep, old } = tree();
      const path = reg.lay.revisionLink(R('app'), keep.manifest.digest);
      reg.write(path, kind === 'NL' ? `${keep.manifest.digest}\n` : kind === 'OTHER' ? old.manifest.digest : '');
      const p = await plan(reg, { refs: ['app:old'] });
      expect(p.warnings.map((w) => [w.code, w.path])).toEqual([['bad-link', path]]);
      expect(p.blocked.map((b) => b.repository)).toEqual(['app']);
      expect(p.manifests).toEqual([]);
      expect(p.leftovers).toEqual([]);
      expect(p.exact).toBe(false);
    });
  });

  describe('a repository that is not fully understood', () => {
    const GARBAGE = Buffer.from('not json {', 'utf8');
    function tree() {
      const reg = new MemRegistry();
      const a = reg.putImage('broken', { seed: 'a' });
      const b = reg.putImage('broken', { seed: 'b', layers: ['b-own', 'shared'] });
      const garbage = sha256Digest(GARBAGE);
      reg.write(reg.lay.blobData(garbage), GARBAGE);
      reg.write(reg.lay.revisionLink(R('broken'), garbage), garbage);
      reg.tag('broken', 'a', a.manifest.digest, daysAgo(NOW, 3));
      reg.tag('broken', 'b', b.manifest.digest, daysAgo(NOW, 3));
      const c = reg.putImage('ok', { seed: 'c', layers: ['c-own', 'shared'] });
      reg.tag('ok', 'c', c.manifest.digest, daysAgo(NOW, 3));
      return { reg, a, b, c, garbage };
    }

    it('is blocked: its tags go, no manifest of it does, the warning names the path, its _layers count as referenced', async () => {
      const { reg, c, garbage } = tree();
      const p = await plan(reg, { refs: ['broken:b', 'ok:c'] });
      expect(p.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual(['broken:b', 'ok:c']);
      expect(p.manifests).toEqual([{ repository: 'ok', digest: c.manifest.digest, reason: 'tag c removed' }]);
      expect(p.blocked).toEqual([{ repository: 'broken', reason: `no manifest removed: manifest ${garbage}: manifest is not JSON` }]);
      expect(p.warnings).toEqual([
        {
          code: 'bad-manifest',
          path: `/srv/registry/docker/registry/v2/blobs/sha256/${garbage.slice(7, 9)}/${garbage.slice(7)}/data`,
          message: 'manifest is not JSON; kept, with everything in broken it might reference',
        },
      ]);
      // `shared` is linked in broken/_layers: it counts as referenced.
      const cOwn = c.layers[0] as { size: number };
      expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([sizeOf(c.manifest, c.config, cOwn), 3]);
    });

    it('a revision whose manifest blob is missing blocks too', async () => {
      const { reg, b } = tree();
      reg.vol.rmSync(reg.lay.revision(R('broken'), sha256Digest(GARBAGE)), { recursive: true });
      const lost = buildImage({ seed: 'lost' }).manifest.digest;
      reg.write(reg.lay.revisionLink(R('broken'), lost), lost);
      const p = await plan(reg, { refs: ['broken:b'] });
      expect(p.manifests).toEqual([]);
      expect(p.blocked).toEqual([{ repository: 'broken', reason: `no manifest removed: manifest ${lost}: manifest blob is missing` }]);
      expect(p.warnings).toEqual([
        {
          code: 'missing-blob',
          path: reg.lay.revision(R('broken'), lost),
          message: 'manifest blob is missing; kept, with everything in broken it might reference',
        },
      ]);
      expect(p.tags.map((t) => t.digest)).toEqual([b.manifest.digest]);
      expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([0, 0]);
    });

    it('a repository with an unreadable tag is blocked', async () => {
      const { reg, b } = tree();
      reg.write(reg.lay.tagCurrentLink(R('ok'), T('bad')), `${b.manifest.digest}\n`);
      const p = await plan(reg, { refs: ['ok:c'] });
      expect(p.tags.map((t) => t.tag)).toEqual(['c']);
      expect(p.manifests).toEqual([]);
      expect(p.blocked).toEqual([{ repository: 'ok', reason: 'no manifest removed: 1 tag(s) could not be read' }]);
      expect(p.warnings.map((w) => [w.code, w.path])).toEqual([
        ['bad-link', reg.lay.tagCurrentLink(R('ok'), T('bad'))],
        ['bad-manifest', reg.lay.blobData(sha256Digest(GARBAGE))],
      ]);
    });

    it('a repository whose _manifests is a symlink is never pruned through it, even with --untagged', async () => {
      const reg = new MemRegistry();
      const img = buildImage({ seed: 'h' });
      reg.blob(img.manifest);
      reg.blob(img.config);
      for (const l of img.layers) reg.blob(l);
      reg.write(reg.lay.layerLink(R('half'), img.config.digest), img.config.digest);
      const target = '/elsewhere/half-manifests';
      reg.write(posix.join(target, 'revisions/sha256', img.manifest.digest.slice(7), 'link'), img.manifest.digest);
      reg.vol.mkdirSync(posix.join(target, 'tags'), { recursive: true });
      reg.vol.symlinkSync(target, posix.dirname(posix.dirname(reg.lay.revisions(R('half')))));
      const p = await plan(reg, { tag: ['nomatch'] }, () => true);
      expect(p.manifests).toEqual([]);
      expect(p.blocked).toEqual([{ repository: 'half', reason: 'no manifest removed: 1 tag(s) could not be read' }]);
    });
  });

  it('the same manifest in two repositories: unlinked in one, its blobs still referenced by the other', async () => {
    const reg = new MemRegistry();
    const img = buildImage({ seed: 'twice' });
    reg.putImage('a', img);
    reg.putImage('b', img);
    reg.tag('a', 'v1', img.manifest.digest, daysAgo(NOW, 3));
    reg.tag('b', 'v1', img.manifest.digest, daysAgo(NOW, 3));
    const p = await plan(reg, { refs: ['a:v1'] });
    expect(p.manifests).toEqual([{ repository: 'a', digest: img.manifest.digest, reason: 'tag v1 removed' }]);
    expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([0, 0]);
  });

  it('the OCI referrers fallback tag (sha256-<hex> -> an index of referrers) goes with its subject', async () => {
    const reg = new MemRegistry();
    const x = reg.putImage('f', { seed: 'x', format: 'oci' });
    const referrers = reg.putIndex('f', {
      format: 'oci',
      children: [
        { seed: 'sbom', format: 'oci', platform: platform('unknown'), subject: descriptorOf(x.manifest) },
        { seed: 'vex', format: 'oci', platform: platform('unknown'), subject: descriptorOf(x.manifest) },
      ],
    });
    const fallback = `sha256-${x.manifest.digest.slice(7)}`;
    reg.tag('f', 'v1', x.manifest.digest, daysAgo(NOW, 3));
    reg.tag('f', fallback, referrers.manifest.digest, daysAgo(NOW, 3));
    const p = await plan(reg, { refs: ['f:v1'] });
    expect(p.tags.map((t) => [t.tag, t.reason])).toEqual([
      [fallback, `signature of removed ${x.manifest.digest}`],
      ['v1', 'named'],
    ]);
    expect(p.manifests.map((m) => m.digest)).toEqual(
      [x.manifest.digest, referrers.manifest.digest, ...referrers.children.map((c) => c.manifest.digest)].sort(),
    );
  });

  it('a schema1 manifest: its fsLayers are what it references (a repeated blobSum counted once)', async () => {
    const reg = new MemRegistry();
    const layers = buildImage({ seed: 'legacy', layers: ['l1', 'l2'] }).layers;
    for (const l of layers) reg.blob(l);
    const [l1, l2] = layers as readonly [Blob, Blob];
    const doc = { schemaVersion: 1, name: 'legacy', tag: 'old', architecture: 'amd64', fsLayers: [{ blobSum: l1.digest }, { blobSum: l1.digest }, { blobSum: l2.digest }], history: [], signatures: [{ header: {}, signature: 'x', protected: 'y' }] };
    const bytes = Buffer.from(JSON.stringify(doc, null, 3));
    const digest = sha256Digest(bytes);
    reg.write(reg.lay.blobData(digest), bytes);
    reg.write(reg.lay.revisionLink(R('legacy'), digest), digest);
    reg.tag('legacy', 'old', digest, daysAgo(NOW, 900));
    const keep = reg.putImage('legacy', { seed: 'new', layers: ['l2'] });
    reg.tag('legacy', 'new', keep.manifest.digest, daysAgo(NOW, 1));
    const p = await plan(reg, { olderThan: '1y' });
    expect(p.manifests).toEqual([{ repository: 'legacy', digest, reason: 'tag old removed' }]);
    expect([p.reclaimableBytes, p.reclaimableBlobs]).toEqual([bytes.length + l1.size, 2]);
    await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'r' });
    expect(markAndSweep(reg)).toEqual(new Map([[digest, bytes.length], [l1.digest, l1.size]]));
  });

  it('named tags that do not exist: missing, with a warning naming the tag path', async () => {
    const reg = new MemRegistry();
    const img = reg.putImage('i1', { seed: 'x' });
    reg.tag('i1', 'T12', img.manifest.digest, daysAgo(NOW, 3));
    const p = await plan(reg, { refs: ['i1:T12', 'i1:nope', 'ghost:v1'] });
    expect(p.tags.map((t) => t.tag)).toEqual(['T12']);
    expect(p.missing).toEqual(['i1:nope', 'ghost:v1']);
    expect(p.warnings).toEqual([
      { code: 'missing-tag', path: reg.lay.tag(R('i1'), T('nope')), message: 'named tag i1:nope does not exist' },
      { code: 'missing-tag', path: reg.lay.tag(R('ghost'), T('v1')), message: 'named tag ghost:v1 does not exist' },
    ]);
  });
});

describe('reclaimable bytes equal what an independent mark-and-sweep frees after the plan is applied', () => {
  function richTree(): MemRegistry {
    const reg = new MemRegistry();
    // app: releases sharing a base, PR builds, a multi-platform release, signatures, a referrer, an untagged image.
    const rel = [1, 2, 3].map((n) => reg.putImage('team/app', { seed: `rel${n}`, layers: ['base', `rel${n}`] }));
    const prs = [1, 2, 3, 4].map((n) => reg.putImage('team/app', { seed: `pr${n}`, layers: ['base', 'deps', `pr${n}`] }));
    const multi = reg.putIndex('team/app', {
      children: [
        { seed: 'm-amd', platform: platform('amd64'), layers: ['base', 'm-amd'] },
        { seed: 'm-arm', platform: platform('arm64'), layers: ['base-arm', 'm-arm'] },
      ],
    });
    const sig1 = reg.putImage('team/app', buildSignature((rel[0] as BuiltImage).manifest));
    const sigPr = reg.putImage('team/app', buildSignature((prs[0] as BuiltImage).manifest));
    const sbom = reg.putImage('team/app', { seed: 'sbom-pr2', format: 'oci', subject: descriptorOf((prs[1] as BuiltImage).manifest) });
    void sbom;
    reg.putImage('team/app', { seed: 'untagged', layers: ['base', 'untagged'] });
    rel.forEach((img, i) => reg.tag('team/app', `v1.${i}`, img.manifest.digest, daysAgo(NOW, 200 - 50 * i)));
    prs.forEach((img, i) => reg.tag('team/app', `pr-${i + 1}`, img.manifest.digest, daysAgo(NOW, 90 - 20 * i)));
    reg.tag('team/app', 'multi', multi.manifest.digest, daysAgo(NOW, 60));
    reg.tag('team/app', 'latest', (rel[2] as BuiltImage).manifest.digest, daysAgo(NOW, 100));
    reg.tag('team/app', signatureTag((rel[0] as BuiltImage).manifest.digest), sig1.manifest.digest, daysAgo(NOW, 199));
    reg.tag('team/app', signatureTag((prs[0] as BuiltImage).manifest.digest), sigPr.manifest.digest, daysAgo(NOW, 89));
    // api: shares `deps` and `m-arm` layers with app.
    const api = [1, 2].map((n) => reg.putImage('team/app/api', { seed: `api${n}`, layers: ['deps', n === 1 ? 'm-arm' : 'api2'] }));
    api.forEach((img, i) => reg.tag('team/app/api', `v${i + 1}`, img.manifest.digest, daysAgo(NOW, 120 - 100 * i)));
    // i1: the original ask.
    const i1 = [1, 2, 3].map((n) => reg.putImage('i1', { seed: `i1-${n}`, layers: ['base', `i1-${n}`] }));
    i1.forEach((img, i) => reg.tag('i1', `T1${i + 1}`, img.manifest.digest, daysAgo(NOW, 30 + i)));
    return reg;
  }

  const cases: Array<[name: string, args: SelectorArgs, untagged: boolean]> = [
    ['one named tag', { refs: ['i1:T12'] }, false],
    ['several named tags across repositories', { refs: ['i1:T11', 'i1:T13', 'team/app/api:v1', 'team/app:multi'] }, false],
    ['--older-than 30d', { olderThan: '30d' }, false],
    ['--older-than 30d --keep-last 2', { olderThan: '30d', keepLast: 2 }, false],
    ['--tag pr-* (signatures and referrers follow)', { tag: ['pr-*'] }, false],
    ['--tag pr-* --untagged', { tag: ['pr-*'] }, true],
    ['--older-than 1d --keep v1.* in team/**', { olderThan: '1d', keep: ['v1.*'], repo: ['team/**'] }, false],
    ['everything old, latest too', { tag: ['*'], keepLatest: false }, true],
  ];
  it.each(cases)('%s', async (_name, args, untagged) => {
    const reg = richTree();
    expect(markAndSweep(reg).size).toBe(0);
    const p = await plan(reg, args, untagged ? () => true : undefined);
    expect(p.warnings).toEqual([]);
    expect(p.tags.length).toBeGreaterThan(0);
    const report = await applyPlan({ fs: reg.fs, layout: reg.lay, plan: p, runId: 'sweep' });
    expect([...report.tags, ...report.manifests].filter((o) => o.result !== 'removed')).toEqual([]);
    const freed = markAndSweep(reg);
    expect({ bytes: p.reclaimableBytes, blobs: p.reclaimableBlobs }).toEqual({
      bytes: [...freed.values()].reduce((a, b) => a + b, 0),
      blobs: freed.size,
    });
  });
});
