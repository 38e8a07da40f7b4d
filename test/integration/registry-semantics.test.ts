import { existsSync } from 'node:fs';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { parseDigest, parseRepositoryName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import {
  MediaType,
  blobStoreBytes,
  buildImage,
  descriptorOf,
  expectManifestStatus,
  manifestFrom,
  pullAndVerify,
  pushBlob,
  pushImage,
  pushIndex,
  pushManifest,
  runGarbageCollect,
  seededBytes,
  blobFrom,
  startRegistry,
  type BuiltImage,
  type RunningRegistry,
} from '../helpers/registry.js';

// Issue 12: the five ways regprune read the storage differently from the
// registry, each reproduced on the real docker-registry 2.8.2.

interface PlanJson {
  tags: Array<{ repository: string; tag: string }>;
  manifests: Array<{ repository: string; digest: string }>;
  leftovers?: Array<{ repository: string; digest: string }>;
  blocked: Array<{ repository: string; reason: string }>;
  reclaimableBytes: number;
  reclaimableBlobs: number;
  unreferencedBytes?: number;
  unreferencedBlobs?: number;
  exact?: boolean;
  reclaimable?: Array<{ digest: string; size: number }>;
  unreferenced?: Array<{ digest: string; size: number }>;
  warnings: Array<{ code: string; path: string; message: string }>;
}

interface CheckJson {
  ok: boolean;
  findings: Array<{ kind: string; severity: string; path: string; message: string }>;
}

let reg: RunningRegistry | undefined;
afterEach(async () => {
  await reg?.stop();
  reg = undefined;
});

/** `DELETE /v2/<repo>/manifests/<digest>`, what the blog recipes do. */
async function apiDelete(url: string, repo: string, digest: string): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
  await res.body?.cancel();
  if (res.status !== 202) throw new Error(`DELETE ${repo}@${digest}: expected 202, got ${res.status}`);
}

/** Stops the registry, runs garbage-collect (no -m), measures what left blobs/, starts it again. */
async function gcFreed(r: RunningRegistry): Promise<{ freed: number; stdout: string; exitCode: number; stderr: string }> {
  await r.stop();
  const before = await blobStoreBytes(r.root);
  const gc = await runGarbageCollect(r.configPath);
  const after = await blobStoreBytes(r.root);
  await r.restart();
  return { freed: before - after, ...gc };
}

async function prune(args: string[]): Promise<{ code: number; plan: PlanJson; stderr: string }> {
  const r = await runRegprune(['prune', ...args, '--json']);
  return { code: r.exitCode, plan: JSON.parse(r.stdout) as PlanJson, stderr: r.stderr };
}

async function check(root: string): Promise<{ code: number; out: CheckJson }> {
  const r = await runRegprune(['check', '--root', root, '--json']);
  return { code: r.exitCode, out: JSON.parse(r.stdout) as CheckJson };
}

const platform = (architecture: string) => ({ os: 'linux', architecture });

describe('regprune reads storage as the registry does (issue 12)', () => {
  test('finding 1: an index spelled with "Manifests" keeps its children when another tag sharing them is pruned', async () => {
    reg = await startRegistry();
    const { url, root } = reg;
    // d:shared is an ordinary manifest list; d:test lists the same children under "Manifests".
    const shared = await pushIndex(url, 'd', 'shared', {
      children: [
        { seed: 'c/amd64', platform: platform('amd64') },
        { seed: 'c/arm64', platform: platform('arm64') },
      ],
    });
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.dockerManifestList,
      Manifests: shared.children.map((c, i) => ({ ...descriptorOf(c.manifest), platform: platform(i === 0 ? 'amd64' : 'arm64') })),
    };
    const folded = manifestFrom(MediaType.dockerManifestList, doc, 3);
    await pushManifest(url, 'd', 'test', folded);
    // The registry reads "Manifests": an index naming a child it does not have is refused.
    const bogus = manifestFrom(MediaType.dockerManifestList, { ...doc, Manifests: [{ ...doc.Manifests[0], digest: `sha256:${'e'.repeat(64)}` }] }, 3);
    await expect(pushManifest(url, 'd', 'bogus', bogus)).rejects.toThrow(/MANIFEST_BLOB_UNKNOWN|manifest blob unknown/i);

    const p = await prune(['d:shared', '--root', root, '--yes']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.plan.manifests.map((m) => m.digest)).toEqual([shared.manifest.digest]);
    const gc = await gcFreed(reg);
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.freed).toBe(p.plan.reclaimableBytes + (p.plan.unreferencedBytes ?? 0));
    await expectManifestStatus(url, 'd', 'test', 200);
    for (const c of shared.children) await pullAndVerify(url, 'd', c.manifest.digest);
  });

  test('finding 2: a manifest deleted through the API is a leftover, not a live manifest with a missing blob', async () => {
    reg = await startRegistry();
    const { url, root } = reg;
    await pushImage(url, 'd', 'keep', { seed: 'keep', layers: ['base', 'keep/top'] });
    const gone = await pushImage(url, 'd', 'gone', { seed: 'gone', layers: ['base', 'gone/top'] });
    const old = await pushImage(url, 'd', 'old', { seed: 'old', layers: ['base', 'old/top'] });
    await apiDelete(url, 'd', gone.manifest.digest);
    const revisionDir = layout(root).revision(parseRepositoryName('d'), parseDigest(gone.manifest.digest));
    // The next garbage-collect sweeps the deleted manifest's blobs; its revision directory stays, empty.
    const first = await gcFreed(reg);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.freed).toBeGreaterThan(0);

    const c = await check(root);
    expect(c.code).toBe(0);
    expect(c.out.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(c.out.findings.map((f) => f.kind)).toContain('empty-revision');

    const p = await prune(['d:old', '--root', root, '--yes']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.plan.blocked).toEqual([]);
    expect(p.plan.manifests.map((m) => m.digest)).toEqual([old.manifest.digest]);
    expect(p.plan.leftovers?.map((m) => m.digest)).toEqual([gone.manifest.digest]);
    expect(existsSync(revisionDir)).toBe(false);
    const gc = await gcFreed(reg);
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.freed).toBe(p.plan.reclaimableBytes + (p.plan.unreferencedBytes ?? 0));
    expect(p.plan.reclaimableBytes).toBeGreaterThan(0);
    await pullAndVerify(url, 'd', 'keep');
  });

  test('finding 3: check names the tag a deleted index child breaks, and the revision link garbage-collect aborts on', async () => {
    reg = await startRegistry();
    const { url, root } = reg;
    const index = await pushIndex(url, 'd', 'test', {
      children: [
        { seed: 'x/amd64', platform: platform('amd64') },
        { seed: 'x/arm64', platform: platform('arm64') },
      ],
    });
    await apiDelete(url, 'd', index.children[1]?.manifest.digest as string);
    await expect(pullAndVerify(url, 'd', 'test')).rejects.toThrow(/404/);
    const c = await check(root);
    expect(c.code).toBe(1);
    const errors = c.out.findings.filter((f) => f.severity === 'error');
    expect(errors.map((f) => f.kind)).toEqual(['missing-child']);
    expect(errors[0]?.message).toContain('d:test');

    // A revision link with a trailing newline: garbage-collect aborts on it.
    const img = await pushImage(url, 'e', 'v1', { seed: 'e1' });
    await pushImage(url, 'e', 'v2', { seed: 'e2' });
    const link = layout(root).revisionLink(parseRepositoryName('e'), parseDigest(img.manifest.digest));
    await appendFile(link, '\n');
    const c2 = await check(root);
    expect(c2.code).toBe(1);
    expect(c2.out.findings.some((f) => f.severity === 'error' && f.kind === 'bad-link' && f.path === link)).toBe(true);
    const p = await prune(['e:v2', '--root', root, '--dry-run']);
    expect(p.plan.warnings.some((w) => w.code === 'bad-link' && w.path === link)).toBe(true);
    expect(p.plan.blocked.map((b) => b.repository)).toEqual(['e']);
    expect(p.plan.exact).toBe(false);
    const gc = await gcFreed(reg);
    expect(gc.exitCode).not.toBe(0);
    expect(gc.stderr + gc.stdout).toMatch(/invalid checksum digest length/);
  });

  test('finding 4: check does not cry wolf over foreign layers or the _layers links garbage-collect leaves', async () => {
    // The registry takes manifests with urls only where validation.manifests.urls.allow permits them.
    reg = await startRegistry({ env: { REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW: '- ^https://foreign\\.example/' } });
    const { url, root } = reg;
    // A Windows-style image: one foreign layer (urls, never uploaded), one ordinary layer.
    const base = buildImage({ seed: 'win', layers: ['win/top'] });
    const foreign = blobFrom('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', seededBytes('win/base', 4096));
    const doc = JSON.parse(base.manifest.bytes.toString('utf8')) as { layers: unknown[] };
    doc.layers = [{ ...descriptorOf(foreign), urls: ['https://foreign.example/win/base'] }, ...doc.layers];
    const win: BuiltImage = { ...base, manifest: manifestFrom(MediaType.dockerManifest, doc, 3) };
    await pushBlob(url, 'w', win.config);
    for (const l of win.layers) await pushBlob(url, 'w', l);
    await pushManifest(url, 'w', 'ltsc', win.manifest);
    // An image deleted through the API, then garbage-collected: its _layers links dangle.
    const old = await pushImage(url, 'd', 'old', { seed: 'old', layers: ['old/top'] });
    await pushImage(url, 'd', 'keep', { seed: 'keep' });
    await apiDelete(url, 'd', old.manifest.digest);
    const gc = await gcFreed(reg);
    expect(gc.exitCode, gc.stderr).toBe(0);
    await expectManifestStatus(url, 'w', 'ltsc', 200);

    const c = await check(root);
    expect(c.out.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(c.code).toBe(0);
    const kinds = new Set(c.out.findings.map((f) => f.kind));
    expect(kinds.has('dangling-layer-link')).toBe(true);
    expect(c.out.findings.some((f) => f.message.includes(foreign.digest))).toBe(false);
  });

  test('finding 5: the prediction is what garbage-collect frees, already-unreferenced blobs included', async () => {
    reg = await startRegistry();
    const { url, root } = reg;
    await pushImage(url, 'd', 'keep', { seed: 'keep', layers: ['base', 'keep/top'] });
    await pushImage(url, 'd', 'old', { seed: 'old', layers: ['base', 'old/top'] });
    // Already unreferenced: an aborted push (a blob, no manifest) and a manifest deleted through the API.
    await pushBlob(url, 'd', blobFrom(MediaType.dockerLayer, seededBytes('aborted', 3000)));
    const deleted = await pushImage(url, 'd', 'deleted', { seed: 'deleted', layers: ['deleted/top'] });
    await apiDelete(url, 'd', deleted.manifest.digest);

    const p = await prune(['d:old', '--root', root, '--yes', '--verbose']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.plan.exact).toBe(true);
    expect(p.plan.unreferencedBlobs).toBe(4); // the aborted blob; the deleted manifest, its config and layer
    const listed = [...(p.plan.reclaimable ?? []), ...(p.plan.unreferenced ?? [])];
    expect(listed.reduce((n, b) => n + b.size, 0)).toBe(p.plan.reclaimableBytes + (p.plan.unreferencedBytes ?? 0));
    const gc = await gcFreed(reg);
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.freed).toBe(p.plan.reclaimableBytes + (p.plan.unreferencedBytes ?? 0));
    const eligible = [...gc.stdout.matchAll(/blob eligible for deletion: (sha256:[a-f0-9]{64})/g)].map((m) => m[1]).sort();
    expect(listed.map((b) => b.digest).sort()).toEqual(eligible);
    await pullAndVerify(url, 'd', 'keep');

    // A revision whose manifest blob is gone blocks its repository (its children are unknown), but
    // garbage-collect just skips it: what it frees there is still known exactly.
    const b1 = await pushImage(url, 'b', 'v1', { seed: 'b1', layers: ['b1/top'] });
    await pushImage(url, 'b', 'v2', { seed: 'b2', layers: ['b2/top'] });
    await rm(layout(root).blob(parseDigest(b1.manifest.digest)), { recursive: true });
    const q = await prune(['b:v2', '--root', root, '--dry-run']);
    expect(q.plan.blocked.map((b) => b.repository)).toEqual(['b']);
    expect(q.plan.exact).toBe(true);
    const gc2 = await gcFreed(reg);
    expect(gc2.exitCode, gc2.stderr).toBe(0);
    expect(gc2.freed).toBe(q.plan.reclaimableBytes + (q.plan.unreferencedBytes ?? 0));

    // A manifest regprune cannot be sure of (a layer digest in uppercase, written into storage:
    // the registry would refuse the push) makes the figure a lower bound, and the JSON says so.
    const u = buildImage({ seed: 'u', layers: ['u/top'] });
    const odd = JSON.parse(u.manifest.bytes.toString('utf8')) as { layers: Array<{ digest: string }> };
    odd.layers = [{ ...odd.layers[0], digest: `sha256:${'A'.repeat(64)}` }];
    const oddManifest = manifestFrom(MediaType.dockerManifest, odd, 3);
    await pushImage(url, 'u', 'v1', u);
    await pushImage(url, 'u', 'v2', { seed: 'u2' });
    const lay = layout(root);
    const ud = parseDigest(oddManifest.digest);
    await mkdir(lay.blob(ud), { recursive: true });
    await writeFile(lay.blobData(ud), oddManifest.bytes);
    await mkdir(lay.revision(parseRepositoryName('u'), ud), { recursive: true });
    await writeFile(lay.revisionLink(parseRepositoryName('u'), ud), ud);
    // u:v1's own manifest goes through the API: its layer is now referenced only by the odd one.
    await apiDelete(url, 'u', u.manifest.digest);
    const w = await prune(['u:v2', '--root', root, '--dry-run']);
    expect(w.plan.exact).toBe(false);
    expect(w.plan.warnings.some((x) => x.code === 'bad-manifest')).toBe(true);
    const gc3 = await gcFreed(reg);
    expect(gc3.exitCode, gc3.stderr).toBe(0);
    expect(gc3.freed).toBeGreaterThan(w.plan.reclaimableBytes + (w.plan.unreferencedBytes ?? 0));
  });
});
