import { execa } from 'execa';
import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateTree } from '../../bench/generate.js';
import { ManifestCache, readManifestsWith, type ManifestEntry, type ManifestReads } from '../../src/graph/load.js';
import { parseDuration } from '../../src/model/duration.js';
import type { Digest } from '../../src/model/names.js';
import { buildPlan } from '../../src/plan/build.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { storageFs, type StorageFs } from '../../src/storage/fs.js';
import { layout, type Layout } from '../../src/storage/paths.js';
import { threadedReads } from '../../src/storage/reader.js';
import { limiter } from '../../src/util/limit.js';
import { REPO_ROOT } from '../helpers/cli.js';

// The plan reads manifests in a thread of its own (src/storage/manifest-thread.ts, started by
// manifestThread() in src/storage/manifest-reader.ts) on the real disk, and on the main thread
// everywhere else. Both must give the very same entries and plans, on a real tree, including for
// every kind of broken manifest blob, and a thread that goes away must fail the reads, not hang them.
//
// The thread is started from the built module (dist/, built by test/run.sh before vitest): under
// vitest src/storage/manifest-reader.ts has no .js beside it, so its manifestThread() is undefined.

const DIST = join(REPO_ROOT, 'dist', 'src', 'storage');
const distUrl = (file: string) => pathToFileURL(join(DIST, file)).href;
const NOW = new Date('2026-11-23T12:00:00Z');
const OLDER_THAN_30D: Selector = { refs: [], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true, olderThan: parseDuration('30d') };

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'regprune-mthread-'));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

/** manifestThread() of the built module; a clear failure when it is not built. */
async function startThread(): Promise<ManifestReads> {
  if (!nodeFs.existsSync(join(DIST, 'manifest-thread.js'))) throw new Error(`${join(DIST, 'manifest-thread.js')} is missing: run \`npm run build\` first (test/run.sh does)`);
  const mod = (await import(distUrl('manifest-reader.js'))) as { manifestThread(): ManifestReads | undefined };
  const t = mod.manifestThread();
  if (t === undefined) throw new Error('manifestThread() of dist/src/storage/manifest-reader.js gave undefined although manifest-thread.js is beside it');
  return t;
}

/** The thread's reads, with the blob dirs it was sent recorded (to show the thread path was taken). */
function recording(t: ManifestReads): { reads: ManifestReads; sent: string[]; most: () => number } {
  const sent: string[] = [];
  let waiting = 0;
  let most = 0;
  return {
    sent,
    most: () => most,
    reads: {
      read: (dirs) => {
        sent.push(...dirs);
        most = Math.max(most, ++waiting);
        return t.read(dirs).finally(() => waiting--);
      },
    },
  };
}

/** Both ways of reading a tree: the main thread's (node:fs) and the manifest thread's (as the CLI wires it). */
async function bothWays(): Promise<{ main: StorageFs; threaded: StorageFs; sent: string[]; most: () => number }> {
  const { reads, sent, most } = recording(await startThread());
  return { main: storageFs(nodeFs), threaded: readManifestsWith(threadedReads(storageFs(nodeFs)), reads), sent, most };
}

const cacheOn = (fs: StorageFs, lay: Layout) => new ManifestCache(fs, lay, limiter(16));

/** Every blob's digest under the tree's blob store (manifests, configs and layers alike). */
async function allBlobDigests(lay: Layout): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const shard of await readdir(lay.blobShards())) {
    for (const hex of await readdir(join(lay.blobShards(), shard))) out.push(`sha256:${hex}` as Digest);
  }
  return out.sort();
}

describe('a generated tree, read both ways', () => {
  let root: string;
  let lay: Layout;
  let digests: Digest[];

  beforeAll(async () => {
    root = join(work, 'generated');
    const stats = await generateTree({ root, repos: 6, tagsPerRepo: 12, seed: 7, now: NOW, workers: 0 });
    // The tree must hold what this test is about, or it proves little.
    expect(stats.indexes).toBeGreaterThan(0);
    expect(stats.signatures).toBeGreaterThan(0);
    lay = layout(root);
    digests = await allBlobDigests(lay);
  });

  test('every blob gives the same entry: kind, media type, size, blobs in order, children, subject, foreign', async () => {
    const { main, threaded, sent } = await bothWays();
    const a = cacheOn(main, lay);
    const b = cacheOn(threaded, lay);
    await a.loadClosure(digests);
    await b.loadClosure(digests);
    // Every blob dir went to the thread (none read on the main thread).
    expect(new Set(sent)).toEqual(new Set(digests.map((d) => lay.blob(d))));
    const entries = (c: ManifestCache) => digests.map((d) => [d, c.peek(d)] as const);
    expect(entries(b)).toEqual(entries(a));
    // And it is not all failures: indexes with children, images with blobs and signatures with a subject.
    const ok = entries(a).flatMap(([, e]) => (e?.ok === true ? [e] : []));
    expect(ok.filter((e) => e.refs.kind === 'index' && e.refs.children.length > 0).length).toBeGreaterThan(0);
    expect(ok.filter((e) => e.refs.kind !== 'index' && e.refs.blobs.length > 1).length).toBeGreaterThan(0);
    // Config and layer blobs are not manifests: each way says so, alike (compared above).
    expect(entries(a).filter(([, e]) => e?.ok === false).length).toBeGreaterThan(0);
    // The plan's figures read through the table too: same sizes both ways.
    for (const [d, e] of entries(a)) if (e?.ok === true) expect(b.size(d)).toBe(a.size(d));
  });

  test('loads one by one, all in flight at once (many reads waiting on the thread), come back each to its own digest', async () => {
    const { main, threaded, sent, most } = await bothWays();
    const a = cacheOn(main, lay);
    const b = cacheOn(threaded, lay);
    // In reverse on one side: answers matched by order alone would not survive a mix-up.
    const viaMain = await Promise.all(digests.map((d) => a.load(d)));
    const viaThread = (await Promise.all([...digests].reverse().map((d) => b.load(d)))).reverse();
    expect(sent).toHaveLength(digests.length);
    expect(most()).toBeGreaterThan(1);
    expect(viaThread).toEqual(viaMain);
    // Telling apart: the manifests are many, and no two alike.
    const ok = viaMain.filter((e) => e.ok);
    expect(ok.length).toBeGreaterThan(20);
    expect(new Set(ok.map((e) => JSON.stringify(e))).size).toBe(ok.length);
  });

  test('after releaseBlobRefs (as apply does), manifests read on keep the same children and subject both ways', async () => {
    const { main, threaded, sent } = await bothWays();
    const a = cacheOn(main, lay);
    const b = cacheOn(threaded, lay);
    const half = digests.filter((_, i) => i % 2 === 0);
    await a.loadClosure(half);
    await b.loadClosure(half);
    a.releaseBlobRefs();
    b.releaseBlobRefs();
    const sentBefore = sent.length;
    await a.loadClosure(digests);
    await b.loadClosure(digests);
    expect(sent.length).toBeGreaterThan(sentBefore);
    const links = (c: ManifestCache) => digests.map((d) => [d, c.children(d), c.subject(d)]);
    expect(links(b)).toEqual(links(a));
    expect(links(a).filter(([, children]) => (children as Digest[]).length > 0).length).toBeGreaterThan(0);
    expect(() => b.peek(digests[0] as Digest)).toThrow(/released/);
  });

  test('buildPlan gives the same plan both ways (JSON, less createdAt), with the same bytes and blobs to reclaim', async () => {
    const { main, threaded, sent } = await bothWays();
    const plan = async (fs: StorageFs) => {
      const p = await buildPlan({
        fs,
        layout: lay,
        now: NOW,
        decide: (r, d) => selectTags(r, OLDER_THAN_30D, NOW, d),
        untaggedIn: () => true,
        listBlobs: true,
      });
      const { createdAt: _createdAt, ...rest } = p as typeof p & { createdAt?: unknown };
      return rest;
    };
    const a = await plan(main);
    const b = await plan(threaded);
    expect(sent.length).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(b))).toEqual(JSON.parse(JSON.stringify(a)));
    const figures = (p: typeof a) => p as unknown as { reclaimableBytes?: unknown; blobs?: unknown; manifests: unknown[]; tags: unknown[] };
    expect(figures(b).reclaimableBytes).toEqual(figures(a).reclaimableBytes);
    expect(figures(b).blobs).toEqual(figures(a).blobs);
    // Something is to be removed, or the comparison says little.
    expect(figures(a).tags.length).toBeGreaterThan(0);
    expect(figures(a).manifests.length).toBeGreaterThan(0);
  });
});

const hexOf = (s: string) => createHash('sha256').update(s).digest('hex');
const digestOf = (s: string) => `sha256:${hexOf(s)}` as Digest;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const desc = (mediaType: string, d: string, extra: Record<string, unknown> = {}) => ({ mediaType, size: 10, digest: d, ...extra });
const image = (seed: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: desc('application/vnd.oci.image.config.v1+json', digestOf(`${seed}-config`)),
    layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', digestOf(`${seed}-l1`)), desc('application/vnd.oci.image.layer.v1.tar+gzip', digestOf(`${seed}-l2`))],
    ...extra,
  });

/** What a broken blob must come to, besides being the same both ways. */
type Expect = Partial<Extract<ManifestEntry, { ok: false }>> | ((e: ManifestEntry) => void);

interface Case {
  readonly name: string;
  /** Makes the blob at `blobDir` (the digest's dir in the tree); `outside` is a dir outside the tree. */
  make(blobDir: string, outside: string): Promise<void>;
  readonly expect: Expect;
}

/** An image with an unknown field `x` holding arrays `depth` deep. */
const nested = (seed: string, depth: number) => image(seed, { x: 'DEEP' }).replace('"DEEP"', `${'['.repeat(depth)}${']'.repeat(depth)}`);
const VALID_OUTSIDE = image('outside-the-tree');

const CASES: readonly Case[] = [
  {
    name: 'blob dir missing',
    make: async (dir) => {
      await mkdir(join(dir, '..'), { recursive: true });
    },
    expect: { ok: false, missing: true, problem: 'manifest blob is missing' },
  },
  {
    name: 'data missing',
    make: async (dir) => {
      await mkdir(dir, { recursive: true });
    },
    expect: { ok: false, missing: true, problem: 'manifest blob is missing' },
  },
  {
    name: 'data a symlink to a valid manifest outside the tree',
    make: async (dir, outside) => {
      await mkdir(dir, { recursive: true });
      await writeFile(join(outside, 'manifest.json'), VALID_OUTSIDE);
      await symlink(join(outside, 'manifest.json'), join(dir, 'data'));
    },
    expect: (e) => expect(e).toMatchObject({ ok: false, missing: false, code: 'symlink', problem: expect.stringContaining('symbolic link') }),
  },
  {
    name: 'blob dir a symlink to a dir holding a valid manifest',
    make: async (dir, outside) => {
      await mkdir(join(outside, 'blobdir'), { recursive: true });
      await writeFile(join(outside, 'blobdir', 'data'), VALID_OUTSIDE);
      await mkdir(join(dir, '..'), { recursive: true });
      await symlink(join(outside, 'blobdir'), dir);
    },
    expect: (e) => expect(e).toMatchObject({ ok: false, code: 'symlink', problem: expect.stringContaining('symbolic link') }),
  },
  {
    name: 'data a directory',
    make: async (dir) => {
      await mkdir(join(dir, 'data'), { recursive: true });
    },
    expect: { ok: false, missing: false, code: 'unreadable', problem: 'cannot read manifest blob: EISDIR: illegal operation on a directory, read' },
  },
  {
    name: 'data a FIFO',
    make: async (dir) => {
      await mkdir(dir, { recursive: true });
      await execa('mkfifo', [join(dir, 'data')]);
    },
    expect: (e) => expect(e).toMatchObject({ ok: false, missing: false, code: 'unreadable', problem: expect.stringContaining('not a regular file') }),
  },
  { name: 'invalid JSON', make: (dir) => put(dir, '{"schemaVersion": 2,'), expect: { ok: false, missing: false, problem: 'manifest is not JSON', refused: true } },
  {
    name: 'unknown media type',
    make: (dir) => put(dir, JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-not-a-manifest' })),
    expect: { ok: false, missing: false, problem: 'unknown manifest media type "application/x-not-a-manifest"', refused: true },
  },
  {
    name: 'schemaVersion 3',
    make: (dir) => put(dir, JSON.stringify({ schemaVersion: 3, mediaType: OCI_MANIFEST })),
    expect: { ok: false, missing: false, problem: 'unrecognized manifest schema version 3', refused: true },
  },
  {
    name: 'a layer digest in upper-case hex (unsure, not refused)',
    make: (dir) => put(dir, image('upper').replace(hexOf('upper-l2'), hexOf('upper-l2').toUpperCase())),
    expect: (e) => {
      expect(e).toMatchObject({ ok: false, missing: false, problem: expect.stringContaining('not a sha256 digest') });
      expect(e).not.toHaveProperty('refused');
    },
  },
  {
    name: 'invalid UTF-8 in a string (Go rules)',
    make: (dir) => {
      const text = image('utf8', { annotations: { note: 'XX' } });
      const bytes = Buffer.from(text, 'utf8');
      const at = bytes.indexOf('XX');
      bytes[at] = 0xff;
      bytes[at + 1] = 0xc3;
      return put(dir, bytes);
    },
    // Go replaces invalid bytes in strings with U+FFFD and reads on: an image like any other.
    expect: (e) => expect(e).toMatchObject({ ok: true, refs: { kind: 'image', blobs: [digestOf('utf8-config'), digestOf('utf8-l1'), digestOf('utf8-l2')] } }),
  },
  {
    name: 'invalid UTF-8 in a digest',
    make: (dir) => {
      const bytes = Buffer.from(image('utf8d'), 'utf8');
      const at = bytes.indexOf(hexOf('utf8d-l1'));
      bytes[at] = 0xff;
      return put(dir, bytes);
    },
    expect: (e) => expect(e).toMatchObject({ ok: false, missing: false, problem: expect.stringContaining('not a sha256 digest') }),
  },
  {
    // Go's decoder nests up to 10000 deep; the exact (recursive) reader goes that deep too, on a smaller stack on the main thread.
    name: 'nested 9990 deep in an unknown field (Go reads it)',
    make: (dir) => put(dir, nested('deep-ok', 9990)),
    expect: (e) => expect(e).toMatchObject({ ok: true, refs: { kind: 'image', blobs: [digestOf('deep-ok-config'), digestOf('deep-ok-l1'), digestOf('deep-ok-l2')] } }),
  },
  {
    name: 'nested 100000 deep (beyond the limit of Go, refused)',
    make: (dir) => put(dir, nested('deep-no', 100_000)),
    expect: { ok: false, missing: false, problem: 'manifest is not JSON', refused: true },
  },
  { name: 'data empty', make: (dir) => put(dir, ''), expect: { ok: false, missing: false, problem: 'manifest is not JSON', refused: true } },
  {
    name: 'schema1 (fsLayers, signed)',
    make: (dir) =>
      put(
        dir,
        JSON.stringify({
          schemaVersion: 1,
          name: 'team/app',
          tag: 'v1',
          fsLayers: [{ blobSum: digestOf('s1-l1') }, { blobSum: digestOf('s1-l2') }],
          history: [{ v1Compatibility: '{}' }, { v1Compatibility: '{}' }],
          signatures: [{ header: {}, signature: 'x', protected: 'y' }],
        }),
      ),
    expect: (e) => expect(e).toMatchObject({ ok: true, refs: { kind: 'schema1', mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws', blobs: [digestOf('s1-l1'), digestOf('s1-l2')] } }),
  },
  {
    name: 'an index with children',
    make: (dir) =>
      put(
        dir,
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [desc(OCI_MANIFEST, digestOf('child-a'), { platform: { os: 'linux', architecture: 'amd64' } }), desc(OCI_MANIFEST, digestOf('child-b'), { platform: { os: 'linux', architecture: 'arm64' } })],
        }),
      ),
    expect: (e) => expect(e).toEqual({ ok: true, size: expect.any(Number), refs: { kind: 'index', mediaType: OCI_INDEX, blobs: [], children: [digestOf('child-a'), digestOf('child-b')], subject: undefined } }),
  },
  {
    name: 'a manifest with a subject',
    make: (dir) => put(dir, image('signed', { subject: desc(OCI_MANIFEST, digestOf('the-subject')) })),
    expect: (e) => expect(e).toMatchObject({ ok: true, refs: { kind: 'image', subject: digestOf('the-subject'), children: [] } }),
  },
  {
    name: 'a manifest with foreign layers (urls)',
    make: (dir) =>
      put(
        dir,
        image('foreign', {
          layers: [
            desc('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digestOf('foreign-l1'), { urls: ['https://example.invalid/l1'] }),
            desc('application/vnd.oci.image.layer.v1.tar+gzip', digestOf('foreign-l2')),
          ],
        }),
      ),
    expect: (e) =>
      expect(e).toEqual({
        ok: true,
        size: expect.any(Number),
        refs: {
          kind: 'image',
          mediaType: OCI_MANIFEST,
          blobs: [digestOf('foreign-config'), digestOf('foreign-l1'), digestOf('foreign-l2')],
          children: [],
          subject: undefined,
          foreign: [digestOf('foreign-l1')],
        },
      }),
  },
];

async function put(blobDir: string, content: string | Uint8Array): Promise<void> {
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(blobDir, 'data'), content);
}

/** Loads `d` into `cache`, failing (after releasing a FIFO's open with a writer) rather than hanging. */
async function loadOrFail(cache: ManifestCache, d: Digest, fifo: string | undefined): Promise<ManifestEntry> {
  let timer: NodeJS.Timeout | undefined;
  const load = cache.load(d);
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)));
  const r = await Promise.race([load, hung]);
  clearTimeout(timer);
  if (r === 'hung') {
    // A reader waiting in open() on a FIFO goes on once a writer opens it.
    if (fifo !== undefined) nodeFs.closeSync(nodeFs.openSync(fifo, nodeFs.constants.O_WRONLY | nodeFs.constants.O_NONBLOCK));
    await load.catch(() => {});
    throw new Error(`reading ${d} did not finish within 10 s`);
  }
  return r;
}

describe('broken and unusual manifest blobs, read both ways', () => {
  let lay: Layout;
  let outside: string;
  const digestOfCase = (c: Case) => digestOf(`case: ${c.name}`);

  beforeAll(async () => {
    const root = join(work, 'cases');
    outside = join(work, 'outside');
    lay = layout(root);
    await mkdir(lay.blobShards(), { recursive: true });
    await mkdir(outside, { recursive: true });
    for (const c of CASES) {
      const into = join(outside, hexOf(c.name).slice(0, 8));
      await mkdir(into);
      await c.make(lay.blob(digestOfCase(c)), into);
    }
  });

  test.each(CASES.map((c) => [c.name, c] as const))('%s', { timeout: 60_000 }, async (_name, c) => {
    const d = digestOfCase(c);
    const fifo = c.name.includes('FIFO') ? lay.blobData(d) : undefined;
    const { main, threaded, sent } = await bothWays();
    // The thread first: a read that waits there can be released; on the main thread it could not.
    const viaThread = await loadOrFail(cacheOn(threaded, lay), d, fifo);
    const viaMain = await loadOrFail(cacheOn(main, lay), d, fifo);
    expect(sent).toEqual([lay.blob(d)]);
    expect(viaThread).toEqual(viaMain);
    // The fields a failure is reported with, one by one (toEqual passes over undefined ones).
    if (!viaMain.ok && !viaThread.ok) {
      for (const k of ['ok', 'missing', 'code', 'path', 'problem', 'refused'] as const) expect([k, viaThread[k]]).toEqual([k, viaMain[k]]);
      expect(Object.keys(viaThread).sort()).toEqual(Object.keys(viaMain).sort());
    }
    if (typeof c.expect === 'function') c.expect(viaMain);
    else expect(viaMain).toMatchObject(c.expect);
    // Nothing of the manifest outside the tree came through either way.
    expect(JSON.stringify(viaThread)).not.toContain(hexOf('outside-the-tree-config'));
  });
});

describe('where the thread module is not', () => {
  test('manifestThread() is undefined without manifest-thread.js beside it, and defined once it is there', async () => {
    // The built manifest-reader.js alone, as in a bundle that left the thread module out (with the modules it imports).
    const copy = join(work, 'alone');
    await mkdir(join(copy, 'storage'), { recursive: true });
    await mkdir(join(copy, 'util'), { recursive: true });
    // Without their source map comments: the maps are not copied.
    const copyJs = async (from: string, to: string) => writeFile(to, (await readFile(from, 'utf8')).replace(/^\/\/# sourceMappingURL=.*$/m, ''));
    await copyJs(join(DIST, 'manifest-reader.js'), join(copy, 'storage', 'manifest-reader.js'));
    await copyJs(join(DIST, 'worker-line.js'), join(copy, 'storage', 'worker-line.js'));
    await copyJs(join(DIST, '..', 'util', 'heap.js'), join(copy, 'util', 'heap.js'));
    await writeFile(join(copy, 'package.json'), '{"type":"module"}');
    const mod = (await import(pathToFileURL(join(copy, 'storage', 'manifest-reader.js')).href)) as { manifestThread(): ManifestReads | undefined };
    expect(mod.manifestThread()).toBeUndefined();
    // The same module finds it once it is there (the thread starts only on a read: none here).
    await writeFile(join(copy, 'storage', 'manifest-thread.js'), '');
    expect(typeof mod.manifestThread()?.read).toBe('function');
  });
});

/** A node script (a file: see test/integration/reader.test.ts) run with the built modules; its stdout lines as JSON. */
async function runScript(name: string, body: string): Promise<{ exitCode: number | undefined; lines: unknown[]; took: number; stderr: string; timedOut: boolean }> {
  const file = join(work, `${name}.mjs`);
  await writeFile(file, body);
  const started = Date.now();
  const r = await execa(process.execPath, [file], { reject: false, timeout: 30_000 });
  const took = Date.now() - started;
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
  return { exitCode: r.exitCode, lines, took, stderr: r.stderr, timedOut: r.timedOut };
}

const importsOf = (names: Record<string, string>) =>
  Object.entries(names)
    .map(([file, what]) => `import { ${what} } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'src', file)).href)};`)
    .join('\n');

describe('the process after the manifest thread was used', () => {
  let root: string;
  const A = image('exit-a');
  const B = image('exit-b', { subject: desc(OCI_MANIFEST, digestOf('exit-subject')) });

  beforeAll(async () => {
    root = join(work, 'exit-tree');
    const lay = layout(root);
    await put(lay.blob(digestOf(A)), A);
    await put(lay.blob(digestOf(B)), B);
  });

  test('exits by itself, with code 0, soon after its last read (one left in flight at the end)', { timeout: 60_000 }, async () => {
    const r = await runScript(
      'exits',
      `
import * as nodeFs from 'node:fs';
${importsOf({
  'storage/fs.js': 'storageFs',
  'storage/reader.js': 'threadedReads',
  'storage/manifest-reader.js': 'manifestThread',
  'storage/paths.js': 'layout',
  'graph/load.js': 'ManifestCache, readManifestsWith',
  'util/limit.js': 'limiter',
})}
const thread = manifestThread();
if (thread === undefined) throw new Error('no manifest thread');
let sent = 0;
const fs = readManifestsWith(threadedReads(storageFs(nodeFs)), { read: (dirs) => { sent += dirs.length; return thread.read(dirs); } });
const cache = new ManifestCache(fs, layout(${JSON.stringify(root)}), limiter(4));
const a = await cache.load(${JSON.stringify(digestOf(A))});
console.log(JSON.stringify({ sent, a }));
// A read left in flight as the script ends: the thread keeps the process until it is answered.
cache.load(${JSON.stringify(digestOf(B))}).then((b) => console.log(JSON.stringify({ sent, b })));
`,
    );
    expect(r.timedOut, `still running after 30 s: ${r.stderr}`).toBe(false);
    expect(r.exitCode, r.stderr).toBe(0);
    const size = (s: string) => Buffer.byteLength(s);
    const refs = (seed: string) => ({ kind: 'image', mediaType: OCI_MANIFEST, blobs: [digestOf(`${seed}-config`), digestOf(`${seed}-l1`), digestOf(`${seed}-l2`)], children: [] });
    expect(r.lines).toEqual([
      { sent: 1, a: { ok: true, size: size(A), refs: refs('exit-a') } },
      { sent: 2, b: { ok: true, size: size(B), refs: { ...refs('exit-b'), subject: digestOf('exit-subject') } } },
    ]);
    // Node starts in well under a second; a kept-alive process would have hit the timeout.
    expect(r.took).toBeLessThan(15_000);
  });

  /** A script that keeps each Worker the manifest thread makes (the module's own import is live: syncBuiltinESMExports). */
  const withWorkers = (body: string) => `
import wt from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
const workers = [];
const Real = wt.Worker;
wt.Worker = class extends Real { constructor(...args) { super(...args); workers.push(this); } };
syncBuiltinESMExports();
const { manifestThread } = await import(${JSON.stringify(distUrl('manifest-reader.js'))});
const thread = manifestThread();
if (thread === undefined) throw new Error('no manifest thread');
const settle = (p) => p.then((v) => ({ value: v.map((m) => (Array.isArray(m) ? m[3] : m)) }), (e) => ({ error: e.message }));
${body}
`;

  test('a thread that dies fails the reads waiting on it, naming the manifest thread; the next read starts a new one', { timeout: 60_000 }, async () => {
    const lay = layout(root);
    const r = await runScript(
      'dies',
      withWorkers(`
const pending = [thread.read([${JSON.stringify(lay.blob(digestOf(A)))}]), thread.read([${JSON.stringify(lay.blob(digestOf(B)))}])];
await workers[0].terminate();
console.log(JSON.stringify(await Promise.all(pending.map(settle))));
console.log(JSON.stringify(await settle(thread.read([${JSON.stringify(lay.blob(digestOf(B)))}]))));
console.log(JSON.stringify({ workers: workers.length }));
`),
    );
    expect(r.timedOut, `still running after 30 s: ${r.stderr}`).toBe(false);
    expect(r.exitCode, r.stderr).toBe(0);
    const blobsHex = (seed: string) => [`${seed}-config`, `${seed}-l1`, `${seed}-l2`].map(hexOf).join('');
    expect(r.lines).toEqual([
      [{ error: expect.stringMatching(/^manifest thread failed: exited with code \d+$/) }, { error: expect.stringMatching(/^manifest thread failed: /) }],
      { value: [blobsHex('exit-b')] },
      { workers: 2 },
    ]);
  });

  test("a thread's error, then its exit, touch only its own reads: the next thread's are answered, each with its own manifest", { timeout: 60_000 }, async () => {
    const lay = layout(root);
    const dirA = JSON.stringify(lay.blob(digestOf(A)));
    const dirB = JSON.stringify(lay.blob(digestOf(B)));
    const r = await runScript(
      'error-then-exit',
      withWorkers(`
const first = settle(thread.read([${dirA}]));
await new Promise((resolve) => workers[0].once('online', resolve));
// What node does when the thread throws: 'error', then 'exit'. Reads made in between go to a new thread.
workers[0].emit('error', new Error('thrown in the thread'));
const second = settle(thread.read([${dirB}]));
await workers[0].terminate();
const third = settle(thread.read([${dirA}]));
console.log(JSON.stringify([await first, await second, await third]));
`),
    );
    expect(r.timedOut, `still running after 30 s: ${r.stderr}`).toBe(false);
    expect(r.exitCode, r.stderr).toBe(0);
    const blobsHex = (seed: string) => [`${seed}-config`, `${seed}-l1`, `${seed}-l2`].map(hexOf).join('');
    expect(r.lines).toEqual([[{ error: 'manifest thread failed: thrown in the thread' }, { value: [blobsHex('exit-b')] }, { value: [blobsHex('exit-a')] }]]);
  });
});
