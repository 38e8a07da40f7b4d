import { execa } from 'execa';
import { cp, mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { REGPRUNE_BIN, runRegprune } from '../helpers/cli.js';
import {
  buildImage,
  buildIndex,
  manifestStatus,
  pullAndVerify,
  pushImage,
  pushIndex,
  runGarbageCollect,
  startRegistry,
  tagManifest,
  type BuiltImage,
  type BuiltIndex,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';

// Issue 6, concurrent pushes: while `prune --older-than 30d --yes` applies its
// plan, the same running registry keeps receiving pushes: brand-new tags,
// planned tags pushed again with another manifest and with the same one
// (same digest: only the mtime of current/link changes), and new tags on
// manifests the plan was about to orphan ("rescues"). Afterwards every tag
// pushed during the run pulls byte for byte, before and after garbage-collect
// (without -m) and a restart; every planned tag nobody touched is gone; and
// what the prune reports as not removed is explained by what was pushed.
// Timing decides which pushes land before the run's walk, during its apply
// or after it: the assertions are the invariants, not counts.

const REPO = 'busy';
const OLD_TAGS = 150;
const RECENT_TAGS = 5;
const SEEDS = [1, 2, 3];
const WORKERS = 3;
const MAX_OPS = 400;
const DAY = 86_400_000;
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

type Content = { kind: 'image'; built: BuiltImage } | { kind: 'index'; built: BuiltIndex };

const platform = (architecture: string) => ({ os: 'linux', architecture });

/** Planned content by tag (every 10th old tag is a two-platform index). */
function oldContent(i: number): Content {
  if (i % 10 === 0) {
    return {
      kind: 'index',
      built: buildIndex({
        children: [
          { seed: `old-${i}/amd64`, platform: platform('amd64'), layers: ['base', `old-${i}/amd64`] },
          { seed: `old-${i}/arm64`, platform: platform('arm64'), layers: ['base-arm', `old-${i}/arm64`] },
        ],
      }),
    };
  }
  return { kind: 'image', built: buildImage({ seed: `old-${i}`, layers: ['base', `old-${i}`], format: i % 2 === 0 ? 'oci' : 'docker' }) };
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

type OpKind = 'new' | 'repush-other' | 'repush-same' | 'rescue';

interface Op {
  readonly kind: OpKind;
  readonly tag: string;
  /** What the tag points at once the push succeeded. */
  readonly digest: Digest;
  /** For repush-same and rescue: the planned manifest(s) the push puts a tag on again (index: with its children). */
  readonly rescued: readonly Digest[];
  /** A multi-platform index (children pushed first, then the index). */
  readonly index: boolean;
  readonly startedAt: number;
  endedAt?: number;
  error?: string;
}

interface PruneJson {
  tags: Array<{ repository: string; tag: string; digest: string }>;
  manifests: Array<{ repository: string; digest: string }>;
  blocked: Array<{ repository: string; reason: string }>;
  warnings: Array<{ code: string; path: string; message: string }>;
  notRemoved: {
    tags: Array<{ repository: string; tag: string; result: string; detail?: string }>;
    manifests: Array<{ repository: string; digest: string; result: string; detail?: string }>;
  };
  results: { tags: Record<string, number>; manifests: Record<string, number> };
}

async function push(url: string, tag: string, content: Content): Promise<void> {
  if (content.kind === 'image') await pushImage(url, REPO, tag, content.built);
  else await pushIndex(url, REPO, tag, content.built);
}

const digestsOf = (c: Content): Digest[] =>
  c.kind === 'image' ? [c.built.manifest.digest] : [c.built.manifest.digest, ...c.built.children.map((ch) => ch.manifest.digest)];

describe('pushes while prune applies its plan', () => {
  let source: string;
  const content = new Map<string, Content>();
  const recent: string[] = [];
  const totals = { ops: 0, duringApply: 0, changedTags: 0, changedManifests: 0 };
  const live: RunningRegistry[] = [];

  setupSuite(async () => {
    const reg = await startRegistry();
    live.push(reg);
    const lay = layout(reg.root);
    const now = Date.now();
    for (let i = 0; i < OLD_TAGS; i++) {
      const tag = `old-${String(i).padStart(3, '0')}`;
      const c = oldContent(i);
      content.set(tag, c);
      await push(reg.url, tag, c);
      // 40 to 189 days old: all selected by --older-than 30d.
      const at = new Date(now - (40 + i) * DAY);
      await utimes(lay.tagCurrentLink(R(REPO), T(tag)), at, at);
    }
    for (let i = 0; i < RECENT_TAGS; i++) {
      const tag = `recent-${i}`;
      await pushImage(reg.url, REPO, tag, { seed: tag, layers: ['base', tag] });
      recent.push(tag);
    }
    await reg.stop();
    source = reg.root;
  });

  afterAll(async () => {
    for (const r of live) await r.stop();
  });

  test.each(SEEDS)(
    'seed %i: every tag pushed during the run pulls, before and after garbage-collect; untouched planned tags are gone',
    async (seed) => {
      const root = await mkdtemp(join(tmpdir(), 'regprune-concurrent-'));
      // Removed also when the test fails (a root given to startRegistry is the caller's).
      onTestFinished(async () => {
        await reg?.stop();
        await rm(root, { recursive: true, force: true });
      });
      let reg: Awaited<ReturnType<typeof startRegistry>> | undefined;
      await cp(source, root, { recursive: true, preserveTimestamps: true });
      reg = await startRegistry({ root });
      live.push(reg);
      const lay = layout(root);

      const dry = await runRegprune(['prune', '--older-than', '30d', '--dry-run', '--json', '--root', root]);
      expect(dry.exitCode, dry.stderr).toBe(0);
      const plan = JSON.parse(dry.stdout) as PruneJson;
      const plannedTags = plan.tags.map((t) => t.tag).sort();
      expect(plannedTags).toEqual([...content.keys()].sort());
      const plannedManifests = new Set(plan.manifests.map((m) => m.digest));
      expect(plannedManifests.size).toBe(OLD_TAGS + 2 * Math.ceil(OLD_TAGS / 10));

      // ---- the run, and pushes while it runs
      const rnd = prng(seed);
      const untouched = [...plannedTags];
      const take = (): string | undefined => (untouched.length === 0 ? undefined : untouched.splice(Math.floor(rnd() * untouched.length), 1)[0]);
      const ops: Op[] = [];
      let n = 0;
      const nextOp = (): Omit<Op, 'startedAt'> & { run: () => Promise<void> } => {
        const i = n++;
        const r = rnd();
        const planned = r < 0.75 ? take() : undefined;
        if (planned !== undefined && r < 0.25) {
          // Another manifest under a planned tag.
          const img = buildImage({ seed: `s${seed}/repush/${i}`, layers: ['base', `s${seed}/repush/${i}`] });
          return { kind: 'repush-other', tag: planned, digest: img.manifest.digest, rescued: [], index: false, run: () => pushImage(reg.url, REPO, planned, img).then(() => {}) };
        }
        if (planned !== undefined && r < 0.5) {
          // The same manifest again: same digest, newer current/link.
          const c = content.get(planned) as Content;
          const run = c.kind === 'image' ? () => tagManifest(reg.url, REPO, planned, c.built.manifest).then(() => {}) : () => push(reg.url, planned, c);
          return { kind: 'repush-same', tag: planned, digest: c.built.manifest.digest, rescued: digestsOf(c), index: c.kind === 'index', run };
        }
        if (planned !== undefined) {
          // A new tag on a manifest the plan orphans: the planned tag itself stays untouched (and goes);
          // for an index, sometimes only one platform's child is rescued.
          untouched.push(planned);
          const c = content.get(planned) as Content;
          const tag = `rescue-${seed}-${i}`;
          if (c.kind === 'index' && rnd() < 0.5) {
            const child = c.built.children[Math.floor(rnd() * c.built.children.length)] as BuiltImage;
            return { kind: 'rescue', tag, digest: child.manifest.digest, rescued: [child.manifest.digest], index: false, run: () => tagManifest(reg.url, REPO, tag, child.manifest).then(() => {}) };
          }
          const run = c.kind === 'image' ? () => tagManifest(reg.url, REPO, tag, c.built.manifest).then(() => {}) : () => push(reg.url, tag, c);
          return { kind: 'rescue', tag, digest: c.built.manifest.digest, rescued: digestsOf(c), index: c.kind === 'index', run };
        }
        const tag = `new-${seed}-${i}`;
        const img = buildImage({ seed: `s${seed}/new/${i}`, layers: ['base', `s${seed}/new/${i}`] });
        return { kind: 'new', tag, digest: img.manifest.digest, rescued: [], index: false, run: () => pushImage(reg.url, REPO, tag, img).then(() => {}) };
      };

      const started = Date.now();
      const child = execa(process.execPath, [REGPRUNE_BIN, 'prune', '--older-than', '30d', '--yes', '--json', '--quiet', '--root', root], {
        reject: false,
        stdin: 'ignore',
        env: { NO_COLOR: '1' },
        timeout: 120_000,
      });
      let exited: number | undefined;
      void child.then(() => {
        exited = Date.now();
      });
      // When apply began: the run writes its journal of manifests to unlink just before.
      let applyAt: number | undefined;
      const watchJournal = (async () => {
        while (exited === undefined && applyAt === undefined) {
          try {
            const doc = JSON.parse(await readFile(lay.journalFile, 'utf8')) as { runId?: string };
            if (doc.runId?.endsWith(`-${child.pid}`) === true) applyAt = Date.now();
          } catch {
            // not written yet
          }
          await new Promise((res) => setTimeout(res, 2));
        }
      })();
      const deadline = started + 150_000;
      const worker = async () => {
        while (exited === undefined && ops.length < MAX_OPS && Date.now() < deadline) {
          const { run, ...op } = nextOp();
          const rec: Op = { ...op, startedAt: Date.now() };
          ops.push(rec);
          try {
            await run();
          } catch (err) {
            rec.error = (err as Error).message;
          }
          rec.endedAt = Date.now();
        }
      };
      await Promise.all([child, watchJournal, ...Array.from({ length: WORKERS }, worker)]);
      const result = await child;
      const ended = exited ?? Date.now();

      const ok = ops.filter((o) => o.error === undefined);
      const context = () =>
        `seed ${seed}: ${ops.length} pushes (${ops.length - ok.length} failed), run ${ended - started} ms, apply from +${(applyAt ?? ended) - started} ms\n` +
        `failed pushes: ${JSON.stringify(ops.filter((o) => o.error !== undefined).map((o) => [o.kind, o.tag, o.error]))}\n` +
        `stderr: ${result.stderr}`;
      // A push may fail, visibly to the client, in two ways only: a multi-platform index whose
      // child revision was unlinked between the child's PUT and the index's PUT (the registry
      // refuses the index), or a push whose tag dir apply renamed away between the registry's
      // mkdir and open of a link in it (500, ENOENT under that tag's dir). Nothing else.
      for (const o of ops.filter((x) => x.error !== undefined)) {
        const tagDir = `${lay.tag(R(REPO), T(o.tag))}/`;
        const refusedIndex = o.index && /MANIFEST_BLOB_UNKNOWN/.test(o.error ?? '');
        const tagDirGone = (o.error ?? '').includes('500 Internal Server Error') && (o.error ?? '').includes(`"Path":"${tagDir}`) && /"Err":2\b/.test(o.error ?? '');
        expect(refusedIndex || tagDirGone, `${o.kind} ${o.tag}: ${o.error}\n${context()}`).toBe(true);
      }
      expect(result.signal, context()).toBeUndefined();
      expect([0, 1, 3], context()).toContain(result.exitCode);
      const out = JSON.parse(result.stdout) as PruneJson;

      // ---- what was touched
      const pushedTags = new Map(ok.map((o) => [o.tag, o]));
      const touchedPlanned = new Set(ops.filter((o) => o.kind === 'repush-other' || o.kind === 'repush-same').map((o) => o.tag));
      const rescued = new Set(ok.flatMap((o) => o.rescued));
      const duringApply = ops.filter((o) => applyAt !== undefined && o.startedAt < ended && (o.endedAt ?? ended) > applyAt).length;
      expect(ops.length, context()).toBeGreaterThan(0);

      // Warnings (exit 3) can only come from a tag caught mid-push (the registry truncates, then writes, a link).
      for (const w of out.warnings) {
        const tag = ops.find((o) => w.path.startsWith(`${lay.tag(R(REPO), T(o.tag))}/`) || w.path === lay.tag(R(REPO), T(o.tag)));
        expect(tag, `warning ${JSON.stringify(w)}\n${context()}`).toBeDefined();
      }
      // Not removed: only what a push touched. A tag re-pushed, or caught mid-push (failed: left in place).
      for (const t of out.notRemoved.tags) {
        expect(t.result, context()).toMatch(/^(changed|failed)$/);
        expect(touchedPlanned.has(t.tag), `${t.tag} ${t.result}: ${t.detail}\n${context()}`).toBe(true);
        const op = pushedTags.get(t.tag);
        if (t.result === 'changed' && op?.kind === 'repush-other') expect(t.detail, context()).toMatch(/^(now points to sha256:[a-f0-9]{64}|pushed again (since the plan|during removal)); left in place$/);
        if (t.result === 'changed' && op?.kind === 'repush-same') expect(t.detail, context()).toMatch(/^pushed again (since the plan|during removal); left in place$/);
      }
      for (const m of out.notRemoved.manifests) {
        if (m.result === 'changed') expect(rescued.has(m.digest as Digest), `${m.digest}: ${m.detail}\n${context()}`).toBe(true);
        else {
          expect(m.result, context()).toBe('failed');
          expect(m.detail, context()).toMatch(/could not be read/);
        }
      }
      // ---- every tag pushed during the run pulls, byte for byte, with what was pushed
      const pullAll = async (when: string) => {
        for (const o of ok) {
          const pulled = await pullAndVerify(reg.url, REPO, o.tag).catch((err: unknown) => {
            throw new Error(`${when}: ${o.kind} ${o.tag} (${o.startedAt - started}..${(o.endedAt ?? 0) - started} ms): ${(err as Error).message}\n${context()}`);
          });
          expect(pulled.digest, `${when}: ${o.tag}`).toBe(o.digest);
        }
        for (const tag of recent) await pullAndVerify(reg.url, REPO, tag);
      };
      await pullAll('before garbage-collect');
      // Every planned tag nobody touched is gone; so is every one the run reports removed and nobody pushed again.
      const gone = untouched.filter((t) => !pushedTags.has(t));
      for (const tag of gone) expect(await manifestStatus(reg.url, REPO, tag), `${tag}\n${context()}`).toBe(404);
      const removed = new Set(out.tags.map((t) => t.tag));
      for (const tag of gone) expect(removed.has(tag), tag).toBe(true);

      // A second run, with no pushes, finishes what the first left (manifests it could not re-check
      // while a tag was mid-push stay in its journal) and removes nothing anyone pushed.
      const refused = new Set(ops.filter((o) => o.error !== undefined).map((o) => o.tag));
      const failedManifests = new Set(out.notRemoved.manifests.filter((m) => m.result === 'failed').map((m) => m.digest));
      const second = await runRegprune(['prune', '--older-than', '30d', '--yes', '--json', '--quiet', '--root', root]);
      expect(second.exitCode, second.stderr).toBe(0);
      const out2 = JSON.parse(second.stdout) as PruneJson;
      for (const t of out2.tags) expect(refused.has(t.tag), `second run removed ${t.tag}\n${context()}`).toBe(true);
      // A refused push may be a rescue (its tag is not a planned one): what it pushed is in the op.
      const refusedDigests = new Set(
        ops.filter((o) => o.error !== undefined).flatMap((o) => [o.digest, ...o.rescued, ...(content.has(o.tag) ? digestsOf(content.get(o.tag) as Content) : [])]),
      );
      for (const m of out2.manifests) {
        expect(failedManifests.has(m.digest) || refusedDigests.has(m.digest as Digest), `second run unlinked ${m.digest}\n${context()}`).toBe(true);
      }
      expect(out2.notRemoved ?? { tags: [], manifests: [] }).toEqual({ tags: [], manifests: [] });

      await reg.stop();
      const gc = await runGarbageCollect(reg.configPath);
      expect(gc.exitCode, gc.stderr).toBe(0);
      await reg.restart();
      await pullAll('after garbage-collect and restart');
      for (const tag of gone) expect(await manifestStatus(reg.url, REPO, tag), tag).toBe(404);
      await reg.stop();
      await rm(root, { recursive: true, force: true });

      totals.ops += ops.length;
      totals.duringApply += duringApply;
      totals.changedTags += out.notRemoved.tags.filter((t) => t.result === 'changed').length;
      totals.changedManifests += out.notRemoved.manifests.filter((m) => m.result === 'changed').length;
      console.log(
        `concurrent seed ${seed}: exit ${result.exitCode}, ${ops.length} pushes (${duringApply} overlapping apply, ${ops.length - ok.length} refused), ` +
          `run ${ended - started} ms (apply from +${(applyAt ?? ended) - started} ms); results ${JSON.stringify(out.results)}; warnings ${out.warnings.length}; ` +
          `second run unlinked ${out2.manifests.length}`,
      );
    },
    240_000,
  );

  test('across the seeds, pushes overlapped the apply phase and reached the re-checks', () => {
    // Guards the test itself: if no push ever landed while apply ran, or none was caught by a
    // re-check (a tag or manifest left in place as `changed`), nothing above was exercised.
    console.log(`concurrent totals: ${JSON.stringify(totals)}`);
    expect(totals.ops).toBeGreaterThan(0);
    expect(totals.duringApply).toBeGreaterThan(0);
    // Timing decides which re-check catches which push (a run here: 6 tags, 9 manifests over the three seeds); at least one must.
    expect(totals.changedTags + totals.changedManifests, 'pushes caught by the re-checks (tags or manifests left in place as changed)').toBeGreaterThan(0);
  });
});
