import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { execa } from 'execa';
import { parseRepositoryName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { REGPRUNE_BIN, REPO_ROOT, runRegprune } from '../helpers/cli.js';
import { blobStoreBytes, pullAndVerify, pushImage, startRegistry, tagsOnDisk, type PushedImage, type RunningRegistry } from '../helpers/registry.js';
import { makeStandins, restartControl, type StandinConfig, type Standins } from '../helpers/standins.js';

// Every garbage-collect mode through stand-in docker/kubectl/registry
// executables first on PATH: the argv regprune builds is asserted exactly,
// and the garbage-collect that runs is the real one, on this test's storage.

const V2_CONFIG = '/etc/docker/registry/config.yml';
const V3_CONFIG = '/etc/distribution/config.yml';
const REMINDER = /reminder: garbage-collect is not safe while images are pushed.*REGISTRY_STORAGE_MAINTENANCE_READONLY/;
const STALE = /warning: garbage-collect deleted \d+ blobs? and the registry was not restarted\..*HEAD 200.*\nfix: /s;

const app = parseRepositoryName('app');

interface World {
  reg: RunningRegistry;
  v1: PushedImage;
  v2: PushedImage;
  standins: Standins;
  dir: string;
  log: string;
}

let world: World | undefined;
const cleanups: Array<() => Promise<void>> = [];

async function setup(config: Omit<StandinConfig, 'registryBin'>, tools?: Parameters<typeof makeStandins>[1]): Promise<World> {
  const reg = await startRegistry();
  cleanups.push(() => reg.stop());
  // v1 and v2 share a base layer: pruning v1 frees its manifest, config and top layer only.
  const v1 = await pushImage(reg.url, 'app', 'v1', { seed: 'gm-v1', layers: ['gm-base', 'gm-v1/top'] });
  const v2 = await pushImage(reg.url, 'app', 'v2', { seed: 'gm-v2', layers: ['gm-base', 'gm-v2/top'] });
  const standins = await makeStandins({ ...config, registryBin: reg.bin }, tools);
  cleanups.push(() => standins.remove());
  const dir = await mkdtemp(join(tmpdir(), 'regprune-gc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  world = { reg, v1, v2, standins, dir, log: join(dir, 'audit.jsonl') };
  return world;
}

const exists = async (p: string) => stat(p).then(
  () => true,
  () => false,
);

async function auditLines(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.action !== 'run-start'); // the line that proves the log can be written, before anything happens
}

/** The calls that prove garbage-collect sees this storage: config, environment, the marker read back. */
const proof = (exec: string[], config: string, root: string) => [
  [...exec, 'cat', config],
  [...exec, 'env'],
  [...exec, 'cat', expect.stringMatching(new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\.regprune/marker-[0-9a-f-]{36}$`))],
];

const v1Bytes = (w: World) => w.v1.manifest.size + w.v1.config.size + (w.v1.layers[1]?.size ?? 0);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && world !== undefined) console.error(`--- registry output ---\n${world.reg.logs()}`);
  world = undefined;
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

describe('--gc docker:CONTAINER', () => {
  test('finds the config, runs the real garbage-collect in the container, frees the predicted bytes, removes dangling layer links, logs', async () => {
    const w = await setup({ containers: ['registry'], files: { [V2_CONFIG]: '' } });
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'docker:registry', '--log', w.log], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await w.standins.calls()).toEqual([
      ['docker', 'exec', 'registry', 'test', '-f', V2_CONFIG],
      ...proof(['docker', 'exec', 'registry'], V2_CONFIG, w.reg.root),
      ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2_CONFIG],
    ]);
    const out = JSON.parse(r.stdout) as { reclaimableBytes: number; gc: Record<string, unknown> };
    expect(out.reclaimableBytes).toBe(v1Bytes(w));
    expect(out.gc).toMatchObject({
      mode: 'docker:registry',
      command: ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2_CONFIG],
      exitCode: 0,
      marked: 4,
      blobsEligible: 3,
      manifestsEligible: 0,
      freedBytes: out.reclaimableBytes,
      blobsDeleted: 3,
      layerLinksRemoved: 2,
      configUsed: V2_CONFIG,
      configSource: 'found',
      restart: null,
      staleCache: true,
      ok: true,
    });
    expect(before - (await blobStoreBytes(w.reg.root))).toBe(v1Bytes(w));
    // 2.8 left the repository's links of the swept config and layer; regprune removed them, and only them.
    const lay = layout(w.reg.root);
    expect(await exists(lay.layer(app, w.v1.config.digest))).toBe(false);
    expect(await exists(lay.layer(app, w.v1.layers[1]!.digest))).toBe(false);
    expect(await exists(lay.layer(app, w.v1.layers[0]!.digest))).toBe(true);
    expect(await exists(lay.layers(app))).toBe(true);
    expect(r.stderr).toContain(`garbage-collect config: ${V2_CONFIG} (found in container registry)`);
    expect(r.stderr).toMatch(REMINDER);
    expect(r.stderr).toMatch(STALE);
    expect(r.stderr).toContain('fix: restart the registry now (docker restart registry), or run with --restart');
    // garbage-collect's own lines are passed on (no TTY), the per-item marking lines are not.
    expect(r.stderr).toMatch(/garbage-collect: 4 blobs marked, 3 blobs and 0 manifests eligible for deletion/);
    expect(r.stderr).not.toMatch(/marking blob/);

    const lines = await auditLines(w.log);
    expect(lines.map((l) => [l.action, l.repository ?? null, l.tag ?? null])).toEqual([
      ['remove-tag', 'app', 'v1'],
      ['remove-manifest', 'app', null],
      ['gc', null, null],
    ]);
    expect(lines[0]).toMatchObject({ digest: w.v1.manifest.digest, root: w.reg.root, reason: expect.any(String), pushedAt: expect.any(String) });
    expect(lines[2]).toMatchObject({ mode: 'docker:registry', ok: true, freedBytes: out.reclaimableBytes, layerLinksRemoved: 2, exitCode: 0 });
    await pullAndVerify(w.reg.url, 'app', 'v2');
    expect(await exists(layout(w.reg.root).lockFile)).toBe(false);
  });

  test('human output: config used, counts, bytes freed', async () => {
    const w = await setup({});
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'docker:registry', '--gc-config', V2_CONFIG, '--quiet'], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`garbage-collect in container registry with ${V2_CONFIG}: 4 blobs marked, 3 blobs and 0 manifests eligible for deletion.`);
    expect(r.stdout).toMatch(/Freed \d+(\.\d)? KiB \(3 blobs\); removed 2 dangling layer links\./);
    expect(before - (await blobStoreBytes(w.reg.root))).toBe(v1Bytes(w));
    expect(r.stdout).not.toContain('Run garbage-collect');
    expect(r.stdout).not.toContain('Next:');
    expect(r.stdout).toMatch(/\nregprune: ok: removed 1 tag, unlinked 1 manifest; garbage-collect freed \d+(\.\d)? KiB; [\d.]+s \(exit 0\)\n$/);
    // --quiet: no reminder, no passed-on lines; the stale-cache warning stays.
    expect(r.stderr).not.toMatch(REMINDER);
    expect(r.stderr).not.toContain('garbage-collect: ');
    expect(r.stderr).toMatch(STALE);
    expect(await w.standins.calls()).toEqual([
      ['docker', 'exec', 'registry', 'test', '-f', V2_CONFIG],
      ...proof(['docker', 'exec', 'registry'], V2_CONFIG, w.reg.root),
      ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2_CONFIG],
    ]);
  });
});

describe('--gc kubectl:...', () => {
  test('deployment in a namespace, with a context: registry:3 config found second, rollout restart + status', async () => {
    const w = await setup({});
    const control = await restartControl(() => w.reg.restart());
    cleanups.push(() => control.close());
    await w.standins.configure({
      deployments: { infra: ['registry'] },
      contexts: ['prod'],
      files: { [V3_CONFIG]: w.reg.configPath },
      registryBin: w.reg.bin,
      restartUrl: control.url,
    });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(
      ['prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'kubectl:infra/deployment/registry', '--kube-context', 'prod', '--restart'],
      { env: { PATH: w.standins.path() } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const k = ['kubectl', '--context', 'prod'];
    expect(await w.standins.calls()).toEqual([
      [...k, 'exec', '-n', 'infra', 'deployment/registry', '--', 'test', '-f', V2_CONFIG],
      [...k, 'exec', '-n', 'infra', 'deployment/registry', '--', 'test', '-f', V3_CONFIG],
      ...proof([...k, 'exec', '-n', 'infra', 'deployment/registry', '--'], V3_CONFIG, w.reg.root),
      [...k, 'exec', '-n', 'infra', 'deployment/registry', '--', 'registry', 'garbage-collect', V3_CONFIG],
      [...k, 'rollout', 'restart', '-n', 'infra', 'deployment/registry'],
      [...k, 'rollout', 'status', '-n', 'infra', 'deployment/registry'],
    ]);
    const out = JSON.parse(r.stdout) as { reclaimableBytes: number; gc: Record<string, unknown> };
    // What left the disk, measured: v1's manifest, config and top layer (the base layer is v2's too).
    const freed = before - (await blobStoreBytes(w.reg.root));
    expect(freed).toBe(v1Bytes(w));
    expect(out.gc).toMatchObject({ mode: 'kubectl:infra/deployment/registry', configUsed: V3_CONFIG, freedBytes: freed, staleCache: false });
    expect(out.reclaimableBytes).toBe(freed);
    expect(out.gc.restart).toMatchObject({ result: 'restarted', commands: [[...k, 'rollout', 'restart', '-n', 'infra', 'deployment/registry'], [...k, 'rollout', 'status', '-n', 'infra', 'deployment/registry']] });
    expect(control.count()).toBe(1);
    expect(r.stderr).not.toMatch(STALE);
    expect(r.stderr).toContain(`garbage-collect config: ${V3_CONFIG} (found in deployment infra/registry)`);
    // The restart's output is labelled as the restart's, not as garbage-collect's.
    expect(r.stderr).toContain('restart: deployment.apps/registry restarted\n');
    expect(r.stderr).not.toContain('garbage-collect: deployment.apps/registry restarted');
    await pullAndVerify(w.reg.url, 'app', 'v2');
  });

  test('regprune gc on a bare pod with --gc-config and --gc-dry-run: nothing deleted, no restart needed', async () => {
    const w = await setup({});
    await w.standins.configure({ pods: { default: ['registry-0'] }, files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin });
    const pruned = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes']);
    expect(pruned.exitCode, pruned.stderr).toBe(0);
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(['gc', 'kubectl:registry-0', '--gc-config', V2_CONFIG, '--gc-dry-run', '--root', w.reg.root, '--json'], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await w.standins.calls()).toEqual([
      ['kubectl', 'exec', 'registry-0', '--', 'test', '-f', V2_CONFIG],
      ...proof(['kubectl', 'exec', 'registry-0', '--'], V2_CONFIG, w.reg.root),
      ['kubectl', 'exec', 'registry-0', '--', 'registry', 'garbage-collect', '--dry-run', V2_CONFIG],
    ]);
    const out = JSON.parse(r.stdout) as { root: string; gc: Record<string, unknown> };
    expect(out.root).toBe(w.reg.root);
    expect(out.gc).toMatchObject({ mode: 'kubectl:registry-0', dryRun: true, blobsEligible: 3, freedBytes: 0, layerLinksRemoved: 0, configSource: 'given', staleCache: false, ok: true });
    expect(await blobStoreBytes(w.reg.root)).toBe(before);
  });

  test('--restart with a bare pod is a usage error before anything is touched', async () => {
    const w = await setup({ pods: { default: ['registry-0'] } });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'kubectl:registry-0', '--restart'], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--restart needs a deployment: a bare pod \(registry-0\) is not restarted in place/);
    expect(await w.standins.calls()).toEqual([]);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  });
});

describe('--gc local', () => {
  test('the registry binary on PATH (before docker-registry), --restart-cmd split without a shell', async () => {
    const w = await setup({});
    const control = await restartControl(() => w.reg.restart());
    cleanups.push(() => control.close());
    await w.standins.configure({ registryBin: w.reg.bin, restartUrl: control.url });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(
      ['prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'local', '--gc-config', w.reg.configPath, '--restart-cmd', "restart-registry --now 'the registry'"],
      { env: { PATH: w.standins.path() } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await w.standins.calls()).toEqual([
      ['registry', 'garbage-collect', w.reg.configPath],
      ['restart-registry', '--now', 'the registry'],
    ]);
    const out = JSON.parse(r.stdout) as { reclaimableBytes: number; gc: Record<string, unknown> };
    expect(out.gc).toMatchObject({
      mode: 'local',
      command: [join(w.standins.binDir, 'registry'), 'garbage-collect', w.reg.configPath],
      freedBytes: before - (await blobStoreBytes(w.reg.root)),
      staleCache: false,
      restart: { result: 'restarted', commands: [['restart-registry', '--now', 'the registry']] },
    });
    expect(control.count()).toBe(1);
    expect(before - (await blobStoreBytes(w.reg.root))).toBe(v1Bytes(w));
    expect(out.reclaimableBytes).toBe(v1Bytes(w));
  });
});

describe('usage errors: nothing touched, nothing run', () => {
  test.each([
    [['--gc', 'docker:'], /--gc "docker:": empty container name/],
    [['--gc', 'docker:a;rm -rf /'], /not a docker container name/],
    [['--gc', 'kubectl:Infra/registry'], /not a Kubernetes namespace/],
    [['--gc', 'kubectl:a/b/c/d'], /expected kubectl:\[NAMESPACE\/\]POD/],
    [['--gc', 'ssh:host'], /unknown garbage-collect mode/],
    [['--gc', 'kubectl:registry-0', '--kube-context', '-x'], /not a kubeconfig context name/],
    [['--gc', 'docker:registry', '--kube-context', 'prod'], /--kube-context applies only to --gc kubectl/],
    [['--gc', 'local', '--restart-cmd', 'systemctl restart registry && echo done'], /would need a shell/],
    [['--restart'], /--restart needs --gc MODE/],
    [['--gc', 'docker:registry', '--gc-config', 'config.yml'], /--gc-config "config.yml": expected an absolute path/],
  ])('%j', async (args, message) => {
    const w = await setup({ containers: ['registry'], pods: { default: ['registry-0'] } });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', ...args], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await w.standins.calls()).toEqual([]);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  });
});

describe('failures exit 1 with a clear message; the log holds what was done', () => {
  test('no such container: found before anything is removed', async () => {
    const w = await setup({ containers: ['registry'] });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'docker:nope', '--log', w.log], { env: { PATH: w.standins.path() } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      `regprune: cannot reach container nope for garbage-collect: docker exec nope test -f ${V2_CONFIG}: exit code 1: Error response from daemon: No such container: nope`,
    );
    expect(await w.standins.calls()).toEqual([['docker', 'exec', 'nope', 'test', '-f', V2_CONFIG]]);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
    const lines = await auditLines(w.log);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ action: 'gc', mode: 'docker:nope', ok: false, error: expect.stringContaining('No such container: nope') });
    expect(await exists(layout(w.reg.root).lockFile)).toBe(false);
  });

  test('kubectl missing from PATH', async () => {
    const w = await setup({ containers: ['registry'] }, ['docker']);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'kubectl:registry-0', '--log', w.log], {
      env: { PATH: w.standins.path('') },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('regprune: cannot reach pod registry-0 for garbage-collect: kubectl: not found on PATH');
    expect(r.stderr).toContain('hint: install kubectl or put it on PATH');
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
    expect((await auditLines(w.log)).map((l) => [l.action, l.ok])).toEqual([['gc', false]]);
  });

  test('garbage-collect exits non-zero: the removals are done and logged, the failure too', async () => {
    const w = await setup({});
    const broken = join(w.dir, 'broken.yml');
    // Names the right storage (the proof passes) but garbage-collect refuses it.
    await writeFile(broken, `version: 9.9\nstorage:\n  filesystem:\n    rootdirectory: ${w.reg.root}\n`);
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: broken }, registryBin: w.reg.bin });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'docker:registry', '--restart', '--log', w.log], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`regprune: garbage-collect failed: docker exec registry registry garbage-collect ${V2_CONFIG} failed: exit code \\d+`));
    expect(r.stderr).toContain('hint: nothing more was done after it');
    const out = JSON.parse(r.stdout) as { tags: unknown[]; gc: Record<string, unknown> };
    expect(out.tags).toHaveLength(1);
    expect(out.gc).toMatchObject({ ok: false, freedBytes: 0, layerLinksRemoved: 0, restart: { result: 'skipped' } });
    expect(out.gc.exitCode).not.toBe(0);
    expect(await blobStoreBytes(w.reg.root)).toBe(before);
    expect(await w.standins.calls()).toEqual([
      ['docker', 'exec', 'registry', 'test', '-f', V2_CONFIG],
      ...proof(['docker', 'exec', 'registry'], V2_CONFIG, w.reg.root),
      ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2_CONFIG],
    ]);
    const lines = await auditLines(w.log);
    expect(lines.map((l) => l.action)).toEqual(['remove-tag', 'remove-manifest', 'gc']);
    expect(lines[2]).toMatchObject({ ok: false, error: expect.stringContaining('failed: exit code') });
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(false);
  });

  test('restart fails: garbage-collect did its job, the failure and the stale cache are reported', async () => {
    const w = await setup({});
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin, restartFails: true });
    const before = await blobStoreBytes(w.reg.root);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'docker:registry', '--restart', '--log', w.log], {
      env: { PATH: w.standins.path() },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'regprune: restart failed: docker restart registry failed: exit code 1: Error response from daemon: Cannot restart container registry: simulated failure',
    );
    expect(r.stderr).toMatch(STALE);
    expect(await w.standins.calls()).toEqual([
      ['docker', 'exec', 'registry', 'test', '-f', V2_CONFIG],
      ...proof(['docker', 'exec', 'registry'], V2_CONFIG, w.reg.root),
      ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2_CONFIG],
      ['docker', 'restart', 'registry'],
    ]);
    const out = JSON.parse(r.stdout) as { reclaimableBytes: number; gc: Record<string, unknown> };
    // garbage-collect did its job before the restart failed: measured on disk.
    const freed = before - (await blobStoreBytes(w.reg.root));
    expect(freed).toBe(v1Bytes(w));
    expect(out.gc).toMatchObject({ ok: false, freedBytes: freed, staleCache: true, restart: { result: 'failed', exitCode: 1 } });
    expect(out.reclaimableBytes).toBe(freed);
    const lines = await auditLines(w.log);
    expect(lines.map((l) => l.action)).toEqual(['remove-tag', 'remove-manifest', 'gc']);
    expect(lines[2]).toMatchObject({ ok: false, restart: 'failed', freedBytes: freed });
  });
});

describe('lock', () => {
  test('an overlapping run exits 1 at once with the lock message; a dry run still works; the storage stays consistent', async () => {
    const w = await setup({});
    const waiting = join(w.dir, 'gc-waiting');
    const release = join(w.dir, 'gc-release');
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin, holdGc: { waiting, release } });
    // The first run holds the lock while its garbage-collect waits.
    const first = execa(process.execPath, [REGPRUNE_BIN, 'prune', 'app:v1', '--root', w.reg.root, '--yes', '--json', '--gc', 'docker:registry', '--quiet'], {
      reject: false,
      cwd: REPO_ROOT,
      env: { PATH: w.standins.path() },
      stdin: 'ignore',
      timeout: 60_000,
    });
    const deadline = Date.now() + 30_000;
    while (!(await exists(waiting))) {
      if (Date.now() > deadline) throw new Error('the first run never reached garbage-collect');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The lock is a symlink whose text names the owner (created whole in one step, no data block needed).
    const lockText = await readlink(layout(w.reg.root).lockFile);
    const owner = JSON.parse(lockText) as { pid: number; startedAt: string; hostname: string };
    expect(owner.pid).toBe(first.pid);

    const t0 = Date.now();
    // (garbage-collect's container and config are checked before the lock: the stand-ins must be on PATH)
    const second = await runRegprune(['prune', 'app:v2', '--root', w.reg.root, '--yes', '--gc', 'docker:registry'], { env: { PATH: w.standins.path() } });
    expect(second.exitCode).toBe(1);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(second.stderr).toContain(`regprune: another regprune run (pid ${owner.pid}, started ${owner.startedAt}) holds the lock on ${w.reg.root}`);
    const gcCallsWhileHeld = (await w.standins.calls()).filter((c) => c.includes('garbage-collect'));
    expect(gcCallsWhileHeld).toHaveLength(1);

    // Dry runs only read: no lock needed.
    const dry = await runRegprune(['prune', 'app:v2', '--root', w.reg.root, '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);

    await writeFile(release, '');
    const done = await first;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(await exists(layout(w.reg.root).lockFile)).toBe(false);
    const tags = await tagsOnDisk(w.reg.root);
    expect([...tags.keys()]).toEqual(['app:v2']);
    await w.reg.restart();
    await pullAndVerify(w.reg.url, 'app', 'v2');
    // The lock is free again.
    const again = await runRegprune(['prune', 'app:v2', '--root', w.reg.root, '--yes']);
    expect(again.exitCode, again.stderr).toBe(0);
  });

  test('a lock left by a process that is gone is taken over with a note', async () => {
    const w = await setup({});
    const lay = layout(w.reg.root);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(lay.stateDir, { recursive: true });
    const { hostname } = await import('node:os');
    // A pid that is not running: a finished child's.
    const gone = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(lay.lockFile, JSON.stringify({ pid: Number(gone.stdout), startedAt: '2026-01-01T00:00:00.000Z', hostname: hostname() }));
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`note: took over a stale lock on ${w.reg.root} (pid ${gone.stdout}, started 2026-01-01T00:00:00.000Z: that process is gone)`);
    expect(await exists(lay.lockFile)).toBe(false);
  });
});

describe('garbage-collect runs on the storage that was pruned, proven before anything is removed', () => {
  const markersLeft = async (root: string) => (await readdir(layout(root).stateDir).catch(() => [] as string[])).filter((n) => n.startsWith('marker-'));
  const otherConfig = async (w: World, text?: string) => {
    const other = join(w.dir, 'other-root');
    await mkdir(other, { recursive: true });
    const path = join(w.dir, 'other.yml');
    await writeFile(path, text ?? `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${other}\n`);
    return { path, other };
  };

  test('docker: a container whose config names another rootdirectory is a usage error naming both, before any removal', async () => {
    const w = await setup({});
    const { path, other } = await otherConfig(w);
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: path }, registryBin: w.reg.bin });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'docker:registry', '--json'], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`garbage-collect in container registry would run on ${other} (storage.filesystem.rootdirectory in ${V2_CONFIG}), which is not the storage at --root ${w.reg.root}`);
    expect((await w.standins.calls()).some((c) => c.includes('garbage-collect'))).toBe(false);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
    expect(await markersLeft(w.reg.root)).toEqual([]);
  });

  test('docker: the right config but another volume mounted at its rootdirectory: the marker is not seen there', async () => {
    const w = await setup({});
    const other = join(w.dir, 'volume');
    await mkdir(other);
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, mounts: { [w.reg.root]: other }, registryBin: w.reg.bin });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'docker:registry'], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/the marker regprune wrote to .*\/\.regprune\/marker-[0-9a-f-]+ is not at .* there \(docker exec registry cat .*No such file or directory\)/);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
    expect(await markersLeft(w.reg.root)).toEqual([]);
  });

  test('kubectl: the pod environment overrides the config (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) and is what counts', async () => {
    const w = await setup({});
    await w.standins.configure({
      pods: { default: ['registry-0'] },
      files: { [V2_CONFIG]: w.reg.configPath },
      env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/data/elsewhere' },
      registryBin: w.reg.bin,
    });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'kubectl:registry-0'], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain('garbage-collect in pod registry-0 would run on /data/elsewhere (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY)');
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  });

  test('docker: a matching container passes, and the marker is gone afterwards', async () => {
    const w = await setup({});
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin });
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'docker:registry', '-v'], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/garbage-collect storage: marker \.regprune\/marker-[0-9a-f-]+ written under .* read back as .* in container registry/);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(false);
    expect(await markersLeft(w.reg.root)).toEqual([]);
  });

  test('local: --gc-config of another registry is a usage error naming both roots', async () => {
    const w = await setup({});
    const { path, other } = await otherConfig(w);
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'local', '--gc-config', path], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`--gc local: garbage-collect would not run on --root ${w.reg.root}: its storage is ${path}: ${other} (storage.filesystem.rootdirectory in ${path})`);
    expect(await w.standins.calls()).toEqual([]);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  });

  test('local: a config whose storage is not filesystem is a usage error naming the driver', async () => {
    const w = await setup({});
    const { path } = await otherConfig(w, 'version: 0.1\nstorage:\n  s3:\n    bucket: images\n    region: us-east-1\n  delete:\n    enabled: true\n');
    const r = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes', '--gc', 'local', '--gc-config', path], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`garbage-collect in this host would run on the s3 storage driver (${path} storage.s3), not on a filesystem --root`);
    expect((await tagsOnDisk(w.reg.root)).has('app:v1')).toBe(true);
  });
});

describe('regprune gc --metrics-file', () => {
  test('the bytes garbage-collect freed, labelled by root and command', async () => {
    const w = await setup({});
    await w.standins.configure({ containers: ['registry'], files: { [V2_CONFIG]: w.reg.configPath }, registryBin: w.reg.bin });
    const pruned = await runRegprune(['prune', 'app:v1', '--root', w.reg.root, '--yes']);
    expect(pruned.exitCode, pruned.stderr).toBe(0);
    const metrics = join(w.dir, 'regprune.prom');
    const r = await runRegprune(['gc', 'docker:registry', '--root', w.reg.root, '--json', '--metrics-file', metrics], { env: { PATH: w.standins.path() } });
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { gc: { freedBytes: number }; summary: string };
    expect(out.gc.freedBytes).toBe(v1Bytes(w));
    expect(out.summary).toMatch(/^regprune: ok: garbage-collect freed \d+(\.\d)? KiB \(3 blobs\), removed 2 dangling layer links; [\d.]+s \(exit 0\)$/);
    const text = await readFile(metrics, 'utf8');
    expect(text).toContain(`regprune_gc_freed_bytes{root="${w.reg.root}",command="gc"} ${v1Bytes(w)}\n`);
    expect(text).toContain(`regprune_last_run_success{root="${w.reg.root}",command="gc"} 1\n`);
    expect((await readdir(w.dir)).filter((n) => n.includes('regprune.prom'))).toEqual(['regprune.prom']);
  });
});
