import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import { findRegistryBinary, pushImage, pushSignature, registryConfig, startRegistry, type RunningRegistry } from '../helpers/registry.js';

// Nothing outside the tree, ever: each directory or file any command may touch is replaced,
// one at a time, by a symbolic link to a victim directory outside the root (holding what was
// there, the most tempting content), and every command runs. The victim must come out byte
// for byte, mode and mtime the same. Real registry trees; real garbage-collect.

const dirs: string[] = [];
let reg: RunningRegistry;
let work: string;
/** The tree as pushed. */
let seed: string;
/** The same after `prune app:v1 app:v2 --yes --log`: restore and garbage-collect have work there. */
let pruned: string;
let prunedLog: string;
let registryBin: string;

afterAll(async () => {
  await reg?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'regprune-contain-'));
  dirs.push(work);
  seed = join(work, 'seed');
  await mkdir(seed);
  reg = await startRegistry({ root: seed });
  const v1 = await pushImage(reg.url, 'app', 'v1', { seed: 'ct-v1', layers: ['ct-base', 'ct-v1/top'] });
  await pushSignature(reg.url, 'app', v1.manifest);
  await pushImage(reg.url, 'app', 'v2', { seed: 'ct-v2', layers: ['ct-base', 'ct-v2/top'] });
  await pushImage(reg.url, 'app', 'keep', { seed: 'ct-keep', layers: ['ct-base'] });
  await pushImage(reg.url, 'team/lib', 't1', { seed: 'ct-t1', layers: ['ct-lib'] });
  await reg.stop();
  registryBin = await findRegistryBinary();
  pruned = join(work, 'pruned');
  await cp(seed, pruned, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  prunedLog = join(work, 'pruned.jsonl');
  const r = await runRegprune(['prune', 'app:v1', 'app:v2', '--root', pruned, '--yes', '--log', prunedLog]);
  expect(r.exitCode, r.stderr).toBe(0);
}, 120_000);

/** Every entry below `dir`: type, mode, size, mtime, content hash or link text (links never followed). */
async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    const head = `${rel} mode=${st.mode.toString(8)} mtime=${st.mtimeMs} uid=${st.uid}`;
    if (st.isSymbolicLink()) out.push(`${head} -> ${await readlink(path)}`);
    else if (st.isFile()) out.push(`${head} size=${st.size} sha256=${createHash('sha256').update(await readFile(path)).digest('hex')}`);
    else if (st.isDirectory()) {
      out.push(`${head} dir`);
      for (const name of (await readdir(path)).sort()) await visit(join(path, name), `${rel}/${name}`);
    } else out.push(`${head} other`);
  };
  await visit(dir, '.');
  return out;
}

const lay = (root: string) => layout(root);
const HEX = 'e'.repeat(64);

/** The places any command may touch, relative to a root; state ones may not exist yet. */
const TARGETS: ReadonlyArray<[name: string, path: (root: string) => string]> = [
  ['the state dir .regprune', (r) => lay(r).stateDir],
  ['the trash', (r) => lay(r).trashDir],
  ['the journal', (r) => lay(r).journalFile],
  ['the journal dir (full-disk form)', (r) => lay(r).journalDir],
  ['the lock', (r) => lay(r).lockFile],
  ['a repository (app)', (r) => lay(r).repository('app' as never)],
  ['a nested repository (team/lib)', (r) => lay(r).repository('team/lib' as never)],
  ['_layers', (r) => join(lay(r).repository('app' as never), '_layers')],
  ['_layers/sha256', (r) => lay(r).layers('app' as never)],
  ['_manifests', (r) => join(lay(r).repository('app' as never), '_manifests')],
  ['_manifests/revisions', (r) => join(lay(r).repository('app' as never), '_manifests', 'revisions')],
  ['revisions/sha256', (r) => lay(r).revisions('app' as never)],
  ['_manifests/tags', (r) => lay(r).tags('app' as never)],
  ['a tag dir (v1)', (r) => lay(r).tag('app' as never, 'v1' as never)],
  ['a tag dir (keep)', (r) => lay(r).tag('app' as never, 'keep' as never)],
  ['current (v1)', (r) => lay(r).tagCurrentDir('app' as never, 'v1' as never)],
  ['current (v2)', (r) => lay(r).tagCurrentDir('app' as never, 'v2' as never)],
];

/**
 * A copy of `from` with `target` replaced by a link to a victim directory that holds
 * what was there (or decoys: a lock-like file, a 64-hex dir with a link, a trash-like entry).
 */
async function trap(from: string, caseDir: string, target: (root: string) => string): Promise<{ root: string; victim: string }> {
  const root = join(caseDir, 'root');
  await cp(from, root, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const victim = join(caseDir, 'victim');
  const path = target(root);
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isDirectory() === true) await rename(path, victim);
  else {
    if (existing !== undefined) await rm(path);
    await mkdir(victim);
  }
  await mkdir(join(victim, HEX), { recursive: true });
  await writeFile(join(victim, HEX, 'link'), `sha256:${HEX}`);
  await writeFile(join(victim, 'precious.txt'), 'must survive\n');
  await mkdir(join(path, '..'), { recursive: true });
  await symlink(victim, path);
  return { root, victim };
}

describe('containment: a symlink anywhere below the root is never followed by any command', () => {
  test.each(TARGETS)('%s replaced by a symlink to a victim: every command leaves the victim untouched', async (_name, target) => {
    const caseDir = await mkdtemp(join(work, 'case-'));
    const a = await trap(seed, join(caseDir, 'a'), target).catch(async () => {
      await mkdir(join(caseDir, 'a'), { recursive: true });
      return trap(seed, join(caseDir, 'a'), target);
    });
    const b = await (async () => {
      await mkdir(join(caseDir, 'b'), { recursive: true });
      return trap(pruned, join(caseDir, 'b'), target);
    })();
    const beforeA = await fingerprint(a.victim);
    const beforeB = await fingerprint(b.victim);
    const config = join(caseDir, 'config.yml');
    await writeFile(config, registryConfig({ root: b.root, port: 1, readOnly: false }));
    const log = join(caseDir, 'restore.jsonl');
    // The log of the prune, as if written for this root.
    await writeFile(log, (await readFile(prunedLog, 'utf8')).replaceAll(JSON.stringify(pruned).slice(1, -1), b.root));

    const runs: Array<[string, string[]]> = [
      ['list', ['list', '--root', a.root]],
      ['du', ['du', '--root', a.root]],
      ['check', ['check', '--root', a.root]],
      ['prune dry-run', ['prune', 'app:v1', 'app:v2', '--root', a.root, '--dry-run']],
      ['prune --yes', ['prune', 'app:v1', 'app:v2', '--root', a.root, '--yes', '--log', join(caseDir, 'audit.jsonl')]],
      ['prune --untagged --yes', ['prune', '--untagged', '--root', a.root, '--yes']],
      ['restore dry-run', ['restore', log, '--root', b.root, '--dry-run']],
      ['restore --yes', ['restore', log, '--root', b.root, '--yes']],
      ['gc (garbage-collect, then the dangling-layer-link cleanup)', ['gc', 'local', '--registry-bin', registryBin, '--gc-config', config, '--root', b.root]],
      ['check (pruned tree)', ['check', '--root', b.root]],
    ];
    for (const [what, argv] of runs) {
      const r = await runRegprune(argv);
      expect(r.stderr, `${what}: no stack trace`).not.toMatch(/unexpected error|\n\s+at /);
      expect([0, 1, 2, 3], `${what}: exit ${r.exitCode}\n${r.stderr}`).toContain(r.exitCode);
    }
    expect(await fingerprint(a.victim), 'victim of the commands on the pushed tree').toEqual(beforeA);
    expect(await fingerprint(b.victim), 'victim of restore and gc on the pruned tree').toEqual(beforeB);
  }, 120_000);

  test('a symlinked .regprune/trash is refused with a clear message before anything is removed (it used to be emptied by every prune --yes)', async () => {
    const caseDir = await mkdtemp(join(work, 'case-'));
    const { root, victim } = await trap(seed, caseDir, (r) => lay(r).trashDir);
    const r = await runRegprune(['prune', 'app:v2', '--root', root, '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`regprune: refusing to create directory ${lay(root).trashDir}: ${lay(root).trashDir} is a symbolic link`);
    expect(await readFile(join(victim, 'precious.txt'), 'utf8')).toBe('must survive\n');
    // Nothing was removed: the tag is still there.
    expect((await lstat(lay(root).tagCurrentLink('app' as never, 'v2' as never))).isFile()).toBe(true);
    // An empty run (nothing selected to remove) used to empty the victim while "finishing" the trash.
    const empty = await runRegprune(['prune', 'app:nope', '--root', root, '--yes']);
    expect(empty.stderr).toContain('is a symbolic link');
    // check names the link, and does not list the victim's files as leftover trash.
    const check = await runRegprune(['check', '--root', root]);
    expect(check.stdout + check.stderr).toContain(lay(root).trashDir);
    expect(check.stdout + check.stderr).toMatch(/symbolic link/);
    expect(check.stdout + check.stderr).not.toContain('left by an interrupted regprune run');
    expect(await readFile(join(victim, 'precious.txt'), 'utf8')).toBe('must survive\n');
  }, 60_000);

  test('restore never writes through a symlinked repository, and needs --root (never the root named in the log)', async () => {
    const caseDir = await mkdtemp(join(work, 'case-'));
    const { root, victim } = await trap(pruned, caseDir, (r) => lay(r).repository('app' as never));
    const log = join(caseDir, 'log.jsonl');
    await writeFile(log, (await readFile(prunedLog, 'utf8')).replaceAll(JSON.stringify(pruned).slice(1, -1), root));
    const before = await fingerprint(victim);
    const noRoot = await runRegprune(['restore', log, '--yes']);
    expect(noRoot.exitCode).toBe(2);
    expect(noRoot.stderr).toContain('restore needs the storage root: pass --root DIR (or set REGPRUNE_ROOT)');
    const r = await runRegprune(['restore', log, '--root', root, '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('is a symbolic link');
    expect(await fingerprint(victim)).toEqual(before);
  }, 60_000);
});
