import { execa } from 'execa';
import { cp, mkdtemp, readFile, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { setupSuite } from '../helpers/suite.js';
import { parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { REGPRUNE_BIN, runRegprune } from '../helpers/cli.js';
import { tagsOnDisk } from '../helpers/disk.js';
import { pullAndVerify, pushImage, pushIndex, pushSignature, runGarbageCollect, startRegistry, type RunningRegistry } from '../helpers/registry.js';

// Issue 6, crash safety: kill -9 at many points during a large apply, rerun,
// then GC; every kept tag pulls from the real registry, and the final tree
// equals an uninterrupted run's.

const REPOS = 12;
const TAGS = 25;
const ARGS = ['prune', '--older-than', '30d', '--keep-last', '3', '--yes', '--json', '--quiet'];

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('kill -9 at random points during apply', () => {
  let source: RunningRegistry;
  let check: RunningRegistry | undefined;
  const kept = new Set<string>();

  setupSuite(async () => {
    source = await startRegistry();
    const lay = layout(source.root);
    const now = Date.now();
    await Promise.all(Array.from({ length: REPOS }, async (_, r) => {
      const repo = r % 3 === 0 ? `team/svc-${r}` : `svc-${r}`;
      for (let t = 0; t < TAGS; t++) {
        const tag = `build-${t}`;
        const p =
          t % 7 === 3
            ? await pushIndex(source.url, repo, tag, {
                children: [
                  { seed: `${repo}/${t}/amd`, platform: { os: 'linux', architecture: 'amd64' }, layers: ['base', `${repo}/${t}`] },
                  { seed: `${repo}/${t}/arm`, platform: { os: 'linux', architecture: 'arm64' }, layers: ['base-arm'] },
                ],
              })
            : await pushImage(source.url, repo, tag, { seed: `${repo}/${t}`, layers: ['base', `${repo}/${t}`], format: t % 2 === 0 ? 'docker' : 'oci' });
        if (t % 5 === 0) await pushSignature(source.url, repo, p.manifest);
        // Ages: builds 0..TAGS-1 pushed from 120 days ago up to yesterday.
        const age = new Date(now - (120 - (t * 119) / (TAGS - 1)) * 86_400_000);
        await utimes(lay.tagCurrentLink(parseRepositoryName(repo), parseTagName(tag)), age, age);
      }
    }));
    await source.stop();
  });

  const copies: string[] = [];
  afterAll(async () => {
    await check?.stop();
    for (const dir of copies) await rm(dir, { recursive: true, force: true });
  });

  test('a killed and resumed prune ends with the same tree as an uninterrupted one, and every kept tag pulls', async () => {
    const copy = async () => {
      const dir = await mkdtemp(join(tmpdir(), 'regprune-crash-'));
      copies.push(dir);
      await cp(source.root, dir, { recursive: true, preserveTimestamps: true });
      return dir;
    };
    const reference = await copy();
    const crashed = await copy();

    // The apply phase begins when the run writes its journal (run id `<time>-<pid>`).
    const journal = layout(reference).journalFile.slice(reference.length);
    const applyStarted = async (root: string, pid: number | undefined, deadline: number): Promise<number | undefined> => {
      while (Date.now() < deadline) {
        try {
          const doc = JSON.parse(await readFile(root + journal, 'utf8')) as { runId?: string };
          if (doc.runId?.endsWith(`-${pid}`) === true) return Date.now();
        } catch {
          // not there yet, or being renamed into place
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      return undefined;
    };

    const refChild = execa(process.execPath, [REGPRUNE_BIN, ...ARGS, '--root', reference], { reject: false, stdin: 'ignore' });
    const refApply = applyStarted(reference, refChild.pid, Date.now() + 60_000);
    const ref = await refChild;
    const applyMs = Date.now() - ((await refApply) ?? Date.now());
    expect(ref.exitCode, ref.stderr).toBe(0);
    const refOut = JSON.parse(ref.stdout) as { tags: Array<{ repository: string; tag: string }>; manifests: unknown[] };
    expect(refOut.tags.length).toBeGreaterThan(100);
    expect(refOut.manifests.length).toBeGreaterThan(100);
    expect(applyMs).toBeGreaterThan(0);

    // Kill each run at a random point of its apply phase, until a run gets through.
    const rnd = prng(42);
    let kills = 0;
    const initialTags = (await tagsOnDisk(crashed)).size;
    const finalTags = (await tagsOnDisk(reference)).size;
    let tagsBefore = initialTags;
    for (let i = 0; i < 40; i++) {
      const child = execa(process.execPath, [REGPRUNE_BIN, ...ARGS, '--root', crashed], { reject: false, stdin: 'ignore' });
      // Each resumed run has less left to do: scale the window to what is left.
      const left = (tagsBefore - finalTags) / (initialTags - finalTags);
      const killAt = Math.floor(applyMs * 0.6 * left * rnd());
      void applyStarted(crashed, child.pid, Date.now() + 60_000).then((t) => {
        if (t !== undefined) setTimeout(() => child.kill('SIGKILL'), killAt);
      });
      const result = await child;
      // After any kill, every tag dir left is whole: its current/link reads as a digest.
      const now = await tagsOnDisk(crashed);
      for (const [ref, digest] of now) expect(digest, `${ref} after run ${i}`).toMatch(/^sha256:[a-f0-9]{64}$/);
      expect(now.size).toBeLessThanOrEqual(tagsBefore);
      tagsBefore = now.size;
      if (result.signal !== 'SIGKILL') {
        expect(result.exitCode, result.stderr).toBe(0);
        break;
      }
      kills++;
    }
    expect(kills, 'runs killed during apply').toBeGreaterThanOrEqual(3);
    const final = await runRegprune([...ARGS, '--root', crashed]);
    expect(final.exitCode, final.stderr).toBe(0);

    expect(await files(join(crashed, 'docker'))).toEqual(await files(join(reference, 'docker')));
    expect(await readdir(layout(crashed).trashDir)).toEqual([]);

    // Garbage-collect the resumed tree, serve it, pull every kept tag.
    const cfg = await startRegistry({ root: crashed });
    await cfg.stop();
    const gc = await runGarbageCollect(cfg.configPath);
    expect(gc.exitCode, gc.stderr).toBe(0);
    await cfg.restart();
    check = cfg;
    const removed = new Set(refOut.tags.map((t) => `${t.repository}:${t.tag}`));
    for (const [ref] of await tagsOnDisk(crashed)) {
      expect(removed.has(ref)).toBe(false);
      kept.add(ref);
      const at = ref.lastIndexOf(':');
      await pullAndVerify(cfg.url, ref.slice(0, at), ref.slice(at + 1));
    }
    expect(kept.size).toBeGreaterThan(30);
  });
});
