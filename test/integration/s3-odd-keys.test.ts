import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRegprune } from '../helpers/cli.js';
import { expectManifestStatus, pullAndVerify, pushImage, type RunningRegistry } from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';
import { multipartPut, s3StorageYaml, startS3Registry, startSwift, type RunningSwift } from '../helpers/swift.js';
import { parseRegistryConfig, type S3StorageConfig } from '../../src/config/registry-config.js';
import { openS3, type ObjectStore } from '../../src/storage/s3/client.js';

// The bucket as an attacker or an old tool leaves it: keys the filesystem
// cannot hold (an object that is also a prefix, `//`, `.` and `..` segments,
// directory-marker objects), foreign objects in a tag's directory, a tag
// without current/link, a multipart current/link, names outside the grammar,
// a tampered journal object. What a run does not understand stays in the
// bucket, with a warning naming the key; nothing outside the tree is touched.

const BUCKET = 'odd';
const REPOS = 'reg/docker/registry/v2/repositories/';

interface RunJson {
  tags: Array<{ repository: string; tag: string }>;
  warnings: number;
  results?: { tags: Record<string, number>; manifests: Record<string, number> };
  stats?: { linksRead?: number };
}

describe('odd keys in a bucket: left in place, warned by name', () => {
  let swift: RunningSwift;
  let reg: RunningRegistry;
  let store: ObjectStore;
  let cacheDir: string;
  const digests = new Map<string, string>();
  const env = () => ({ REGPRUNE_CACHE_DIR: cacheDir });
  const keys = async (prefix = 'reg/') => (await swift.listObjects(BUCKET, prefix)).map((o) => o.name);

  setupSuite(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'regprune-s3-odd-'));
    swift = await startSwift();
    await swift.createBucket(BUCKET);
    reg = await startS3Registry(swift, BUCKET);
    for (let t = 1; t <= 10; t++) {
      const p = await pushImage(reg.url, 'odd', `t${t}`, { seed: `odd/${t}`, layers: ['odd/base', `odd/${t}`] });
      digests.set(`odd:t${t}`, p.manifest.digest);
    }
    for (const t of ['r1', 'r2']) digests.set(`rev:${t}`, (await pushImage(reg.url, 'rev', t, { seed: `rev/${t}`, layers: ['odd/base', `rev/${t}`] })).manifest.digest);
    const c = await pushImage(reg.url, 'clean', 'c1', { seed: 'clean/1', layers: ['odd/base', 'clean/1'] });
    digests.set('clean:c1', c.manifest.digest);
    const config = parseRegistryConfig(['version: 0.1', 'storage:', ...s3StorageYaml(swift, BUCKET)].join('\n'), {}, 'c.yml') as S3StorageConfig;
    store = await openS3(config);
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && reg !== undefined) console.error(`--- s3 registry output ---\n${reg.logs()}`);
  });

  afterAll(async () => {
    store?.close();
    await reg?.stop();
    await swift?.stop();
    if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
  });

  const tagKey = (tag: string, rest: string) => `${REPOS}odd/_manifests/tags/${tag}/${rest}`;
  const hexOf = (ref: string) => digests.get(ref)!.slice('sha256:'.length);

  test('odd keys in tag directories: those tags are never removed and every odd key stays; the clean ones go', async () => {
    const planted = [
      // t1: current/link is an object and a prefix.
      tagKey('t1', 'current/link/x'),
      // t2: an empty segment in an index entry.
      tagKey('t2', `index/sha256/${hexOf('odd:t2')}//link`),
      // t3: a `.` segment (a current/link the registry never reads).
      tagKey('t3', './current/link'),
      // t4: an index entry under upper-case hex.
      tagKey('t4', `index/sha256/${hexOf('odd:t4').toUpperCase()}/link`),
      // t6: a foreign object beside current/ and index/.
      tagKey('t6', 'notes.txt'),
      // t10: the tag's directory is also an object.
      `${REPOS}odd/_manifests/tags/t10`,
    ];
    for (const k of planted) await store.put(k, digests.get('odd:t9')!);
    // Directory markers (zero bytes, trailing /) as some tools create them: understood, never in the way.
    const markers = [`${REPOS}odd/_manifests/tags/`, tagKey('t5', ''), tagKey('t5', 'current/')];
    for (const k of markers) await store.put(k, '');
    // t7: current/link rewritten by a multipart upload (same digest): its ETag proves nothing, it is read.
    await multipartPut(swift, BUCKET, tagKey('t7', 'current/link'), digests.get('odd:t7')!);
    // A tag with an index entry and no current/link: the registry does not see it; never selected.
    const ghost = tagKey('ghost', `index/sha256/${hexOf('odd:t9')}/link`);
    await store.put(ghost, digests.get('odd:t9')!);
    // A key under a revision that is not its link: the revision is not understood, no manifest of rev goes.
    const revJunk = `${REPOS}rev/_manifests/revisions/sha256/${digests.get('rev:r1')!.slice(7)}/x/link`;
    planted.push(revJunk);
    await store.put(revJunk, digests.get('rev:r1')!);
    // Repositories whose names are outside the grammar.
    const badNames = [`${REPOS}Bad_Name/_manifests/tags/x/current/link`, `${REPOS}odd/UP/_manifests/tags/x/current/link`];
    for (const k of badNames) await store.put(k, digests.get('odd:t9')!);

    const named = ['odd:t1', 'odd:t2', 'odd:t3', 'odd:t4', 'odd:t5', 'odd:t6', 'odd:t7', 'odd:t8', 'odd:t10', 'rev:r1', 'rev:r2'];
    const before = await keys();
    const run = await runRegprune(['prune', ...named, '--config', reg.configPath, '--yes', '--json'], { env: env(), timeoutMs: 120_000 });
    // Named tags that were not understood are "missing" from the selection: exit 1.
    expect(run.exitCode, run.stderr).toBe(1);
    const out = JSON.parse(run.stdout) as RunJson;
    expect(out.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(['odd:t5', 'odd:t7', 'odd:t8', 'rev:r1', 'rev:r2']);
    expect(out.results?.tags).toEqual({ removed: 5, missing: 0, changed: 0, failed: 0 });
    expect(out.results?.manifests).toEqual({ removed: 0, missing: 0, changed: 0, failed: 0 });
    expect(out.stats?.linksRead).toBeGreaterThanOrEqual(1);
    // Each odd key is named in a warning.
    for (const k of planted) expect(run.stderr, k).toContain(k);
    for (const dir of [`${REPOS}Bad_Name`, `${REPOS}odd/UP`]) expect(run.stderr, dir).toMatch(new RegExp(`${dir}: invalid repository name`));
    expect(run.stderr).toContain(`${REPOS}odd/_manifests/tags/ghost/current`);

    const after = await keys();
    const gone = before.filter((k) => !after.includes(k)).sort();
    // Exactly the removed tags' objects went (t5 with its markers): nothing else.
    const removedTag = (k: string) => ['t5', 't7', 't8'].some((t) => k.startsWith(tagKey(t, ''))) || ['r1', 'r2'].some((t) => k.startsWith(`${REPOS}rev/_manifests/tags/${t}/`));
    expect(gone.every(removedTag), gone.join('\n')).toBe(true);
    expect(before.filter(removedTag).sort()).toEqual(gone);
    for (const k of [...planted, ghost, ...badNames, `${REPOS}odd/_manifests/tags/`]) expect(after, k).toContain(k);
    for (const t of ['t1', 't2', 't3', 't4', 't6', 't10']) expect(after).toContain(tagKey(t, 'current/link'));
    expect(after.filter((k) => k.startsWith('reg/.regprune/'))).toEqual([]);

    for (const t of ['t1', 't2', 't3', 't4', 't6', 't9', 't10']) expect((await pullAndVerify(reg.url, 'odd', t)).digest, t).toBe(digests.get(`odd:${t}`));
    for (const t of ['t5', 't7', 't8']) await expectManifestStatus(reg.url, 'odd', t, 404);
    // rev's manifests stay (the registry still serves them by digest).
    for (const t of ['r1', 'r2']) expect((await pullAndVerify(reg.url, 'rev', digests.get(`rev:${t}`)!)).digest).toBe(digests.get(`rev:${t}`));
    for (const k of [...planted, ghost, ...badNames]) await store.delete(k);
  });

  test('`..`, `.` and empty segments on the way to a repository: list and a dry run end, warn by key, touch nothing', async () => {
    const link = (repoPath: string) => `${REPOS}${repoPath}/_manifests/tags/a/current/link`;
    for (const odd of ['..', '.', 'dup/', '../../../..']) {
      const k = link(odd === 'dup/' ? 'dup/' : `${odd}/escape`);
      await store.put(k, digests.get('clean:c1')!);
      try {
        const before = await keys('');
        for (const args of [
          ['list', '--config', reg.configPath, '--json'],
          ['prune', 'clean:c1', '--config', reg.configPath, '--dry-run', '--json'],
        ]) {
          const r = await runRegprune(args, { env: env(), timeoutMs: 60_000 });
          expect(r.stderr, `${odd}: ${args[0]}`).not.toMatch(/killed by/);
          expect(r.stderr, `${odd}: ${args[0]}`).toContain(k);
          expect(r.exitCode, `${odd}: ${args[0]}\n${r.stderr}`).not.toBe(0);
        }
        expect(await keys(''), odd).toEqual(before);
      } finally {
        await store.delete(k);
      }
    }
    expect((await pullAndVerify(reg.url, 'clean', 'c1')).digest).toBe(digests.get('clean:c1'));
  });

  test('a tampered journal object: names outside the grammar and tags it cannot prove are left alone, by name', async () => {
    // A tag without current/link, holding an index entry and a foreign object; another whose index entry is newer than the journal.
    const partial = tagKey('partial', `index/sha256/${hexOf('odd:t9')}/link`);
    const foreign = tagKey('partial', 'junk');
    await store.put(partial, digests.get('odd:t9')!);
    await store.put(foreign, 'x');
    const journal = {
      version: 1,
      runId: 'tampered',
      manifests: [{ repository: 'odd', digest: digests.get('odd:t9') }],
      tags: [
        { repository: '../../../escape', tag: 'a', digest: digests.get('odd:t9') },
        { repository: 'odd', tag: '../../../../x', digest: digests.get('odd:t9') },
        { repository: 'odd', tag: 'partial', digest: digests.get('odd:t9') },
        { repository: 'odd', tag: 't9', digest: digests.get('odd:t9') },
        { repository: 'odd', tag: 'late', digest: digests.get('odd:t9') },
      ],
    };
    await store.put('reg/.regprune/pending-manifests.json', JSON.stringify(journal));
    await new Promise((r) => setTimeout(r, 1100));
    const late = tagKey('late', `index/sha256/${hexOf('odd:t9')}/link`);
    await store.put(late, digests.get('odd:t9')!);
    // Outside the tree: must stay whatever the journal says.
    await store.put('escape/_manifests/tags/a/index/sha256/x/link', 'x');
    const before = await keys('');
    const run = await runRegprune(['prune', 'clean:c1', '--config', reg.configPath, '--yes', '--json'], { env: env(), timeoutMs: 60_000 });
    expect(run.exitCode, run.stderr).toBe(3);
    const after = await keys('');
    const gone = before.filter((k) => !after.includes(k)).sort();
    // Only clean:c1 (its tag and its manifest's revision link) and the journal, now finished, went.
    expect(gone.filter((k) => !k.startsWith(`${REPOS}clean/_manifests/`))).toEqual(['reg/.regprune/pending-manifests.json']);
    expect(gone.filter((k) => k.startsWith(`${REPOS}clean/_manifests/`))).toContain(`${REPOS}clean/_manifests/tags/c1/current/link`);
    for (const k of [partial, foreign, late, 'escape/_manifests/tags/a/index/sha256/x/link']) expect(after, k).toContain(k);
    expect(run.stderr).toContain(foreign);
    expect(run.stderr).toContain(late);
    // The journal's manifest is still tagged (t9): it stays.
    expect((await pullAndVerify(reg.url, 'odd', 't9')).digest).toBe(digests.get('odd:t9'));
    for (const k of [partial, foreign, late, 'escape/_manifests/tags/a/index/sha256/x/link']) await store.delete(k);
  });

  test('restore --config of a crafted audit log writes nothing outside the tree', async () => {
    const log = join(cacheDir, 'crafted.log');
    const d = digests.get('odd:t9')!;
    const line = (o: Record<string, unknown>) => JSON.stringify({ time: '2026-11-29T00:00:00.000Z', run: 'x', root: `s3://${BUCKET}/reg`, pushedAt: '2026-11-29T00:00:00.000Z', reason: 'crafted', ...o });
    await writeFile(
      log,
      [
        line({ action: 'remove-tag', repository: '../../../escape', tag: 'a', digest: d }),
        line({ action: 'remove-tag', repository: 'odd', tag: '../../../../b', digest: d }),
        line({ action: 'remove-manifest', repository: 'odd/../../..', tag: null, digest: d }),
        line({ action: 'remove-manifest', repository: 'odd', tag: null, digest: 'sha256:../../../../c' }),
        '',
      ].join('\n'),
    );
    const before = await keys('');
    const r = await runRegprune(['restore', log, '--config', reg.configPath, '--yes', '--json'], { env: env(), timeoutMs: 60_000 });
    expect(r.stdout + r.stderr).toMatch(/not a valid name or digest|nothing to restore/);
    expect(await keys('')).toEqual(before);
  });
});
