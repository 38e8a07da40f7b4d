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
import { linkEtag, walkS3, type S3Walk } from '../../src/storage/s3/walk.js';
import { walkRepositories } from '../../src/storage/walk.js';
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
import { s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';

// The listing-first S3 walk against trees the real registry wrote: the same
// pushes to a filesystem registry and to one on a Swift bucket must give the
// same repositories, tags, revisions and layer links as the filesystem walk.

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

async function fsView(root: string): Promise<Comparable[]> {
  const fs = storageFs(nodeFs);
  const lay = layout(root);
  const repos = await walkRepositories(fs, lay);
  const { repos: manifests } = await loadRepoManifests(fs, lay, new Map(repos.map((r) => [r.name, r.tags.map((t) => t.digest)])));
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

function s3View(walk: S3Walk): Comparable[] {
  return walk.repositories.map((r) => ({
    name: r.name,
    tags: r.tags.map((t) => ({ tag: t.tag, digest: t.digest })),
    unreadableTags: r.unreadableTags,
    revisions: [...r.revisions],
    linkedLayers: [...r.linkedLayers],
  }));
}

describe('listing-first S3 walk', () => {
  let swift: RunningSwift;
  let fsReg: RunningRegistry;
  let s3Reg: RunningRegistry;
  let store: ObjectStore;
  let config: S3StorageConfig;
  let walk: S3Walk;
  let walkStats: ReturnType<ObjectStore['stats']>;
  const warnings: StorageWarning[] = [];

  setupSuite(async () => {
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    [fsReg, s3Reg] = await Promise.all([startRegistry(), startS3Registry(swift, BUCKET)]);
    await Promise.all([pushAll(fsReg.url), pushAll(s3Reg.url)]);
    config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'c.yml') as S3StorageConfig;
    store = await openS3(config);
    walk = await walkS3(store, s3KeyPrefix(config.rootdirectory), { onWarning: (w) => warnings.push(w) });
    walkStats = store.stats();
  });
  afterAll(async () => {
    store?.close();
    await Promise.all([fsReg?.stop(), s3Reg?.stop()]);
    await swift?.stop();
  });

  test('same repositories, tags (digest per tag), revisions and layer links as the filesystem walk', async () => {
    const fromFs = await fsView(fsReg.root);
    const fromS3 = s3View(walk);
    expect(fromS3).toEqual(fromFs);
    expect(fromS3.map((r) => r.name)).toEqual(['solo', 'team/app', 'team/app/api']);
    expect(fromS3[1]!.tags.map((t) => t.tag)).toHaveLength(6);
    expect(warnings).toEqual([]);
    expect(walk.repositories.every((r) => r.problems.length === 0)).toBe(true);
  });

  test('a generated tree (nested names, indexes, signatures, abandoned uploads) uploaded under another rootdirectory walks the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-s3-gen-'));
    try {
      const gen = await generateTree({ root: dir, repos: 3, tagsPerRepo: 4, workers: 0 });
      await uploadTree(store, dir, 'gen/', { concurrency: 16 });
      const seen: StorageWarning[] = [];
      const generated = await walkS3(store, 'gen/', { onWarning: (w) => seen.push(w) });
      expect(s3View(generated)).toEqual(await fsView(dir));
      expect(generated.repositories.flatMap((r) => r.tags)).toHaveLength(gen.tags);
      expect(generated.linksRead).toBe(0);
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
    expect(walk.linksRead).toBe(0);
    const stats = walkStats;
    expect(stats.requests.get).toBe(0);
    expect(stats.requests.list).toBe(Math.max(1, Math.ceil(walk.keys / 1000)));
  });

  test('push time is the LastModified of current/link (the re-pushed v1 is the newest tag)', () => {
    const app = walk.repositories.find((r) => r.name === 'team/app')!;
    const v1 = app.tags.find((t) => t.tag === 'v1')!;
    const stable = app.tags.find((t) => t.tag === 'stable')!;
    expect(v1.pushedAt.getTime()).toBeGreaterThanOrEqual(stable.pushedAt.getTime());
    expect(Math.abs(v1.pushedAt.getTime() - Date.now())).toBeLessThan(10 * 60_000);
  });

  describe('links whose ETag does not prove them are read', () => {
    const root = () => `${s3KeyPrefix(config.rootdirectory)}docker/registry/v2/repositories/`;
    let after: S3Walk;
    const seen: StorageWarning[] = [];
    let solo: Digest;
    let api: Digest;
    let multipartRevision: Digest;

    /** Writes `body` as a one-part multipart upload (as the registry writes big blobs). */
    const multipartPut = async (key: string, body: string): Promise<void> => {
      const sdk = await import('@aws-sdk/client-s3');
      const client = new sdk.S3Client({
        region: config.region,
        endpoint: swift.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: swift.accessKey, secretAccessKey: swift.secretKey },
      });
      try {
        const { UploadId } = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
        const part = await client.send(new sdk.UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: body }));
        await client.send(
          new sdk.CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }),
        );
      } finally {
        client.destroy();
      }
    };

    setupSuite(async () => {
      solo = walk.repositories.find((r) => r.name === 'solo')!.tags[0]!.digest;
      api = walk.repositories.find((r) => r.name === 'team/app/api')!.tags[0]!.digest;
      // solo:latest's current/link with a trailing newline (garbage-collect aborts on it).
      await store.put(`${root()}solo/_manifests/tags/latest/current/link`, `${solo}\n`);
      // team/app/api:v1 pointing at a valid digest that is not in its index (not written by a push).
      await store.put(`${root()}team/app/api/_manifests/tags/v1/current/link`, solo);
      // A revision link of team/app/api naming another manifest.
      await store.put(`${root()}team/app/api/_manifests/revisions/sha256/${api.slice(7)}/link`, solo);
      // A right revision link of team/app written by a multipart upload: its ETag is not an MD5 of the content.
      multipartRevision = walk.repositories.find((r) => r.name === 'team/app')!.revisions[0]!;
      await multipartPut(`${root()}team/app/_manifests/revisions/sha256/${multipartRevision.slice(7)}/link`, multipartRevision);
      const fresh = await openS3(config);
      try {
        after = await walkS3(fresh, s3KeyPrefix(config.rootdirectory), { onWarning: (w) => seen.push(w), describe: (k) => `s3://${BUCKET}/${k}` });
        expect(fresh.stats().requests.get).toBe(4);
      } finally {
        fresh.close();
      }
    });

    test('a current/link with a newline: warned, the tag is never selected', () => {
      const r = after.repositories.find((x) => x.name === 'solo')!;
      expect(r.tags).toEqual([]);
      expect(r.unreadableTags).toBe(1);
      expect(seen).toContainEqual({
        code: 'bad-link',
        path: `s3://${BUCKET}/reg/docker/registry/v2/repositories/solo/_manifests/tags/latest/current/link`,
        message: expect.stringMatching(/newline.*tag never selected/),
      });
    });

    test('a current/link naming a digest outside its index: read, and its content is what counts', () => {
      const r = after.repositories.find((x) => x.name === 'team/app/api')!;
      expect(r.tags.map((t) => t.digest)).toEqual([solo]);
    });

    test('a revision link naming another digest: warned, left out, the repository marked not understood', () => {
      const r = after.repositories.find((x) => x.name === 'team/app/api')!;
      expect(r.revisions).toEqual([]);
      expect(r.problems).toHaveLength(1);
      expect(seen.filter((w) => w.code === 'bad-link')).toHaveLength(2);
      expect(after.linksRead).toBe(4);
    });

    test('a link with a multipart ETag is read with a GET, and accepted when right', async () => {
      const head = await store.head(`${root()}team/app/_manifests/revisions/sha256/${multipartRevision.slice(7)}/link`);
      expect(head?.etag).toMatch(/-1$/);
      const app = after.repositories.find((x) => x.name === 'team/app')!;
      expect(app.revisions).toEqual(walk.repositories.find((x) => x.name === 'team/app')!.revisions);
      expect(app.problems).toEqual([]);
    });

    test('linkEtag is the md5 a single PUT gives', async () => {
      const head = await store.head(`${root()}team/app/_manifests/tags/stable/current/link`);
      const stable = walk.repositories.find((x) => x.name === 'team/app')!.tags.find((t) => t.tag === 'stable')!;
      expect(head?.etag).toBe(linkEtag(stable.digest));
    });
  });
});
