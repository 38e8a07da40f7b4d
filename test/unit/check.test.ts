import { describe, expect, it } from 'vitest';
import { checkStorage } from '../../src/graph/check.js';
import type { RepositoryName } from '../../src/model/names.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';
import { blobFrom, buildImage, descriptorOf, manifestFrom, seededBytes } from '../helpers/images.js';

const now = new Date('2026-11-23T12:00:00Z');
const repo = (n: string) => n as RepositoryName;

function healthy() {
  const reg = new MemRegistry();
  const a = reg.putImage('app', { seed: 'a', layers: ['base', 'a1'] });
  const b = reg.putImage('app', { seed: 'b', layers: ['base', 'b1'] });
  reg.tag('app', 'v1', a.manifest.digest, daysAgo(now, 3));
  reg.tag('app', 'v2', b.manifest.digest, daysAgo(now, 1));
  return { reg, a, b };
}

describe('checkStorage', () => {
  it('finds nothing wrong in a healthy tree', async () => {
    const { reg } = healthy();
    expect(await checkStorage(reg.fs, reg.lay, { now })).toEqual([]);
  });

  it.each([
    {
      name: 'a layer blob deleted: the image that references it is broken, its _layers link dangles',
      breakIt: ({ reg, a }: ReturnType<typeof healthy>) => reg.vol.rmSync(reg.lay.blob(a.layers[1]?.digest as never), { recursive: true }),
      kinds: ['missing-referenced-blob', 'dangling-layer-link'],
    },
    {
      name: 'a manifest blob deleted: the tag pointing at it is broken',
      breakIt: ({ reg, b }: ReturnType<typeof healthy>) => reg.vol.rmSync(reg.lay.blob(b.manifest.digest), { recursive: true }),
      kinds: ['missing-manifest'],
    },
    {
      name: 'a revision link removed under a tag',
      breakIt: ({ reg, b }: ReturnType<typeof healthy>) => reg.vol.rmSync(reg.lay.revision(repo('app'), b.manifest.digest), { recursive: true }),
      kinds: ['tag-without-revision'],
    },
    {
      name: 'a stale upload and leftover trash',
      breakIt: ({ reg }: ReturnType<typeof healthy>) => {
        reg.write(`${reg.lay.uploads(repo('app'))}/u-1/startedat`, daysAgo(now, 3).toISOString());
        reg.write(`${reg.lay.uploads(repo('app'))}/u-1/data`, 'x'.repeat(100));
        reg.write(`${reg.lay.uploads(repo('app'))}/u-2/startedat`, daysAgo(now, 0).toISOString());
        reg.write(`${reg.lay.trashDir}/123-1/current/link`, 'sha256:' + 'a'.repeat(64));
      },
      kinds: ['stale-upload', 'trash'],
    },
    {
      name: 'a tag link with a trailing newline',
      breakIt: ({ reg, a }: ReturnType<typeof healthy>) => reg.write(reg.lay.tagCurrentLink(repo('app'), 'v1' as never), `${a.manifest.digest}\n`),
      kinds: ['bad-link'],
    },
  ])('$name', async ({ breakIt, kinds }) => {
    const tree = healthy();
    breakIt(tree);
    const findings = await checkStorage(tree.reg.fs, tree.reg.lay, { now });
    expect(findings.map((f) => f.kind).sort()).toEqual([...kinds].sort());
    for (const f of findings) expect(f.path.startsWith(tree.reg.root)).toBe(true);
  });

  it('a tagged index whose child was deleted through the API: an error naming the tag; the empty revision dir is clutter', async () => {
    const reg = new MemRegistry();
    const idx = reg.putIndex('multi', { children: [{ seed: 'amd', platform: { os: 'linux', architecture: 'amd64' } }, { seed: 'arm', platform: { os: 'linux', architecture: 'arm64' } }] });
    reg.tag('multi', 'v1', idx.manifest.digest, daysAgo(now, 1));
    const child = idx.children[1]?.manifest.digest as never;
    reg.vol.rmSync(reg.lay.revisionLink(repo('multi'), child));
    const findings = await checkStorage(reg.fs, reg.lay, { now });
    expect(findings.map((f) => [f.severity, f.kind])).toEqual([
      ['error', 'missing-child'],
      ['clutter', 'empty-revision'],
    ]);
    expect(findings[0]?.message).toContain('multi:v1');
  });

  it('a foreign layer (urls, never in the registry) is not missing', async () => {
    const reg = new MemRegistry();
    const base = buildImage({ seed: 'win' });
    const foreign = blobFrom('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', seededBytes('foreign', 100));
    const doc = JSON.parse(base.manifest.bytes.toString('utf8')) as { layers: unknown[] };
    doc.layers.unshift({ ...descriptorOf(foreign), urls: ['https://example.test/f'] });
    const image = { ...base, manifest: manifestFrom(base.manifest.mediaType, doc, 3) };
    reg.putImage('win', image);
    reg.tag('win', 'ltsc', image.manifest.digest, daysAgo(now, 1));
    expect(await checkStorage(reg.fs, reg.lay, { now })).toEqual([]);
  });

  it('a revision link naming another digest, and a referenced blob not linked into the repository: errors', async () => {
    const { reg, a, b } = healthy();
    const link = reg.lay.revisionLink(repo('app'), a.manifest.digest);
    reg.write(link, b.manifest.digest);
    reg.vol.rmSync(reg.lay.layer(repo('app'), b.layers[1]?.digest as never), { recursive: true });
    const findings = await checkStorage(reg.fs, reg.lay, { now });
    expect(findings.map((f) => [f.severity, f.kind, f.path])).toEqual([
      ['error', 'bad-link', link],
      ['error', 'missing-layer-link', reg.lay.layerLink(repo('app'), b.layers[1]?.digest as never)],
    ]);
    expect(findings[1]?.message).toContain('app:v2');
  });
});
