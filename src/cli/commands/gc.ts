import { randomUUID } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { Command } from 'commander';
import { collectGarbage, prepareGc, type GcReport, type GcSettings, type PreparedGc } from '../../gc/collect.js';
import { isMarkingLine } from '../../gc/output.js';
import { formatArgv } from '../../gc/process.js';
import { parseGcMode, splitCommand } from '../../gc/target.js';
import { verifyGcStorage } from '../../gc/verify.js';
import { RegpruneError, UsageError } from '../../model/errors.js';
import type { ManifestOutcome, PlannedManifest, PlannedTag, TagOutcome } from '../../plan/plan.js';
import { AuditLog } from '../../storage/audit.js';
import { AppendOnlyFile } from '../../storage/door.js';
import { acquireLock, type HeldLock } from '../../storage/lock.js';
import type { Layout } from '../../storage/paths.js';
import type { Digest } from '../../model/names.js';
import { EXIT, worse, type CliDeps, type ExitCode } from '../deps.js';
import { addMetricsOption, metered } from '../metrics.js';
import { addRootOption } from '../options.js';
import { humanBytes, plural } from '../render.js';
import { Reporter, json, jsonError } from '../session.js';
import { addConfigOption, openBackend } from '../backend.js';
import { bucketStorage, configPathOf, lockHost } from '../s3.js';
import { layout } from '../../storage/paths.js';

/** The flags `prune` and `gc` share. */
export interface GcOptionValues {
  gc?: string;
  gcConfig?: string;
  gcDryRun?: boolean;
  kubeContext?: string;
  registryBin?: string;
  restart?: boolean;
  restartCmd?: string;
  log?: string;
  quiet?: boolean;
  verbose?: boolean;
}

export function addGcOptions(cmd: Command, withModeFlag = true): Command {
  if (withModeFlag) {
    cmd.option('--gc <mode>', 'then run garbage-collect (never -m) where the registry lives: none (default), local, docker:CONTAINER, kubectl:[NS/]POD, kubectl:[NS/]deployment/NAME');
  }
  return cmd
    .option('--gc-config <path>', 'registry config path where garbage-collect runs (default: whichever of /etc/docker/registry/config.yml, /etc/distribution/config.yml exists there)')
    .option('--gc-dry-run', 'run garbage-collect with --dry-run: report what it would delete, delete nothing')
    .option('--kube-context <name>', 'kubectl context for --gc kubectl:... (passed as --context)')
    .option('--registry-bin <path>', 'registry binary for --gc local (default: registry or docker-registry on PATH)')
    .option('--restart', 'restart the registry after garbage-collect deleted blobs (its in-memory blob cache is stale): docker restart / kubectl rollout restart / --restart-cmd')
    .option('--restart-cmd <command>', 'how to restart the registry (run without a shell; implies --restart), e.g. "systemctl restart docker-registry"')
    .option('--log <file>', 'append one JSON line per removed tag and manifest, and one for the garbage-collect result (regprune restore reads it)');
}

export interface RunSettings {
  readonly gc: GcSettings | undefined;
  readonly logPath: string | undefined;
}

/** Parses the shared flags; usage errors come out here, before anything is touched. */
export function parseGcOptions(opts: GcOptionValues, deps: CliDeps, modeText = opts.gc): RunSettings {
  const target = parseGcMode(modeText ?? 'none', {
    kubeContext: opts.kubeContext,
    registryBin: opts.registryBin,
  });
  const restartCmd = opts.restartCmd === undefined ? undefined : splitCommand(opts.restartCmd);
  const restart = opts.restart === true || restartCmd !== undefined;
  if (target === undefined) {
    const stray = (['gcConfig', 'gcDryRun', 'restart', 'restartCmd'] as const).find((k) => opts[k] !== undefined);
    if (stray !== undefined) {
      const flag = `--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new UsageError(`${flag} needs --gc MODE (where garbage-collect runs)`);
    }
  }
  if (opts.gcConfig !== undefined && (opts.gcConfig.trim() === '' || opts.gcConfig.startsWith('-') || !opts.gcConfig.startsWith('/'))) {
    throw new UsageError(`--gc-config ${JSON.stringify(opts.gcConfig)}: expected an absolute path (as seen where garbage-collect runs)`);
  }
  let logPath: string | undefined;
  if (opts.log !== undefined) {
    if (opts.log.trim() === '') throw new UsageError('--log: empty path');
    logPath = isAbsolute(opts.log) ? resolve(opts.log) : resolve(deps.cwd, opts.log);
  }
  return {
    gc:
      target === undefined
        ? undefined
        : { target, config: opts.gcConfig, dryRun: opts.gcDryRun === true, restart, restartCmd },
    logPath,
  };
}

export const PUSH_REMINDER =
  "reminder: garbage-collect is not safe while images are pushed: run it in a maintenance window or with the registry read-only (REGISTRY_STORAGE_MAINTENANCE_READONLY='{\"enabled\":true}'); see docs/operations.md";

/** A bucket (s3 --config) in place of a directory: its lock, how its blob store is measured, the config file garbage-collect must use. */
export interface BucketStorage {
  readonly location: string;
  /** Absolute path of the --config file: garbage-collect runs with exactly it (local mode). */
  readonly configPath: string;
  lock(): Promise<HeldLock>;
  blobSizes(): Promise<ReadonlyMap<Digest, number>>;
}

/**
 * What one run holds: the lock (real runs only), the audit log, and the
 * prepared garbage-collect. `close()` releases everything, also after errors.
 */
export class RunSession {
  private lock: HeldLock | undefined;
  private log: AuditLog | undefined;
  private prepared: PreparedGc | undefined;
  private lay: Layout | undefined;
  private verified: string | undefined;
  private bucket: BucketStorage | undefined;
  constructor(
    private readonly deps: CliDeps,
    readonly settings: RunSettings,
    private readonly reporter: Reporter,
    private readonly quiet: boolean,
    private readonly verbose = false,
  ) {}

  /**
   * `write` runs take the lock and open the log; every run with --gc checks
   * that garbage-collect can run there (program, container or pod, config).
   * Dry runs take no lock: they only read (and run `test -f` where GC would run).
   */
  async begin(lay: Layout, write: boolean, runId: string, bucket?: BucketStorage): Promise<void> {
    this.lay = lay;
    this.bucket = bucket;
    // --log is checked before anything else happens, dry runs included (not a symlink, writable).
    if (this.settings.logPath !== undefined) await AppendOnlyFile.check(this.deps.fs, this.settings.logPath, '--log');
    // The log is opened (and its first line written) before the storage is touched: a log on a
    // full disk refuses the run here.
    if (write && this.settings.logPath !== undefined) {
      this.log = new AuditLog(this.deps.fs, this.settings.logPath, { root: bucket?.location ?? lay.root, run: runId }, this.deps.now);
      await this.log.open();
    }
    // Garbage-collect's program, container and config are checked before the lock: a missing
    // one is a usage error and nothing under the root is touched.
    await this.prepareGc(lay, write);
    if (write) {
      this.lock = bucket !== undefined ? await bucket.lock() : await acquireLock(this.deps.fs, lay, {
        pid: this.deps.pid,
        hostname: this.deps.run.hostname,
        now: this.deps.now(),
        isAlive: (pid) => this.deps.run.isAlive(pid),
      });
      const old = this.lock.tookOver;
      if (old !== undefined) this.reporter.note(`note: took over a stale lock on ${lay.root} (pid ${old.pid}, started ${old.startedAt}: that process is gone)`);
      if (this.lock.tookOverHalfWritten) this.reporter.note(`note: took over an empty or cut-short lock file on ${lay.root} (left by a crash or a full disk)`);
    }
  }

  private async prepareGc(lay: Layout, write: boolean): Promise<void> {
    const gc = this.settings.gc;
    if (gc !== undefined) {
      try {
        this.prepared = await prepareGc(this.deps.run, gc);
      } catch (err) {
        this.log?.write(gcFailureRecord(gc, err));
        throw err;
      }
      // On a bucket: garbage-collect runs here with the very file that names the bucket.
      if (this.bucket !== undefined) {
        if (gc.target.kind !== 'local' || this.prepared.config !== this.bucket.configPath) {
          throw new UsageError(`with an s3 --config, garbage-collect runs locally with that same file (${this.bucket.configPath})`, {
            hint: 'use --gc local (or regprune gc local --config FILE) without --gc-config; the registry\'s garbage-collect reads the bucket from the file itself',
          });
        }
        this.verified = `the same config file as --config (${this.bucket.location})`;
      }
      // Proven before anything is removed: garbage-collect elsewhere would free nothing here.
      if (this.bucket === undefined) try {
        const v = await verifyGcStorage({ fs: this.deps.fs, layout: lay, proc: this.deps.run, gc: this.prepared, env: this.deps.env, token: randomUUID() });
        this.prepared = v.gc;
        this.verified = v.how;
      } catch (err) {
        // A dry run may lack the right to write the marker: say so, change nothing.
        if (write || !(err instanceof RegpruneError) || err.code !== 'IO') {
          this.log?.write(gcFailureRecord(gc, err));
          throw err;
        }
        this.reporter.note(`note: could not prove that garbage-collect runs on ${lay.root} (dry run): ${err.message}`);
      }
      if (!this.quiet && this.prepared.configSource === 'found') {
        this.reporter.note(`garbage-collect config: ${this.prepared.config} (found in ${this.prepared.runner.where})`);
      }
      if (!this.quiet && this.verified !== undefined && this.verbose) this.reporter.note(`garbage-collect storage: ${this.verified}`);
    }
  }

  /** When this run's lock was taken, by the storage's clock (undefined without a lock). */
  get lockTakenAtMs(): number | undefined {
    return this.lock?.takenAtMs;
  }

  /** The garbage-collect that was prepared (and proven), for the next-step advice. */
  get preparedGc(): PreparedGc | undefined {
    return this.prepared;
  }

  get gcWhere(): string | undefined {
    return this.prepared?.runner.where;
  }

  /** For applyPlan's beforeRemove: the audit line is written and flushed before the removal (throws: nothing more is removed). */
  ahead = (e: PlannedTag | PlannedManifest): void => {
    if (this.log === undefined) return;
    if ('tag' in e) {
      this.log.writeAhead({ action: 'remove-tag', repository: e.repository, tag: e.tag, digest: e.digest, pushedAt: e.pushedAt, reason: e.reason });
    } else {
      this.log.writeAhead({ action: 'remove-manifest', repository: e.repository, tag: null, digest: e.digest, pushedAt: null, reason: e.reason });
    }
  };

  /** For applyPlan's onOutcome: a removal logged ahead that did not happen gets a second line saying so. */
  record = (o: TagOutcome | ManifestOutcome): void => {
    if (this.log === undefined || o.result === 'removed' || o.result === 'missing') return;
    if (o.result === 'changed' && o.detail !== undefined && !/during removal/.test(o.detail)) return; // decided before the line was written
    this.log.write({ action: 'not-removed', repository: o.repository, tag: 'tag' in o ? o.tag : null, digest: o.digest, result: o.result, detail: o.detail ?? null });
  };

  /** Runs garbage-collect when --gc was given (undefined otherwise), streaming its output to stderr. */
  async collect(): Promise<GcReport | undefined> {
    const prepared = this.prepared;
    const lay = this.lay;
    if (prepared === undefined || lay === undefined) return undefined;
    if (!this.quiet) this.reporter.note(PUSH_REMINDER);
    const tty = this.deps.stderr.isTTY === true;
    let lines = 0;
    // The restart's output comes through the same callback: label it as what it is.
    let label = 'garbage-collect';
    const report = await collectGarbage({
      fs: this.deps.fs,
      layout: lay,
      proc: this.deps.run,
      gc: prepared,
      ...(this.bucket === undefined ? {} : { measure: () => this.bucket!.blobSizes() }),
      events: {
        onWarning: this.reporter.warn,
        onStep: (text) => {
          label = text.startsWith('restarting') ? 'restart' : 'garbage-collect';
          this.reporter.progress(`${label === 'restart' ? '' : 'garbage-collect: '}${text}`);
        },
        onLine: (line, stream) => {
          lines++;
          const alarming = stream === 'stderr' && /level=(?:error|fatal|panic)|^panic:|^Error/i.test(line);
          if (alarming) this.reporter.note(`${label}: ${line}`);
          else if (tty) this.reporter.progress(`${label}: ${lines} lines of output`);
          else if (!this.quiet && (this.verbose || !isMarkingLine(line))) this.reporter.note(`${label}: ${line}`);
        },
      },
    });
    this.reporter.clearProgress();
    this.log?.write({
      action: 'gc',
      mode: report.mode,
      command: report.command,
      exitCode: report.exitCode,
      marked: report.marked,
      blobsEligible: report.blobsEligible,
      manifestsEligible: report.manifestsEligible,
      freedBytes: report.freedBytes,
      layerLinksRemoved: report.layerLinksRemoved,
      configUsed: report.configUsed,
      dryRun: report.dryRun,
      restart: report.restart?.result ?? null,
      ok: report.ok,
      error: report.failure?.message ?? null,
    });
    return report;
  }

  /** How to restart this registry, for the stale-cache warning. */
  restartAdvice(): string {
    const p = this.prepared;
    if (p === undefined) return 'restart the registry';
    const own = p.runner.restart();
    if (Array.isArray(own)) return `restart the registry now (${(own as readonly (readonly string[])[]).map((a) => formatArgv(a)).join(' && ')}), or run with --restart`;
    return p.runner.mode === 'local'
      ? 'restart the registry now (e.g. systemctl restart docker-registry), or run with --restart-cmd "..."'
      : `restart the registry in ${p.runner.where} now (its deployment or controller), or run with --restart-cmd "..."`;
  }

  async close(): Promise<void> {
    let err: unknown;
    try {
      await this.log?.flush();
    } catch (e) {
      err = e;
    }
    await this.lock?.release();
    if (err !== undefined) throw err;
  }
}

function gcFailureRecord(gc: GcSettings, err: unknown) {
  return {
    action: 'gc' as const,
    mode: formatMode(gc),
    command: [],
    exitCode: null,
    marked: 0,
    blobsEligible: 0,
    manifestsEligible: 0,
    freedBytes: 0,
    layerLinksRemoved: 0,
    configUsed: gc.config ?? null,
    dryRun: gc.dryRun,
    restart: null,
    ok: false,
    error: err instanceof Error ? err.message : String(err),
  };
}

function formatMode(gc: GcSettings): string {
  const t = gc.target;
  if (t.kind === 'docker') return `docker:${t.container}`;
  if (t.kind === 'local') return 'local';
  const ns = t.namespace === undefined ? '' : `${t.namespace}/`;
  return `kubectl:${ns}${t.resource.kind === 'deployment' ? 'deployment/' : ''}${t.resource.name}`;
}

/** The `gc` object of the JSON output. */
export function gcJson(r: GcReport) {
  return {
    mode: r.mode,
    command: r.command,
    exitCode: r.exitCode,
    marked: r.marked,
    blobsEligible: r.blobsEligible,
    manifestsEligible: r.manifestsEligible,
    freedBytes: r.freedBytes,
    blobsDeleted: r.blobsDeleted,
    layerLinksRemoved: r.layerLinksRemoved,
    configUsed: r.configUsed,
    configSource: r.configSource,
    dryRun: r.dryRun,
    restart: r.restart,
    staleCache: r.staleCache,
    ok: r.ok,
    error: r.failure?.message ?? null,
  };
}

/** The summary for people (stdout), failures and the stale-cache warning (stderr); returns the exit code it implies. */
export function renderGc(deps: CliDeps, session: RunSession, r: GcReport, asJson: boolean): ExitCode {
  if (!asJson) {
    const out = deps.stdout;
    out.write(
      `garbage-collect${r.dryRun ? ' --dry-run' : ''} in ${session.gcWhere ?? r.mode} with ${r.configUsed}${r.configSource === 'found' ? ' (found there)' : ''}: ` +
        (r.exitCode === 0
          ? `${plural(r.marked, 'blob')} marked, ${plural(r.blobsEligible, 'blob')} and ${plural(r.manifestsEligible, 'manifest')} eligible for deletion.\n`
          : 'failed.\n'),
    );
    if (!r.dryRun && r.exitCode === 0) {
      out.write(`Freed ${humanBytes(r.freedBytes)} (${plural(r.blobsDeleted, 'blob')}); removed ${plural(r.layerLinksRemoved, 'dangling layer link')}.\n`);
    }
    if (r.restart?.result === 'restarted') out.write(`Restarted the registry: ${r.restart.commands.map((c) => formatArgv(c)).join(' && ')}\n`);
    if (r.restart?.result === 'skipped' && r.exitCode === 0) out.write(`Restart skipped: ${r.restart.detail ?? ''}\n`);
  }
  if (r.failure !== undefined) {
    deps.stderr.write(`regprune: ${r.failure.step} failed: ${r.failure.message}\n`);
    if (r.failure.step === 'garbage-collect') deps.stderr.write('hint: nothing more was done after it; fix the cause and run `regprune gc` with the same --gc options\n');
  }
  if (r.staleCache) {
    deps.stderr.write(
      `warning: garbage-collect deleted ${plural(Math.max(r.blobsDeleted, r.blobsEligible), 'blob')} and the registry was not restarted. ` +
        'Its in-memory blob descriptor cache still answers HEAD 200 for them, so the next push of a layer it had skips the upload ' +
        '("Layer already exists"), the manifest is accepted, and pulls of that image fail (the layer is gone: blob unknown or a cut-off download).\n' +
        `fix: ${session.restartAdvice()}. With a redis cache, delete the blobs::<digest> keys or flush it.\n`,
    );
  }
  return r.ok ? EXIT.ok : EXIT.failure;
}

interface GcCommandOptions extends GcOptionValues {
  metricsFile?: string;
  root?: string;
  config?: string;
  dryRun?: boolean;
  json?: boolean;
}

export function gcCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('gc')
    .description('run garbage-collect (never -m) where the registry lives, report the bytes freed, remove dangling layer links, restart the registry')
    .argument('[mode]', 'where: local, docker:CONTAINER, kubectl:[NS/]POD, kubectl:[NS/]deployment/NAME (or --gc MODE)')
    .usage('MODE [--gc-config PATH] [--restart] [--root DIR]');
  cmd.option('--gc <mode>', 'where garbage-collect runs (same as the MODE argument)');
  addConfigOption(addRootOption(addGcOptions(cmd, false)))
    .option('-n, --dry-run', 'same as --gc-dry-run')
    .option('--json', 'print one JSON object on stdout')
    .option('-v, --verbose', 'also pass on the per-item marking lines of garbage-collect (when stderr is not a terminal)')
    .option('-q, --quiet', 'no progress or reminders on stderr');
  addMetricsOption(cmd);
  return cmd.action(metered(deps, 'gc', done, async (counts, finish, mode: string | undefined, opts: GcCommandOptions) => {
    if (mode !== undefined && opts.gc !== undefined && mode !== opts.gc) throw new UsageError(`two modes given: ${mode} and --gc ${opts.gc}`);
    const modeText = mode ?? opts.gc;
    if (modeText === undefined || modeText.trim() === 'none') {
      throw new UsageError('gc needs a mode: where does the registry run?', { hint: 'e.g. regprune gc docker:registry --root /srv/registry --restart' });
    }
    // With --config, garbage-collect runs with that same file unless --gc-config says otherwise.
    const gcConfig = opts.gcConfig ?? (opts.config === undefined ? undefined : configPathOf(opts.config, deps));
    const settings = parseGcOptions({ ...opts, ...(gcConfig === undefined ? {} : { gcConfig }), gcDryRun: opts.gcDryRun === true || opts.dryRun === true ? true : undefined }, deps, modeText);
    counts.dryRun = settings.gc?.dryRun === true;
    const backend = await openBackend(opts, deps);
    // A bucket is not listed here: garbage-collect is measured from the listing of its blob store.
    const lay = backend.kind === 'filesystem' ? backend.lay : layout(backend.rootPrefix === '' ? '/' : `/${backend.rootPrefix.replace(/\/$/, '')}`);
    const bucket = backend.kind === 's3' ? bucketStorage(backend, configPathOf(opts.config ?? '', deps), lockHost(deps)) : undefined;
    const root = bucket?.location ?? lay.root;
    counts.root = root;
    const reporter = new Reporter(deps, opts.quiet === true);
    const session = new RunSession(deps, settings, reporter, opts.quiet === true, opts.verbose === true);
    const now = deps.now();
    try {
      await session.begin(lay, settings.gc?.dryRun !== true, `${now.getTime()}-${deps.pid}`, bucket);
      const report = await session.collect();
      if (report === undefined) throw new UsageError('gc needs a mode');
      counts.gcFreedBytes = report.freedBytes;
      const expected = worse(report.ok ? EXIT.ok : EXIT.failure, reporter.warnings > 0 ? EXIT.warnings : EXIT.ok);
      const seconds = (deps.now().getTime() - now.getTime()) / 1000;
      const line =
        `regprune: ${expected === EXIT.ok ? 'ok' : expected === EXIT.warnings ? 'done with warnings' : 'FAILED'}: ` +
        (report.exitCode !== 0
          ? 'garbage-collect FAILED'
          : report.dryRun
            ? `garbage-collect --dry-run: ${plural(report.blobsEligible, 'blob')} eligible`
            : `garbage-collect freed ${humanBytes(report.freedBytes)} (${plural(report.blobsDeleted, 'blob')}), removed ${plural(report.layerLinksRemoved, 'dangling layer link')}`) +
        (report.restart?.result === 'restarted' ? ', registry restarted' : report.restart?.result === 'failed' ? ', restart FAILED' : '') +
        `; ${seconds.toFixed(1)}s (exit ${expected})`;
      if (opts.json === true) json(deps, { version: 1, root, gc: gcJson(report), ...(backend.kind === 's3' ? { stats: backend.store.stats() } : {}), summary: line });
      let code = renderGc(deps, session, report, opts.json === true);
      if (report.failure !== undefined) jsonError(deps, { code: 'GC', message: `${report.failure.step} failed: ${report.failure.message}` });
      if (reporter.warnings > 0) code = worse(code, EXIT.warnings);
      if (opts.json !== true) deps.stdout.write(`${line}\n`);
      await session.close();
      finish(code);
    } finally {
      // The session releases the bucket's lock through the store: close the store after it.
      try {
        await session.close();
      } finally {
        if (backend.kind === 's3') backend.store.close();
      }
    }
  }));
}
