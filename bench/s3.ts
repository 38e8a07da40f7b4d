/**
 * The S3 benchmark: a generated tree (bench/generate.ts) uploaded to a bucket
 * of a local OpenStack Swift (S3 API), then the registry's own
 * `garbage-collect --dry-run` on the bucket against regprune's full dry-run
 * plan (`regprune prune --config ... --dry-run --json`: listing, every
 * manifest read, exact bytes) on the same bucket with a cold manifest cache;
 * then a few new manifests pushed into the bucket and the plan run again
 * with the warm cache, whose request counts are checked.
 *
 *   npm run build && node dist/bench/s3.js [--repos 4] [--tags 5] [--runs 1] [--new 5] [--swift-workers 1] [--keep] [--out FILE]
 *
 * `--swift-workers`: processes per Swift server (the tests use 1; Swift's
 * default, `auto`, is one per core). With one, the proxy is a single Python
 * process and a parallel client is bound by its CPU per request.
 *
 * Needs Swift + memcached and docker-registry (see test/helpers/swift.ts).
 * Uploading is slow on Swift (about 200 objects a second here): a
 * 2,000-tag tree is ~30,000 objects.
 *
 * Push times on a bucket are the LastModified of each tag's current/link,
 * which is the upload time: the tree's 30-day cutoff cannot survive the
 * upload. So the tags older than 30 days on disk are uploaded first, then
 * (after a second boundary, LastModified has one-second resolution) the
 * others, and the plan on the bucket selects `--before <that instant>`: the
 * same tags `--older-than 30d` selects on the tree on disk. Every plan is
 * checked against `prune --root <tree> --older-than 30d --dry-run --json`
 * (tags, digests, manifests, bytes, warnings). The bench exits non-zero when
 * a check or a request-count bound fails; the ratio to garbage-collect is
 * reported, not asserted (it depends on the machine's load).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseRegistryConfig, type S3StorageConfig } from '../src/config/registry-config.js';
import type { Digest, RepositoryName, TagName } from '../src/model/names.js';
import { layout, linkContent } from '../src/storage/paths.js';
import { openS3 } from '../src/storage/s3/client.js';
import { findRegistryBinary } from '../test/helpers/registry.js';
import { comparablePlan, type PlanJson } from '../test/helpers/plan-json.js';
import { s3StorageYaml, startSwift } from '../test/helpers/swift.js';
import { sha256Hex } from './content.js';
import { generateTree } from './generate.js';
import { filesUnder, uploadFiles } from './s3-upload.js';

const PKG = fileURLToPath(new URL('../..', import.meta.url));
const REGPRUNE = join(PKG, 'bin', 'regprune');
const RESULTS_DIR = join(PKG, 'bench', 'results');
const BUCKET = 'bench';
const ROOT_DIRECTORY = '/reg';
const KEY_PREFIX = 'reg/';
const DAY_MS = 86_400_000;

function say(line: string): void {
  process.stderr.write(`bench-s3: ${line}\n`);
}

const load1 = () => Number(loadavg()[0]!.toFixed(2));

/** Runs a command and times it (wall clock, seconds). Throws on a non-zero exit. */
function timed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): { seconds: number; stdout: string; load: number } {
  const load = load1();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 1 << 30 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return { seconds, stdout: r.stdout, load };
}

/**
 * What must be equal between the plan on disk and on the bucket: everything
 * but push times, tag reasons (`older than 30d` vs `pushed before ...`),
 * the root and the request stats; paths are made relative to each root.
 */
const comparable = (p: PlanJson) => comparablePlan(p, { reason: () => undefined, relativePaths: true });

function samePlan(what: string, got: PlanJson, want: PlanJson): void {
  const a = comparable(got);
  const b = comparable(want);
  for (const k of Object.keys(b) as Array<keyof typeof b>) {
    const x = JSON.stringify(a[k]);
    const y = JSON.stringify(b[k]);
    if (x !== y) throw new Error(`${what}: the plan on the bucket differs from the plan on disk in ${k}:\n  bucket: ${x.slice(0, 600)}\n  disk:   ${y.slice(0, 600)}`);
  }
}

/**
 * k new single-platform images pushed onto the tree on disk, as the registry
 * writes a push of an existing image's layers under a new manifest: the
 * manifest blob, its revision link, the new tag's index link and current/link.
 * Each is an existing image manifest of a repository with one annotation
 * added (new bytes, new digest; config and layers already linked in the
 * repository). Returns the files written, relative to `root`, in the order
 * the registry writes them (the tag's current/link last).
 */
function pushNewManifests(root: string, k: number): { files: string[]; digests: Digest[] } {
  const lay = layout(root);
  const rel = (p: string) => posix.relative(root, p);
  const repos: Array<{ name: RepositoryName; tags: string[] }> = [];
  const repositoriesDir = posix.join(lay.v2, 'repositories');
  for (const f of spawnSync('find', [repositoriesDir, '-path', '*/_manifests/tags/*/current/link'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout.split('\n')) {
    if (f === '') continue;
    const m = /^(.+)\/_manifests\/tags\/([^/]+)\/current\/link$/.exec(posix.relative(repositoriesDir, f));
    if (m === null) continue;
    let r = repos.find((x) => x.name === m[1]);
    if (r === undefined) repos.push((r = { name: m[1] as RepositoryName, tags: [] }));
    r.tags.push(m[2]!);
  }
  repos.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const r of repos) r.tags.sort();
  const files: string[] = [];
  const digests: Digest[] = [];
  for (let i = 0; digests.length < k; i++) {
    if (i >= repos.length * 50) throw new Error(`found only ${digests.length} single-platform images to derive ${k} new manifests from`);
    const repo = repos[i % repos.length]!;
    const tag = repo.tags[Math.floor(i / repos.length) % repo.tags.length]!;
    const digest = readFileSync(lay.tagCurrentLink(repo.name, tag as TagName), 'latin1') as Digest;
    const doc = JSON.parse(readFileSync(lay.blobData(digest), 'utf8')) as Record<string, unknown>;
    if (!Array.isArray(doc['layers']) || typeof doc['config'] !== 'object') continue; // an index or a signature's manifest would do too; keep it plain
    if (typeof doc['mediaType'] === 'string' && doc['mediaType'].includes('cosign')) continue;
    const oci = doc['mediaType'] === 'application/vnd.oci.image.manifest.v1+json';
    const bytes = Buffer.from(JSON.stringify({ ...doc, annotations: { 'org.regprune.bench.new': String(digests.length) } }, null, oci ? undefined : 3));
    const d = `sha256:${sha256Hex(bytes)}` as Digest;
    if (digests.includes(d)) continue;
    const newTag = `bench-new-${digests.length}` as TagName;
    const write = (path: string, data: Buffer | string) => {
      mkdirSync(posix.dirname(path), { recursive: true });
      writeFileSync(path, data);
      files.push(rel(path));
    };
    write(lay.blobData(d), bytes);
    write(lay.revisionLink(repo.name, d), linkContent(d));
    write(lay.tagIndexLink(repo.name, newTag, d), linkContent(d));
    write(lay.tagCurrentLink(repo.name, newTag), linkContent(d));
    digests.push(d);
  }
  return { files, digests };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

function gitCommit(): string | null {
  const r = spawnSync('git', ['-C', PKG, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repos: { type: 'string', default: '4' },
      tags: { type: 'string', default: '5' },
      runs: { type: 'string', default: '1' },
      new: { type: 'string', default: '5' },
      'swift-workers': { type: 'string', default: '1' },
      keep: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const repos = Number(values.repos);
  const tagsPerRepo = Number(values.tags);
  const runs = Number(values.runs);
  const newManifests = Number(values.new);
  const swiftWorkers = Number(values['swift-workers']);
  if (![repos, tagsPerRepo, runs, newManifests, swiftWorkers].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write('bench-s3: --repos, --tags, --runs, --new and --swift-workers take whole numbers above 0\n');
    process.exit(2);
  }
  const loadStart = loadavg();
  const registryBin = await findRegistryBinary();
  const work = mkdtempSync(join(tmpdir(), 'regprune-bench-s3-'));
  const swift = await startSwift({ workers: swiftWorkers });
  try {
    const root = join(work, 'tree');
    const now = new Date();
    const gen = await generateTree({ root, repos, tagsPerRepo, workers: 0, now });
    say(`generated ${gen.tags} tags, ${gen.manifests} manifests, ${gen.blobs} blobs, ${gen.links} links in ${gen.seconds.toFixed(1)} s; ${gen.tagsOlderThan30d} tags older than 30 days`);

    await swift.createBucket(BUCKET);
    const yaml = ['version: 0.1', 'log:', '  level: warn', 'storage:', ...s3StorageYaml(swift, BUCKET, ROOT_DIRECTORY), ''].join('\n');
    const configPath = join(work, 'config.yml');
    writeFileSync(configPath, yaml);
    const config = parseRegistryConfig(yaml, {}, configPath) as S3StorageConfig;

    // Upload: everything but the current/links of tags pushed in the last 30 days, then those.
    const files = (await filesUnder(root)).filter((f) => !f.startsWith('.regprune/'));
    const cutoffMs = now.getTime() - 30 * DAY_MS;
    const isYoung = (f: string) => f.endsWith('/current/link') && statSync(join(root, f)).mtimeMs > cutoffMs;
    const young = files.filter(isYoung);
    const old = files.filter((f) => !isYoung(f));
    const store = await openS3(config, { concurrency: 32 });
    const t0 = Date.now();
    await uploadFiles(store, root, old, KEY_PREFIX, { onProgress: (done, total) => say(`uploading ${done}/${total}`) });
    // LastModified has one-second resolution: the cutoff is a whole second after the last old upload, the young ones a second later.
    const before = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000 + 1000);
    await new Promise((resolve) => setTimeout(resolve, before.getTime() + 1100 - Date.now()));
    await uploadFiles(store, root, young, KEY_PREFIX);
    store.close();
    const objects = files.length;
    const uploadSeconds = (Date.now() - t0) / 1000;
    say(`uploaded ${objects} objects in ${uploadSeconds.toFixed(1)} s; ${young.length} current/links after ${before.toISOString()}`);

    // The registry, like the tests, without AWS_CA_BUNDLE (2.8's s3 driver panics on it) or REGISTRY_* from here.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE') env[k] = v;
    const diskPlan = () => JSON.parse(timed(process.execPath, [REGPRUNE, 'prune', '--root', root, '--older-than', '30d', '--dry-run', '--json'], env).stdout) as PlanJson;
    const planArgs = [REGPRUNE, 'prune', '--config', configPath, '--before', before.toISOString(), '--dry-run', '--json'];
    const bucketPlan = (cacheDir: string) => {
      const r = timed(process.execPath, planArgs, { ...env, REGPRUNE_CACHE_DIR: cacheDir });
      return { ...r, plan: JSON.parse(r.stdout) as PlanJson };
    };

    const onDisk = diskPlan();
    // Not all of them (signatures of kept images stay, and so on), but some.
    if (onDisk.tags.length === 0 || onDisk.tags.length > gen.tagsOlderThan30d) throw new Error(`the plan on disk selects ${onDisk.tags.length} tags; ${gen.tagsOlderThan30d} are older than 30 days`);

    // Cold: a fresh manifest cache per run; the order alternates (garbage-collect first on odd runs).
    const gcRuns: Array<{ seconds: number; load: number }> = [];
    const coldRuns: Array<{ seconds: number; load: number; stats: PlanJson['stats'] }> = [];
    let lastCache = '';
    for (let run = 1; run <= runs; run++) {
      const gc = () => {
        const r = timed(registryBin, ['garbage-collect', '--dry-run', configPath], env);
        if (!/blobs marked/.test(r.stdout)) throw new Error(`garbage-collect --dry-run printed no summary:\n${r.stdout.slice(-2000)}`);
        gcRuns.push({ seconds: r.seconds, load: r.load });
        return r.seconds;
      };
      const plan = () => {
        lastCache = mkdtempSync(join(work, 'cache-'));
        const r = bucketPlan(lastCache);
        samePlan(`cold run ${run}`, r.plan, onDisk);
        coldRuns.push({ seconds: r.seconds, load: r.load, stats: r.plan.stats });
        return r.seconds;
      };
      const [first, second] = run % 2 === 1 ? [gc, plan] : [plan, gc];
      first();
      second();
      say(`run ${run}: garbage-collect --dry-run ${gcRuns.at(-1)!.seconds.toFixed(2)} s, plan (cold cache) ${coldRuns.at(-1)!.seconds.toFixed(2)} s, load ${load1()}`);
    }
    const cold = coldRuns.at(-1)!.stats;

    // Warm: the same cache, after k new manifests were pushed (tagged now, so kept, but read for exact bytes).
    const pushed = pushNewManifests(root, newManifests);
    const store2 = await openS3(config, { concurrency: 32 });
    await uploadFiles(store2, root, pushed.files.filter((f) => !f.endsWith('/current/link')), KEY_PREFIX);
    await uploadFiles(store2, root, pushed.files.filter((f) => f.endsWith('/current/link')), KEY_PREFIX);
    store2.close();
    const warm = bucketPlan(lastCache);
    samePlan('warm run', warm.plan, diskPlan());
    const ws = warm.plan.stats;
    say(`warm run (${newManifests} new manifests): plan ${warm.seconds.toFixed(2)} s, requests ${JSON.stringify(ws.requests)}`);

    // The bounds: lists = one per 1000 keys of docker/registry/v2/ plus one of regprune's
    // own (empty) .regprune/ prefix (where a killed run's journal would be); one GET per new manifest; nothing else.
    const problems: string[] = [];
    const keys = ws.keys ?? 0;
    const listBound = Math.ceil(keys / 1000) + 1;
    const req = ws.requests ?? {};
    if ((req['list'] ?? Infinity) > listBound) problems.push(`warm run: ${req['list']} list requests for ${keys} keys, more than ceil(keys/1000) + 1 = ${listBound}`);
    if (req['get'] !== newManifests) problems.push(`warm run: ${req['get']} GETs for ${newManifests} new manifests`);
    if (ws.manifestsFetched !== newManifests) problems.push(`warm run: ${ws.manifestsFetched} manifests fetched, ${newManifests} new`);
    for (const kind of ['head', 'put', 'delete']) if (req[kind] !== 0) problems.push(`warm run: ${req[kind]} ${kind} requests`);
    if ((ws.linksRead ?? 0) !== 0) problems.push(`warm run: ${ws.linksRead} links read with a GET`);
    const creq = cold.requests ?? {};
    if (creq['get'] !== cold.manifestsFetched) problems.push(`cold run: ${creq['get']} GETs for ${cold.manifestsFetched} manifests`);
    if ((creq['list'] ?? Infinity) > Math.ceil((cold.keys ?? 0) / 1000) + 1) problems.push(`cold run: ${creq['list']} list requests for ${cold.keys} keys`);

    const gcSeconds = median(gcRuns.map((r) => r.seconds));
    const planSeconds = median(coldRuns.map((r) => r.seconds));
    const loadEnd = loadavg();
    const result = {
      repos,
      tags: gen.tags,
      objects,
      uploadSeconds,
      selected: onDisk.tags.length,
      reclaimableBytes: onDisk.reclaimableBytes,
      gcDryRunSeconds: gcSeconds,
      planSeconds,
      speedup: gcSeconds / planSeconds,
      warmPlanSeconds: warm.seconds,
      newManifests,
      coldStats: cold,
      warmStats: ws,
      listBound,
      runs,
      swiftWorkers,
      load: { start: loadStart, end: loadEnd },
      ok: problems.length === 0,
    };
    const resultsFile = values.out ?? join(RESULTS_DIR, `${today()}-s3-${repos}x${tagsPerRepo}${swiftWorkers === 1 ? '' : `-w${swiftWorkers}`}.json`);
    mkdirSync(join(resultsFile, '..'), { recursive: true });
    const cpu = cpus();
    const doc = {
      machine: { cpuModel: cpu[0]?.model ?? 'unknown', cores: cpu.length, memoryMb: Math.round(totalmem() / 2 ** 20), node: process.version, gitCommit: gitCommit(), loadavgStart: loadStart, loadavgEnd: loadEnd },
      options: { repos, tags: tagsPerRepo, runs, new: newManifests, swiftWorkers },
      commands: {
        gc: `docker-registry garbage-collect --dry-run CONFIG`,
        plan: `REGPRUNE_CACHE_DIR=<fresh dir> regprune prune --config CONFIG --before ${before.toISOString()} --dry-run --json`,
        reference: 'regprune prune --root TREE --older-than 30d --dry-run --json',
      },
      gcRuns,
      coldRuns,
      warmRun: { seconds: warm.seconds, load: warm.load, stats: ws },
      result,
      problems,
    };
    writeFileSync(resultsFile, `${JSON.stringify(doc, null, 2)}\n`);
    const fmt = (r: { seconds: number; load: number }) => `${r.seconds.toFixed(2)} s (load ${r.load})`;
    process.stdout.write(
      [
        `tree: ${repos} repositories, ${gen.tags} tags, ${objects} objects in the bucket (Swift: ${swiftWorkers} worker${swiftWorkers === 1 ? '' : 's'} per server); ${onDisk.tags.length} tags selected, ${onDisk.reclaimableBytes} bytes reclaimable (check: the plan on the bucket = the plan on disk)`,
        `garbage-collect --dry-run on the bucket       ${gcSeconds.toFixed(2)} s median of ${runs}: ${gcRuns.map(fmt).join(', ')}`,
        `regprune prune --dry-run, cold cache          ${planSeconds.toFixed(2)} s median of ${runs}: ${coldRuns.map(fmt).join(', ')}   (${result.speedup.toFixed(1)}x faster)`,
        `regprune prune --dry-run, warm cache + ${newManifests} new  ${fmt(warm)}`,
        `cold requests: ${JSON.stringify(creq)}, keys ${cold.keys}, manifests fetched ${cold.manifestsFetched}, links read ${cold.linksRead}, retries ${cold.retries}`,
        `warm requests: ${JSON.stringify(req)}, keys ${keys} (list bound ceil(keys/1000) + 1 = ${listBound}), manifests fetched ${ws.manifestsFetched}, cached ${ws.manifestsCached}, links read ${ws.linksRead}`,
        `load average: start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, end ${loadEnd.map((x) => x.toFixed(2)).join(' ')}; results in ${resultsFile}`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
    if (problems.length > 0) throw new Error(`request counts out of bounds:\n  ${problems.join('\n  ')}`);
  } finally {
    await swift.stop();
    if (values.keep) say(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-s3: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
