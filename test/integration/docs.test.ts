import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { applyAges } from '../../fixtures/ages.mjs';
import { REGPRUNE_BIN, REPO_ROOT } from '../helpers/cli.js';
import { docBlocks, type DocBlock } from '../helpers/doc-blocks.js';

// Every shell block of README.md and docs/*.md runs here against a fresh copy
// of the sample registry, or says why it cannot (`<!-- doctest: skip REASON -->`,
// see test/helpers/doc-blocks.ts). The commands run as written, through bash,
// with $REGPRUNE_ROOT set to the copy, and these host paths pointing into the
// test's temp dir instead:
//   /srv/registry, /var/lib/registry, /var/lib/docker-registry -> the sample registry copy
//   /etc/regprune/policy.yaml  -> a copy of docs/policy.example.yaml
//   /var/log/regprune, /var/lib/node_exporter/textfile -> empty dirs
// and `regprune` and `sudo` (which only runs its arguments) first on PATH. The working
// directory has docs/policy.example.yaml, as the root of a checkout does.

const FIXTURE = fileURLToPath(new URL('../../fixtures/sample-registry', import.meta.url));
const AGES = fileURLToPath(new URL('../../fixtures/sample-ages.json', import.meta.url));

async function documents(): Promise<Array<{ path: string; label: string }>> {
  const docs = (await readdir(join(REPO_ROOT, 'docs'))).filter((n) => n.endsWith('.md')).sort();
  return [{ path: join(REPO_ROOT, 'README.md'), label: 'README.md' }, ...docs.map((n) => ({ path: join(REPO_ROOT, 'docs', n), label: `docs/${n}` }))];
}

const blocks: DocBlock[] = (await documents()).flatMap((d) => docBlocks(d.path, d.label));
const runnable = blocks.filter((b) => b.skip === undefined && b.badMarker === undefined);

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function sandbox(): Promise<{ dir: string; env: Record<string, string>; rewrite: (code: string) => string }> {
  const dir = await mkdtemp(join(tmpdir(), 'regprune-docs-'));
  dirs.push(dir);
  const registry = join(dir, 'registry');
  await cp(FIXTURE, registry, { recursive: true });
  // The CLI reads the real clock; no age is within days of a documented cutoff.
  await applyAges(registry, AGES, new Date());
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'regprune'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(REGPRUNE_BIN)} "$@"\n`);
  await writeFile(join(bin, 'sudo'), '#!/bin/sh\nexec "$@"\n');
  await chmod(join(bin, 'regprune'), 0o755);
  await chmod(join(bin, 'sudo'), 0o755);
  await mkdir(join(dir, 'etc'));
  await copyFile(join(REPO_ROOT, 'docs/policy.example.yaml'), join(dir, 'etc/policy.yaml'));
  // Commands that name files of the checkout (docs/policy.example.yaml) run where they would: its root.
  await mkdir(join(dir, 'docs/examples'), { recursive: true });
  await copyFile(join(REPO_ROOT, 'docs/policy.example.yaml'), join(dir, 'docs/policy.example.yaml'));
  await mkdir(join(dir, 'log'));
  await mkdir(join(dir, 'textfile'));
  const rewrite = (code: string) =>
    code
      .replace(/\/srv\/registry|\/var\/lib\/docker-registry|\/var\/lib\/registry/g, registry)
      .replace(/\/etc\/regprune\/policy\.yaml/g, join(dir, 'etc/policy.yaml'))
      .replace(/\/var\/log\/regprune/g, join(dir, 'log'))
      .replace(/\/var\/lib\/node_exporter\/textfile/g, join(dir, 'textfile'));
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, TMPDIR: dir, LANG: 'C.UTF-8', REGPRUNE_ROOT: registry };
  return { dir, env, rewrite };
}

describe('documentation', () => {
  test('every shell block either runs here or says why not; no marker is misspelled', () => {
    expect(blocks.length).toBeGreaterThan(10);
    expect(blocks.filter((b) => b.badMarker !== undefined).map((b) => `${b.where}: ${b.badMarker}`)).toEqual([]);
    for (const b of blocks) if (b.skip !== undefined) expect(b.skip.length, `${b.where}: a reason`).toBeGreaterThan(10);
    // Most of what the docs show must actually run.
    expect(runnable.length).toBeGreaterThanOrEqual(8);
  });

  test.each(runnable.map((b) => [b.where, b] as const))('%s runs against the sample registry', async (_where, block) => {
    const box = await sandbox();
    const script = box.rewrite(block.code);
    // The tests run as root: a block that would still touch a system path is not run.
    const commands = script
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join('\n');
    const outside = commands.match(/(?:^|[\s'"=(])\/(?:etc|usr|var|opt|srv|root|home|boot|lib|bin|sbin|run|proc|sys)\/\S*/gm) ?? [];
    expect(outside, `${block.where} touches paths outside the sandbox; mark it skip or use the documented paths`).toEqual([]);
    const r = await execa('bash', ['-o', 'pipefail', '-c', block.exit === 0 ? `set -e\n${script}` : script], {
      cwd: box.dir,
      env: box.env,
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    expect(r.exitCode, `${block.where}\n--- script ---\n${script}--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`).toBe(block.exit);
  });
});

describe('docs/install.md: the checksum made at build time checks after the documented copy', () => {
  test('sha256sum as written in the build step, scp of both files to /tmp, then sha256sum -c there', async () => {
    const box = await sandbox();
    const install = blocks.filter((b) => b.where.startsWith('docs/install.md:'));
    const made = install.flatMap((b) => b.code.split('\n')).find((l) => /sha256sum .*> .*\.sha256/.test(l));
    const copy = install.flatMap((b) => b.code.split('\n')).find((l) => /^scp .*\.sha256/.test(l));
    const check = install.flatMap((b) => b.code.split('\n')).find((l) => /sha256sum -c /.test(l));
    expect(made, 'the build step makes a .sha256 file').toBeDefined();
    expect(copy, 'the copy step copies it').toBeDefined();
    expect(check, 'the host checks it').toBeDefined();
    await mkdir(join(box.dir, 'dist'));
    await writeFile(join(box.dir, 'dist/regprune-linux-x64'), 'not really an executable\n');
    const sh = (script: string) => execa('bash', ['-euo', 'pipefail', '-c', script], { cwd: box.dir, env: box.env, extendEnv: false, reject: false });
    const built = await sh(made as string);
    expect(built.exitCode, built.stderr).toBe(0);
    // scp FILES... registry-host:/tmp/ -> the files, side by side, in the host's /tmp.
    const files = (copy as string).split(/\s+/).filter((w) => w.startsWith('dist/'));
    expect(files.length).toBe(2);
    await mkdir(join(box.dir, 'host-tmp'));
    for (const f of files) await copyFile(join(box.dir, f), join(box.dir, 'host-tmp', f.slice('dist/'.length)));
    const checked = await sh((check as string).replace(/\/tmp\b/g, join(box.dir, 'host-tmp')));
    expect(checked.exitCode, `${checked.stdout}\n${checked.stderr}`).toBe(0);
    expect(checked.stdout).toContain('regprune-linux-x64: OK');
  });
});
