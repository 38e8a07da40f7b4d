import * as nodeFs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parseRegistryConfig, s3KeyPrefix, type S3StorageConfig } from '../../src/config/registry-config.js';
import { listLinkedLayers, loadRepoManifests } from '../../src/graph/load.js';
import type { Digest } from '../../src/model/names.js';
import { storageFs } from '../../src/storage/fs.js';
import { layout } from '../../src/storage/paths.js';
import { openS3, type ObjectStore } from '../../src/storage/s3/client.js';
import { listBlobSizes } from '../../src/storage/s3/blobs.js';
import { linkEtag } from '../../src/storage/s3/keys.js';
import { openS3View, type S3View } from '../../src/storage/s3/view.js';
import type { StorageFs } from '../../src/storage/fs.js';
import type { Layout } from '../../src/storage/paths.js';
import { walkRepositories, type RepositoryRecord } from '../../src/storage/walk.js';
import type { StorageWarning } from '../../src/storage/warnings.js';
import {
  blobDigests,
  blobStoreBytes,
  buildImage,
  pushImage,
  pushIndex,
  pushSignature,
  pushUntagged,
  startRegistry,
  tagManifest,
  type RunningRegistry,
} from '../helpers/registry.js';
import { generateTree } from '../../bench/generate.js';
import { uploadTree } from '../../bench/s3-upload.js';
import { setupSuite } from '../helpers/suite.js';
import { multipartPut, s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// The filesystem walk and graph on the bucket's read-only listing view
// (src/storage/s3/view.ts), against trees the real registry wrote: the same
// pushes to a filesystem registry and to one on a Swift bucket must give the
// same repositories, tags, revisions and layer links, with one list request
// per 1000 keys and no GET for a link its ETag proves.

const BUCKET = 'walk';

/** The same pushes, in the same order, to one registry. */
async function pushAll(url: string): Promise<void> {
  const v1 = await pushImage(url, 'team/app', 'v1', { seed: 'w-v1', layers: ['w-base', 'w-v1/top'] });
  await pushImage(url, 'team/app', 'v2', { seed: 'w-v2', layers: ['w-base', 'w-v2/top'] });
  await tagManifest(url, 'team/app', 'stable', v1.manifest);
  await pushImage(url, 'team/app', 'oci', { format: 'oci', seed: 'w-oci', layers: ['w-base-oci'] });
  await pushIndex(url, 'team/app', 'multi', {
    children: [
      { seed: 'w-amd64', platform: { os: 'linux', architecture: 'amd64' }, layers: ['w-base'] },
      { seed: 'w-arm64', platform: { os: 'linux', architecture: 'arm64' }, layers: ['w-base'] },
    ],
  });
  await pushUntagged(url, 'team/app', { seed: 'w-untagged', layers: ['w-untagged/only'] });
  await pushSignature(url, 'team/app', v1.manifest);
  // v1 pushed again with other content: its index now holds two digests.
  await pushImage(url, 'team/app', 'v1', buildImage({ seed: 'w-v1-again', layers: ['w-base', 'w-v1-again/top'] }));
  await pushImage(url, 'team/app/api', 'v1', { seed: 'w-api', layers: ['w-base'] });
  await pushImage(url, 'solo', 'latest', { seed: 'w-solo', layers: ['w-solo/only'] });
}

interface Comparable {
  name: string;
  tags: Array<{ tag: string; digest: Digest }>;
  unreadableTags: number;
  revisions: Digest[];
  linkedLayers: Digest[];
}

/** Repositories, tags, revisions and layer links as the walk and the graph read them from a tree. */
async function treeOf(fs: StorageFs, lay: Layout, onWarning: (w: StorageWarning) => void = () => {}): Promise<Comparable[]> {
  const repos = await walkRepositories(fs, lay, { onWarning });
  const { repos: manifests } = await loadRepoManifests(fs, lay, new Map(repos.map((r) => [r.name, r.tags.map((t) => t.digest)])), { onWarning });
  const out: Comparable[] = [];
  for (const r of repos) {
    out.push({
      name: r.name,
      tags: r.tags.map((t) => ({ tag: t.tag, digest: t.digest })),
      unreadableTags: r.unreadableTags,
      revisions: [...manifests.get(r.name)!.revisions].sort(),
      linkedLayers: (await listLinkedLayers(fs, lay, r.name)).sort(),
    });
  }
  return out;
}

const fsView = (root: string) => treeOf(storageFs(nodeFs), layout(root));
const s3Tree = (view: S3View, onWarning?: (w: StorageWarning) => void) => treeOf(view.fs, view.layout, onWarning);

describe('the S3 listing view walks as a filesystem', () => {
  let swift: RunningSwift;
  let fsReg: RunningRegistry;
  let s3Reg: RunningRegistry;
  let store: ObjectStore;
  let config: S3StorageConfig;
  /** The walk alone (tags) on a fresh store: what listing costs. */
  let walk: RepositoryRecord[];
  let walkView: S3View;
  let walkStats: ReturnType<ObjectStore['stats']>;
  const warnings: StorageWarning[] = [];

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    [fsReg, s3Reg] = await Promise.all([startRegistry(), startS3Registry(swift, BUCKET)]);
    await Promise.all([pushAll(fsReg.url), pushAll(s3Reg.url)]);
    config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'c.yml') as S3StorageConfig;
    store = await openS3(config);
    const fresh = await openS3(config);
    try {
      walkView = await openS3View(fresh, s3KeyPrefix(config.rootdirectory));
      walk = await walkRepositories(walkView.fs, walkView.layout, { onWarning: (w) => warnings.push(w) });
      walkStats = fresh.stats();
    } finally {
      fresh.close();
    }
  });
  afterAll(async () => {
    store?.close();
    await Promise.all([fsReg?.stop(), s3Reg?.stop()]);
    await swift?.stop();
  });

  test('same repositories, tags (digest per tag), revisions and layer links as the filesystem walk', async () => {
    const fromFs = await fsView(fsReg.root);
    const seen: StorageWarning[] = [];
    const fromS3 = await s3Tree(await openS3View(store, s3KeyPrefix(config.rootdirectory)), (w) => seen.push(w));
    expect(fromS3).toEqual(fromFs);
    expect(fromS3.map((r) => r.name)).toEqual(['solo', 'team/app', 'team/app/api']);
    expect(fromS3[1]!.tags.map((t) => t.tag)).toHaveLength(6);
    expect(warnings).toEqual([]);
    expect(seen).toEqual([]);
  });

  test('a generated tree (nested names, indexes, signatures, abandoned uploads) uploaded under another rootdirectory walks the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-s3-gen-'));
    try {
      const gen = await generateTree({ root: dir, repos: 3, tagsPerRepo: 4, workers: 0 });
      await uploadTree(store, dir, 'gen/', { concurrency: 16 });
      const seen: StorageWarning[] = [];
      const view = await openS3View(store, 'gen/');
      const generated = await s3Tree(view, (w) => seen.push(w));
      expect(generated).toEqual(await fsView(dir));
      expect(generated.flatMap((r) => r.tags)).toHaveLength(gen.tags);
      expect(view.stats().linksRead).toBe(0);
      expect(seen).toEqual([]);
      // Blob sizes from the listing alone, as on disk.
      const blobs = await listBlobSizes(store, 'gen/');
      expect([...blobs.sizes.keys()].sort()).toEqual(await blobDigests(dir));
      expect([...blobs.sizes.values()].reduce((a, b) => a + b, 0)).toBe(await blobStoreBytes(dir));
      expect(blobs.sizes.size).toBe(gen.blobs);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('every link was proven by its ETag: no GET, one list request per 1000 keys', () => {
    const st = walkView.stats();
    expect(st.linksRead).toBe(0);
    expect(st.linksProven).toBe(walk.flatMap((r) => r.tags).length);
    expect(walkStats.requests.get).toBe(0);
    expect(walkStats.requests.head).toBe(0);
    expect(st.keys).toBeGreaterThan(0);
    expect(walkStats.requests.list).toBe(Math.ceil(st.keys / 1000));
  });

  test('push time is the LastModified of current/link (the re-pushed v1 is the newest tag)', () => {
    const app = walk.find((r) => r.name === 'team/app')!;
    const v1 = app.tags.find((t) => t.tag === 'v1')!;
    const stable = app.tags.find((t) => t.tag === 'stable')!;
    expect(v1.pushedAt.getTime()).toBeGreaterThanOrEqual(stable.pushedAt.getTime());
    expect(Math.abs(v1.pushedAt.getTime() - Date.now())).toBeLessThan(10 * 60_000);
  });

  describe('links whose ETag does not prove them are read', () => {
    const root = () => `${s3KeyPrefix(config.rootdirectory)}docker/registry/v2/repositories/`;
    let after: Comparable[];
    let afterView: S3View;
    const seen: StorageWarning[] = [];
    let solo: Digest;
    let api: Digest;
    let multipartRevision: Digest;
    let gets: number;

    const before = async () => s3Tree(await openS3View(store, s3KeyPrefix(config.rootdirectory)));

    setupSuite(async () => {
      const tree = await before();
      solo = tree.find((r) => r.name === 'solo')!.tags[0]!.digest;
      api = tree.find((r) => r.name === 'team/app/api')!.tags[0]!.digest;
      // solo:latest's current/link with a trailing newline (garbage-collect aborts on it).
      await store.put(`${root()}solo/_manifests/tags/latest/current/link`, `${solo}\n`);
      // team/app/api:v1 pointing at a valid digest that is not in its index (not written by a push).
      await store.put(`${root()}team/app/api/_manifests/tags/v1/current/link`, solo);
      // A revision link of team/app/api naming another manifest.
      await store.put(`${root()}team/app/api/_manifests/revisions/sha256/${api.slice(7)}/link`, solo);
      // A right revision link of team/app written by a multipart upload: its ETag is not an MD5 of the content.
      multipartRevision = tree.find((r) => r.name === 'team/app')!.revisions[0]!;
      await multipartPut(swift, BUCKET, `${root()}team/app/_manifests/revisions/sha256/${multipartRevision.slice(7)}/link`, multipartRevision);
      const fresh = await openS3(config);
      try {
        afterView = await openS3View(fresh, s3KeyPrefix(config.rootdirectory));
        // The walk and the revision links only (no manifest bytes): the GETs are the links read.
        const repos = await walkRepositories(afterView.fs, afterView.layout, { onWarning: (w) => seen.push(w) });
        const { repos: manifests } = await loadRepoManifests(afterView.fs, afterView.layout, new Map(repos.map((r) => [r.name, []])), {
          onWarning: (w) => seen.push(w),
        });
        after = repos.map((r) => ({
          name: r.name,
          tags: r.tags.map((t) => ({ tag: t.tag, digest: t.digest })),
          unreadableTags: r.unreadableTags,
          revisions: [...manifests.get(r.name)!.revisions].sort(),
          linkedLayers: [],
          opaque: manifests.get(r.name)!.opaque,
        })) as Comparable[];
        gets = fresh.stats().requests.get - afterView.stats().manifestsFetched;
      } finally {
        fresh.close();
      }
    });

    test('a current/link with a newline: warned, the tag is never selected', () => {
      const r = after.find((x) => x.name === 'solo')!;
      expect(r.tags).toEqual([]);
      expect(r.unreadableTags).toBe(1);
      expect(seen).toContainEqual({
        code: 'bad-link',
        path: '/reg/docker/registry/v2/repositories/solo/_manifests/tags/latest/current/link',
        message: expect.stringMatching(/newline.*tag never selected/),
      });
    });

    test('a current/link naming a digest outside its index: read, and its content is what counts', () => {
      const r = after.find((x) => x.name === 'team/app/api')!;
      expect(r.tags.map((t) => t.digest)).toEqual([solo]);
    });

    test('a revision link naming another digest: warned, the repository marked not understood', () => {
      const r = after.find((x) => x.name === 'team/app/api')! as Comparable & { opaque?: string };
      expect(r.opaque).toMatch(/revision link names/);
      expect(seen).toContainEqual({
        code: 'bad-link',
        path: `/reg/docker/registry/v2/repositories/team/app/api/_manifests/revisions/sha256/${api.slice(7)}/link`,
        message: expect.stringMatching(/nothing removed from team\/app\/api/),
      });
      expect(seen.filter((w) => w.code === 'bad-link')).toHaveLength(2);
      // Four links not proven by their ETag, each read once with a GET.
      expect(afterView.stats().linksRead).toBe(4);
      expect(gets).toBe(4);
    });

    test('a link with a multipart ETag is read with a GET, and accepted when right', async () => {
      const head = await store.head(`${root()}team/app/_manifests/revisions/sha256/${multipartRevision.slice(7)}/link`);
      expect(head?.etag).toMatch(/-1$/);
      const app = after.find((x) => x.name === 'team/app')! as Comparable & { opaque?: string };
      expect(app.revisions).toContain(multipartRevision);
      expect(app.opaque).toBeUndefined();
    });

    test('linkEtag is the md5 a single PUT gives', async () => {
      const head = await store.head(`${root()}team/app/_manifests/tags/stable/current/link`);
      const stable = walk.find((x) => x.name === 'team/app')!.tags.find((t) => t.tag === 'stable')!;
      expect(head?.etag).toBe(linkEtag(stable.digest));
    });
  });
});
