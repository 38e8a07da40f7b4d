/**
 * The benchmark: generates a registry tree (default 1000 repositories x 100
 * tags) and a 10%-size one, then times regprune against the shell and
 * registry baselines it must beat. See bench/README.md.
 *
 *   npm run bench [-- --repos R --tags T --runs N --no-gc --no-apply --workdir DIR --keep]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CURRENT, INDEX, LAYERS, LINK, MANIFESTS, REVISIONS, TAGS, UPLOADS, layout } from '../src/storage/paths.js';
import { DEFAULT_REPOS, DEFAULT_SEED, DEFAULT_TAGS_PER_REPO, formatStats, generateTree, type GenerateStats } from './generate.js';
import { countLines, dropCaches, fileSize, findGnuTime, measure, shellWord, shq, spread, tail, type Sample, type Spread } from './measure.js';

const PKG = fileURLToPath(new URL('../../', import.meta.url));
const REGPRUNE_BIN = join(PKG, 'bin', 'regprune');
const REGPRUNE_MAIN = join(PKG, 'dist', 'src', 'cli', 'main.js');
const RESULTS_DIR = join(PKG, 'bench', 'results');
/** What a generated tree costs per tag on ext4 (measured: 100k tags = 7.9 GB, 2.6M inodes); dirs take a block each. */
const BYTES_PER_TAG = 82_000;
const INODES_PER_TAG = 27;
const OLDER_THAN_DAYS = 30;

// ---------------------------------------------------------------- options

interface Options {
  repos: number;
  tags: number;
  runs: number;
  applyRuns: number;
  smallApplyRuns: number;
  seed: number;
  gc: boolean;
  apply: boolean;
  workdir: string | undefined;
  keep: boolean;
  cache: 'auto' | 'cold' | 'warm';
  out: string | undefined;
  timeoutS: number;
  workers: number | undefined;
  force: boolean;
}

const USAGE = `usage: npm run bench -- [options]
  --repos R        repositories in the big tree (default ${DEFAULT_REPOS})
  --tags T         tags per repository (default ${DEFAULT_TAGS_PER_REPO})
  --runs N         timed runs per command (default 5)
  --apply-runs N   timed runs of (d) on the big tree, each on fresh copies (default: --runs)
  --small-apply-runs N  timed runs of (d) on the small tree (default: --runs; 0: skip)
  --seed S         generator seed (default ${DEFAULT_SEED})
  --no-gc          skip (e), docker-registry garbage-collect -m
  --no-apply       skip (d), applying the plan on copies
  --cache MODE     cold: drop the page cache before every run (root only);
                   warm: one untimed warm-up run first; auto (default): cold if possible
  --workdir DIR    where the trees go (default: a new dir in ${tmpdir()}); removed at the end
  --keep           keep the trees
  --out FILE       results file (default bench/results/<date>.json, <date>-<R>x<T>.json off the default size)
  --timeout S      per-command time limit in seconds (default 3600)
  --workers N      generator worker threads (default: one per core)
  --force          run even if the disk looks too small`;

function intOption(text: string | undefined, fallback: number, flag: string, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageFailure(`${flag}: expected an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

class UsageFailure extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      repos: { type: 'string' },
      tags: { type: 'string' },
      runs: { type: 'string' },
      'apply-runs': { type: 'string' },
      'small-apply-runs': { type: 'string' },
      seed: { type: 'string' },
      'no-gc': { type: 'boolean', default: false },
      'no-apply': { type: 'boolean', default: false },
      cache: { type: 'string', default: 'auto' },
      workdir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      out: { type: 'string' },
      timeout: { type: 'string' },
      workers: { type: 'string' },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const cache = values.cache;
  if (cache !== 'auto' && cache !== 'cold' && cache !== 'warm') throw new UsageFailure(`--cache: expected auto, cold or warm, got ${JSON.stringify(cache)}`);
  const runs = intOption(values.runs, 5, '--runs');
  return {
    repos: intOption(values.repos, DEFAULT_REPOS, '--repos'),
    tags: intOption(values.tags, DEFAULT_TAGS_PER_REPO, '--tags'),
    runs,
    applyRuns: intOption(values['apply-runs'], runs, '--apply-runs'),
    smallApplyRuns: intOption(values['small-apply-runs'], runs, '--small-apply-runs', 0),
    seed: intOption(values.seed, DEFAULT_SEED, '--seed', 0),
    gc: !values['no-gc'],
    apply: !values['no-apply'],
    workdir: values.workdir,
    keep: values.keep,
    cache,
    out: values.out,
    timeoutS: intOption(values.timeout, 3600, '--timeout'),
    workers: values.workers === undefined ? undefined : intOption(values.workers, 0, '--workers', 0),
    force: values.force,
  };
}

// ---------------------------------------------------------------- environment

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function commandOutput(argv: string[]): string | undefined {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return undefined;
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : undefined;
}

function which(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    const p = join(dir, name);
    if (dir !== '' && existsSync(p)) return p;
  }
  return undefined;
}

function fsTypeOf(path: string): string {
  try {
    const real = realpathSync(path);
    let best = { mount: '', type: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ');
      if (mount === undefined || type === undefined) continue;
      const m = mount.replace(/\\040/g, ' ');
      if ((real === m || real.startsWith(m.endsWith('/') ? m : `${m}/`)) && m.length >= best.mount.length) best = { mount: m, type };
    }
    return `${best.type} (${best.mount})`;
  } catch {
    return 'unknown';
  }
}

function machineInfo(workdir: string, registryVersion: string | undefined) {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    availableParallelism: availableParallelism(),
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    kernel: release(),
    platform: `${process.platform} ${process.arch}`,
    workdirFs: fsTypeOf(workdir),
    dockerRegistry: registryVersion ?? null,
    gitCommit: commandOutput(['git', '-C', PKG, 'rev-parse', '--short', 'HEAD']) ?? null,
    gitDirty: (commandOutput(['git', '-C', PKG, 'status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
  };
}

// ---------------------------------------------------------------- commands

type TreeId = 'big' | 'small';

interface Command {
  readonly id: string;
  readonly label: string;
  readonly tree: TreeId;
  /** argv to run; for (d) built per run on that run's copy. */
  readonly argv: (root: string) => string[];
  /** Needs the regprune CLI / docker-registry. */
  readonly needs?: 'regprune' | 'registry';
  /** Destroys its tree: runs on a fresh copy each time. */
  readonly destructive?: boolean;
}

interface Result {
  readonly command: Command;
  readonly shown: string;
  samples: Sample[];
  skipped?: string;
  failed?: string;
  output?: Record<string, unknown>;
}

const findBase = (root: string) => ['find', layout(root).repositories];
const CURRENT_LINK = `*/${MANIFESTS}/${TAGS}/*/${CURRENT}/${LINK}`;
/** The entries that hold most of a tree and never a current/link: what a careful `find` skips. */
const PRUNE = ['(', '-name', LAYERS, '-o', '-name', UPLOADS, '-o', '-path', `*/${MANIFESTS}/${REVISIONS}`, '-o', '-path', `*/${MANIFESTS}/${TAGS}/*/${INDEX}`, ')', '-prune', '-o'];
const findPlain = (root: string) => [...findBase(root), '-path', CURRENT_LINK, '-mtime', `+${OLDER_THAN_DAYS}`];
const findPruned = (root: string, print = '-print') => [...findBase(root), ...PRUNE, '-path', CURRENT_LINK, '-mtime', `+${OLDER_THAN_DAYS}`, print];
const regprune = (...args: string[]) => [process.execPath, REGPRUNE_BIN, ...args];

function gcConfig(root: string): string {
  return join(root, '..', `${root.split('/').pop() ?? 'tree'}-gc.yml`);
}

function commands(): Command[] {
  const suffix = `/${CURRENT}/${LINK}`;
  return [
    { id: 'a1', label: 'find -path …/current/link -mtime +30', tree: 'big', argv: findPlain },
    { id: 'a2', label: 'find (prune _layers _uploads revisions index) -mtime +30', tree: 'big', argv: findPruned },
    { id: 'b', label: 'regprune prune --older-than 30d --dry-run --json', tree: 'big', needs: 'regprune', argv: (r) => regprune('prune', '--root', r, '--older-than', `${OLDER_THAN_DAYS}d`, '--dry-run', '--json') },
    { id: 'c', label: 'regprune list --json', tree: 'big', needs: 'regprune', argv: (r) => regprune('list', '--root', r, '--json') },
    { id: 'e2', label: 'regprune prune --older-than 30d --dry-run --json', tree: 'small', needs: 'regprune', argv: (r) => regprune('prune', '--root', r, '--older-than', `${OLDER_THAN_DAYS}d`, '--dry-run', '--json') },
    { id: 'e1', label: 'docker-registry garbage-collect -m --dry-run', tree: 'small', needs: 'registry', argv: (r) => ['docker-registry', 'garbage-collect', '-m', '--dry-run', gcConfig(r)] },
    ...(['big', 'small'] as const).flatMap((tree): Command[] => {
      const sfx = tree === 'big' ? '' : 's';
      return [
        { id: `d1${sfx}`, label: 'regprune prune --older-than 30d --yes --json (copy)', tree, needs: 'regprune', destructive: true, argv: (r) => regprune('prune', '--root', r, '--older-than', `${OLDER_THAN_DAYS}d`, '--yes', '--json') },
        {
          id: `d2${sfx}`,
          label: 'find (prune) -mtime +30 | sed tag dir | xargs rm -rf (copy)',
          tree,
          destructive: true,
          argv: (r) => ['sh', '-c', `${findPruned(r, '-print0').map(shellWord).join(' ')} | sed -z ${shq(`s|${suffix}$||`)} | xargs -0 -r rm -rf`],
        },
      ];
    }),
  ];
}

/** A short look at what a command printed, to cross-check counts between tools. */
function summarizeOutput(cmd: Command, stdoutFile: string): Record<string, unknown> {
  const bytes = fileSize(stdoutFile);
  if (cmd.id.startsWith('a')) return { bytes, lines: countLines(stdoutFile) };
  if (cmd.id === 'e1') {
    const text = readFileSync(stdoutFile, 'utf8');
    const m = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(text);
    return m === null ? { bytes } : { bytes, blobsMarked: Number(m[1]), blobsEligible: Number(m[2]), manifestsEligible: Number(m[3]) };
  }
  if (cmd.needs === 'regprune' && bytes > 0 && bytes < 512 * 2 ** 20) {
    try {
      const doc = JSON.parse(readFileSync(stdoutFile, 'utf8')) as unknown;
      if (typeof doc === 'object' && doc !== null) {
        const out: Record<string, unknown> = { bytes };
        for (const [k, v] of Object.entries(doc)) {
          if (Array.isArray(v)) out[k] = v.length;
          else if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
        }
        return out;
      }
    } catch {
      return { bytes, json: false };
    }
  }
  return { bytes };
}

// ---------------------------------------------------------------- running

interface Context {
  readonly opts: Options;
  readonly work: string;
  readonly roots: Record<TreeId, string>;
  readonly timeBin: string | undefined;
  readonly cold: boolean;
  readonly have: { regprune: boolean; registry: boolean };
}

function unavailable(cmd: Command, ctx: Context): string | undefined {
  if (cmd.needs === 'regprune' && !ctx.have.regprune) return `regprune CLI not built (${REGPRUNE_MAIN} missing; run npm run build)`;
  if (cmd.needs === 'registry' && !ctx.opts.gc) return 'skipped (--no-gc)';
  if (cmd.needs === 'registry' && !ctx.have.registry) return 'docker-registry not installed (apt-get install -y docker-registry)';
  if (cmd.destructive === true && !ctx.opts.apply) return 'skipped (--no-apply)';
  if (cmd.destructive === true && cmd.tree === 'small' && ctx.opts.smallApplyRuns === 0) return 'skipped (--small-apply-runs 0)';
  return undefined;
}

async function runOnce(ctx: Context, result: Result, root: string): Promise<Sample | undefined> {
  const cmd = result.command;
  const files = { stdout: join(ctx.work, `${cmd.id}.out`), stderr: join(ctx.work, `${cmd.id}.err`), rss: join(ctx.work, `${cmd.id}.rss`) };
  if (ctx.cold) dropCaches();
  const sample = await measure(cmd.argv(root), { files, timeBin: ctx.timeBin, timeoutMs: ctx.opts.timeoutS * 1000, cwd: ctx.work });
  // grep-style: regprune exits 0 whether or not it found tags; anything else is a failure here.
  if (sample.exitCode !== 0 || sample.timedOut) {
    const why = sample.timedOut ? `timed out after ${ctx.opts.timeoutS} s` : sample.signal !== null ? `killed by ${sample.signal}` : `exit ${sample.exitCode}`;
    result.failed = `${why}: ${tail(files.stderr) || '(no stderr)'}`;
    log(`  ${cmd.id}: FAILED ${result.failed}`);
    return undefined;
  }
  result.output = summarizeOutput(cmd, files.stdout);
  return sample;
}

/** A command line to paste into a shell. */
function display(argv: readonly string[]): string {
  if (argv[0] === 'sh' && argv[1] === '-c' && argv[2] !== undefined) return argv[2];
  return argv.map(shellWord).join(' ');
}

function copyTree(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  const r = spawnSync('cp', ['-a', from, to], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr.trim()}`);
}

function oldTagsLeft(root: string): number {
  const [cmd, ...args] = findPruned(root);
  const r = spawnSync(cmd as string, args, { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
  let n = 0;
  for (const byte of r.stdout ?? []) if (byte === 10) n++;
  return n;
}

async function runReadOnly(ctx: Context, results: Result[]): Promise<void> {
  const active = () => results.filter((r) => r.skipped === undefined && r.failed === undefined && r.command.destructive !== true);
  if (!ctx.cold) {
    log(`warm-up: one untimed run of each command`);
    for (const r of active()) await runOnce(ctx, r, ctx.roots[r.command.tree]);
  }
  // Rounds interleave the commands, so a slow minute on a shared machine hits all of them alike.
  for (let run = 1; run <= ctx.opts.runs; run++) {
    for (const r of active()) {
      const sample = await runOnce(ctx, r, ctx.roots[r.command.tree]);
      if (sample === undefined) continue;
      r.samples.push(sample);
      log(`  run ${run}/${ctx.opts.runs} ${r.command.id.padEnd(3)} ${sample.seconds.toFixed(2)} s  ${sample.peakRssKb === undefined ? '' : `${(sample.peakRssKb / 1024).toFixed(0)} MB`}`);
    }
  }
}

async function runApply(ctx: Context, results: Result[], tree: TreeId, runs: number): Promise<Record<string, number>> {
  const pair = results.filter((r) => r.command.destructive === true && r.command.tree === tree && r.skipped === undefined);
  const left: Record<string, number> = {};
  if (pair.length === 0) return left;
  const copies = new Map(pair.map((r) => [r.command.id, join(ctx.work, `copy-${r.command.id}`)]));
  for (let run = 1; run <= runs; run++) {
    const live = pair.filter((r) => r.failed === undefined);
    if (live.length === 0) break;
    // Copies are made before timing either command, in alternating order, so neither gets the warmer cache every time.
    const order = run % 2 === 1 ? live : [...live].reverse();
    const started = performance.now();
    for (const r of order) copyTree(ctx.roots[tree], copies.get(r.command.id) as string);
    // Written back before timing: otherwise the first command removes while the
    // kernel is still writing both copies (the second one then runs on a quiet disk).
    spawnSync('sync', [], { stdio: 'ignore' });
    log(`  run ${run}/${runs} copies made and synced in ${((performance.now() - started) / 1000).toFixed(0)} s (not timed)`);
    // Timed in the copies' order too, alternating, so neither always goes first.
    for (const r of order) {
      const copy = copies.get(r.command.id) as string;
      const sample = await runOnce(ctx, r, copy);
      if (sample !== undefined) {
        r.samples.push(sample);
        log(`  run ${run}/${runs} ${r.command.id.padEnd(3)} ${sample.seconds.toFixed(2)} s  ${sample.peakRssKb === undefined ? '' : `${(sample.peakRssKb / 1024).toFixed(0)} MB`}`);
      }
      if (run === runs || r.failed !== undefined) left[r.command.id] = oldTagsLeft(copy);
    }
    // The last copies go with the workdir, after the results are out (or stay, with --keep).
    if (run === runs) break;
    const cleaning = performance.now();
    for (const copy of copies.values()) rmSync(copy, { recursive: true, force: true });
    log(`  run ${run}/${runs} copies removed in ${((performance.now() - cleaning) / 1000).toFixed(0)} s (not timed)`);
  }
  return left;
}

// ---------------------------------------------------------------- report

interface Check {
  readonly id: string;
  readonly description: string;
  readonly value: string;
  readonly target: string;
  /** null: could not be evaluated (a side was skipped or failed). */
  readonly pass: boolean | null;
}

interface Row {
  readonly result: Result;
  readonly spread: Spread | undefined;
  readonly peakRssMb: number | undefined;
}

function rowOf(result: Result): Row {
  const rss = result.samples.map((s) => s.peakRssKb).filter((k): k is number => k !== undefined);
  return { result, spread: spread(result.samples.map((s) => s.seconds)), peakRssMb: rss.length === 0 ? undefined : Math.max(...rss) / 1024 };
}

function ratioCheck(id: string, description: string, rows: Map<string, Row>, num: string, den: string, max: number): Check {
  const a = rows.get(num)?.spread?.median;
  const b = rows.get(den)?.spread?.median;
  if (a === undefined || b === undefined || b === 0) return { id, description, value: 'n/a', target: `≤${max.toFixed(2)}×`, pass: null };
  const ratio = a / b;
  return { id, description, value: `${ratio.toFixed(2)}×`, target: `≤${max.toFixed(2)}×`, pass: ratio <= max };
}

function checks(rows: Map<string, Row>, sizeRatio: number): Check[] {
  const list = [
    ratioCheck('b/a1', '(b) regprune plan vs plain find', rows, 'b', 'a1', 1.0),
    ratioCheck('c/a2', '(c) regprune list vs find -prune', rows, 'c', 'a2', 1.5),
    ratioCheck('d1/d2', '(d) regprune apply vs find | xargs rm -rf, big tree', rows, 'd1', 'd2', 1.0),
    ratioCheck('d1s/d2s', '(d) regprune apply vs find | xargs rm -rf, small tree', rows, 'd1s', 'd2s', 1.0),
  ];
  const gc = rows.get('e1')?.spread?.median;
  const rp = rows.get('e2')?.spread?.median;
  list.push(
    gc === undefined || rp === undefined
      ? { id: 'e1/e2', description: '(e) gc -m --dry-run vs regprune plan, small tree', value: 'n/a', target: '≥20× faster', pass: null }
      : { id: 'e1/e2', description: '(e) gc -m --dry-run vs regprune plan, small tree', value: `${(gc / rp).toFixed(1)}× faster`, target: '≥20× faster', pass: gc / rp >= 20 },
  );
  // Every regprune command on the big tree stays within 256 MB.
  for (const id of ['b', 'c', 'd1']) {
    const rss = rows.get(id)?.peakRssMb;
    list.push({ id: `${id}-rss`, description: `(${id}) peak RSS, big tree`, value: rss === undefined ? 'n/a' : `${rss.toFixed(0)} MB`, target: '≤256 MB', pass: rss === undefined ? null : rss <= 256 });
  }
  const growth = ratioCheck('b/e2', `(b) time growth small → big tree (${sizeRatio.toFixed(1)}× the tags)`, rows, 'b', 'e2', sizeRatio * 1.1);
  list.push(growth);
  return list;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

function table(header: string[], lines: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => pad(c, widths[i] ?? 0, rightAligned.has(i))).join('  ').trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

const BASELINE: Record<string, { of: string; target: string } | undefined> = {
  b: { of: 'a1', target: '≤1.00×' },
  c: { of: 'a2', target: '≤1.50×' },
  d1: { of: 'd2', target: '≤1.00×' },
  d1s: { of: 'd2s', target: '≤1.00×' },
  e2: { of: 'e1', target: '≤0.05×' },
};

function render(rows: Row[], byId: Map<string, Row>, list: Check[], sizes: Record<TreeId, string>): string {
  const verdict = (p: boolean | null | undefined) => (p === true ? 'pass' : p === false ? 'MISS' : '-');
  const checkFor = (id: string) => list.find((c) => c.id === (id === 'e2' ? 'e1/e2' : `${id}/${BASELINE[id]?.of ?? ''}`));
  const lines = rows.map((row) => {
    const { result, spread: s } = row;
    const base = BASELINE[result.command.id];
    const baseMedian = base === undefined ? undefined : byId.get(base.of)?.spread?.median;
    const ratio = s !== undefined && baseMedian !== undefined && baseMedian > 0 ? `${(s.median / baseMedian).toFixed(2)}×` : '';
    const status = result.skipped ?? (result.failed === undefined ? undefined : `failed: ${result.failed}`);
    return [
      result.command.id,
      result.command.label,
      sizes[result.command.tree],
      s === undefined ? '-' : s.median.toFixed(2),
      s === undefined ? (status ?? '-') : `${s.min.toFixed(2)}–${s.max.toFixed(2)} (${result.samples.length})`,
      row.peakRssMb === undefined ? '-' : row.peakRssMb.toFixed(0),
      base?.of ?? '',
      ratio,
      base?.target ?? '',
      base === undefined ? '' : verdict(checkFor(result.command.id)?.pass),
    ];
  });
  const main = table(['id', 'command', 'tree', 'median s', 'spread s (runs)', 'RSS MB', 'vs', 'ratio', 'target', 'result'], lines, new Set([3, 5, 7]));
  const checkLines = list.map((c) => [c.description, c.value, c.target, verdict(c.pass)]);
  return `${main}\n\n${table(['check', 'value', 'target', 'result'], checkLines, new Set([1]))}`;
}

// ---------------------------------------------------------------- main

function sizeLabel(stats: GenerateStats): string {
  const t = stats.tags;
  return t >= 1000 && t % 1000 === 0 ? `${t / 1000}k tags` : `${t} tags`;
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  const smallRepos = Math.max(1, Math.round(opts.repos / 10));
  const timeBin = findGnuTime();
  const registryBin = which('docker-registry');
  const registryVersion = registryBin === undefined ? undefined : commandOutput([registryBin, '--version'])?.split('\n')[0];
  const have = { regprune: existsSync(REGPRUNE_MAIN), registry: registryBin !== undefined };

  const parent = opts.workdir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const work = mkdtempSync(join(parent, 'regprune-bench-'));
  const bigTags = opts.repos * opts.tags;
  const trees = 1 + 0.1 + (opts.apply ? 2 : 0);
  const st = statfsSync(work);
  const needBytes = bigTags * BYTES_PER_TAG * trees;
  const needInodes = bigTags * INODES_PER_TAG * trees;
  const freeBytes = st.bavail * st.bsize;
  log(`workdir ${work} (${fsTypeOf(work)}): need about ${(needBytes / 1e9).toFixed(1)} GB and ${(needInodes / 1e6).toFixed(1)}M inodes, have ${(freeBytes / 1e9).toFixed(1)} GB and ${(st.ffree / 1e6).toFixed(1)}M`);
  if ((needBytes > freeBytes || (st.files > 0 && needInodes > st.ffree)) && !opts.force) {
    rmSync(work, { recursive: true, force: true });
    throw new Error('not enough space in the workdir for the trees (and the two copies of (d)); use --workdir, --no-apply, smaller --repos, or --force');
  }

  let cold = false;
  if (opts.cache !== 'warm') {
    cold = dropCaches();
    if (!cold && opts.cache === 'cold') throw new Error('--cache cold: cannot write /proc/sys/vm/drop_caches (needs root)');
  }
  const cacheNote = cold ? 'cold: page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed run' : 'warm: one untimed warm-up run of each read-only command; (d) runs right after copying';
  log(`cache: ${cacheNote}`);
  log(`peak RSS: ${timeBin === undefined ? 'polling VmHWM in /proc (GNU time not found)' : `${timeBin} -f %M`}`);
  if (!have.regprune) log(`regprune: NOT AVAILABLE (${REGPRUNE_MAIN} missing; run npm run build): its rows are skipped`);
  const loadStart = loadavg();

  const now = new Date();
  const roots: Record<TreeId, string> = { big: join(work, 'big'), small: join(work, 'small') };
  const gen: Record<TreeId, GenerateStats> = {} as Record<TreeId, GenerateStats>;
  for (const [id, repos] of [['small', smallRepos], ['big', opts.repos]] as const) {
    log(`generating the ${id} tree: ${repos} repositories x ${opts.tags} tags ...`);
    gen[id] = await generateTree({ root: roots[id], repos, tagsPerRepo: opts.tags, seed: opts.seed, now, ...(opts.workers === undefined ? {} : { workers: opts.workers }) });
    log(formatStats(gen[id]));
  }
  writeFileSync(gcConfig(roots.small), `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${roots.small}\n`);

  // The registry itself checks the format: garbage-collect without -m must accept the tree and sweep nothing.
  let treeCheck: Record<string, unknown> | undefined;
  if (opts.gc && have.registry) {
    const r = spawnSync('docker-registry', ['garbage-collect', '--dry-run', gcConfig(roots.small)], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const m = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(r.stdout);
    treeCheck = { exitCode: r.status, blobsMarked: m?.[1] === undefined ? null : Number(m[1]), blobsEligible: m?.[2] === undefined ? null : Number(m[2]) };
    const ok = r.status === 0 && m !== null && m[2] === '0';
    log(`tree check: docker-registry garbage-collect --dry-run on the small tree: ${ok ? 'accepted' : 'REJECTED'} (exit ${r.status}, ${m?.[0] ?? r.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  }

  const ctx: Context = { opts, work, roots, timeBin, cold, have };
  const results: Result[] = commands().map((command) => ({
    command,
    shown: display(command.argv(command.destructive === true ? join(work, `copy-${command.id}`) : roots[command.tree])),
    samples: [],
    ...(unavailable(command, ctx) === undefined ? {} : { skipped: unavailable(command, ctx) as string }),
  }));
  log(`timing: ${opts.runs} runs of each read-only command, interleaved`);
  await runReadOnly(ctx, results);
  let oldTagsLeftAfter: Record<string, number> = {};
  if (opts.apply) {
    // The small tree first: its copies are small, and the big tree's copies then go with the workdir.
    log(`timing (d) on the small tree: ${opts.smallApplyRuns} runs, each on fresh copies`);
    const small = await runApply(ctx, results, 'small', opts.smallApplyRuns);
    for (const copy of ['d1s', 'd2s']) rmSync(join(work, `copy-${copy}`), { recursive: true, force: true });
    log(`timing (d) on the big tree: ${opts.applyRuns} runs, each on fresh copies`);
    oldTagsLeftAfter = { ...small, ...(await runApply(ctx, results, 'big', opts.applyRuns)) };
  }
  const loadEnd = loadavg();

  const rows = results.map(rowOf);
  const byId = new Map(rows.map((r) => [r.result.command.id, r]));
  const sizes: Record<TreeId, string> = { big: sizeLabel(gen.big), small: sizeLabel(gen.small) };
  const list = checks(byId, gen.big.tags / gen.small.tags);

  const machine = machineInfo(work, registryVersion);
  const out = [
    `regprune benchmark ${today()}: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryMb} MB, node ${machine.node}, kernel ${machine.kernel}, workdir on ${machine.workdirFs}`,
    `load average ${loadStart.map((l) => l.toFixed(1)).join(' ')} at start, ${loadEnd.map((l) => l.toFixed(1)).join(' ')} at end${loadEnd[0] !== undefined && loadEnd[0] > machine.cores ? ' (busy machine: times are noisy)' : ''}`,
    `cache ${cacheNote}`,
    `trees: big ${gen.big.repos}x${opts.tags} generated in ${gen.big.seconds.toFixed(1)} s, small ${gen.small.repos}x${opts.tags} in ${gen.small.seconds.toFixed(1)} s (seed ${opts.seed})`,
    '',
    render(rows, byId, list, sizes),
    '',
    'commands (ROOT: the tree; COPY: a fresh cp -a of the big tree):',
    ...results.map((r) => `  ${r.command.id.padEnd(3)} ${r.shown.replaceAll(roots.big, 'ROOT').replaceAll(roots.small, 'SMALL').replaceAll(work, 'WORK')}`),
  ];
  const counts = results
    .filter((r) => r.output !== undefined)
    .map((r) => `  ${r.command.id.padEnd(3)} ${Object.entries(r.output ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
  if (counts.length > 0) out.push('', `outputs of the last run (tags older than ${OLDER_THAN_DAYS}d in the big tree: ${gen.big.tagsOlderThan30d}, small: ${gen.small.tagsOlderThan30d}):`, ...counts);
  for (const [id, n] of Object.entries(oldTagsLeftAfter)) out.push(`  after ${id}: ${n} tags older than ${OLDER_THAN_DAYS}d left in its copy`);
  process.stdout.write(`${out.join('\n')}\n`);

  const isDefault = opts.repos === DEFAULT_REPOS && opts.tags === DEFAULT_TAGS_PER_REPO;
  const resultsFile = opts.out ?? join(RESULTS_DIR, isDefault ? `${today()}.json` : `${today()}-${opts.repos}x${opts.tags}.json`);
  mkdirSync(join(resultsFile, '..'), { recursive: true });
  const doc = {
    version: 1,
    date: new Date().toISOString(),
    machine: { ...machine, loadavgStart: loadStart, loadavgEnd: loadEnd },
    options: { ...opts, workdir: work },
    cache: cold ? 'cold' : 'warm',
    rss: timeBin === undefined ? 'proc-vmhwm-poll' : 'gnu-time',
    trees: gen,
    treeCheck: treeCheck ?? null,
    measurements: rows.map((r) => ({
      id: r.result.command.id,
      label: r.result.command.label,
      tree: r.result.command.tree,
      argv: r.result.shown,
      seconds: r.result.samples.map((s) => Number(s.seconds.toFixed(4))),
      median: r.spread?.median ?? null,
      min: r.spread?.min ?? null,
      max: r.spread?.max ?? null,
      peakRssMb: r.peakRssMb === undefined ? null : Number(r.peakRssMb.toFixed(1)),
      // Every run's peak, in the order of \`seconds\`.
      peakRssMbPerRun: r.result.samples.map((x) => (x.peakRssKb === undefined ? null : Number((x.peakRssKb / 1024).toFixed(1)))),
      skipped: r.result.skipped ?? null,
      failed: r.result.failed ?? null,
      output: r.result.output ?? null,
    })),
    oldTagsLeftAfterApply: oldTagsLeftAfter,
    checks: list,
  };
  writeFileSync(resultsFile, `${JSON.stringify(doc, null, 2)}\n`);
  log(`results written to ${resultsFile}`);

  if (opts.keep) log(`trees kept in ${work}`);
  else {
    log(`removing ${work} ...`);
    rmSync(work, { recursive: true, force: true });
  }
  // The benchmark reports misses; it fails only when a command could not run.
  return results.some((r) => r.failed !== undefined) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof UsageFailure) process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  },
);
