import { isAbsolute, resolve } from 'node:path';
import { Command } from 'commander';
import { UsageError, errnoCode, ioError } from '../../model/errors.js';
import { AuditLog, parseAuditLog } from '../../storage/audit.js';
import { AppendOnlyFile } from '../../storage/door.js';
import { acquireLock } from '../../storage/lock.js';
import { applyRestore, planRestore, type RestoreDecision, type RestoreOutcome, type RestorePlan } from '../../storage/restore.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption } from '../options.js';
import { plural, table } from '../render.js';
import { Reporter, json } from '../session.js';
import { addConfigOption, openDriver } from '../backend.js';
import { acquireS3Lock } from '../../storage/s3/lock.js';
import { s3LinkWriter } from '../../storage/s3/apply.js';

interface RestoreOptions {
  root?: string;
  config?: string;
  run?: string[];
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  log?: string;
  quiet?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function restoreCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('restore')
    .description('put back the tags and manifests an audit log (--log) says were removed, while their blobs still exist')
    .argument('<log>', 'audit log written by prune --log')
    .usage('LOG [--dry-run | --yes] [--root DIR] [--run ID]');
  addConfigOption(addRootOption(cmd))
    .option('--run <id>', 'only the lines of this run (the "run" field; repeatable); default: every run in the log', collect)
    .option('-n, --dry-run', 'show what would be put back and what cannot; change nothing')
    .option('-y, --yes', 'restore without asking (needed when not on a terminal)')
    .option('--json', 'print one JSON object on stdout')
    .option('--log <file>', 'append one JSON line per restored tag and manifest')
    .option('-q, --quiet', 'no notes on stderr');
  return cmd.action(async (logArg: string, opts: RestoreOptions) => {
    const dryRun = opts.dryRun === true;
    if (!dryRun && opts.yes !== true && !deps.stdinIsTTY) {
      throw new UsageError('refusing to restore without confirmation: stdin is not a terminal; pass --yes to restore, or --dry-run to preview');
    }
    const logPath = isAbsolute(logArg) ? logArg : resolve(deps.cwd, logArg);
    let text: string;
    try {
      text = Buffer.from(await deps.fs.readFile(logPath)).toString('utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new UsageError(`audit log ${logPath} does not exist`);
      throw ioError(`reading audit log ${logPath}`, err);
    }
    const reporter = new Reporter(deps, opts.quiet === true);
    const parsed = parseAuditLog(text);
    if (parsed.lines.length === 0 && parsed.problems.length > 0) {
      throw new UsageError(`${logPath} is not a regprune audit log: none of its ${plural(parsed.problems.length, 'line')} is an audit record (first: line ${parsed.problems[0]?.line ?? 1}: ${parsed.problems[0]?.message ?? ''})`, {
        hint: 'give the file prune wrote with --log',
      });
    }
    for (const p of parsed.problems) reporter.note(`warning: ${logPath}:${p.line}: ${p.message}; ignored`);
    const runs = opts.run === undefined ? undefined : new Set(opts.run);
    const removals = parsed.lines.filter((l) => (l.action === 'remove-tag' || l.action === 'remove-manifest') && (runs === undefined || runs.has(l.run)));
    const unknown = runs === undefined ? [] : [...runs].filter((r) => !parsed.lines.some((l) => l.run === r));
    if (unknown.length > 0) {
      const known = [...new Set(parsed.lines.map((l) => l.run))];
      throw new UsageError(`--run ${unknown.join(', ')}: no such run in ${logPath}`, { hint: known.length === 0 ? 'the log has no runs' : `runs in the log: ${known.join(', ')}` });
    }

    // The root comes from the command line or the environment, never from the log: a crafted
    // or moved log must not choose where regprune writes.
    if (opts.root === undefined && opts.config === undefined && deps.env.REGPRUNE_ROOT === undefined) {
      const roots = [...new Set(removals.map((l) => l.root))];
      throw new UsageError('restore needs the storage root: pass --root DIR (or set REGPRUNE_ROOT)', {
        hint: roots.length === 0 ? undefined : `the log names ${roots.join(', ')}`,
      });
    }
    if (opts.log !== undefined) await AppendOnlyFile.check(deps.fs, isAbsolute(opts.log) ? opts.log : resolve(deps.cwd, opts.log), '--log');
    const driver = await openDriver(opts, deps);
    const lay = driver.layout;
    // A bucket's runs are logged with its location (s3://bucket/root).
    const root = driver.location;
    const mine = removals.filter((l) => l.root === root);
    if (removals.length > 0 && mine.length === 0) {
      driver.close();
      throw new UsageError(`${logPath} has no removals on ${root} (it is about ${[...new Set(removals.map((l) => l.root))].join(', ')})`);
    }

    const now = deps.now();
    const host = { pid: deps.pid, hostname: deps.run.hostname, now, isAlive: (pid: number) => deps.run.isAlive(pid) };
    const lock = dryRun ? undefined : driver.kind === 's3' ? await acquireS3Lock(driver, host) : await acquireLock(deps.fs, lay, host);
    try {
      if (lock?.tookOver !== undefined) reporter.note(`note: took over a stale lock on ${lay.root} (pid ${lock.tookOver.pid}: that process is gone)`);
      if (lock?.tookOverHalfWritten === true) reporter.note(`note: took over an empty or cut-short lock file on ${lay.root} (left by a crash or a full disk)`);
      const plan = await planRestore(driver.fs, lay, mine);
      for (const i of plan.ignored) reporter.note(`warning: ${logPath}: ${i} is not a valid name or digest; ignored`);
      const todo = [...plan.manifests, ...plan.tags].filter((d) => d.action === 'restore').length;
      const refused = [...plan.manifests, ...plan.tags].filter((d) => d.action === 'refused').length;
      if (dryRun || todo === 0) {
        if (opts.json === true) json(deps, { version: 1, root, log: logPath, dryRun, manifests: plan.manifests, tags: plan.tags });
        else renderPlan(deps, plan, dryRun);
        done(refused > 0 ? EXIT.failure : EXIT.ok);
        return;
      }
      if (opts.yes !== true) {
        const ok = await deps.confirm(`Restore ${plural(plan.tags.filter((t) => t.action === 'restore').length, 'tag')} and ${plural(plan.manifests.filter((m) => m.action === 'restore').length, 'manifest')}? [y/N] `);
        if (!ok) {
          reporter.note('nothing restored');
          done(EXIT.usage);
          return;
        }
      }
      let audit: AuditLog | undefined;
      if (opts.log !== undefined) {
        audit = new AuditLog(deps.fs, isAbsolute(opts.log) ? opts.log : resolve(deps.cwd, opts.log), { root, run: `${now.getTime()}-${deps.pid}` }, deps.now);
        await audit.open();
      }
      const result = await applyRestore(
        driver.fs,
        lay,
        plan,
        (o) => {
          if (audit === undefined || o.result !== 'restored') return;
          audit.write({ action: o.kind === 'tag' ? 'restore-tag' : 'restore-manifest', repository: o.repository, tag: o.tag, digest: o.digest, pushedAt: o.pushedAt, reason: `restored from ${logPath}` });
        },
        driver.kind === 's3' ? s3LinkWriter(driver) : undefined,
      );
      await audit?.flush();
      const all = [...result.manifests, ...result.tags];
      if (opts.json === true) json(deps, { version: 1, root, log: logPath, dryRun: false, manifests: result.manifests, tags: result.tags });
      else renderOutcome(deps, result.manifests, result.tags);
      done(all.some((o) => o.result === 'failed' || o.result === 'refused') ? EXIT.failure : EXIT.ok);
    } finally {
      await lock?.release();
      driver.close();
    }
  });
}

const what = (e: { kind: string; repository: string; tag: string | null; digest: string }) =>
  e.kind === 'tag' ? `${e.repository}:${e.tag}` : `${e.repository}@${e.digest}`;

function renderPlan(deps: CliDeps, plan: RestorePlan, dryRun: boolean): void {
  const rows = [...plan.manifests, ...plan.tags].map((d: RestoreDecision) => [d.action === 'restore' ? 'restore' : d.action, d.kind, what(d), d.reason]);
  if (rows.length === 0) {
    deps.stdout.write('nothing to restore: the log has no removals for this storage\n');
    return;
  }
  deps.stdout.write(table(['ACTION', 'KIND', 'WHAT', 'WHY'], rows));
  const n = rows.filter((r) => r[0] === 'restore').length;
  deps.stdout.write(
    dryRun
      ? `\nWould restore ${plural(n, 'entry', 'entries')}. Dry run: nothing was changed.\n`
      : '\nNothing to restore: every entry is back already, was pushed again since, or cannot come back.\n',
  );
}

function renderOutcome(deps: CliDeps, manifests: readonly RestoreOutcome[], tags: readonly RestoreOutcome[]): void {
  const all = [...manifests, ...tags];
  for (const o of all) {
    if (o.result === 'restored') continue;
    deps.stdout.write(`${o.result}: ${what(o)}${o.detail === undefined ? '' : `: ${o.detail}`}\n`);
  }
  const count = (list: readonly RestoreOutcome[], r: RestoreOutcome['result']) => list.filter((o) => o.result === r).length;
  deps.stdout.write(
    `Restored ${plural(count(tags, 'restored'), 'tag')} and ${plural(count(manifests, 'restored'), 'manifest')}` +
      (count(all, 'refused') > 0 ? `; ${count(all, 'refused')} refused (blobs gone)` : '') +
      (count(all, 'exists') > 0 ? `; ${count(all, 'exists')} pushed again since, left as is` : '') +
      (count(all, 'failed') > 0 ? `; ${count(all, 'failed')} FAILED` : '') +
      '.\n',
  );
}
