import { cp, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { layout } from '../../src/storage/paths.js';
import { REGPRUNE_BIN, REPO_ROOT, runRegprune } from '../helpers/cli.js';
import { pullAndVerify, pushImage, startRegistry, tagsOnDisk, type RunningRegistry } from '../helpers/registry.js';

// SIGINT/SIGTERM during apply (a container's PID 1 gets SIGTERM on stop): the entries in
// hand are finished, nothing more starts, the lock is released, exit 130/143, and a rerun
// finishes the rest.

const regs: RunningRegistry[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const r of regs) await r.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const TAGS = 3000;

describe('signals during apply', () => {
  test.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s: the entries in hand finish, the lock is released, exit %i; the rerun finishes', async (signal, code) => {
    const reg = await startRegistry();
    regs.push(reg);
    await pushImage(reg.url, 'app', 'keep', { seed: 'sg-keep', layers: ['sg-base'] });
    await pushImage(reg.url, 'app', 'v1', { seed: 'sg-v1', layers: ['sg-base', 'sg-v1/top'] });
    await reg.stop();
    const lay = layout(reg.root);
    // Many tags on the same manifest, copied as the registry wrote v1's (same bytes, same mtimes).
    const v1 = lay.tag('app' as never, 'v1' as never);
    for (let i = 0; i < TAGS; i++) await cp(v1, lay.tag('app' as never, `t${i}` as never), { recursive: true, preserveTimestamps: true });
    const dir = await mkdtemp(join(tmpdir(), 'regprune-signal-'));
    dirs.push(dir);

    const child = execa(process.execPath, [REGPRUNE_BIN, 'prune', '--tag', 't*', '--root', reg.root, '--yes', '--quiet'], {
      reject: false,
      cwd: REPO_ROOT,
      stdin: 'ignore',
      timeout: 120_000,
    });
    // Apply has begun once a tag is gone.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const left = (await readdir(lay.tags('app' as never))).length;
      if (left < TAGS + 2) break;
      if (Date.now() > deadline) throw new Error('apply never started');
      await new Promise((r) => setTimeout(r, 2));
    }
    child.kill(signal);
    const r = await child;
    expect(r.exitCode, r.stderr).toBe(code);
    expect(r.stderr).toContain(`regprune: ${signal}: finishing the entries in hand, then stopping`);
    expect(r.stderr).toMatch(/regprune: interrupted \(SIG(?:TERM|INT)\): the entries in hand were finished, nothing more was removed/);
    const left = await tagsOnDisk(reg.root);
    const remaining = [...left.keys()].filter((t) => /^app:t\d+$/.test(t)).length;
    expect(remaining, 'stopped before the end').toBeGreaterThan(0);
    expect(remaining).toBeLessThan(TAGS);
    // Nothing half-done: every tag dir left is whole (tagsOnDisk read its link), the trash is empty, no lock.
    for (const name of await readdir(lay.tags('app' as never))) expect(left.has(`app:${name}`), `${name} is whole`).toBe(true);
    expect(await readdir(lay.trashDir)).toEqual([]);
    await expect(lstat(lay.lockFile)).rejects.toThrow(/ENOENT/);

    const again = await runRegprune(['prune', '--tag', 't*', '--root', reg.root, '--yes']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect([...(await tagsOnDisk(reg.root)).keys()].sort()).toEqual(['app:keep', 'app:v1']);
    await reg.restart();
    await pullAndVerify(reg.url, 'app', 'v1');
  }, 180_000);
});
