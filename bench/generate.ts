/**
 * Writes a synthetic registry storage tree in the exact on-disk format of
 * distribution's filesystem driver (see /work/shared/REGISTRY.md), big enough
 * to benchmark against: by default 1000 repositories x 100 tags.
 *
 *   node dist/bench/generate.js --root DIR [--repos 1000] [--tags 100] [--seed 1]
 *                               [--workers N] [--now ISO|ms] [--json]
 *
 * Everything that ends up in a blob (so every digest) depends only on seed,
 * repos and tags; push times (mtimes) are `now` minus a seeded age, so a tree
 * generated today has the same share of tags older than 30 days as one
 * generated next year.
 *
 * Speed: the work is ~2 million mkdir/create calls whose cost is in the
 * kernel, so writes are plain synchronous calls (one syscall each, no
 * promise or thread-pool hop per call) and repositories are split over
 * worker threads, one per core, each with its own seeded sub-stream.
 */
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Digest, RepositoryName, TagName } from '../src/model/names.js';
import { parseRepositoryName, parseTagName } from '../src/model/names.js';
import { DATA, layout, linkContent, type Layout } from '../src/storage/paths.js';
import {
  PLATFORMS,
  Rng,
  cosignSignature,
  imageConfig,
  imageIndex,
  imageManifest,
  makeBasePool,
  makeLayer,
  makeNoise,
  subSeed,
  type BaseImage,
  type Content,
  type Layer,
  type Platform,
} from './content.js';

export interface GenerateOptions {
  readonly root: string;
  readonly repos?: number;
  readonly tagsPerRepo?: number;
  readonly seed?: number;
  /** Push times are `now` minus seeded ages. Default: the current time. */
  readonly now?: Date;
  /** Worker threads; 0 writes in this thread. Default: one per core for big trees when running compiled. */
  readonly workers?: number;
}

export interface GenerateStats {
  root: string;
  repos: number;
  tags: number;
  /** Manifests in `_manifests/revisions`, counted per repository. */
  manifests: number;
  /** Of those: manifest lists / OCI indexes. */
  indexes: number;
  /** Of those: cosign signature manifests (each tagged `sha256-<hex>.sig`). */
  signatures: number;
  /** Of those: manifests no tag's current/link points to (index children, re-pushed tags' old images, pushes by digest). */
  untaggedManifests: number;
  /** Blob files written under blobs/ (each once, however many repositories link it). */
  blobs: number;
  /** Sum of blob sizes. */
  bytes: number;
  /** Link files written (tag current + index, revisions, layers). */
  links: number;
  /** Abandoned upload directories under `_uploads`. */
  uploads: number;
  /** Tags whose current/link is older than 30 days; no push lands between 29 and 32 days ago, so `find -mtime +30` and a 30d cutoff agree. */
  tagsOlderThan30d: number;
  oldestPushDays: number;
  newestPushDays: number;
  workers: number;
  seconds: number;
}

export const DEFAULT_REPOS = 1000;
export const DEFAULT_TAGS_PER_REPO = 100;
export const DEFAULT_SEED = 1;

const DAY_MS = 86_400_000;
/** Config `created` dates count back from here, not from `now`, so digests do not change from day to day. */
const CONTENT_EPOCH_MS = Date.UTC(2025, 0, 1);
/** Ages are drawn in [0, SPAN) then everything from GAP_START on is shifted by GAP: pushes span 400 days with none in [29, 32). */
const SPAN_DAYS = 397;
const GAP_START_DAYS = 29;
const GAP_DAYS = 3;
const WORKER_ROLE = 'regprune-bench-generate';

function ageDays(raw: number): number {
  return raw < GAP_START_DAYS ? raw : raw + GAP_DAYS;
}

/** The hex comes straight from sha256, so the digest is well-formed by construction. */
function digestOf(c: Content): Digest {
  return `sha256:${c.hex}` as Digest;
}

// ---------------------------------------------------------------- repositories

export interface RepositorySpec {
  readonly index: number;
  readonly name: RepositoryName;
  readonly oci: boolean;
  readonly multiArch: boolean;
  readonly upload: boolean;
}

/**
 * Repository i. The pattern repeats every 10 so even a 4-repository tree has
 * docker and OCI, a manifest list and an OCI index, nested names and a
 * repository nested inside another repository.
 */
export function repositorySpec(i: number): RepositorySpec {
  const r = i % 10;
  const block = Math.floor(i / 10);
  const team = `team-${block % 40}`;
  const names = [
    `${team}/app-${i}`,
    `${team}/app-${i}/api`, // three levels; the parent is not a repository
    `${team}/app-${i - 2}/worker`, // a repository inside repository i-2
    `base-${i}`,
    `${team}/svc-${i}`,
    `${team}/svc_${i}.cli`,
    `${team}/svc-${i}`,
    `${team}/web-${i}`,
    `platform/${team}/tool-${i}`,
    `${team}/job-${i}`,
  ];
  return {
    index: i,
    name: parseRepositoryName(names[r] ?? `${team}/app-${i}`),
    oci: r === 2 || r === 3 || (r >= 4 && r % 2 === 1),
    // 10% multi-platform: they hold three manifests per push, so they weigh heavily on the tree.
    multiArch: (r === 1 || r === 3) && block % 2 === 0,
    upload: r === 4 && block % 2 === 0,
  };
}

// ---------------------------------------------------------------- writing

interface Counters {
  tags: number;
  manifests: number;
  indexes: number;
  signatures: number;
  untaggedManifests: number;
  blobs: number;
  bytes: number;
  links: number;
  uploads: number;
  tagsOlderThan30d: number;
  oldestPushDays: number;
  newestPushDays: number;
}

function emptyCounters(): Counters {
  return {
    tags: 0,
    manifests: 0,
    indexes: 0,
    signatures: 0,
    untaggedManifests: 0,
    blobs: 0,
    bytes: 0,
    links: 0,
    uploads: 0,
    tagsOlderThan30d: 0,
    oldestPushDays: 0,
    newestPushDays: Number.POSITIVE_INFINITY,
  };
}

function addCounters(into: Counters, from: Counters): void {
  into.tags += from.tags;
  into.manifests += from.manifests;
  into.indexes += from.indexes;
  into.signatures += from.signatures;
  into.untaggedManifests += from.untaggedManifests;
  into.blobs += from.blobs;
  into.bytes += from.bytes;
  into.links += from.links;
  into.uploads += from.uploads;
  into.tagsOlderThan30d += from.tagsOlderThan30d;
  into.oldestPushDays = Math.max(into.oldestPushDays, from.oldestPushDays);
  into.newestPushDays = Math.min(into.newestPushDays, from.newestPushDays);
}

/** `mkdir -p` that says whether it created the leaf (false: it existed). */
function freshDir(dir: string): boolean {
  return mkdirSync(dir, { recursive: true }) !== undefined;
}

class TreeWriter {
  constructor(
    readonly lay: Layout,
    readonly counters: Counters,
  ) {}

  /** Writes a blob unless it exists (content-addressed: same path, same bytes). */
  blob(c: Content): void {
    const d = digestOf(c);
    if (!freshDir(this.lay.blob(d))) return;
    writeFileSync(this.lay.blobData(d), c.bytes);
    this.counters.blobs++;
    this.counters.bytes += c.bytes.length;
  }

  link(path: string, digest: Digest, mtimeMs?: number): void {
    mkdirSync(posix.dirname(path), { recursive: true });
    writeFileSync(path, linkContent(digest));
    if (mtimeMs !== undefined) {
      const t = mtimeMs / 1000;
      utimesSync(path, t, t);
    }
    this.counters.links++;
  }
}

interface Shared {
  readonly seed: number;
  readonly nowMs: number;
  readonly tagsPerRepo: number;
  readonly noise: Buffer;
  readonly bases: Map<string, BaseImage[]>;
}

function sharedState(seed: number, nowMs: number, tagsPerRepo: number): Shared {
  const noise = makeNoise(seed);
  return { seed, nowMs, tagsPerRepo, noise, bases: makeBasePool(seed, noise) };
}

function basesFor(shared: Shared, platform: Platform): BaseImage[] {
  const bases = shared.bases.get(platform.architecture);
  if (bases === undefined) throw new Error(`no base images for ${platform.architecture}`);
  return bases;
}

/** One image as pushed: a manifest, or an index over one manifest per platform. */
interface Pushed {
  readonly digest: Digest;
  readonly manifest: Content;
}

/**
 * Writes repository `spec`: its tags (exactly tagsPerRepo of them), the
 * manifests they point to, untagged manifests, and every blob they use.
 */
function writeRepository(shared: Shared, spec: RepositorySpec, writer: TreeWriter): void {
  const { lay, counters } = writer;
  const repo = spec.name;
  const rng = new Rng(subSeed(shared.seed, 0x7265706f, spec.index));
  const T = shared.tagsPerRepo;

  // How the tags split: build-N for most, v1.2.3 releases (retags of builds),
  // cosign signatures of the newest releases, and latest.
  const nLatest = T >= 2 ? 1 : 0;
  const nRelease = T >= 4 ? Math.max(1, Math.floor(T * 0.15)) : 0;
  const nSignature = T >= 4 ? Math.max(1, Math.floor(T * 0.05)) : 0;
  const nBuild = T - nLatest - nRelease - nSignature;
  const nOrphan = Math.max(spec.index % 10 === 0 && T >= 2 ? 1 : 0, Math.round(T * 0.02));

  mkdirSync(lay.tags(repo), { recursive: true });
  mkdirSync(lay.revisions(repo), { recursive: true });
  mkdirSync(lay.layers(repo), { recursive: true });

  // Some repositories are active (last push within 29 days), most went quiet.
  const lastRaw = spec.index % 10 === 0 || rng.chance(0.3) ? rng.next() * GAP_START_DAYS : GAP_START_DAYS + rng.next() * 220;
  const firstRaw = lastRaw + (SPAN_DAYS - lastRaw) * (0.3 + 0.7 * rng.next());
  // Builds get more frequent as a project grows: denser near its last push.
  const buildRaw = Array.from({ length: nBuild }, () => lastRaw + rng.next() ** 3 * (firstRaw - lastRaw)).sort((a, b) => b - a);
  if (nBuild > 0) buildRaw[nBuild - 1] = lastRaw;
  const pushMs = (raw: number) => shared.nowMs - ageDays(raw) * DAY_MS;

  const linkedLayers = new Set<string>();
  const writtenBlobs = new Set<string>();
  const revisions = new Set<string>();
  const tagged = new Set<string>();

  const blob = (c: Content) => {
    if (writtenBlobs.has(c.hex)) return;
    writtenBlobs.add(c.hex);
    writer.blob(c);
  };
  const linkLayer = (c: Content) => {
    if (linkedLayers.has(c.hex)) return;
    linkedLayers.add(c.hex);
    writer.link(lay.layerLink(repo, digestOf(c)), digestOf(c));
  };
  const revision = (c: Content) => {
    blob(c);
    if (revisions.has(c.hex)) return;
    revisions.add(c.hex);
    writer.link(lay.revisionLink(repo, digestOf(c)), digestOf(c));
    counters.manifests++;
  };
  const tag = (name: string, history: ReadonlyArray<{ digest: Digest; ms: number }>) => {
    const t: TagName = parseTagName(name);
    const current = history[history.length - 1];
    if (current === undefined) throw new Error(`tag ${name} without a push`);
    for (const push of history) writer.link(lay.tagIndexLink(repo, t, push.digest), push.digest, push.ms);
    writer.link(lay.tagCurrentLink(repo, t), current.digest, current.ms);
    tagged.add(current.digest);
    counters.tags++;
    const age = (shared.nowMs - current.ms) / DAY_MS;
    if (age > 30) counters.tagsOlderThan30d++;
    counters.oldestPushDays = Math.max(counters.oldestPushDays, age);
    counters.newestPushDays = Math.min(counters.newestPushDays, age);
  };

  // Image contents evolve: a base image (shared with every repository on it)
  // that is upgraded now and then, a dependency layer rebuilt every few
  // builds, and an application layer new in every build.
  const platforms = spec.multiArch ? PLATFORMS : PLATFORMS.slice(0, 1);
  let baseIndex = rng.int(0, 11);
  const depLayers = new Map<string, Layer>();
  let depCount = 0;
  const newDeps = () => {
    depCount++;
    for (const p of platforms) depLayers.set(p.architecture, makeLayer(rng, shared.noise, `${repo}/deps/${p.architecture}/${depCount}`, 512, 4096));
  };
  newDeps();

  let imageCount = 0;
  const pushImage = (version: string, raw: number): Pushed => {
    imageCount++;
    if (rng.chance(0.04)) baseIndex = rng.int(0, 11);
    if (rng.chance(0.15)) newDeps();
    const createdMs = spec.oci ? 0 : CONTENT_EPOCH_MS - ageDays(raw) * DAY_MS;
    const revisionHex = rng.hex(40);
    const children = platforms.map((platform) => {
      const base = basesFor(shared, platform)[baseIndex];
      const dep = depLayers.get(platform.architecture);
      if (base === undefined || dep === undefined) throw new Error('base or dependency layer missing');
      const app = makeLayer(rng, shared.noise, `${repo}/app/${platform.architecture}/${imageCount}`, 200, 4096);
      const layers = [...base.layers, dep, app];
      const config = imageConfig({ repository: repo, version, platform, layers, createdMs, revision: revisionHex });
      const manifest = imageManifest(spec.oci, config, layers);
      blob(config);
      linkLayer(config);
      for (const layer of layers) {
        blob(layer.blob);
        linkLayer(layer.blob);
      }
      revision(manifest);
      return { manifest, platform };
    });
    if (!spec.multiArch) {
      const only = children[0];
      if (only === undefined) throw new Error('no platform');
      return { digest: digestOf(only.manifest), manifest: only.manifest };
    }
    const index = imageIndex(spec.oci, children);
    revision(index);
    counters.indexes++;
    return { digest: digestOf(index), manifest: index };
  };

  // Builds, oldest first. A few tags were pushed twice: the first image stays
  // in revisions, untagged, and in the tag's index.
  let buildNumber = rng.int(100, 4000);
  const builds: Array<{ image: Pushed; ms: number; raw: number }> = [];
  for (const raw of buildRaw) {
    buildNumber += rng.int(1, 3);
    const name = `build-${buildNumber}`;
    const history: Array<{ digest: Digest; ms: number }> = [];
    if (rng.chance(0.08)) {
      const earlierRaw = raw + rng.int(60, 7200) / 86_400;
      history.push({ digest: pushImage(name, earlierRaw).digest, ms: pushMs(earlierRaw) });
    }
    const image = pushImage(name, raw);
    history.push({ digest: image.digest, ms: pushMs(raw) });
    tag(name, history);
    builds.push({ image, ms: pushMs(raw), raw });
  }

  // Releases retag builds spread over the timeline, some hours later.
  let [major, minor, patch] = [rng.int(0, 3), rng.int(0, 9), 0];
  const releases: Array<{ image: Pushed; raw: number }> = [];
  for (let k = 0; k < nRelease; k++) {
    const build = builds[Math.floor(((k + 1) * nBuild) / (nRelease + 1))] ?? builds[builds.length - 1];
    if (build === undefined) break;
    if (rng.chance(0.05)) [major, minor, patch] = [major + 1, 0, 0];
    else if (rng.chance(0.25)) [minor, patch] = [minor + 1, 0];
    else patch++;
    const raw = Math.max(0, build.raw - rng.int(300, 172_800) / 86_400);
    tag(`v${major}.${minor}.${patch}`, [{ digest: build.image.digest, ms: pushMs(raw) }]);
    releases.push({ image: build.image, raw });
  }

  // cosign signs the newest releases: `sha256-<hex>.sig` -> an OCI manifest.
  for (const release of releases.slice(Math.max(0, releases.length - nSignature))) {
    const sig = cosignSignature(rng, repo, release.image.digest);
    blob(sig.config);
    linkLayer(sig.config);
    blob(sig.payload);
    linkLayer(sig.payload);
    revision(sig.manifest);
    counters.signatures++;
    const raw = Math.max(0, release.raw - 30 / 86_400);
    tag(`${release.image.digest.replace(':', '-')}.sig`, [{ digest: digestOf(sig.manifest), ms: pushMs(raw) }]);
  }

  // latest follows the newest build; its index remembers the builds before.
  const newest = builds[builds.length - 1];
  if (nLatest === 1 && newest !== undefined) {
    tag('latest', builds.slice(-4).map((b) => ({ digest: b.image.digest, ms: b.ms })));
  }

  // Images pushed by digest only (caches, CI experiments): never tagged.
  for (let k = 0; k < nOrphan; k++) pushImage(`orphan-${k}`, lastRaw + rng.next() * (firstRaw - lastRaw));

  if (spec.upload) {
    const uuid = `${rng.hex(8)}-${rng.hex(4)}-4${rng.hex(3)}-a${rng.hex(3)}-${rng.hex(12)}`;
    const dir = posix.join(lay.uploads(repo), uuid);
    mkdirSync(dir, { recursive: true });
    writeFileSync(posix.join(dir, DATA), rng.bytes(rng.int(256, 4096)));
    // The registry writes the upload's start time as RFC 3339 into `startedat`.
    writeFileSync(posix.join(dir, 'startedat'), new Date(pushMs(lastRaw + 2)).toISOString());
    counters.uploads++;
  }

  for (const hex of revisions) if (!tagged.has(`sha256:${hex}`)) counters.untaggedManifests++;
}

// ---------------------------------------------------------------- threads

interface WorkerInput {
  readonly role: typeof WORKER_ROLE;
  readonly root: string;
  readonly repos: number;
  readonly tagsPerRepo: number;
  readonly seed: number;
  readonly nowMs: number;
  readonly worker: number;
  readonly workers: number;
}

function writeShare(input: Omit<WorkerInput, 'role'>): Counters {
  const counters = emptyCounters();
  const writer = new TreeWriter(layout(input.root), counters);
  const shared = sharedState(input.seed, input.nowMs, input.tagsPerRepo);
  for (let i = input.worker; i < input.repos; i += input.workers) writeRepository(shared, repositorySpec(i), writer);
  return counters;
}

function runWorker(input: Omit<WorkerInput, 'role'>): Promise<Counters> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE, ...input } satisfies WorkerInput });
    let result: Counters | undefined;
    worker.once('message', (m: Counters) => (result = m));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (result !== undefined) resolve(result);
      else reject(new Error(`generator worker ${input.worker} exited with code ${code} without a result`));
    });
  });
}

/** Threads only when they pay off and when this module is compiled JS (a Worker cannot load the .ts source under vitest). */
function defaultWorkers(repos: number, tagsPerRepo: number): number {
  if (repos * tagsPerRepo < 5000 || !import.meta.url.endsWith('.js')) return 0;
  return Math.max(1, Math.min(availableParallelism(), 8));
}

export async function generateTree(options: GenerateOptions): Promise<GenerateStats> {
  const started = performance.now();
  const repos = options.repos ?? DEFAULT_REPOS;
  const tagsPerRepo = options.tagsPerRepo ?? DEFAULT_TAGS_PER_REPO;
  const seed = options.seed ?? DEFAULT_SEED;
  const nowMs = (options.now ?? new Date()).getTime();
  for (const [what, n] of [['repos', repos], ['tagsPerRepo', tagsPerRepo], ['seed', seed]] as const) {
    if (!Number.isSafeInteger(n) || n < (what === 'seed' ? 0 : 1)) throw new Error(`generateTree: ${what} must be a positive integer, got ${n}`);
  }
  const workers = Math.min(options.workers ?? defaultWorkers(repos, tagsPerRepo), repos);

  const lay = layout(options.root);
  let existing: string[] = [];
  try {
    existing = readdirSync(lay.v2);
  } catch {
    // absent: good
  }
  if (existing.length > 0) throw new Error(`generateTree: ${lay.v2} is not empty; generate into a new directory`);
  mkdirSync(lay.repositories, { recursive: true });
  mkdirSync(lay.blobShards(), { recursive: true });

  // Base layers are written by whichever repository uses them first (blob() skips existing
  // ones), so a fresh tree has no unreferenced blob: garbage-collect without -m sweeps nothing.
  const total = emptyCounters();

  const share = { root: options.root, repos, tagsPerRepo, seed, nowMs };
  if (workers === 0) {
    addCounters(total, writeShare({ ...share, worker: 0, workers: 1 }));
  } else {
    const parts = await Promise.all(Array.from({ length: workers }, (_, worker) => runWorker({ ...share, worker, workers })));
    for (const part of parts) addCounters(total, part);
  }

  return {
    root: options.root,
    repos,
    ...total,
    newestPushDays: Number.isFinite(total.newestPushDays) ? total.newestPushDays : 0,
    workers,
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------- entry points

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.role === WORKER_ROLE) {
  const { role: _role, ...input } = workerData as WorkerInput;
  parentPort?.postMessage(writeShare(input));
}

function positiveInt(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag}: expected a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

export function formatStats(s: GenerateStats): string {
  const mb = (s.bytes / 1e6).toFixed(1);
  return [
    `generated ${s.tags} tags in ${s.repos} repositories at ${s.root}`,
    `  ${s.manifests} manifests (${s.indexes} indexes, ${s.signatures} signatures, ${s.untaggedManifests} untagged), ${s.blobs} blobs (${mb} MB), ${s.links} link files, ${s.uploads} uploads`,
    `  pushes from ${s.oldestPushDays.toFixed(1)} to ${s.newestPushDays.toFixed(1)} days ago; ${s.tagsOlderThan30d} tags older than 30 days`,
    `  ${s.seconds.toFixed(2)} s with ${s.workers === 0 ? 'no worker threads' : `${s.workers} worker threads`}`,
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' },
      repos: { type: 'string' },
      tags: { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || values.root === undefined) {
    process.stderr.write('usage: node dist/bench/generate.js --root DIR [--repos 1000] [--tags 100] [--seed 1] [--workers N] [--now ISO|ms] [--json]\n');
    process.exit(values.help ? 0 : 2);
  }
  let now: Date | undefined;
  if (values.now !== undefined) {
    now = /^\d+$/.test(values.now) ? new Date(Number(values.now)) : new Date(values.now);
    if (Number.isNaN(now.getTime())) throw new Error(`--now: not a date: ${JSON.stringify(values.now)}`);
  }
  const stats = await generateTree({
    root: values.root,
    repos: positiveInt(values.repos, DEFAULT_REPOS, '--repos'),
    tagsPerRepo: positiveInt(values.tags, DEFAULT_TAGS_PER_REPO, '--tags'),
    seed: positiveInt(values.seed, DEFAULT_SEED, '--seed'),
    ...(values.workers === undefined ? {} : { workers: positiveInt(values.workers, 0, '--workers') }),
    ...(now === undefined ? {} : { now }),
  });
  process.stdout.write(values.json ? `${JSON.stringify(stats, null, 2)}\n` : `${formatStats(stats)}\n`);
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`generate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
