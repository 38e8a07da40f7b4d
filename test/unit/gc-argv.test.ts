import { describe, expect, test } from 'vitest';
import { KNOWN_CONFIGS, dockerRunner, kubectlRunner, localRunner } from '../../src/gc/adapters.js';
import { collectGarbage, prepareGc, type GcSettings } from '../../src/gc/collect.js';
import type { RunResult } from '../../src/gc/process.js';
import { parseGcMode, type GcTarget } from '../../src/gc/target.js';
import { RegpruneError, UsageError } from '../../src/model/errors.js';
import type { RepositoryName } from '../../src/model/names.js';
import { MemRegistry } from '../helpers/memtree.js';
import { recordingRunner } from '../helpers/standins.js';

const [V2, V3] = KNOWN_CONFIGS;
const ok = (stdout = '', stderr = ''): RunResult => ({ started: true, exitCode: 0, stdout, stderr });
const exit = (exitCode: number, stderr = '', stdout = ''): RunResult => ({ started: true, exitCode, stdout, stderr });
const target = (mode: string, extras?: Parameters<typeof parseGcMode>[1]): GcTarget => {
  const t = parseGcMode(mode, extras);
  if (t === undefined) throw new Error('none');
  return t;
};
const settings = (mode: string, more: Partial<GcSettings> = {}, extras?: Parameters<typeof parseGcMode>[1]): GcSettings => ({
  target: target(mode, extras),
  config: undefined,
  dryRun: false,
  restart: false,
  restartCmd: undefined,
  ...more,
});

describe('adapters build argv', () => {
  test.each([
    {
      name: 'docker',
      runner: dockerRunner('registry'),
      probe: ['docker', 'exec', 'registry', 'test', '-f', V2],
      gc: ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2],
      dry: ['docker', 'exec', 'registry', 'registry', 'garbage-collect', '--dry-run', V2],
      restart: [['docker', 'restart', 'registry']],
    },
    {
      name: 'kubectl pod',
      runner: kubectlRunner(target('kubectl:registry-0') as Extract<GcTarget, { kind: 'kubectl' }>),
      probe: ['kubectl', 'exec', 'registry-0', '--', 'test', '-f', V2],
      gc: ['kubectl', 'exec', 'registry-0', '--', 'registry', 'garbage-collect', V2],
      dry: ['kubectl', 'exec', 'registry-0', '--', 'registry', 'garbage-collect', '--dry-run', V2],
      restart: 'unsupported',
    },
    {
      name: 'kubectl namespace/pod with context',
      runner: kubectlRunner(target('kubectl:infra/registry-0', { kubeContext: 'prod' }) as Extract<GcTarget, { kind: 'kubectl' }>),
      probe: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'registry-0', '--', 'test', '-f', V2],
      gc: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'registry-0', '--', 'registry', 'garbage-collect', V2],
      dry: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'registry-0', '--', 'registry', 'garbage-collect', '--dry-run', V2],
      restart: 'unsupported',
    },
    {
      name: 'kubectl deployment',
      runner: kubectlRunner(target('kubectl:deployment/registry') as Extract<GcTarget, { kind: 'kubectl' }>),
      probe: ['kubectl', 'exec', 'deployment/registry', '--', 'test', '-f', V2],
      gc: ['kubectl', 'exec', 'deployment/registry', '--', 'registry', 'garbage-collect', V2],
      dry: ['kubectl', 'exec', 'deployment/registry', '--', 'registry', 'garbage-collect', '--dry-run', V2],
      restart: [
        ['kubectl', 'rollout', 'restart', 'deployment/registry'],
        ['kubectl', 'rollout', 'status', 'deployment/registry'],
      ],
    },
    {
      name: 'kubectl namespace/deployment with context',
      runner: kubectlRunner(target('kubectl:infra/deployment/registry', { kubeContext: 'prod' }) as Extract<GcTarget, { kind: 'kubectl' }>),
      probe: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'deployment/registry', '--', 'test', '-f', V2],
      gc: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'deployment/registry', '--', 'registry', 'garbage-collect', V2],
      dry: ['kubectl', '--context', 'prod', 'exec', '-n', 'infra', 'deployment/registry', '--', 'registry', 'garbage-collect', '--dry-run', V2],
      restart: [
        ['kubectl', '--context', 'prod', 'rollout', 'restart', '-n', 'infra', 'deployment/registry'],
        ['kubectl', '--context', 'prod', 'rollout', 'status', '-n', 'infra', 'deployment/registry'],
      ],
    },
    {
      name: 'local',
      runner: localRunner('/usr/bin/docker-registry'),
      probe: ['test', '-f', V2],
      gc: ['/usr/bin/docker-registry', 'garbage-collect', V2],
      dry: ['/usr/bin/docker-registry', 'garbage-collect', '--dry-run', V2],
      restart: 'unsupported',
    },
  ])('$name', ({ runner, probe, gc, dry, restart }) => {
    expect(runner.probe(V2 as string)).toEqual(probe);
    expect(runner.garbageCollect(V2 as string, false)).toEqual(gc);
    expect(runner.garbageCollect(V2 as string, true)).toEqual(dry);
    const r = runner.restart();
    if (restart === 'unsupported') expect(r).toHaveProperty('unsupported');
    else expect(r).toEqual(restart);
    // Never -m, whatever the runner.
    for (const argv of [runner.garbageCollect('/c.yml', false), runner.garbageCollect('/c.yml', true)]) {
      expect(argv).not.toContain('-m');
      expect(argv).not.toContain('--delete-untagged');
    }
  });

  test('probe answers: test -f quiet exit 1 is absent; a daemon error is unreachable; kubectl reports the exit code', () => {
    const d = dockerRunner('registry');
    expect(d.probeAnswer({ started: true, exitCode: 0, stdout: '', stderr: '' })).toBe('present');
    expect(d.probeAnswer({ started: true, exitCode: 1, stdout: '', stderr: '' })).toBe('absent');
    expect(d.probeAnswer({ started: true, exitCode: 1, stdout: '', stderr: 'Error response from daemon: No such container: registry\n' })).toBe('unreachable');
    expect(d.probeAnswer({ started: true, exitCode: 126, stdout: '', stderr: '' })).toBe('unreachable');
    const k = kubectlRunner(target('kubectl:registry-0') as Extract<GcTarget, { kind: 'kubectl' }>);
    expect(k.probeAnswer({ started: true, exitCode: 1, stdout: '', stderr: 'command terminated with exit code 1\n' })).toBe('absent');
    expect(k.probeAnswer({ started: true, exitCode: 1, stdout: '', stderr: 'Error from server (NotFound): pods "registry-0" not found\n' })).toBe('unreachable');
  });
});

describe('prepareGc', () => {
  test('finds the config: first known path that exists', async () => {
    const proc = recordingRunner((argv) => (argv.at(-1) === V3 ? ok() : exit(1)));
    const p = await prepareGc(proc, settings('docker:registry'));
    expect(p.config).toBe(V3);
    expect(p.configSource).toBe('found');
    expect(proc.calls).toEqual([
      ['docker', 'exec', 'registry', 'test', '-f', V2],
      ['docker', 'exec', 'registry', 'test', '-f', V3],
    ]);
  });

  test('a given config is checked once', async () => {
    const proc = recordingRunner(() => ok());
    const p = await prepareGc(proc, settings('docker:registry', { config: '/srv/config.yml' }));
    expect(p).toMatchObject({ config: '/srv/config.yml', configSource: 'given' });
    expect(proc.calls).toEqual([['docker', 'exec', 'registry', 'test', '-f', '/srv/config.yml']]);
  });

  test('no config anywhere: an error with the paths and the fix', async () => {
    const proc = recordingRunner(() => exit(1));
    await expect(prepareGc(proc, settings('docker:registry'))).rejects.toThrow(
      `no registry config in container registry: looked for ${V2} and ${V3}`,
    );
  });

  test('a given config that is missing', async () => {
    const proc = recordingRunner(() => exit(1));
    await expect(prepareGc(proc, settings('docker:registry', { config: '/x.yml' }))).rejects.toThrow('garbage-collect config /x.yml does not exist in container registry');
  });

  test('no such container: docker says why, the error is a GC error (exit 1), the probing stops', async () => {
    const proc = recordingRunner(() => exit(1, 'Error response from daemon: No such container: x\n'));
    const err = await prepareGc(proc, settings('docker:x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegpruneError);
    expect((err as RegpruneError).code).toBe('GC');
    expect((err as Error).message).toBe(`cannot reach container x for garbage-collect: docker exec x test -f ${V2}: exit code 1: Error response from daemon: No such container: x`);
    expect(proc.calls).toHaveLength(1);
  });

  test('kubectl not on PATH', async () => {
    const proc = recordingRunner(() => ({ started: false, notFound: true, message: 'spawn kubectl ENOENT' }));
    await expect(prepareGc(proc, settings('kubectl:registry-0'))).rejects.toThrow('cannot reach pod registry-0 for garbage-collect: kubectl: not found on PATH');
  });

  test('local: registry before docker-registry on PATH, --registry-bin wins, none is an error', async () => {
    const both = recordingRunner(() => ok(), { onPath: ['registry', 'docker-registry'] });
    expect((await prepareGc(both, settings('local', { config: '/c.yml' }))).runner.garbageCollect('/c.yml', false)).toEqual(['/usr/bin/registry', 'garbage-collect', '/c.yml']);
    const debian = recordingRunner(() => ok(), { onPath: ['docker-registry'] });
    expect((await prepareGc(debian, settings('local', { config: '/c.yml' }))).runner.garbageCollect('/c.yml', false)[0]).toBe('/usr/bin/docker-registry');
    expect(debian.calls).toEqual([['test', '-f', '/c.yml']]);
    const given = recordingRunner(() => ok(), { onPath: ['/opt/registry', 'registry'] });
    const p = await prepareGc(given, settings('local', { config: '/c.yml' }, { registryBin: '/opt/registry' }));
    expect(p.runner.garbageCollect('/c.yml', true)).toEqual(['/opt/registry', 'garbage-collect', '--dry-run', '/c.yml']);
    await expect(prepareGc(recordingRunner(), settings('local'))).rejects.toThrow('--gc local: neither `registry` nor `docker-registry` is on PATH');
  });

  test('--restart: the runner restart, --restart-cmd instead, a bare pod is a usage error before anything runs', async () => {
    const proc = recordingRunner(() => ok());
    expect((await prepareGc(proc, settings('docker:registry', { restart: true }))).restart).toEqual([['docker', 'restart', 'registry']]);
    expect((await prepareGc(proc, settings('docker:registry', { restart: true, restartCmd: ['docker', 'compose', 'restart', 'registry'] }))).restart).toEqual([
      ['docker', 'compose', 'restart', 'registry'],
    ]);
    expect((await prepareGc(proc, settings('docker:registry'))).restart).toBeUndefined();
    const before = proc.calls.length;
    await expect(prepareGc(proc, settings('kubectl:registry-0', { restart: true }))).rejects.toThrow(UsageError);
    await expect(prepareGc(proc, settings('local', { restart: true, config: '/c.yml' }))).rejects.toThrow(UsageError);
    expect(proc.calls.length).toBe(before);
  });
});

describe('collectGarbage (memfs + recorder)', () => {
  /** A registry where v1's config and top layer are unreferenced; the recorder plays garbage-collect and deletes them. */
  function world(gcResult: 'ok' | 'fail' = 'ok', restart: RunResult = ok()) {
    const reg = new MemRegistry();
    const keep = reg.putImage('app', { seed: 'u-keep', layers: ['u-base', 'u-keep/top'] });
    const gone = reg.putImage('app', { seed: 'u-gone', layers: ['u-base', 'u-gone/top'] });
    // The prune already unlinked gone's revision; its blobs and _layers links remain.
    reg.vol.rmSync(reg.lay.revision('app' as RepositoryName, gone.manifest.digest), { recursive: true });
    const swept = [gone.manifest, gone.config, gone.layers[1]!];
    const proc = recordingRunner((argv) => {
      if (argv.includes('garbage-collect')) {
        if (gcResult === 'fail') return exit(1, 'failed to garbage collect: some error\n', '');
        const dry = argv.includes('--dry-run');
        if (!dry) for (const b of swept) reg.vol.rmSync(reg.lay.blob(b.digest), { recursive: true });
        return ok(
          `app: marking manifest ${keep.manifest.digest} \n\n4 blobs marked, 3 blobs and 0 manifests eligible for deletion\n` +
            swept.map((b) => `blob eligible for deletion: ${b.digest}\n`).join(''),
        );
      }
      if (argv[1] === 'restart') return restart;
      return ok();
    });
    const bytes = swept.reduce((n, b) => n + b.size, 0);
    return { reg, keep, gone, proc, bytes };
  }

  const prepared = (restart?: string[][], dryRun = false) => ({
    runner: dockerRunner('registry'),
    config: V2 as string,
    configSource: 'found' as const,
    dryRun,
    restart: restart as never,
  });

  test('measures freed bytes, removes the dangling layer links (only those), restarts', async () => {
    const w = world();
    const lines: string[] = [];
    const r = await collectGarbage({
      fs: w.reg.fs,
      layout: w.reg.lay,
      proc: w.proc,
      gc: prepared([['docker', 'restart', 'registry']]),
      events: { onLine: (l) => lines.push(l) },
    });
    expect(r).toMatchObject({
      mode: 'docker:registry',
      command: ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2],
      exitCode: 0,
      marked: 4,
      blobsEligible: 3,
      manifestsEligible: 0,
      freedBytes: w.bytes,
      blobsDeleted: 3,
      layerLinksRemoved: 2,
      configUsed: V2,
      ok: true,
      staleCache: false,
      restart: { result: 'restarted', commands: [['docker', 'restart', 'registry']] },
    });
    expect(w.proc.calls).toEqual([
      ['docker', 'exec', 'registry', 'registry', 'garbage-collect', V2],
      ['docker', 'restart', 'registry'],
    ]);
    expect(lines).toContain('4 blobs marked, 3 blobs and 0 manifests eligible for deletion');
    const repo = 'app' as RepositoryName;
    expect(w.reg.exists(w.reg.lay.layer(repo, w.gone.config.digest))).toBe(false);
    expect(w.reg.exists(w.reg.lay.layer(repo, w.gone.layers[1]!.digest))).toBe(false);
    expect(w.reg.exists(w.reg.lay.layerLink(repo, w.gone.layers[0]!.digest))).toBe(true);
    expect(w.reg.exists(w.reg.lay.layerLink(repo, w.keep.config.digest))).toBe(true);
    expect(w.reg.exists(w.reg.lay.layers(repo))).toBe(true);
  });

  test('without restart: the stale cache is flagged', async () => {
    const w = world();
    const r = await collectGarbage({ fs: w.reg.fs, layout: w.reg.lay, proc: w.proc, gc: prepared() });
    expect(r).toMatchObject({ ok: true, staleCache: true, restart: null, freedBytes: w.bytes });
  });

  test('dry run: nothing deleted, no link removed, restart skipped', async () => {
    const w = world();
    const r = await collectGarbage({ fs: w.reg.fs, layout: w.reg.lay, proc: w.proc, gc: prepared([['docker', 'restart', 'registry']], true) });
    expect(r).toMatchObject({ ok: true, dryRun: true, freedBytes: 0, blobsDeleted: 0, layerLinksRemoved: 0, blobsEligible: 3, staleCache: false, restart: { result: 'skipped' } });
    expect(w.proc.calls).toEqual([['docker', 'exec', 'registry', 'registry', 'garbage-collect', '--dry-run', V2]]);
  });

  test('garbage-collect fails: a failure value, no cleanup, no restart', async () => {
    const w = world('fail');
    const r = await collectGarbage({ fs: w.reg.fs, layout: w.reg.lay, proc: w.proc, gc: prepared([['docker', 'restart', 'registry']]) });
    expect(r.ok).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.failure).toEqual({
      step: 'garbage-collect',
      message: `docker exec registry registry garbage-collect ${V2} failed: exit code 1: failed to garbage collect: some error`,
    });
    expect(r).toMatchObject({ layerLinksRemoved: 0, restart: { result: 'skipped' } });
    expect(w.proc.calls).toHaveLength(1);
  });

  test('restart fails: garbage-collect results stand, the failure is reported, the cache is stale', async () => {
    const w = world('ok', exit(1, 'Error response from daemon: Cannot restart container registry: boom\n'));
    const r = await collectGarbage({ fs: w.reg.fs, layout: w.reg.lay, proc: w.proc, gc: prepared([['docker', 'restart', 'registry']]) });
    expect(r).toMatchObject({ ok: false, freedBytes: w.bytes, layerLinksRemoved: 2, staleCache: true, restart: { result: 'failed', exitCode: 1 } });
    expect(r.failure?.message).toBe('docker restart registry failed: exit code 1: Error response from daemon: Cannot restart container registry: boom');
  });

  test('eligible blobs that do not disappear here: a warning that --root may be another storage', async () => {
    const w = world();
    const proc = recordingRunner(() => ok('1 blobs marked, 2 blobs and 0 manifests eligible for deletion\n'));
    const warnings: string[] = [];
    const r = await collectGarbage({ fs: w.reg.fs, layout: w.reg.lay, proc, gc: prepared(), events: { onWarning: (x) => warnings.push(x.message) } });
    expect(r.freedBytes).toBe(0);
    expect(warnings.some((m) => /is --root the storage container registry uses\?/.test(m))).toBe(true);
  });
});
