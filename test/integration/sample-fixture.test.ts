import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fg from 'fast-glob';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { applyAges, parseAge } from '../../fixtures/ages.mjs';
import {
  blobDigests,
  blobStoreBytes,
  pullAndVerify,
  removeUploads,
  signatureTag,
  startRegistry,
  tagsOnDisk,
  type BuiltImage,
  type BuiltIndex,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { agesFileOf, buildSample, pushSample, sampleBlobDigests, type SampleTag } from '../helpers/sample.js';

// Without REGPRUNE_WRITE_FIXTURES this checks the committed sample against the
// real registry and against test/helpers/sample.ts. With it (`npm run fixtures`)
// it first remakes fixtures/sample-registry and fixtures/sample-ages.json from
// the real registry, then checks what it wrote.

const WRITE = process.env['REGPRUNE_WRITE_FIXTURES'] === '1';
const FIXTURE = fileURLToPath(new URL('../../fixtures/sample-registry', import.meta.url));
const AGES = fileURLToPath(new URL('../../fixtures/sample-ages.json', import.meta.url));
const MAX_BYTES = 1024 * 1024;

const sample = buildSample();

async function writeFixtures(): Promise<void> {
  const reg = await startRegistry();
  try {
    await pushSample(reg.url);
  } catch (err) {
    throw new Error(`pushing the sample failed: ${(err as Error).message}\n--- registry output ---\n${reg.logs()}`, { cause: err });
  } finally {
    // Stopped before copying: nothing is written while the tree is read.
    await reg.stop();
  }
  await removeUploads(reg.root);
  await rm(FIXTURE, { recursive: true, force: true });
  await cp(reg.root, FIXTURE, { recursive: true });
  await writeFile(AGES, `${JSON.stringify(agesFileOf(sample), null, 2)}\n`);
}

function tagOf(key: string): SampleTag {
  const t = sample.tags.get(key);
  if (t === undefined) throw new Error(`sample has no ${key}`);
  return t;
}
function image(key: string): BuiltImage {
  const c = tagOf(key).content;
  if ('children' in c) throw new Error(`${key} is an index`);
  return c;
}
function index(key: string): BuiltIndex {
  const c = tagOf(key).content;
  if (!('children' in c)) throw new Error(`${key} is not an index`);
  return c;
}

describe(`bundled sample registry${WRITE ? ' (rewriting it first)' : ''}`, () => {
  let copy: string;
  let reg: RunningRegistry | undefined;

  setupSuite(async () => {
    if (WRITE) await writeFixtures();
    copy = await mkdtemp(join(tmpdir(), 'regprune-sample-'));
    await cp(FIXTURE, copy, { recursive: true });
    // Read-only: checking the sample must not change it.
    reg = await startRegistry({ root: copy, readOnly: true });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`--- registry output ---\n${reg?.logs() ?? '(no registry)'}`);
  });

  afterAll(async () => {
    await reg?.stop();
    if (copy !== undefined) await rm(copy, { recursive: true, force: true });
  });

  test('the sidecar is what sample.ts says, and lists exactly the tag dirs on disk', async () => {
    const sidecar = JSON.parse(await readFile(AGES, 'utf8')) as { ages: Record<string, string> };
    expect(sidecar).toEqual(agesFileOf(sample));
    const onDisk = await tagsOnDisk(copy);
    expect([...onDisk.keys()].sort()).toEqual(Object.keys(sidecar.ages).sort());
    for (const [key, digest] of onDisk) expect(digest, key).toBe(tagOf(key).manifest.digest);
  });

  test('every tag, and the untagged manifest by digest, pulls byte for byte from the real registry', async () => {
    if (reg === undefined) throw new Error('registry not started');
    for (const [key, t] of sample.tags) {
      const pulled = await pullAndVerify(reg.url, t.repository, t.tag);
      expect(pulled.digest, key).toBe(t.manifest.digest);
      expect(pulled.bytes.equals(t.manifest.bytes), key).toBe(true);
    }
    expect(sample.untagged).toHaveLength(1);
    for (const u of sample.untagged) {
      const pulled = await pullAndVerify(reg.url, u.repository, u.manifest.digest);
      expect(pulled.bytes.equals(u.manifest.bytes)).toBe(true);
    }
  });

  test('the tree holds exactly the sample content: no stray blobs, no uploads, well under 1 MiB', async () => {
    expect(await blobDigests(copy)).toEqual([...sampleBlobDigests(sample)].sort());
    expect(await fg('**/_uploads', { cwd: copy, onlyDirectories: true })).toEqual([]);
    // Only link and data files: nothing time- or run-dependent.
    const files = await fg('**', { cwd: copy, dot: true });
    expect(files.filter((f) => !f.endsWith('/link') && !f.endsWith('/data'))).toEqual([]);
    const bytes = await blobStoreBytes(copy);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThan(MAX_BYTES);
  });

  test('shares what fixtures/README.md says it shares', () => {
    const layerDigests = (img: BuiltImage) => img.layers.map((l) => l.digest);
    // i1: T11 and T12 share the base layer; stable = T12, latest = T13 (docker v2).
    expect(layerDigests(image('i1:T11'))[0]).toBe(layerDigests(image('i1:T12'))[0]);
    expect(layerDigests(image('i1:T13'))[0]).not.toBe(layerDigests(image('i1:T11'))[0]);
    expect(tagOf('i1:stable').manifest.digest).toBe(tagOf('i1:T12').manifest.digest);
    expect(tagOf('i1:latest').manifest.digest).toBe(tagOf('i1:T13').manifest.digest);
    expect(tagOf('i1:latest').manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    // i2: manifest lists whose amd64 children sit on i1's base; T22 and T23 share the arm64 child.
    for (const t of ['T21', 'T22', 'T23', 'T24']) {
      const idx = index(`i2:${t}`);
      expect(idx.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
      expect(idx.children).toHaveLength(2);
      expect(idx.children[0]?.layers[0]?.digest).toBe(layerDigests(image('i1:T11'))[0]);
    }
    expect(index('i2:T23').children[1]?.manifest.digest).toBe(index('i2:T22').children[1]?.manifest.digest);
    // i5: OCI, and the cosign tag names T51's manifest.
    expect(tagOf('i5:T51').manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const sig = image(`i5:${signatureTag(tagOf('i5:T51').manifest.digest)}`);
    expect(sig.layers[0]?.bytes.toString('utf8')).toContain(`"docker-manifest-digest":"${tagOf('i5:T51').manifest.digest}"`);
    // team/app holds team/app/api; both use the same base layer.
    expect(layerDigests(image('team/app:v1.2.3'))[0]).toBe(layerDigests(image('team/app/api:v1.2.3'))[0]);
    expect(tagOf('team/app/api:latest').manifest.digest).toBe(tagOf('team/app/api:main-7').manifest.digest);
  });

  test('applyAges sets each tag\'s current/link mtime to now (whole seconds) minus its age', async () => {
    // Milliseconds on purpose: a .587 mtime can read back as .586, so ages are whole seconds.
    const now = new Date('2026-06-01T12:00:00.587Z');
    const applied = await applyAges(copy, AGES, now);
    expect(applied).toHaveLength(sample.tags.size);
    for (const a of applied) {
      const want = Date.parse('2026-06-01T12:00:00Z') - parseAge(tagOf(`${a.repository}:${a.tag}`).age);
      expect(a.pushedAt.getTime(), a.path).toBe(want);
      expect((await stat(a.path)).mtimeMs, a.path).toBe(want);
    }
    const t11 = applied.find((a) => a.repository === 'i1' && a.tag === 'T11');
    expect(t11?.pushedAt.toISOString()).toBe('2025-11-13T12:00:00.000Z'); // 200 days before
    expect(parseAge('26h')).toBe(26 * 3_600_000);
    expect(() => parseAge('3mo')).toThrow(/expected a whole number and one of m, h, d, w/);
  });

  test('applyAges names a tag that is not in the tree', async () => {
    const bad = join(copy, 'bad-ages.json');
    await writeFile(bad, JSON.stringify({ version: 1, ages: { 'i1:T99': '1d' } }));
    await expect(applyAges(copy, bad)).rejects.toThrow(/setting the push time of i1:T99: ENOENT/);
  });
});
