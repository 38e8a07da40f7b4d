import { existsSync, readdirSync, statSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { applyAges } from '../../fixtures/ages.mjs';
import { REPO_ROOT, runRegprune, type RunResult } from '../helpers/cli.js';

// Issue 8, "done when": the standalone executable, copied alone into an empty directory and run
// with no node anywhere on PATH, and the npm tarball, installed offline into a fresh prefix,
// each give the same dry run on the sample registry as ./bin/regprune (the tsc build).
//
// The suite is built first (test/run.sh: `npm run build`); this file adds the packaging step,
// `node bin/package.mjs` (what `npm run package` runs after the build), when its outputs are
// missing or older than the sources. It does not rerun tsc itself: other test files are running
// bin/regprune from dist/src at the same time.

const FIXTURE = fileURLToPath(new URL('../../fixtures/sample-registry', import.meta.url));
const AGES = fileURLToPath(new URL('../../fixtures/sample-ages.json', import.meta.url));
const DIST = join(REPO_ROOT, 'dist');
const EXE_NAME = `regprune-${process.platform}-${process.arch}`;
const EXE = join(DIST, EXE_NAME);
const MJS = join(DIST, 'regprune.mjs');
const ENTRYPOINT = join(REPO_ROOT, 'docs/container/entrypoint.sh');
const DEMO = ['--older-than', '30d', '--keep-last', '2'];
// Where node lives, for the runs that may use it (the tarball's bin has `#!/usr/bin/env node`).
const NODE_PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies?: Record<string, string>;
};

async function run(file: string, args: readonly string[], opts: { cwd?: string; env: Record<string, string>; timeoutMs?: number }): Promise<RunResult> {
  const r = await execa(file, args, {
    reject: false,
    extendEnv: false,
    env: { NO_COLOR: '1', ...opts.env },
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? 60_000,
  });
  const why = r.exitCode === undefined ? `\n[${file} did not run normally: ${r.shortMessage ?? r.signal ?? '?'}]` : '';
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) + why };
}

function must(what: string, r: RunResult): RunResult {
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

function newestMtime(paths: readonly string[]): number {
  let newest = 0;
  for (const p of paths) {
    const st = statSync(p);
    if (st.isDirectory()) {
      newest = Math.max(newest, newestMtime(readdirSync(p).map((n) => join(p, n))));
    } else {
      newest = Math.max(newest, st.mtimeMs);
    }
  }
  return newest;
}

/** The single-file builds, made by bin/package.mjs when missing or older than what goes into them. */
async function singleFileBuilds(): Promise<string> {
  const packager = join(REPO_ROOT, 'bin/package.mjs');
  if (!existsSync(packager)) throw new Error('bin/package.mjs is missing: `npm run package` has nothing to run');
  const inputs = [join(REPO_ROOT, 'src'), join(REPO_ROOT, 'package.json'), packager, join(REPO_ROOT, 'bin/write-build.mjs')];
  const fresh = [EXE, MJS].every((f) => existsSync(f) && statSync(f).mtimeMs >= newestMtime(inputs));
  if (fresh) return 'up to date';
  must('node bin/package.mjs (the packaging step of `npm run package`)', await run(process.execPath, [packager], { env: { PATH: NODE_PATH }, timeoutMs: 180_000 }));
  for (const f of [EXE, MJS]) if (!existsSync(f)) throw new Error(`bin/package.mjs ran but did not produce ${f}`);
  return 'built';
}

/** `npm pack` into `dir`: the tarball and the files in it. */
async function pack(dir: string): Promise<{ tarball: string; files: string[] }> {
  if (!existsSync(join(DIST, 'src/cli/main.js'))) throw new Error('dist/src is not built: run `npm run build` (test/run.sh does) before this suite');
  // --ignore-scripts: prepack would rerun `npm run build`; the suite is built already (see top).
  const packed = must('npm pack', await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { env: { PATH: NODE_PATH }, timeoutMs: 120_000 }));
  const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const first = info[0];
  if (first === undefined) throw new Error(`npm pack printed no package:\n${packed.stdout}`);
  return { tarball: join(dir, basename(first.filename)), files: first.files.map((f) => f.path) };
}

/** `npm i -g` of the tarball into `dir/prefix`, offline, with an empty cache; returns the installed bin. */
async function installOffline(dir: string, tarball: string): Promise<string> {
  const prefix = join(dir, 'prefix');
  const cache = join(dir, 'empty-npm-cache');
  await mkdir(cache);
  // An empty cache makes --offline honest: any dependency not inside the tarball is ENOTCACHED.
  const installed = await run('npm', ['i', '-g', '--prefix', prefix, '--offline', '--cache', cache, '--no-audit', '--no-fund', tarball], {
    env: { PATH: NODE_PATH, HOME: dir },
    timeoutMs: 170_000,
  });
  if (installed.exitCode !== 0) {
    throw new Error(
      `the tarball did not install offline (a dependency left to download? package.json bundleDependencies must cover every dependency):\n${installed.stdout}\n${installed.stderr}`,
    );
  }
  return join(prefix, 'bin', 'regprune');
}

type Json = Record<string, unknown>;
/** The dry run's JSON without what differs between two runs a second apart. */
function comparable(r: RunResult, what: string): Json {
  if (r.exitCode !== 0) throw new Error(`${what} exited ${r.exitCode}:\n${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as Json;
  delete out.createdAt;
  return out;
}

const VERSION_LINE = new RegExp(`^${pkg.version.replace(/\./g, '\\.')} \\([0-9a-f]{7,}(-dirty)?\\)$`);

describe('packaging: standalone executable, single-file bundle, offline tarball', () => {
  let work: string;
  let sample: string;
  let reference: { list: Json; prune: Json };
  // Each part fails only its own tests: a tarball that does not install says nothing about the executable.
  let builds: PromiseSettledResult<string> | undefined;
  let packed: PromiseSettledResult<{ tarball: string; files: string[] }> | undefined;
  let installed: PromiseSettledResult<string> | undefined;
  const need = <T>(part: PromiseSettledResult<T> | undefined): T => {
    if (part === undefined) throw new Error('setup did not get this far');
    if (part.status === 'rejected') throw part.reason;
    return part.value;
  };
  const timings: string[] = [];
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await f();
    } finally {
      timings.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    }
  };

  // As test/helpers/suite.ts's setupSuite (a failing setup FAILS every test rather than skipping
  // them), with room for the packaging: tens of seconds on a loaded machine.
  let setupFailure: { error: unknown } | undefined;
  beforeAll(async () => {
    try {
      await setup();
    } catch (error) {
      setupFailure = { error };
    }
  }, 300_000);
  beforeEach(() => {
    if (setupFailure !== undefined) throw setupFailure.error;
  });

  async function setup(): Promise<void> {
    work = await mkdtemp(join(tmpdir(), 'regprune-package-'));
    sample = join(work, 'sample-registry');
    await cp(FIXTURE, sample, { recursive: true });
    // The CLIs read the real clock; no age is within days of 30d, so this is stable.
    await applyAges(sample, AGES, new Date());
    const packing = timed('npm pack', () => pack(work));
    [builds, packed, installed] = await Promise.allSettled([
      timed('single-file builds', singleFileBuilds),
      packing,
      packing.then((p) => timed('offline install', () => installOffline(work, p.tarball))),
    ]);
    reference = {
      list: comparable(await runRegprune(['list', '--root', sample, '--json']), './bin/regprune list'),
      prune: comparable(await runRegprune(['prune', '--root', sample, ...DEMO, '--dry-run', '--json']), './bin/regprune prune --dry-run'),
    };
    expect((reference.prune.tags as unknown[]).length, 'the sample dry run selects something').toBeGreaterThan(0);
  }

  afterAll(async () => {
    if (timings.length > 0) console.log(`package.test.ts: ${timings.join(', ')}`);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('the standalone executable is a linux-x64 ELF program', async () => {
    need(builds);
    expect(process.platform === 'linux' && process.arch === 'x64', 'these tests build and run the linux-x64 executable').toBe(true);
    const fh = await open(EXE, 'r');
    const head = Buffer.alloc(20);
    await fh.read(head, 0, 20, 0);
    await fh.close();
    expect(head.subarray(0, 4).toString('latin1'), `${EXE} is not an ELF file`).toBe('\x7fELF');
    expect(head.readUInt16LE(18), 'e_machine: x86-64').toBe(0x3e);
    expect(statSync(EXE).mode & 0o111, 'executable bits').not.toBe(0);
  });

  test('the standalone executable, alone in an empty directory with no node on PATH, dry-runs the sample like bin/regprune', async () => {
    need(builds);
    const alone = join(work, 'alone');
    await mkdir(alone);
    const exe = join(alone, 'regprune');
    await copyFile(EXE, exe);
    expect(await readdir(alone)).toEqual(['regprune']);
    const env = { PATH: '/nonexistent' };
    // Nothing to fall back on: with this environment there is no node to find.
    const node = await execa('node', ['--version'], { reject: false, extendEnv: false, env, cwd: alone });
    expect(node.exitCode, 'node must not be reachable on the PATH the executable gets').toBeUndefined();

    const version = await run(exe, ['--version'], { cwd: alone, env });
    expect(version.exitCode, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(VERSION_LINE);
    expect(version.stderr, 'no experimental-feature warning in cron mail').toBe('');

    expect(comparable(await run(exe, ['list', '--root', sample, '--json'], { cwd: alone, env }), 'standalone list')).toEqual(reference.list);
    expect(comparable(await run(exe, ['prune', '--root', sample, ...DEMO, '--dry-run', '--json'], { cwd: alone, env }), 'standalone prune --dry-run')).toEqual(
      reference.prune,
    );
  });

  test('dist/regprune.mjs needs only node, also behind the container entrypoint (root from REGPRUNE_ROOT)', async () => {
    need(builds);
    const alone = join(work, 'bundle');
    await mkdir(alone);
    const mjs = join(alone, 'regprune.mjs');
    await copyFile(MJS, mjs);
    const env = { PATH: NODE_PATH };

    const version = await run(process.execPath, [mjs, '--version'], { cwd: alone, env });
    expect(version.exitCode, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(VERSION_LINE);
    expect(comparable(await run(process.execPath, [mjs, 'prune', '--root', sample, ...DEMO, '--dry-run', '--json'], { cwd: alone, env }), 'node regprune.mjs prune')).toEqual(
      reference.prune,
    );

    // As in the image: the entrypoint execs node on the bundle; no --root, the image sets REGPRUNE_ROOT.
    const viaEntrypoint = await run('/bin/sh', [ENTRYPOINT, 'prune', ...DEMO, '--dry-run', '--json'], {
      cwd: alone,
      env: { ...env, REGPRUNE_BUNDLE: mjs, REGPRUNE_ROOT: sample },
    });
    expect(comparable(viaEntrypoint, 'entrypoint.sh prune')).toEqual(reference.prune);
  });

  test('the npm tarball carries what its bin runs, and every dependency', () => {
    const { tarball, files: list } = need(packed);
    const files = new Set(list);
    for (const f of ['package.json', 'bin/regprune', 'dist/src/cli/main.js', 'dist/BUILD']) {
      expect(files.has(f), `${f} in ${basename(tarball)}`).toBe(true);
    }
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      expect(files.has(`node_modules/${dep}/package.json`), `dependency ${dep} bundled in ${basename(tarball)}`).toBe(true);
    }
    expect([...files].filter((f) => f.startsWith('bin/')), 'only the launcher from bin/ (not the packaging scripts)').toEqual(['bin/regprune']);
  });

  test('installed offline into a fresh prefix, the tarball dry-runs the sample like bin/regprune', async () => {
    const bin = need(installed);
    const env = { PATH: NODE_PATH };
    const version = await run(bin, ['--version'], { cwd: work, env });
    expect(version.exitCode, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(VERSION_LINE);
    expect(comparable(await run(bin, ['list', '--root', sample, '--json'], { cwd: work, env }), 'installed list')).toEqual(reference.list);
    expect(comparable(await run(bin, ['prune', '--root', sample, ...DEMO, '--dry-run', '--json'], { cwd: work, env }), 'installed prune --dry-run')).toEqual(
      reference.prune,
    );
  });
});
