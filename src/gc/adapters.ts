import type { Argv, RunResult } from './process.js';
import type { GcTarget } from './target.js';

/** Config paths of the registry images: registry:2 (and Debian's package), then registry:3. */
export const KNOWN_CONFIGS = ['/etc/docker/registry/config.yml', '/etc/distribution/config.yml'] as const;

export type ProbeAnswer = 'present' | 'absent' | 'unreachable';

/**
 * One place garbage-collect can run. Adapters only build argv and read
 * answers; running them is the engine's job (gc/collect.ts).
 */
export interface GcRunner {
  /** `docker:registry`, `kubectl:infra/deployment/registry`, `local`. */
  readonly mode: string;
  /** For messages: `container registry`, `pod infra/registry-0`, `this host`. */
  readonly where: string;
  /** A command that exits 0 when `path` is a file where garbage-collect runs. */
  probe(path: string): Argv;
  /** Reads a probe's result: is the file there, or did the exec itself fail? */
  probeAnswer(result: Extract<RunResult, { started: true }>): ProbeAnswer;
  /** Prints a file where garbage-collect runs (the config; the storage marker). */
  read(path: string): Argv;
  /** Prints the environment garbage-collect runs with (REGISTRY_* overrides the config). */
  environment(): Argv;
  /** `registry garbage-collect [--dry-run] CONFIG` there. Never `-m`. */
  garbageCollect(config: string, dryRun: boolean): Argv;
  /** The commands that restart the registry, in order, or why this runner cannot. */
  restart(): readonly Argv[] | { readonly unsupported: string };
}

const gcArgs = (config: string, dryRun: boolean): string[] => ['garbage-collect', ...(dryRun ? ['--dry-run'] : []), config];

// `test -f` says nothing and exits 1 when the file is missing; docker passes
// the exit code through, and an exec that could not start prints why.
const plainProbe = (r: Extract<RunResult, { started: true }>): ProbeAnswer =>
  r.exitCode === 0 ? 'present' : r.exitCode === 1 && r.stderr.trim() === '' ? 'absent' : 'unreachable';

export function dockerRunner(container: string): GcRunner {
  return {
    mode: `docker:${container}`,
    where: `container ${container}`,
    probe: (path) => ['docker', 'exec', container, 'test', '-f', path],
    probeAnswer: plainProbe,
    read: (path) => ['docker', 'exec', container, 'cat', path],
    environment: () => ['docker', 'exec', container, 'env'],
    garbageCollect: (config, dryRun) => ['docker', 'exec', container, 'registry', ...gcArgs(config, dryRun)],
    restart: () => [['docker', 'restart', container]],
  };
}

export function kubectlRunner(target: Extract<GcTarget, { kind: 'kubectl' }>): GcRunner {
  const base: Argv = target.context === undefined ? ['kubectl'] : ['kubectl', '--context', target.context];
  const ns = target.namespace === undefined ? [] : ['-n', target.namespace];
  const object = target.resource.kind === 'deployment' ? `deployment/${target.resource.name}` : target.resource.name;
  const nsPrefix = target.namespace === undefined ? '' : `${target.namespace}/`;
  const exec = (cmd: string[]): Argv => [...base, 'exec', ...ns, object, '--', ...cmd];
  return {
    mode: `kubectl:${nsPrefix}${object}`,
    where: target.resource.kind === 'deployment' ? `deployment ${nsPrefix}${target.resource.name}` : `pod ${nsPrefix}${target.resource.name}`,
    probe: (path) => exec(['test', '-f', path]),
    // kubectl reports a failed command as `command terminated with exit code 1`.
    probeAnswer: (r) =>
      r.exitCode === 0
        ? 'present'
        : r.exitCode === 1 && (r.stderr.trim() === '' || /^command terminated with exit code 1$/m.test(r.stderr.trim()))
          ? 'absent'
          : 'unreachable',
    read: (path) => exec(['cat', path]),
    environment: () => exec(['env']),
    garbageCollect: (config, dryRun) => exec(['registry', ...gcArgs(config, dryRun)]),
    restart: () =>
      target.resource.kind === 'deployment'
        ? [
            [...base, 'rollout', 'restart', ...ns, object],
            [...base, 'rollout', 'status', ...ns, object],
          ]
        : {
            unsupported:
              `--restart needs a deployment: a bare pod (${nsPrefix}${target.resource.name}) is not restarted in place, ` +
              'and deleting it only brings it back if a controller recreates it. ' +
              `Use --gc kubectl:${nsPrefix}deployment/NAME, or --restart-cmd with the command that restarts it (e.g. kubectl rollout restart statefulset/NAME)`,
          },
  };
}

/** `bin` is the resolved registry binary on this host. */
export function localRunner(bin: string): GcRunner {
  return {
    mode: 'local',
    where: 'this host',
    probe: (path) => ['test', '-f', path],
    probeAnswer: plainProbe,
    read: (path) => ['cat', path],
    environment: () => ['env'],
    garbageCollect: (config, dryRun) => [bin, ...gcArgs(config, dryRun)],
    restart: () => ({
      unsupported: 'with --gc local, say how to restart the registry: --restart-cmd "systemctl restart docker-registry"',
    }),
  };
}
