import { cp, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { setupSuite } from '../helpers/suite.js';
import { parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import {
  blobStoreBytes,
  expectManifestStatus,
  manifestStatus,
  pullAndVerify,
  pushImage,
  pushIndex,
  pushSignature,
  pushUntagged,
  pushManifest,
  runGarbageCollect,
  startRegistry,
  tagManifest,
  MediaType,
  descriptorOf,
  manifestFrom,
  type BuiltManifest,
  type RunningRegistry,
} from '../helpers/registry.js';

// Issue 3, done when: after `prune ... --yes` and a real garbage-collect
// (no -m), the bytes that left blobs/ equal the predicted reclaimableBytes
// exactly, and every kept tag, platform and signature still pulls.

interface Tagged {
  repo: string;
  tag: string;
}

const amdArm = (seed: string, base = 'base') => [
  { seed: `${seed}/amd64`, platform: { os: 'linux', architecture: 'amd64' }, layers: [base, `${seed}/amd64/top`] },
  { seed: `${seed}/arm64`, platform: { os: 'linux', architecture: 'arm64' }, layers: [`${base}-arm`, `${seed}/arm64/top`] },
];

/** A registry with everything pruning has to get right. Returns the tags pushed. */
async function populate(url: string): Promise<Tagged[]> {
  const tags: Tagged[] = [];
  const img = async (repo: string, tag: string, seed: string, layers: string[], format: 'docker' | 'oci' = 'docker') => {
    const p = await pushImage(url, repo, tag, { seed, layers, format });
    tags.push({ repo, tag });
    return p;
  };
  // app: single-platform, layers shared across tags, two tags on one manifest, signed.
  const a1 = await img('app', 'v1', 'app/v1', ['base', 'app/v1/top', 'big-shared']);
  await img('app', 'v2', 'app/v2', ['base', 'app/v2/top']);
  await tagManifest(url, 'app', 'stable', a1.manifest);
  tags.push({ repo: 'app', tag: 'stable' });
  const a3 = await img('app', 'v3', 'app/v3', ['base', 'app/v3/top', 'app/v3/exclusive']);
  const sig3 = await pushSignature(url, 'app', a3.manifest);
  tags.push({ repo: 'app', tag: sig3.tag });
  const a2sig = await pushSignature(url, 'app', a1.manifest, { subject: true });
  tags.push({ repo: 'app', tag: a2sig.tag });
  // multi: multi-platform images (docker list and OCI index) sharing children's layers.
  for (const [tag, format] of [['m1', 'docker'], ['m2', 'docker'], ['m3', 'oci']] as const) {
    await pushIndex(url, 'multi', tag, { format, children: amdArm(`multi/${tag}`) });
    tags.push({ repo: 'multi', tag });
  }
  // other: a repository that shares app's layer, so it must not be counted as freed.
  await img('other', 'keep', 'other/keep', ['base', 'big-shared'], 'oci');
  // pushed by digest only: untagged before the run.
  await pushUntagged(url, 'app', { seed: 'app/untagged', layers: ['base', 'app/untagged/top'] });
  return tags;
}

async function stopGcRestart(reg: RunningRegistry, args: string[] = []) {
  await reg.stop();
  const before = await blobStoreBytes(reg.root);
  const gc = await runGarbageCollect(reg.configPath, args);
  expect(gc.exitCode, gc.stderr).toBe(0);
  const after = await blobStoreBytes(reg.root);
  await reg.restart();
  return { freed: before - after, gc };
}

async function pullsAll(reg: RunningRegistry, tags: readonly Tagged[]) {
  for (const t of tags) await pullAndVerify(reg.url, t.repo, t.tag);
}

describe('exact reclaim on the real registry', () => {
  let reg: RunningRegistry;
  let tags: Tagged[];

  setupSuite(async () => {
    reg = await startRegistry();
    tags = await populate(reg.url);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  test('du totals add up before anything is removed', async () => {
    const r = await runRegprune(['du', '--root', reg.root, '--json']);
    expect(r.exitCode).toBe(0);
    const du = JSON.parse(r.stdout) as {
      blobStore: { bytes: number };
      exclusiveBytes: number;
      sharedBytes: number;
      unreferenced: { bytes: number };
      repositories: Array<{ repository: string; exclusiveBytes: number }>;
    };
    expect(du.blobStore.bytes).toBe(await blobStoreBytes(reg.root));
    expect(du.exclusiveBytes + du.sharedBytes + du.unreferenced.bytes).toBe(du.blobStore.bytes);
    expect(du.repositories.reduce((n, r) => n + r.exclusiveBytes, 0)).toBe(du.exclusiveBytes);
    expect(du.sharedBytes).toBeGreaterThan(0);
    expect(du.unreferenced.bytes).toBe(0);
  });

  test('prune, then garbage-collect without -m frees exactly reclaimableBytes; every kept tag pulls', async () => {
    const remove = ['app:v1', 'app:v3', 'multi:m1', 'multi:m3'];
    const r = await runRegprune(['prune', ...remove, '--root', reg.root, '--yes', '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as {
      tags: Array<{ repository: string; tag: string; reason: string }>;
      manifests: Array<{ repository: string; digest: string; reason: string }>;
      reclaimableBytes: number;
      reclaimableBlobs: number;
    };
    // app:v1 shares its manifest with app:stable, so its manifest and its signature stay;
    // app:v3's signature goes with it.
    const removedTags = out.tags.map((t) => `${t.repository}:${t.tag}`).sort();
    const sig3 = tags.find((t) => t.repo === 'app' && t.tag.endsWith('.sig') && removedTags.includes(`app:${t.tag}`));
    expect(sig3).toBeDefined();
    expect(removedTags).toEqual(['app:v1', 'app:v3', `app:${sig3?.tag}`, 'multi:m1', 'multi:m3'].sort());
    expect(out.tags.find((t) => t.tag === sig3?.tag)?.reason).toMatch(/^signature of removed sha256:[a-f0-9]{64}$/);
    // v3 + its signature manifest; m1 and m3 with both children each.
    expect(out.manifests.filter((m) => m.repository === 'app')).toHaveLength(2);
    expect(out.manifests.filter((m) => m.repository === 'multi')).toHaveLength(6);
    expect(out.reclaimableBytes).toBeGreaterThan(0);

    const { freed, gc } = await stopGcRestart(reg);
    expect(gc.stdout).toMatch(/blobs marked, \d+ blobs and \d+ manifests eligible for deletion/);
    expect(freed).toBe(out.reclaimableBytes);
    const eligible = /(\d+) blobs and \d+ manifests eligible/.exec(gc.stdout);
    expect(Number(eligible?.[1])).toBe(out.reclaimableBlobs);

    const gone = new Set([...removedTags]);
    for (const t of tags) {
      if (gone.has(`${t.repo}:${t.tag}`)) await expectManifestStatus(reg.url, t.repo, t.tag, 404);
      else await pullAndVerify(reg.url, t.repo, t.tag);
    }
  });

  test('--untagged unlinks the manifest pushed by digest only, never children of a kept index', async () => {
    const dry = await runRegprune(['prune', '--untagged', '--repo', 'app', '--repo', 'multi', '--root', reg.root, '--dry-run', '--json']);
    expect(dry.exitCode).toBe(0);
    const plan = JSON.parse(dry.stdout) as { tags: unknown[]; manifests: Array<{ repository: string; reason: string }>; reclaimableBytes: number };
    expect(plan.tags).toEqual([]);
    expect(plan.manifests.map((m) => `${m.repository}:${m.reason}`)).toEqual(['app:untagged (--untagged)']);
    const r = await runRegprune(['prune', '--untagged', '--repo', 'app', '--repo', 'multi', '--root', reg.root, '--yes', '--json']);
    expect(r.exitCode).toBe(0);
    const { freed } = await stopGcRestart(reg);
    expect(freed).toBe(plan.reclaimableBytes);
    await pullsAll(reg, tags.filter((t) => ['multi:m2', 'app:v2', 'app:stable', 'other:keep'].includes(`${t.repo}:${t.tag}`)));
  });
});

describe('an index inside an index (the README promises any depth)', () => {
  let reg: RunningRegistry;
  setupSuite(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  /** An OCI index over manifests already pushed (images or indexes), pushed under `ref`. */
  const pushOuter = async (ref: string, children: ReadonlyArray<{ manifest: BuiltManifest; arch: string }>) => {
    const m = manifestFrom(MediaType.ociIndex, {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: children.map((c) => ({ ...descriptorOf(c.manifest), platform: { os: 'linux', architecture: c.arch } })),
    });
    await pushManifest(reg.url, 'nest', ref, m);
    return m;
  };

  test('pruning an outer index that shares an inner index with a kept one: the kept one pulls, every level, after garbage-collect', async () => {
    const platform = (architecture: string) => ({ os: 'linux', architecture });
    // inner: an OCI index of two images, pushed by digest; stable -> [inner, s390x image]; old -> [inner, ppc64le image].
    const inner = await pushIndex(reg.url, 'nest', undefined, {
      format: 'oci',
      children: [
        { seed: 'nest/inner/amd64', platform: platform('amd64'), layers: ['nest-base', 'nest/inner/amd64'] },
        { seed: 'nest/inner/arm64', platform: platform('arm64'), layers: ['nest/inner/arm64'] },
      ],
    });
    const s390x = await pushUntagged(reg.url, 'nest', { seed: 'nest/s390x', format: 'oci', platform: platform('s390x'), layers: ['nest-base', 'nest/s390x'] });
    const ppc = await pushUntagged(reg.url, 'nest', { seed: 'nest/ppc64le', format: 'oci', platform: platform('ppc64le'), layers: ['nest/ppc64le'] });
    const stable = await pushOuter('stable', [{ manifest: inner.manifest, arch: 'multi' }, { manifest: s390x.manifest, arch: 's390x' }]);
    const old = await pushOuter('old', [{ manifest: inner.manifest, arch: 'multi' }, { manifest: ppc.manifest, arch: 'ppc64le' }]);
    // Three levels deep: deeper -> [stable's outer index]: the inner images are two levels below it.
    await pushOuter('deeper', [{ manifest: stable, arch: 'multi' }]);

    const pulledBefore = await pullAndVerify(reg.url, 'nest', 'deeper');
    expect(pulledBefore.manifests.map((m) => m.digest)).toEqual([
      pulledBefore.digest,
      stable.digest,
      inner.manifest.digest,
      ...inner.children.map((c) => c.manifest.digest),
      s390x.manifest.digest,
    ]);

    const r = await runRegprune(['prune', 'nest:old', 'nest:stable', '--untagged', '--root', reg.root, '--yes', '--json', '--verbose']);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      tags: Array<{ tag: string }>;
      manifests: Array<{ digest: string }>;
      reclaimableBytes: number;
      unreferencedBytes: number;
      exact: boolean;
    };
    expect(out.tags.map((t) => t.tag).sort()).toEqual(['old', 'stable']);
    // Only old's outer index and its own ppc64le image go: stable's index is still reached from deeper, inner from it.
    expect(out.manifests.map((m) => m.digest).sort()).toEqual([old.digest, ppc.manifest.digest].sort());
    expect(out.exact).toBe(true);
    const { freed } = await stopGcRestart(reg);
    expect(freed).toBe(out.reclaimableBytes + out.unreferencedBytes);
    expect(freed).toBe(old.size + ppc.manifest.size + ppc.config.size + (ppc.layers[0]?.size ?? 0));
    const pulled = await pullAndVerify(reg.url, 'nest', 'deeper');
    expect(pulled.manifests.map((m) => m.digest)).toEqual(pulledBefore.manifests.map((m) => m.digest));
    expect([...pulled.blobs].sort()).toEqual([...pulledBefore.blobs].sort());
    for (const d of [stable.digest, inner.manifest.digest, ...inner.children.map((c) => c.manifest.digest)]) await pullAndVerify(reg.url, 'nest', d);
    await expectManifestStatus(reg.url, 'nest', 'old', 404);
    await expectManifestStatus(reg.url, 'nest', 'stable', 404);
    await expectManifestStatus(reg.url, 'nest', ppc.manifest.digest, 404);
  });
});

describe('the old recipe vs regprune, side by side on the same registry', () => {
  let a: RunningRegistry;
  let b: RunningRegistry;
  let tags: Tagged[];
  let copyRoot: string | undefined;

  setupSuite(async () => {
    a = await startRegistry();
    tags = await populate(a.url);
    await a.stop();
    // An identical copy for regprune.
    const root = await mkdtemp(join(tmpdir(), 'regprune-copy-'));
    copyRoot = root;
    await cp(a.root, root, { recursive: true, preserveTimestamps: true });
    b = await startRegistry({ root });
    await a.restart();
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    // A root given to startRegistry is the caller's to remove.
    if (copyRoot !== undefined) await rm(copyRoot, { recursive: true, force: true });
  });

  test('rm -rf of the tag dirs + garbage-collect -m breaks the remaining multi-platform image; regprune + garbage-collect does not', async () => {
    // The recipe: remove multi:m1's tag dir, then garbage-collect -m.
    const lay = layout(a.root);
    await rm(lay.tag(parseRepositoryName('multi'), parseTagName('m1')), { recursive: true });
    await stopGcRestart(a, ['-m']);
    // multi:m2 still resolves, but its platforms are gone (2.8.x deletes untagged children).
    const idx = await fetchIndexChildren(a.url, 'multi', 'm2');
    expect(idx.length).toBe(2);
    const statuses = await Promise.all(idx.map((d) => manifestStatus(a.url, 'multi', d)));
    expect(statuses).toEqual([404, 404]);
    await expect(pullAndVerify(a.url, 'multi', 'm2')).rejects.toThrow();

    // regprune on the identical copy.
    const r = await runRegprune(['prune', 'multi:m1', '--root', b.root, '--yes']);
    expect(r.exitCode).toBe(0);
    await stopGcRestart(b);
    await expectManifestStatus(b.url, 'multi', 'm1', 404);
    await pullsAll(b, tags.filter((t) => !(t.repo === 'multi' && t.tag === 'm1')));
  });
});

async function fetchIndexChildren(url: string, repo: string, tag: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: 'application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json' },
  });
  expect(res.status).toBe(200);
  const doc = (await res.json()) as { manifests: Array<{ digest: string }> };
  return doc.manifests.map((m) => m.digest);
}
