import { walkBlobStore } from '../graph/blobs.js';
import { RegpruneError, UsageError } from '../model/errors.js';
import type { Digest } from '../model/names.js';
import type { StorageFs } from '../storage/fs.js';
import { removeDanglingLayerLinks } from '../storage/layer-links.js';
import type { Layout } from '../storage/paths.js';
import type { WarningSink } from '../storage/warnings.js';
import { KNOWN_CONFIGS, dockerRunner, kubectlRunner, localRunner, type GcRunner } from './adapters.js';
import { parseGcOutput } from './output.js';
import { formatArgv, tail, type Argv, type ProcessRunner, type RunResult } from './process.js';
import type { GcTarget } from './target.js';

/** What the user asked for, parsed (cli/commands/gc.ts builds it from the flags). */
export interface GcSettings {
  readonly target: GcTarget;
  /** `--gc-config`: the config path where garbage-collect runs; found when undefined. */
  readonly config: string | undefined;
  readonly dryRun: boolean;
  readonly restart: boolean;
  /** `--restart-cmd`, split into argv: replaces the runner's own restart. */
  readonly restartCmd: Argv | undefined;
}

/** A runner whose target answered and whose config is known: ready to collect. */
export interface PreparedGc {
  readonly runner: GcRunner;
  readonly config: string;
  readonly configSource: 'given' | 'found';
  readonly dryRun: boolean;
  /** Commands to restart the registry after a run that deleted blobs; undefined without --restart. */
  readonly restart: readonly Argv[] | undefined;
}

export interface GcReport {
  readonly mode: string;
  readonly command: readonly string[];
  /** null when garbage-collect did not start (program missing). */
  readonly exitCode: number | null;
  readonly marked: number;
  readonly blobsEligible: number;
  readonly manifestsEligible: number;
  /** Bytes of the blobs that disappeared from the blob store on this host during the run. */
  readonly freedBytes: number;
  readonly blobsDeleted: number;
  readonly layerLinksRemoved: number;
  readonly configUsed: string;
  readonly configSource: 'given' | 'found';
  readonly dryRun: boolean;
  readonly restart: RestartReport | null;
  readonly ok: boolean;
  readonly failure?: { readonly step: 'garbage-collect' | 'restart'; readonly message: string };
  /** Blobs were deleted and the registry was not restarted: its blob cache is stale. */
  readonly staleCache: boolean;
}

export interface RestartReport {
  readonly commands: readonly (readonly string[])[];
  /** `restarted`, `failed`, or `skipped` (nothing was deleted, or garbage-collect failed). */
  readonly result: 'restarted' | 'failed' | 'skipped';
  readonly exitCode: number | null;
  readonly detail?: string;
}

export interface GcEvents {
  /** garbage-collect's output, line by line, as it arrives. */
  readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** `measuring blob store`, `running ...`, `restarting ...`. */
  readonly onStep?: (text: string) => void;
  readonly onWarning?: WarningSink;
}

function gcError(message: string, hint?: string, cause?: unknown): RegpruneError {
  return new RegpruneError('GC', message, { ...(hint === undefined ? {} : { hint }), ...(cause === undefined ? {} : { cause }) });
}

function notStarted(argv: Argv, r: Extract<RunResult, { started: false }>): string {
  return r.notFound ? `${argv[0]}: not found on PATH` : `${formatArgv(argv)}: ${r.message}`;
}

function failureText(r: Extract<RunResult, { started: true }>): string {
  const why = tail(r.stderr) || tail(r.stdout);
  return `exit code ${r.exitCode}${r.signal === undefined ? '' : ` (${r.signal})`}${why === '' ? '' : `: ${why}`}`;
}

async function resolveRunner(proc: ProcessRunner, target: GcTarget): Promise<GcRunner> {
  switch (target.kind) {
    case 'docker':
      return dockerRunner(target.container);
    case 'kubectl':
      return kubectlRunner(target);
    case 'local': {
      if (target.bin !== undefined) {
        const found = await proc.which(target.bin);
        if (found === undefined) throw new UsageError(`--registry-bin ${target.bin}: not found or not executable`);
        return localRunner(found);
      }
      // registry:2/3 images and upstream builds call it `registry`; Debian's package `docker-registry`.
      for (const name of ['registry', 'docker-registry']) {
        const found = await proc.which(name);
        if (found !== undefined) return localRunner(found);
      }
      throw gcError('--gc local: neither `registry` nor `docker-registry` is on PATH', 'pass the binary with --registry-bin PATH, or install it (Debian: apt-get install docker-registry)');
    }
  }
}

/**
 * Checks, before anything is removed, that garbage-collect can run where it
 * was asked to: the program is there, the container or pod answers, and the
 * config exists (found among the known paths when not given). Throws a
 * RegpruneError (GC) with the answer of docker/kubectl, or a UsageError for a
 * restart that cannot be done.
 */
export async function prepareGc(proc: ProcessRunner, settings: GcSettings): Promise<PreparedGc> {
  // A restart that cannot be done is a usage error: decided before anything runs.
  const shape = settings.target.kind === 'local' ? localRunner('registry') : await resolveRunner(proc, settings.target);
  let restart: readonly Argv[] | undefined;
  if (settings.restart) {
    const own = settings.restartCmd === undefined ? shape.restart() : [settings.restartCmd];
    if (!Array.isArray(own)) throw new UsageError((own as { unsupported: string }).unsupported);
    restart = own as readonly Argv[];
  }
  const runner = settings.target.kind === 'local' ? await resolveRunner(proc, settings.target) : shape;
  const probe = async (path: string) => {
    const argv = runner.probe(path);
    const r = await proc.run(argv);
    if (!r.started) {
      throw gcError(
        `cannot reach ${runner.where} for garbage-collect: ${notStarted(argv, r)}`,
        r.notFound ? `install ${argv[0]} or put it on PATH (PATH is searched as regprune was started)` : undefined,
      );
    }
    const answer = runner.probeAnswer(r);
    if (answer === 'unreachable') throw gcError(`cannot reach ${runner.where} for garbage-collect: ${formatArgv(argv)}: ${failureText(r)}`);
    return answer === 'present';
  };
  if (settings.config !== undefined) {
    if (!(await probe(settings.config))) throw new UsageError(`garbage-collect config ${settings.config} does not exist in ${runner.where}`, { hint: 'check the path with --gc-config (as seen where garbage-collect runs)' });
    return { runner, config: settings.config, configSource: 'given', dryRun: settings.dryRun, restart };
  }
  for (const path of KNOWN_CONFIGS) {
    if (await probe(path)) return { runner, config: path, configSource: 'found', dryRun: settings.dryRun, restart };
  }
  throw gcError(`no registry config in ${runner.where}: looked for ${KNOWN_CONFIGS.join(' and ')}`, 'pass the config path with --gc-config PATH');
}

/**
 * Runs garbage-collect (never -m), measures the blob store on this host
 * before and after, removes the `_layers` links of deleted blobs, and
 * restarts the registry when asked. Failures are reported in the result,
 * not thrown: what happened before them still counts.
 */
export async function collectGarbage(input: {
  readonly fs: StorageFs;
  readonly layout: Layout;
  readonly proc: ProcessRunner;
  readonly gc: PreparedGc;
  readonly events?: GcEvents;
  /**
   * The blob store's sizes by digest, where it is not `fs` (a bucket: from
   * its listing). Dangling layer links are then left to the registry.
   */
  readonly measure?: () => Promise<ReadonlyMap<Digest, number>>;
}): Promise<GcReport> {
  const { fs, layout: lay, proc, gc } = input;
  const ev = input.events ?? {};
  const warn = ev.onWarning ?? (() => {});
  const argv = gc.runner.garbageCollect(gc.config, gc.dryRun);
  const base = {
    mode: gc.runner.mode,
    command: [...argv],
    configUsed: gc.config,
    configSource: gc.configSource,
    dryRun: gc.dryRun,
  };

  ev.onStep?.('measuring the blob store');
  const measure = input.measure ?? (() => walkBlobStore(fs, lay, warn));
  const before = await measure();
  ev.onStep?.(`running ${formatArgv(argv)}`);
  const r = await proc.run(argv, ev.onLine === undefined ? {} : { onLine: ev.onLine });
  ev.onStep?.('measuring the blob store');
  const after = await measure();
  let freedBytes = 0;
  let blobsDeleted = 0;
  for (const [d, size] of before) {
    if (!after.has(d)) {
      freedBytes += size;
      blobsDeleted++;
    }
  }
  const parsed = parseGcOutput(r.started ? r.stdout : '');
  const counts = { marked: parsed.marked, blobsEligible: parsed.blobsEligible, manifestsEligible: parsed.manifestsEligible, freedBytes, blobsDeleted };
  if (!r.started || r.exitCode !== 0) {
    const message = r.started ? `${formatArgv(argv)} failed: ${failureText(r)}` : `garbage-collect did not start: ${notStarted(argv, r)}`;
    return {
      ...base,
      ...counts,
      exitCode: r.started ? r.exitCode : null,
      layerLinksRemoved: 0,
      restart: gc.restart === undefined ? null : { commands: gc.restart.map((a) => [...a]), result: 'skipped', exitCode: null, detail: 'garbage-collect failed' },
      ok: false,
      failure: { step: 'garbage-collect', message },
      staleCache: blobsDeleted > 0,
    };
  }
  if (!gc.dryRun && parsed.blobsEligible > 0 && blobsDeleted === 0) {
    warn({
      code: 'unexpected',
      path: lay.blobs,
      message: `garbage-collect reported ${parsed.blobsEligible} blob(s) eligible for deletion, but none disappeared here: is --root the storage ${gc.runner.where} uses?`,
    });
  }

  let layerLinksRemoved = 0;
  if (!gc.dryRun && input.measure === undefined) {
    ev.onStep?.('removing dangling layer links');
    layerLinksRemoved = (await removeDanglingLayerLinks(fs, lay, after, warn)).removed;
  }

  const deleted = !gc.dryRun && (blobsDeleted > 0 || parsed.blobsEligible > 0);
  let restart: RestartReport | null = null;
  if (gc.restart !== undefined) {
    const commands = gc.restart.map((a) => [...a]);
    if (!deleted) {
      restart = { commands, result: 'skipped', exitCode: null, detail: gc.dryRun ? 'dry run: nothing deleted' : 'nothing deleted: the cache is not stale' };
    } else {
      restart = { commands, result: 'restarted', exitCode: 0 };
      for (const cmd of gc.restart) {
        ev.onStep?.(`restarting: ${formatArgv(cmd)}`);
        const rr = await proc.run(cmd, ev.onLine === undefined ? {} : { onLine: ev.onLine });
        if (!rr.started || rr.exitCode !== 0) {
          const detail = rr.started ? `${formatArgv(cmd)} failed: ${failureText(rr)}` : `restart did not start: ${notStarted(cmd, rr)}`;
          restart = { commands, result: 'failed', exitCode: rr.started ? rr.exitCode : null, detail };
          break;
        }
      }
    }
  }
  const restarted = restart?.result === 'restarted';
  return {
    ...base,
    ...counts,
    exitCode: r.exitCode,
    layerLinksRemoved,
    restart,
    ok: restart?.result !== 'failed',
    ...(restart?.result === 'failed' ? { failure: { step: 'restart' as const, message: restart.detail ?? 'restart failed' } } : {}),
    staleCache: deleted && !restarted,
  };
}
