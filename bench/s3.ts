/**
 * The S3 benchmark: a generated tree (bench/generate.ts) uploaded to a bucket
 * of a local OpenStack Swift (S3 API), then the registry's own
 * `garbage-collect --dry-run` on the bucket against regprune's listing-first
 * walk (`regprune list --config ... --json`) on the same bucket.
 *
 *   npm run build && node dist/bench/s3.js [--repos 4] [--tags 5] [--runs 1] [--keep]
 *
 * Needs Swift + memcached and docker-registry (see test/helpers/swift.ts).
 * Uploading is slow on Swift (about 200 objects a second here): a
 * 2,000-tag tree is ~30,000 objects. Every run also checks that the S3 listing
 * gives exactly the tags and digests `regprune list --root` gives on the tree
 * on disk. Prints a table on stdout and one JSON line with the figures.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseRegistryConfig, type S3StorageConfig } from '../src/config/registry-config.js';
import { openS3 } from '../src/storage/s3/client.js';
import { findRegistryBinary } from '../test/helpers/registry.js';
import { s3StorageYaml, startSwift } from '../test/helpers/swift.js';
import { generateTree } from './generate.js';
import { uploadTree } from './s3-upload.js';

const REGPRUNE = fileURLToPath(new URL('../../bin/regprune', import.meta.url));
const BUCKET = 'bench';
const ROOT_DIRECTORY = '/reg';

interface ListOutput {
  tags: Array<{ repository: string; tag: string; digest: string }>;
  stats?: { keys: number; linksRead: number; requests: Record<string, number>; retries: number };
}

function say(line: string): void {
  process.stderr.write(`bench-s3: ${line}\n`);
}

/** Runs a command and times it (wall clock, seconds). Throws on a non-zero exit. */
function timed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): { seconds: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 1 << 30 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

const key = (t: { repository: string; tag: string; digest: string }) => `${t.repository}:${t.tag}@${t.digest}`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repos: { type: 'string', default: '4' },
      tags: { type: 'string', default: '5' },
      runs: { type: 'string', default: '1' },
      keep: { type: 'boolean', default: false },
    },
  });
  const repos = Number(values.repos);
  const tagsPerRepo = Number(values.tags);
  const runs = Number(values.runs);
  if (![repos, tagsPerRepo, runs].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write('bench-s3: --repos, --tags and --runs take whole numbers above 0\n');
    process.exit(2);
  }
  const registryBin = await findRegistryBinary();
  const work = mkdtempSync(join(tmpdir(), 'regprune-bench-s3-'));
  const swift = await startSwift();
  try {
    const root = join(work, 'tree');
    const gen = await generateTree({ root, repos, tagsPerRepo, workers: 0 });
    say(`generated ${gen.tags} tags, ${gen.manifests} manifests, ${gen.blobs} blobs, ${gen.links} links in ${gen.seconds.toFixed(1)} s`);

    await swift.createBucket(BUCKET);
    const yaml = ['version: 0.1', 'log:', '  level: warn', 'storage:', ...s3StorageYaml(swift, BUCKET, ROOT_DIRECTORY), ''].join('\n');
    const configPath = join(work, 'config.yml');
    writeFileSync(configPath, yaml);
    const config = parseRegistryConfig(yaml, {}, configPath) as S3StorageConfig;
    const store = await openS3(config, { concurrency: 32 });
    const t0 = Date.now();
    const objects = await uploadTree(store, root, 'reg/', { onProgress: (done, total) => say(`uploading ${done}/${total}`) });
    store.close();
    const uploadSeconds = (Date.now() - t0) / 1000;
    say(`uploaded ${objects} objects in ${uploadSeconds.toFixed(1)} s`);

    // The registry, like the tests, without AWS_CA_BUNDLE (2.8's s3 driver panics on it) or REGISTRY_* from here.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE') env[k] = v;

    const onDisk = JSON.parse(timed(process.execPath, [REGPRUNE, 'list', '--root', root, '--json'], env).stdout) as ListOutput;
    const gcTimes: number[] = [];
    const listTimes: number[] = [];
    let listed: ListOutput | undefined;
    for (let run = 1; run <= runs; run++) {
      const gc = timed(registryBin, ['garbage-collect', '--dry-run', configPath], env);
      if (!/blobs marked/.test(gc.stdout)) throw new Error(`garbage-collect --dry-run printed no summary:\n${gc.stdout.slice(-2000)}`);
      gcTimes.push(gc.seconds);
      const list = timed(process.execPath, [REGPRUNE, 'list', '--config', configPath, '--json'], env);
      listTimes.push(list.seconds);
      listed = JSON.parse(list.stdout) as ListOutput;
      say(`run ${run}: garbage-collect --dry-run ${gc.seconds.toFixed(2)} s, regprune list --config ${list.seconds.toFixed(2)} s`);
    }
    const want = onDisk.tags.map(key).sort();
    const got = (listed?.tags ?? []).map(key).sort();
    const same = want.length === got.length && want.every((k, i) => k === got[i]);
    if (!same) throw new Error(`the S3 listing differs from the tree on disk: ${got.length} tags vs ${want.length}`);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const result = {
      repos,
      tags: gen.tags,
      objects,
      uploadSeconds,
      gcDryRunSeconds: median(gcTimes),
      listSeconds: median(listTimes),
      speedup: median(gcTimes) / median(listTimes),
      stats: listed?.stats,
      runs,
    };
    process.stdout.write(
      [
        `tree: ${repos} repositories, ${gen.tags} tags, ${objects} objects in the bucket (check: S3 listing = tree on disk, ${got.length} tags)`,
        `garbage-collect --dry-run on the bucket   ${result.gcDryRunSeconds.toFixed(2)} s`,
        `regprune list --config (listing walk)     ${result.listSeconds.toFixed(2)} s   (${result.speedup.toFixed(1)}x faster)`,
        `requests: ${JSON.stringify(listed?.stats?.requests)}, retries ${listed?.stats?.retries}, keys ${listed?.stats?.keys}, links read ${listed?.stats?.linksRead}`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
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
