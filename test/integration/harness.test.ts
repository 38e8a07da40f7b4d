import { rm, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { parseDigest, parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import {
  blobDigests,
  blobStoreBytes,
  buildImage,
  expectManifestStatus,
  manifestStatus,
  pullAndVerify,
  pushBlob,
  pushImage,
  pushIndex,
  pushSignature,
  pushUntagged,
  runGarbageCollect,
  seededBytes,
  signatureTag,
  startRegistry,
  tagManifest,
  tagsOnDisk,
  type PushedImage,
  type PushedIndex,
  type PushedSignature,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';

// The harness itself, against the real registry: if these fail, every
// real-registry test would be checking nothing.

const REPO = 'team/app/api';
const PARENT = 'team/app';

describe('real-registry harness', () => {
  let reg: RunningRegistry;
  let docker: PushedImage;
  let dockerAgain: PushedImage;
  let oci: PushedImage;
  let dockerIndex: PushedIndex;
  let ociIndex: PushedIndex;
  let untagged: PushedImage;
  let signature: PushedSignature;
  let parent: PushedImage;

  setupSuite(async () => {
    reg = await startRegistry();
    docker = await pushImage(reg.url, REPO, 'v1', { seed: 'h-docker', layers: ['h-base', 'h-docker/top'] });
    dockerAgain = await pushImage(reg.url, REPO, 'v2', { seed: 'h-docker-2', layers: ['h-base', 'h-docker-2/top'] });
    await tagManifest(reg.url, REPO, 'stable', docker.manifest);
    oci = await pushImage(reg.url, REPO, 'oci', { format: 'oci', seed: 'h-oci', layers: ['h-base-oci'] });
    dockerIndex = await pushIndex(reg.url, REPO, 'multi', {
      children: [
        { seed: 'h-amd64', platform: { os: 'linux', architecture: 'amd64' }, layers: ['h-base', 'h-amd64/top'] },
        { seed: 'h-arm64', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: ['h-base', 'h-arm64/top'] },
      ],
    });
    ociIndex = await pushIndex(reg.url, REPO, 'multi-oci', {
      format: 'oci',
      children: [
        { seed: 'h-oci-amd64', platform: { os: 'linux', architecture: 'amd64' } },
        { seed: 'h-oci-s390x', platform: { os: 'linux', architecture: 's390x' } },
      ],
    });
    untagged = await pushUntagged(reg.url, REPO, { seed: 'h-untagged', layers: [{ seed: 'h-untagged/only', size: 3000 }] });
    signature = await pushSignature(reg.url, REPO, docker.manifest, { subject: true });
    parent = await pushImage(reg.url, PARENT, 'v1', { seed: 'h-parent', layers: ['h-base'] });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`--- registry output ---\n${reg?.logs() ?? '(no registry)'}`);
  });

  afterAll(async () => {
    await reg?.stop();
  });

  test('builders are deterministic and share layers by seed', () => {
    const a = buildImage({ seed: 'x', layers: ['base', 'a'] });
    const b = buildImage({ seed: 'x', layers: ['base', 'a'] });
    const c = buildImage({ seed: 'y', layers: ['base', { seed: 'a', size: 100 }] });
    expect(a.manifest.bytes.equals(b.manifest.bytes)).toBe(true);
    expect(a.manifest.digest).not.toBe(c.manifest.digest);
    expect(c.layers[0]?.digest).toBe(a.layers[0]?.digest);
    expect(c.layers[1]?.size).toBe(100);
    expect(c.layers[1]?.bytes.equals(seededBytes('a', 100))).toBe(true);
    expect(seededBytes('a', 2048).subarray(0, 100).equals(seededBytes('a', 100))).toBe(true);
    expect(docker.layers[0]?.digest).toBe(dockerAgain.layers[0]?.digest);
    expect(signature.tag).toBe(`sha256-${docker.manifest.digest.slice(7)}.sig`);
    expect(signatureTag(docker.manifest.digest)).toBe(signature.tag);
  });

  test('every pushed kind pulls back byte for byte', async () => {
    for (const [ref, want] of [
      ['v1', docker.manifest],
      ['v2', dockerAgain.manifest],
      ['stable', docker.manifest],
      ['oci', oci.manifest],
      [signature.tag, signature.manifest],
      [untagged.manifest.digest, untagged.manifest],
    ] as const) {
      const pulled = await pullAndVerify(reg.url, REPO, ref);
      expect(pulled.digest, ref).toBe(want.digest);
      expect(pulled.bytes.equals(want.bytes), ref).toBe(true);
      expect(pulled.mediaType, ref).toBe(want.mediaType);
    }
    const image = await pullAndVerify(reg.url, REPO, 'v1');
    expect(image.blobs).toEqual([docker.config.digest, ...docker.layers.map((l) => l.digest)]);
    expect(image.totalBytes).toBe(docker.manifest.size + docker.config.size + docker.layers.reduce((n, l) => n + l.size, 0));

    const sig = JSON.parse(signature.manifest.bytes.toString('utf8')) as { subject?: { digest?: string } };
    expect(sig.subject?.digest).toBe(docker.manifest.digest);

    await pullAndVerify(reg.url, PARENT, 'v1');
    await expectManifestStatus(reg.url, PARENT, 'v2', 404);
  });

  test('indexes pull recursively, children by digest', async () => {
    for (const [ref, index] of [
      ['multi', dockerIndex],
      ['multi-oci', ociIndex],
    ] as const) {
      const pulled = await pullAndVerify(reg.url, REPO, ref);
      expect(pulled.digest).toBe(index.manifest.digest);
      expect(pulled.manifests.map((m) => m.digest)).toEqual([index.manifest.digest, ...index.children.map((c) => c.manifest.digest)]);
      const blobs = new Set(index.children.flatMap((c) => [c.config.digest, ...c.layers.map((l) => l.digest)]));
      expect(new Set(pulled.blobs)).toEqual(blobs);
    }
    // The shared base layer is fetched once.
    const multi = await pullAndVerify(reg.url, REPO, 'multi');
    expect(multi.blobs.filter((d) => d === docker.layers[0]?.digest)).toHaveLength(1);
  });

  test('the tree on disk has exactly the tags pushed, nested repos apart', async () => {
    const tags = await tagsOnDisk(reg.root);
    expect(Object.fromEntries(tags)).toEqual({
      [`${PARENT}:v1`]: parent.manifest.digest,
      [`${REPO}:multi`]: dockerIndex.manifest.digest,
      [`${REPO}:multi-oci`]: ociIndex.manifest.digest,
      [`${REPO}:oci`]: oci.manifest.digest,
      [`${REPO}:${signature.tag}`]: signature.manifest.digest,
      [`${REPO}:stable`]: docker.manifest.digest,
      [`${REPO}:v1`]: docker.manifest.digest,
      [`${REPO}:v2`]: dockerAgain.manifest.digest,
    });
  });

  test('a read-only registry (by option or by environment) refuses pushes and still serves pulls', async () => {
    for (const opts of [{ readOnly: true }, { env: { REGISTRY_STORAGE_MAINTENANCE_READONLY: '{"enabled":true}' } }]) {
      const ro = await startRegistry({ root: reg.root, ...opts });
      try {
        await expect(pushBlob(ro.url, REPO, seededBytes('ro', 10))).rejects.toThrow(/ 405 /);
        await pullAndVerify(ro.url, REPO, 'v1');
      } finally {
        await ro.stop();
      }
    }
  });

  test('pullAndVerify catches a 404 and a corrupted blob', async () => {
    await expect(pullAndVerify(reg.url, REPO, 'nope')).rejects.toThrow(/pull team\/app\/api:nope: expected 200, got 404/);
    const victim = await pushImage(reg.url, 'corrupt', 'c1', { seed: 'h-corrupt', layers: ['h-corrupt/only'] });
    const layer = victim.layers[0];
    if (layer === undefined) throw new Error('no layer');
    await pullAndVerify(reg.url, 'corrupt', 'c1');
    // Same size, other bytes: the registry serves them as they are; the harness must notice.
    await writeFile(layout(reg.root).blobData(layer.digest), seededBytes('other', layer.size));
    await expect(pullAndVerify(reg.url, 'corrupt', 'c1')).rejects.toThrow(new RegExp(`blob ${layer.digest} hashes to sha256:`));
  });

  test('removing a tag dir 404s that tag only; garbage-collect without -m frees nothing', async () => {
    const lay = layout(reg.root);
    await rm(lay.tag(parseRepositoryName(REPO), parseTagName('v1')), { recursive: true });
    await expectManifestStatus(reg.url, REPO, 'v1', 404);
    expect(await manifestStatus(reg.url, REPO, 'stable')).toBe(200);
    await pullAndVerify(reg.url, REPO, 'stable');

    const before = await blobStoreBytes(reg.root);
    expect(before).toBeGreaterThan(0);
    await reg.stop();
    const gc = await runGarbageCollect(reg.configPath, []);
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/\d+ blobs marked, 0 blobs and 0 manifests eligible for deletion/);
    expect(await blobStoreBytes(reg.root)).toBe(before);
    await reg.restart();
    await pullAndVerify(reg.url, REPO, 'stable');
  });

  test('garbage-collect frees exactly an unreferenced revision and its unique blobs', async () => {
    const lay = layout(reg.root);
    const before = await blobStoreBytes(reg.root);
    const blobsBefore = await blobDigests(reg.root);
    await rm(lay.revision(parseRepositoryName(REPO), parseDigest(untagged.manifest.digest)), { recursive: true });
    await reg.stop();
    const gc = await runGarbageCollect(reg.configPath, []);
    expect(gc.exitCode, gc.stderr).toBe(0);
    const freed = [untagged.manifest, untagged.config, ...untagged.layers];
    expect(before - (await blobStoreBytes(reg.root))).toBe(freed.reduce((n, b) => n + b.size, 0));
    expect(await blobDigests(reg.root)).toEqual(blobsBefore.filter((d) => !freed.some((b) => b.digest === d)).sort());
    // The in-memory blob cache would still claim the swept blobs exist: restart.
    await reg.restart();
    await expectManifestStatus(reg.url, REPO, untagged.manifest.digest, 404);
    for (const ref of ['stable', 'v2', 'oci', 'multi', 'multi-oci', signature.tag]) await pullAndVerify(reg.url, REPO, ref);
    await pullAndVerify(reg.url, PARENT, 'v1');
  });
});

describe('missing registry binary', () => {
  test('an absolute path that does not exist fails with the install hint', async () => {
    await expect(startRegistry({ bin: '/nonexistent/docker-registry' })).rejects.toThrow(
      /registry binary \/nonexistent\/docker-registry is missing or not executable\..*apt-get install -y docker-registry.*npm test/s,
    );
  });

  test('a name not on PATH fails with the install hint', async () => {
    await expect(startRegistry({ bin: 'docker-registry-not-installed' })).rejects.toThrow(
      /`docker-registry-not-installed` was not found on PATH .*apt-get install -y docker-registry/s,
    );
  });
});
