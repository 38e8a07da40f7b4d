import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import { pullAndVerify, pushImage, startRegistry, tagsOnDisk, type RunningRegistry } from '../helpers/registry.js';

// regprune restore against the real registry: tags and revision links come
// back (with their push time) while the blobs exist; after garbage-collect
// they are refused; a tag pushed again since is never overwritten.

const regs: RunningRegistry[] = [];
const dirs: string[] = [];
let current: RunningRegistry | undefined;
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && current !== undefined) console.error(`--- registry output ---\n${current.logs()}`);
});
afterAll(async () => {
  for (const r of regs) await r.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const app = parseRepositoryName('app');

async function listed(root: string): Promise<Map<string, { digest: string; pushedAt: string }>> {
  const r = await runRegprune(['list', '--root', root, '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { tags: Array<{ repository: string; tag: string; digest: string; pushedAt: string }> };
  return new Map(out.tags.map((t) => [`${t.repository}:${t.tag}`, { digest: t.digest, pushedAt: t.pushedAt }]));
}

describe('regprune restore LOG', () => {
  test('puts back removed tags and manifests, keeps a tag pushed again since, refuses once garbage-collect swept the blobs', async () => {
    const reg = await startRegistry();
    regs.push(reg);
    current = reg;
    const lay = layout(reg.root);
    const dir = await mkdtemp(join(tmpdir(), 'regprune-restore-'));
    dirs.push(dir);
    const log = join(dir, 'audit.jsonl');
    const v1 = await pushImage(reg.url, 'app', 'v1', { seed: 'rs-v1', layers: ['rs-base', 'rs-v1/top'] });
    const v2 = await pushImage(reg.url, 'app', 'v2', { seed: 'rs-v2', layers: ['rs-base', 'rs-v2/top'] });
    await pushImage(reg.url, 'app', 'keep', { seed: 'rs-keep', layers: ['rs-base'] });
    const before = await listed(reg.root);

    const pruned = await runRegprune(['prune', 'app:v1', 'app:v2', '--root', reg.root, '--yes', '--log', log]);
    expect(pruned.exitCode, pruned.stderr).toBe(0);
    expect([...(await tagsOnDisk(reg.root)).keys()]).toEqual(['app:keep']);
    // v2 is pushed again (another image) after the prune.
    const v2b = await pushImage(reg.url, 'app', 'v2', { seed: 'rs-v2b', layers: ['rs-base'] });

    const dry = await runRegprune(['restore', log, '--root', reg.root, '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/restore\s+tag\s+app:v1/);
    expect(dry.stdout).toMatch(/exists\s+tag\s+app:v2\s+pushed again since: now points to sha256:/);
    expect(dry.stdout).toContain('Dry run: nothing was changed.');
    expect((await tagsOnDisk(reg.root)).has('app:v1')).toBe(false);

    const noYes = await runRegprune(['restore', log, '--root', reg.root]);
    expect(noYes.exitCode).toBe(2);

    const r = await runRegprune(['restore', log, '--root', reg.root, '--yes', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { root: string; tags: Array<{ tag: string; result: string }>; manifests: Array<{ digest: string; result: string }> };
    expect(out.root).toBe(reg.root);
    expect(out.tags.map((t) => [t.tag, t.result])).toEqual([
      ['v1', 'restored'],
      ['v2', 'exists'],
    ]);
    expect(new Set(out.manifests.map((m) => `${m.digest}=${m.result}`))).toEqual(new Set([`${v1.manifest.digest}=restored`, `${v2.manifest.digest}=restored`]));

    // The links are byte-exact and current/link has the logged push time.
    const current1 = lay.tagCurrentLink(app, parseTagName('v1'));
    expect(await readFile(current1, 'utf8')).toBe(v1.manifest.digest);
    expect(await readFile(lay.revisionLink(app, v1.manifest.digest), 'utf8')).toBe(v1.manifest.digest);
    expect(await readFile(lay.tagIndexLink(app, parseTagName('v1'), v1.manifest.digest), 'utf8')).toBe(v1.manifest.digest);
    const after = await listed(reg.root);
    expect(after.get('app:v1')).toEqual(before.get('app:v1'));
    expect(after.get('app:v2')?.digest).toBe(v2b.manifest.digest);
    expect(Math.floor((await stat(current1)).mtimeMs)).toBe(Date.parse(before.get('app:v1')?.pushedAt ?? ''));
    // Through the running registry: v1 pulls again, v2 is the new push, v2's old manifest by digest.
    await pullAndVerify(reg.url, 'app', 'v1');
    expect((await pullAndVerify(reg.url, 'app', 'v2')).digest).toBe(v2b.manifest.digest);
    await pullAndVerify(reg.url, 'app', v2.manifest.digest);

    // Restoring again changes nothing.
    const again = await runRegprune(['restore', log, '--root', reg.root, '--yes']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain('Nothing to restore');

    // Prune v1 again, this time with garbage-collect: its unique blobs are swept, so it cannot come back.
    const log2 = join(dir, 'audit2.jsonl');
    const gc = await runRegprune(['prune', 'app:v1', '--root', reg.root, '--yes', '--log', log2, '--gc', 'local', '--gc-config', reg.configPath, '--quiet']);
    expect(gc.exitCode, gc.stderr).toBe(0);
    const refused = await runRegprune(['restore', log2, '--root', reg.root, '--yes']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toMatch(/refused\s+manifest\s+app@sha256:[a-f0-9]{64}\s+(?:manifest blob|blob) sha256:[a-f0-9]{64}.* is gone \(garbage-collect ran\)/);
    expect(refused.stdout).toMatch(/refused\s+tag\s+app:v1\s+its manifest cannot come back/);
    expect((await tagsOnDisk(reg.root)).has('app:v1')).toBe(false);
    const lines = (await readFile(log2, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { action: string }).filter((l) => l.action !== 'run-start');
    expect(lines.map((l) => l.action)).toEqual(['remove-tag', 'remove-manifest', 'gc']);
  });

  test('input that is not an audit log: exit 2, nothing created (it used to print a warning per line, exit 0 and create .regprune)', async () => {
    const reg = await startRegistry();
    regs.push(reg);
    // A copy of /etc/passwd (the file the issue names): only ever read, but kept in the test's own dir.
    const dir = await mkdtemp(join(tmpdir(), 'regprune-restore-'));
    dirs.push(dir);
    const passwd = join(dir, 'passwd');
    await copyFile('/etc/passwd', passwd);
    const r = await runRegprune(['restore', passwd, '--root', reg.root, '--yes']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`regprune: ${passwd} is not a regprune audit log: none of its`);
    expect(r.stderr).toMatch(/none of its \d+ lines is an audit record/);
    expect(r.stderr).not.toContain('ignored');
    await expect(stat(layout(reg.root).stateDir)).rejects.toThrow(/ENOENT/);
  });

  test('files it creates are owned like their parent directory (a registry running as another user can push that tag again)', async () => {
    const reg = await startRegistry();
    regs.push(reg);
    current = reg;
    const dir = await mkdtemp(join(tmpdir(), 'regprune-restore-'));
    dirs.push(dir);
    const log = join(dir, 'audit.jsonl');
    await pushImage(reg.url, 'app', 'v1', { seed: 'ro-v1', layers: ['ro-base', 'ro-v1/top'] });
    await pushImage(reg.url, 'app', 'keep', { seed: 'ro-keep', layers: ['ro-base'] });
    const pruned = await runRegprune(['prune', 'app:v1', '--root', reg.root, '--yes', '--log', log]);
    expect(pruned.exitCode, pruned.stderr).toBe(0);
    // The registry's user owns its tree (uid/gid 4242 here); regprune runs as root.
    await execa('chown', ['-R', '4242:4243', join(reg.root, 'docker')]);
    const r = await runRegprune(['restore', log, '--root', reg.root, '--yes']);
    expect(r.exitCode, r.stderr + r.stdout).toBe(0);
    const lay = layout(reg.root);
    const made = [lay.tag(app, parseTagName('v1')), lay.tagCurrentDir(app, parseTagName('v1')), lay.tagCurrentLink(app, parseTagName('v1'))];
    for (const p of made) expect(await stat(p).then((s) => `${s.uid}:${s.gid}`), p).toBe('4242:4243');
    await pullAndVerify(reg.url, 'app', 'v1');
  });
});
