import { closeSync, openSync, statfsSync, writeSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import { findRegistryBinary, startRegistry, tagsOnDisk, type RunningRegistry } from '../helpers/registry.js';
import { pushSample } from '../helpers/sample.js';

// A full disk is this tool's normal case: pushes fail with 500 because the disk is full, and
// that is when an operator runs regprune. tmpfs has no reserved blocks: filled to the last
// byte, the seed request must still run with every guarantee, and garbage-collect must then
// free the predicted bytes. A small tmpfs is mounted by the test (we run as root).

const mounts: string[] = [];
const dirs: string[] = [];
let reg: RunningRegistry | undefined;
afterAll(async () => {
  await reg?.stop();
  for (const m of mounts) await execa('umount', [m], { reject: false });
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Writes until the filesystem has not one byte left (ENOSPC at a 1-byte write). */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as { code?: string }).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

const SEED = ['i1:T12', 'i2:T22', 'i5:T52'];

describe('a filesystem with no free byte (tmpfs)', () => {
  test('the seed request runs with every guarantee; --log there is refused first; garbage-collect frees the predicted bytes; no stale state', async () => {
    const mnt = await mkdtemp(join(tmpdir(), 'regprune-full-'));
    dirs.push(mnt);
    const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0755', 'tmpfs', mnt], { reject: false });
    expect(mounted.exitCode, `this test mounts a tmpfs (needs root): ${mounted.stderr}`).toBe(0);
    mounts.push(mnt);
    const root = join(mnt, 'registry');
    await mkdir(root);
    reg = await startRegistry({ root });
    await pushSample(reg.url);
    await reg.stop();
    const lay = layout(root);

    const dry = await runRegprune(['prune', ...SEED, '--root', root, '--dry-run', '--json']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { tags: Array<{ repository: string; tag: string }>; reclaimableBytes: number };
    const removed = plan.tags.map((t) => `${t.repository}:${t.tag}`).sort();
    expect(removed.length).toBeGreaterThanOrEqual(3);
    expect(plan.reclaimableBytes).toBeGreaterThan(0);

    fill(join(mnt, 'filler'));
    expect(statfsSync(mnt).bavail, 'no byte left').toBe(0);

    // What a crash or a full disk left behind with older versions: an empty lock file, a
    // cut-off journal temp file. Creating empty files needs no data block here.
    await mkdir(lay.stateDir);
    await writeFile(lay.lockFile, '');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(lay.lockFile, anHourAgo, anHourAgo);
    await writeFile(`${lay.journalFile}.1764000000000-77.tmp`, '');

    // --log on the full filesystem: refused before anything is removed, with the way out.
    const logged = await runRegprune(['prune', ...SEED, '--root', root, '--yes', '--log', join(mnt, 'audit.jsonl')]);
    expect(logged.exitCode, logged.stderr).toBe(1);
    expect(logged.stderr).toContain(`regprune: cannot write the audit log ${join(mnt, 'audit.jsonl')}`);
    expect(logged.stderr).toContain('nothing was removed');
    expect(logged.stderr).toMatch(/hint: .*--log a file on another filesystem.*or run without --log/);
    for (const t of removed) expect((await tagsOnDisk(root)).has(t), `${t} still there`).toBe(true);

    const r = await runRegprune(['prune', ...SEED, '--root', root, '--yes', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('note: took over an empty or cut-short lock file');
    expect(r.stderr).not.toMatch(/unexpected error|\n\s+at /);
    const out = JSON.parse(r.stdout) as { tags: Array<{ repository: string; tag: string }>; notRemoved: { tags: unknown[]; manifests: unknown[] } };
    expect(out.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(removed);
    expect(out.notRemoved).toEqual({ tags: [], manifests: [] });
    const left = await tagsOnDisk(root);
    for (const t of removed) expect(left.has(t), `${t} removed`).toBe(false);

    // No stale lock or state: only the (empty) trash stays.
    expect((await readdir(lay.stateDir)).sort()).toEqual(['trash']);
    expect(await readdir(lay.trashDir)).toEqual([]);

    const gc = await runRegprune(['gc', 'local', '--registry-bin', await findRegistryBinary(), '--gc-config', reg.configPath, '--root', root, '--json']);
    expect(gc.exitCode, gc.stderr).toBe(0);
    const freed = (JSON.parse(gc.stdout) as { gc: { freedBytes: number } }).gc.freedBytes;
    expect(freed).toBe(plan.reclaimableBytes);

    // A later run finds nothing stale.
    const later = await runRegprune(['prune', 'i1:T11', '--root', root, '--yes']);
    expect(later.exitCode, later.stderr).toBe(0);
    expect(later.stderr).not.toContain('took over');
    expect(later.stdout).not.toContain('left in trash');
    await expect(lstat(lay.lockFile)).rejects.toThrow(/ENOENT/);
  }, 180_000);
});
