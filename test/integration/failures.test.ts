import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import { findRegistryBinary, pushImage, startRegistry, tagManifest, tagsOnDisk, type RunningRegistry } from '../helpers/registry.js';

// Failures end in one line naming the path and the operation, with nothing half-done;
// what is wrong on the command line is refused (exit 2) before anything on disk is touched.

const regs: RunningRegistry[] = [];
const dirs: string[] = [];
const mounts: string[] = [];
afterAll(async () => {
  for (const r of regs) await r.stop();
  for (const m of mounts.reverse()) await execa('umount', [m], { reject: false });
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmpfs(dir: string, options: string): Promise<void> {
  const r = await execa('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { reject: false });
  expect(r.exitCode, `this test mounts a tmpfs (needs root): ${r.stderr}`).toBe(0);
  mounts.push(dir);
}

async function world(tags = 0) {
  const reg = await startRegistry();
  regs.push(reg);
  const img = await pushImage(reg.url, 'app', 'v1', { seed: 'fl-v1', layers: ['fl-base', 'fl-v1/top'] });
  await pushImage(reg.url, 'app', 'keep', { seed: 'fl-keep', layers: ['fl-base'] });
  for (let i = 0; i < tags; i++) await tagManifest(reg.url, 'app', `t${String(i).padStart(3, '0')}`, img.manifest);
  await reg.stop();
  const dir = await mkdtemp(join(tmpdir(), 'regprune-fail-'));
  dirs.push(dir);
  return { reg, dir, lay: layout(reg.root) };
}

describe('refused up front (exit 2), nothing on disk touched', () => {
  test.each([
    ['--log /proc/nonexist/x, dry run', ['prune', 'app:v1', '--dry-run', '--log', '/proc/nonexist/x'], '--log /proc/nonexist/x: directory /proc/nonexist does not exist'],
    ['--log /proc/nonexist/x, real run', ['prune', 'app:v1', '--yes', '--log', '/proc/nonexist/x'], '--log /proc/nonexist/x: directory /proc/nonexist does not exist'],
    ['--registry-bin /nonexistent', ['prune', 'app:v1', '--yes', '--gc', 'local', '--registry-bin', '/nonexistent'], '--registry-bin /nonexistent: not found or not executable'],
    ['--gc-config that does not exist', ['gc', 'local', '--registry-bin', 'REGISTRY_BIN', '--gc-config', '/nonexistent/config.yml'], 'garbage-collect config /nonexistent/config.yml does not exist in this host'],
  ])('%s', async (_name, argv, message) => {
    const w = await world();
    const bin = await findRegistryBinary();
    const r = await runRegprune([...argv.map((a) => (a === 'REGISTRY_BIN' ? bin : a)), '--root', w.reg.root]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`regprune: ${message}`);
    await expect(lstat(w.lay.stateDir), 'no lock, trash or journal was made').rejects.toThrow(/ENOENT/);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  }, 60_000);

  test('--log that is a symbolic link is refused', async () => {
    const w = await world();
    // The link points at a victim file of the test's own (never at a system file: a regprune
    // that followed it would append there).
    const victim = join(w.dir, 'victim.txt');
    await writeFile(victim, 'root:x:0:0:root:/root:/bin/bash\n');
    await execa('ln', ['-s', victim, join(w.dir, 'log.jsonl')]);
    const r = await runRegprune(['prune', 'app:v1', '--yes', '--root', w.reg.root, '--log', join(w.dir, 'log.jsonl')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`regprune: --log ${join(w.dir, 'log.jsonl')} is a symbolic link; give the file itself`);
    await expect(lstat(w.lay.stateDir)).rejects.toThrow(/ENOENT/);
    expect(await readFile(victim, 'utf8')).toBe('root:x:0:0:root:/root:/bin/bash\n');
  }, 60_000);
});

describe('errors are one line, exit 1, nothing half-done', () => {
  test('a read-only filesystem (EROFS): one line naming the path and the call; the rerun on a writable one finishes', async () => {
    const w = await world();
    const mnt = join(w.dir, 'ro');
    await mkdir(mnt);
    await tmpfs(mnt, 'size=8m');
    const root = join(mnt, 'root');
    await execa('cp', ['-a', w.reg.root, root]);
    await execa('mount', ['-o', 'remount,ro', mnt]);
    const r = await runRegprune(['prune', 'app:v1', '--yes', '--root', root]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`regprune: mkdir ${layout(root).stateDir}: EROFS: read-only file system, mkdir '${layout(root).stateDir}'\n`);
    await execa('mount', ['-o', 'remount,rw', mnt]);
    const again = await runRegprune(['prune', 'app:v1', '--yes', '--root', root]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect((await tagsOnDisk(root)).has('app:v1')).toBe(false);
  }, 60_000);

  test('the trash on another filesystem than docker/registry/v2: refused before anything is removed, with a hint (it used to delete in place, without re-check or put back)', async () => {
    const w = await world();
    await mkdir(w.lay.stateDir);
    await tmpfs(w.lay.stateDir, 'size=1m');
    const r = await runRegprune(['prune', 'app:v1', '--yes', '--root', w.reg.root]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`regprune: ${w.lay.trashDir} is on another filesystem than ${w.lay.v2}`);
    expect(r.stderr).toContain('hint: ');
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  }, 60_000);
});

describe('the audit log is written ahead', () => {
  test('when the log fills up mid-run, the run stops before the next removal; every removal made is in the log, and restore puts them all back', async () => {
    const w = await world(40);
    const logDir = join(w.dir, 'log');
    await mkdir(logDir);
    // One page: room for the first lines only.
    await tmpfs(logDir, 'size=4k');
    const log = join(logDir, 'audit.jsonl');
    const before = await tagsOnDisk(w.reg.root);
    const r = await runRegprune(['prune', '--tag', 't*', '--root', w.reg.root, '--yes', '--log', log]);
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/regprune: writing .*audit\.jsonl: ENOSPC.*; stopped before the next removal/);
    const after = await tagsOnDisk(w.reg.root);
    const removed = [...before.keys()].filter((t) => !after.has(t));
    expect(removed.length).toBeGreaterThan(0);
    expect(removed.length, 'stopped early').toBeLessThan(40);
    const logged = (await readFile(log, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as { action: string; repository: string; tag: string })
      .filter((l) => l.action === 'remove-tag')
      .map((l) => `${l.repository}:${l.tag}`);
    for (const t of removed) expect(logged, `${t} was removed without a log line`).toContain(t);
    // Nothing half-done: the trash is empty and the lock released.
    expect(await readdir(w.lay.trashDir)).toEqual([]);
    await expect(lstat(w.lay.lockFile)).rejects.toThrow(/ENOENT/);
    const restored = await runRegprune(['restore', log, '--root', w.reg.root, '--yes']);
    expect(restored.exitCode, restored.stderr + restored.stdout).toBe(0);
    expect([...(await tagsOnDisk(w.reg.root)).keys()].sort()).toEqual([...before.keys()].sort());
    expect((await stat(log)).size).toBeGreaterThan(0);
  }, 120_000);
});
