import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateTree, repositorySpec, type GenerateStats } from '../../bench/generate.js';
import { MEDIA } from '../../bench/content.js';
import type { Digest, TagName } from '../../src/model/names.js';
import { isDigest } from '../../src/model/names.js';
import { layout, type Layout } from '../../src/storage/paths.js';

const DAY = 86_400_000;
const now = new Date('2026-11-23T12:00:00Z');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function tree(seed: number, at = now): Promise<{ root: string; lay: Layout; stats: GenerateStats }> {
  const root = mkdtempSync(join(tmpdir(), 'regprune-bench-gen-'));
  dirs.push(root);
  const stats = await generateTree({ root, repos: 10, tagsPerRepo: 6, seed, now: at, workers: 0 });
  return { root, lay: layout(root), stats };
}

function readLinkExact(path: string): Digest {
  const bytes = readFileSync(path);
  expect(bytes.length, path).toBe(71);
  const text = bytes.toString('latin1');
  expect(isDigest(text), `${path}: ${JSON.stringify(text)}`).toBe(true);
  return text as Digest;
}

function hexOf(d: string): string {
  return d.slice('sha256:'.length);
}

function children(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

interface Snapshot {
  /** repo -> tag -> current digest */
  tags: Map<string, Map<string, Digest>>;
  /** repo -> tag -> push time (ms) */
  pushed: Map<string, Map<string, number>>;
  revisions: Map<string, Set<Digest>>;
  layers: Map<string, Set<Digest>>;
  blobs: Set<string>;
}

/** Reads the whole tree back, checking every link byte for byte and every blob's digest on the way. */
function snapshot(lay: Layout, stats: GenerateStats): Snapshot {
  const snap: Snapshot = { tags: new Map(), pushed: new Map(), revisions: new Map(), layers: new Map(), blobs: new Set() };
  for (const shard of children(lay.blobShards())) {
    for (const hex of children(join(lay.blobShards(), shard))) {
      const d = `sha256:${hex}` as Digest;
      expect(lay.blob(d)).toBe(join(lay.blobShards(), shard, hex));
      const data = readFileSync(lay.blobData(d));
      expect(createHash('sha256').update(data).digest('hex'), lay.blobData(d)).toBe(hex);
      snap.blobs.add(hex);
    }
  }
  for (let i = 0; i < stats.repos; i++) {
    const repo = repositorySpec(i).name;
    const tags = new Map<string, Digest>();
    const pushed = new Map<string, number>();
    for (const t of children(lay.tags(repo))) {
      const tag = t as TagName;
      const current = readLinkExact(lay.tagCurrentLink(repo, tag));
      const mtime = statSync(lay.tagCurrentLink(repo, tag)).mtimeMs;
      // The index holds the current digest, written at the same push.
      expect(readLinkExact(lay.tagIndexLink(repo, tag, current))).toBe(current);
      expect(statSync(lay.tagIndexLink(repo, tag, current)).mtimeMs).toBe(mtime);
      tags.set(t, current);
      pushed.set(t, mtime);
    }
    const revisions = new Set<Digest>();
    for (const hex of children(lay.revisions(repo))) {
      const d = `sha256:${hex}` as Digest;
      expect(readLinkExact(lay.revisionLink(repo, d))).toBe(d);
      revisions.add(d);
    }
    const layers = new Set<Digest>();
    for (const hex of children(lay.layers(repo))) {
      const d = `sha256:${hex}` as Digest;
      expect(readLinkExact(lay.layerLink(repo, d))).toBe(d);
      layers.add(d);
    }
    snap.tags.set(repo, tags);
    snap.pushed.set(repo, pushed);
    snap.revisions.set(repo, revisions);
    snap.layers.set(repo, layers);
  }
  return snap;
}

interface Doc {
  mediaType?: string;
  config?: { digest: string; size: number };
  layers?: Array<{ digest: string; size: number; mediaType: string }>;
  manifests?: Array<{ digest: string; size: number; mediaType: string }>;
}

describe('bench generator', async () => {
  const a = await tree(7);
  const snap = snapshot(a.lay, a.stats);

  it('writes exactly the tags, manifests and blobs it reports', () => {
    let tags = 0;
    let manifests = 0;
    for (const t of snap.tags.values()) tags += t.size;
    for (const r of snap.revisions.values()) manifests += r.size;
    expect(tags).toBe(a.stats.tags);
    expect(tags).toBe(60);
    expect(manifests).toBe(a.stats.manifests);
    expect(snap.blobs.size).toBe(a.stats.blobs);
  });

  it('makes every tag, revision and layer link name an existing blob, and every manifest reference a linked blob of the right size', () => {
    for (const [repo, revisions] of snap.revisions) {
      const layers = snap.layers.get(repo) ?? new Set();
      for (const d of [...revisions, ...layers, ...(snap.tags.get(repo)?.values() ?? [])]) {
        expect(snap.blobs.has(hexOf(d)), `${repo} -> ${d}`).toBe(true);
      }
      for (const d of revisions) {
        const doc = JSON.parse(readFileSync(a.lay.blobData(d), 'utf8')) as Doc;
        const size = (x: string) => statSync(a.lay.blobData(x as Digest)).size;
        if (doc.manifests !== undefined) {
          expect([MEDIA.dockerList, MEDIA.ociIndex]).toContain(doc.mediaType);
          for (const child of doc.manifests) {
            expect(revisions.has(child.digest as Digest), `${repo}: child ${child.digest} of ${d}`).toBe(true);
            expect(child.size).toBe(size(child.digest));
          }
        } else {
          expect([MEDIA.dockerManifest, MEDIA.ociManifest]).toContain(doc.mediaType);
          for (const ref of [doc.config, ...(doc.layers ?? [])]) {
            if (ref === undefined) throw new Error(`${d}: no config`);
            expect(layers.has(ref.digest as Digest), `${repo}: ${ref.digest} referenced by ${d} is linked`).toBe(true);
            expect(ref.size).toBe(size(ref.digest));
          }
        }
      }
    }
  });

  it('leaves no blob unreferenced (garbage-collect without -m would sweep nothing)', () => {
    const referenced = new Set<string>();
    for (const [repo, revisions] of snap.revisions) {
      for (const d of revisions) referenced.add(hexOf(d));
      for (const d of snap.layers.get(repo) ?? []) referenced.add(hexOf(d));
    }
    expect([...snap.blobs].filter((h) => !referenced.has(h))).toEqual([]);
  });

  it('covers the shapes a real registry holds', () => {
    const types = new Set<string>();
    let untagged = 0;
    for (const [repo, revisions] of snap.revisions) {
      const tagged = new Set(snap.tags.get(repo)?.values());
      for (const d of revisions) {
        types.add((JSON.parse(readFileSync(a.lay.blobData(d), 'utf8')) as Doc).mediaType ?? '');
        if (!tagged.has(d)) untagged++;
      }
    }
    expect([...types].sort()).toEqual([MEDIA.dockerList, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.ociManifest].sort());
    expect(untagged).toBe(a.stats.untaggedManifests);
    expect(untagged).toBeGreaterThan(0);
    const allTags = [...snap.tags.values()].flatMap((m) => [...m.keys()]);
    expect(allTags).toContain('latest');
    expect(allTags.some((t) => /^build-\d+$/.test(t))).toBe(true);
    expect(allTags.some((t) => /^v\d+\.\d+\.\d+$/.test(t))).toBe(true);
    const sigs = allTags.filter((t) => /^sha256-[0-9a-f]{64}\.sig$/.test(t));
    expect(sigs.length).toBe(a.stats.signatures);
    // A signature tag names a manifest of its repository.
    for (const [repo, tags] of snap.tags) {
      for (const t of tags.keys()) {
        if (t.endsWith('.sig')) expect(snap.revisions.get(repo)?.has(`sha256:${t.slice(7, 71)}` as Digest)).toBe(true);
      }
    }
    const names = [...snap.tags.keys()];
    expect(names.some((n) => n.split('/').length === 3)).toBe(true);
    expect(names.some((n) => names.some((m) => m !== n && m.startsWith(`${n}/`)))).toBe(true);
  });

  it('spreads push times over 400 days, none between 29 and 32 days ago, and counts the old ones', () => {
    const ages = [...snap.pushed.values()].flatMap((m) => [...m.values()]).map((ms) => (now.getTime() - ms) / DAY);
    expect(Math.max(...ages) - Math.min(...ages)).toBeGreaterThan(100);
    expect(Math.max(...ages)).toBeLessThanOrEqual(400);
    expect(Math.min(...ages)).toBeGreaterThanOrEqual(0);
    expect(ages.filter((x) => x >= 29 && x < 32)).toEqual([]);
    expect(ages.filter((x) => x > 30).length).toBe(a.stats.tagsOlderThan30d);
    expect(a.stats.tagsOlderThan30d).toBeLessThan(a.stats.tags);
  });

  it('is deterministic: the same seed gives the same digests on another day, another seed does not', async () => {
    const b = await tree(7, new Date(now.getTime() + 50 * DAY));
    const again = snapshot(b.lay, b.stats);
    expect(again.tags).toEqual(snap.tags);
    expect(again.blobs).toEqual(snap.blobs);
    // Push ages are the same; only the clock moved.
    const shift = (s: Snapshot) => [...s.pushed.values()].flatMap((m) => [...m.values()]);
    expect(shift(again).map((ms) => ms - 50 * DAY)).toEqual(shift(snap));
    const c = await tree(8);
    const other = snapshot(c.lay, c.stats);
    expect([...other.blobs].filter((h) => snap.blobs.has(h)).length).toBeLessThan(snap.blobs.size / 4);
  });

  it('refuses to write into an existing tree', async () => {
    await expect(generateTree({ root: a.root, repos: 1, tagsPerRepo: 1, workers: 0 })).rejects.toThrow(/not empty/);
  });
});
