import { dirname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatMetrics, previousSuccess } from '../metrics/prometheus.js';
import { RegpruneError, UsageError } from '../model/errors.js';
import { storageDoor } from '../storage/door.js';
import { EXIT, type CliDeps, type ExitCode } from './deps.js';
import { rootDir } from './options.js';

export function addMetricsOption(cmd: Command): Command {
  return cmd.option(
    '--metrics-file <file>',
    "write the run's metrics for node_exporter's textfile collector (Prometheus text format; written atomically, on failure too), e.g. /var/lib/node_exporter/textfile/regprune.prom",
  );
}

/** What a run did, filled in as it goes; written as metrics when it ends, however it ends. */
export interface RunCounts {
  root: string | undefined;
  dryRun: boolean;
  tagsRemoved: number;
  manifestsUnlinked: number;
  reclaimableBytes: number;
  gcFreedBytes: number;
}

/** The exit code an error that ends a run gives (as runCli maps it). */
export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof RegpruneError && (err.code === 'USAGE' || err.code === 'NOT_A_ROOT') ? EXIT.usage : EXIT.failure;
}

/**
 * A commander action that runs `body` with the run's counts and writes the
 * metrics file (see withMetrics). The action's own arguments come last; the
 * options object (second to last, as commander passes it) has --metrics-file.
 */
export function metered<A extends unknown[]>(
  deps: CliDeps,
  command: 'prune' | 'gc',
  done: (code: ExitCode) => void,
  body: (counts: RunCounts, done: (code: ExitCode) => void, ...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return (...args: A) => {
    const opts = (args[args.length - 2] ?? {}) as { metricsFile?: string; root?: string };
    return withMetrics(deps, opts, command, done, (counts, finish) => body(counts, finish, ...args));
  };
}

/**
 * Runs `body` and writes the metrics file (when --metrics-file was given)
 * with the exit code it ended with, error or not. `done` is the command's
 * exit callback; `body` gets a wrapped one.
 */
export async function withMetrics(
  deps: CliDeps,
  opts: { metricsFile?: string; root?: string },
  command: 'prune' | 'gc',
  done: (code: ExitCode) => void,
  body: (counts: RunCounts, done: (code: ExitCode) => void) => Promise<void>,
): Promise<void> {
  const path = metricsPath(deps, opts.metricsFile);
  const counts: RunCounts = { root: undefined, dryRun: false, tagsRemoved: 0, manifestsUnlinked: 0, reclaimableBytes: 0, gcFreedBytes: 0 };
  const started = deps.now().getTime();
  let code: ExitCode = EXIT.ok;
  try {
    await body(counts, (c) => {
      code = c;
      done(c);
    });
  } catch (err) {
    code = exitCodeOf(err);
    throw err;
  } finally {
    if (path !== undefined) {
      try {
        await writeMetrics(deps, path, command, counts, code, started, opts);
      } catch (err) {
        deps.stderr.write(`regprune: writing the metrics file ${path}: ${err instanceof Error ? err.message : String(err)}\n`);
        if (code === EXIT.ok || code === EXIT.warnings) done(EXIT.failure);
      }
    }
  }
}

function metricsPath(deps: CliDeps, given: string | undefined): string | undefined {
  if (given === undefined) return undefined;
  if (given.trim() === '' || given.endsWith('/')) throw new UsageError(`--metrics-file ${JSON.stringify(given)}: expected a file path`);
  const path = isAbsolute(given) ? resolve(given) : resolve(deps.cwd, given);
  if (!path.endsWith('.prom')) {
    throw new UsageError(`--metrics-file ${given}: the name must end in .prom (node_exporter's textfile collector reads only *.prom)`);
  }
  return path;
}

async function writeMetrics(deps: CliDeps, path: string, command: 'prune' | 'gc', c: RunCounts, code: ExitCode, started: number, opts: { root?: string }): Promise<void> {
  let root = c.root;
  if (root === undefined) {
    try {
      root = rootDir(opts, deps);
    } catch {
      root = opts.root ?? '';
    }
  }
  const end = deps.now().getTime();
  const success = code === EXIT.ok || code === EXIT.warnings;
  const previous = success ? undefined : previousSuccess(await deps.fs.readText(path).catch(() => ''), root);
  const text = formatMetrics({
    root,
    command,
    finishedAt: Math.floor(end / 1000),
    durationSeconds: Math.max(0, (end - started) / 1000),
    success,
    exitCode: code,
    dryRun: c.dryRun,
    tagsRemoved: c.tagsRemoved,
    manifestsUnlinked: c.manifestsUnlinked,
    reclaimableBytes: c.reclaimableBytes,
    gcFreedBytes: c.gcFreedBytes,
    lastSuccessAt: success ? Math.floor(end / 1000) : previous,
  });
  // Same directory, then rename (the door's putAtomic: exclusive unpredictable temp name, flushed,
  // renamed; never through a symlink): the collector never reads half a file, and ignores the
  // temporary name, which does not end in .prom.
  await storageDoor(deps.fs, dirname(path)).putAtomic(path, text, 0o644);
}
