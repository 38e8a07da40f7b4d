import { Command } from 'commander';
import { limiter } from '../../util/limit.js';
import { settleHeap } from '../../util/heap.js';
import { ManifestCache } from '../../graph/load.js';
import { RegpruneError, UsageError } from '../../model/errors.js';
import { applyPlan } from '../../plan/apply.js';
import { buildPlan } from '../../plan/build.js';
import { countResults, type ApplyReport, type ManifestOutcome, type Plan, type TagOutcome } from '../../plan/plan.js';
import { selectTags } from '../../policy/select.js';
import { hasFilters, inRepositoryScope, isEmptySelection, type Selector } from '../../policy/selector.js';
import { EXIT, worse, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption, addSelectorOptions, addTableOptions, parseSelector, tableLook, type SelectorOptionValues, type TableOptionValues } from '../options.js';
import { confirmationQuestion, confirmationText } from '../confirm.js';
import { addMetricsOption, metered } from '../metrics.js';
import { nextStep, nextStepText } from '../nextstep.js';
import { TABLE_WIDTH, digestCell, humanBytes, plural, pushedCell, table } from '../render.js';
import { Reporter, json, jsonError } from '../session.js';
import { addConfigOption, openDriver } from '../backend.js';
import { applyPlanS3, finishS3Journal } from '../../storage/s3/apply.js';
import type { ApplyInput } from '../../plan/apply.js';
import { bucketStorage, configPathOf, lockHost, s3NextStep } from '../s3.js';
import { addPolicyOptions, loadPolicyForPrune, preparePolicy, renderExplain, type PolicyOptionValues } from '../policy.js';
import type { GcReport } from '../../gc/collect.js';
import { RunSession, addGcOptions, gcJson, parseGcOptions, renderGc, type GcOptionValues } from './gc.js';

interface PruneOptions extends SelectorOptionValues, PolicyOptionValues, GcOptionValues, Partial<TableOptionValues> {
  metricsFile?: string;
  root?: string;
  config?: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  verbose?: boolean;
  untagged?: boolean;
  quiet?: boolean;
}

const NOTHING_SELECTED =
  'nothing selected: name tags (REPOSITORY:TAG), or give --tag, --older-than, --before or --untagged; regprune never removes everything by default';

export function pruneCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('prune')
    .description('remove tags (and the manifests only they referenced) from the registry storage')
    .argument('[refs...]', 'exact tags to remove, as REPOSITORY:TAG (e.g. i1:T12 team/app:pr-17)')
    .usage('[REPO:TAG...] [selectors] [--dry-run | --yes]');
  addTableOptions(addGcOptions(addConfigOption(addRootOption(addSelectorOptions(cmd)))))
    .option('--untagged', 'also remove manifests that were already untagged in the selected repositories (keeps multi-platform images whole)')
    .option('-n, --dry-run', 'show what would be removed and how many bytes garbage-collect would free; change nothing')
    .option('-y, --yes', 'remove without asking (needed when not on a terminal)')
    .option('--json', 'print one JSON object on stdout (the plan, and outcomes when applied)')
    .option('-v, --verbose', 'also list the kept tags and why')
    .option('-q, --quiet', 'no progress or reminders on stderr');
  addPolicyOptions(cmd);
  addMetricsOption(cmd);
  return cmd.action(metered(deps, 'prune', done, async (counts, finish, refs: string[], opts: PruneOptions) => {
    const startedAt = deps.now().getTime();
    const selector = parseSelector(refs, opts);
    const loaded = await loadPolicyForPrune(opts, deps);
    if (loaded === undefined && isEmptySelection(selector) && opts.untagged !== true) {
      throw new UsageError(NOTHING_SELECTED, { hint: 'e.g. regprune prune --older-than 30d --keep-last 5 --dry-run' });
    }
    const dryRun = opts.dryRun === true;
    counts.dryRun = dryRun;
    if (!dryRun && opts.yes !== true && !deps.stdinIsTTY) {
      throw new UsageError('refusing to remove without confirmation: stdin is not a terminal; pass --yes to remove, or --dry-run to preview');
    }
    // With --config, garbage-collect uses that same file unless told otherwise.
    const runSettings = parseGcOptions(opts.config !== undefined && opts.gc !== undefined && opts.gcConfig === undefined ? { ...opts, gcConfig: configPathOf(opts.config, deps) } : opts, deps);
    const reporter = new Reporter(deps, opts.quiet === true);
    const driver = await openDriver(opts, deps, (p) => reporter.progress(`listing: ${p.keys} keys`));
    const lay = driver.layout;
    const storageFs = driver.fs;
    counts.root = driver.location;
    const now = deps.now();
    const policy = loaded === undefined ? undefined : preparePolicy(loaded, selector, now);
    const session = new RunSession(deps, runSettings, reporter, opts.quiet === true, opts.verbose === true);
    const asJson = opts.json === true;
    try {
      // Real runs take the storage lock (dry runs only read); with --gc, check now that it can run there.
      await session.begin(lay, !dryRun, `${now.getTime()}-${deps.pid}`, driver.kind === 's3' ? bucketStorage(driver, configPathOf(opts.config ?? '', deps), lockHost(deps)) : undefined);
      // On a bucket, tag deletions a killed run journaled are finished first (then listed again).
      let finished = 0;
      if (driver.kind === 's3' && !dryRun) {
        finished = await finishS3Journal(driver, reporter.warn);
        if (finished > 0) await driver.view.refresh();
      }
      // A bucket that cannot be listed fails here, not as a warning per directory.
      if (driver.kind === 's3') await driver.view.ready();
      // Shared with apply so manifests are read once; a dry run does not hold it while printing.
      const cache = dryRun ? undefined : new ManifestCache(storageFs, lay, limiter(64));
      const built = await buildPlan({
        fs: storageFs,
        layout: lay,
        now,
        ...(cache === undefined ? {} : { cache }),
        decide: policy?.decide ?? ((repos, dependent) => selectTags(repos, selector, now, dependent)),
        ...(policy !== undefined ? policy.untagged : opts.untagged === true ? { untaggedIn: untaggedScope(selector) } : {}),
        onWarning: reporter.warn,
        onProgress: (p) => reporter.progress(`planning: ${p.done} ${p.phase} read`),
        listBlobs: opts.verbose === true,
      });
      reporter.clearProgress();
      // Apply follows manifests to manifests only: what the byte figures needed goes, and with
      // it the plan's working set, before the apply adds its own.
      cache?.releaseBlobRefs();
      if (!dryRun) settleHeap();
      // Plain data: on s3 the root is the bucket's (the view's paths are /<key>).
      const plan: Plan = driver.kind === 's3' ? { ...built, root: driver.location } : built;
      const apply = (input: Omit<ApplyInput, 'fs' | 'layout'>) =>
        driver.kind === 's3' ? applyPlanS3({ ...input, driver, finished }) : applyPlan({ ...input, fs: deps.fs, layout: lay });
      counts.reclaimableBytes = plan.reclaimableBytes;
      if (deps.signal?.aborted === true) throw new RegpruneError('INTERRUPTED', 'interrupted while planning: nothing was removed');
      let code: ExitCode = plan.missing.length > 0 ? EXIT.failure : EXIT.ok;
      if (reporter.warnings > 0) code = worse(code, EXIT.warnings);
      for (const t of plan.kept) {
        if (refs.length > 0 && selector.refs.some((r) => r.repository === t.repository && r.tag === t.tag)) {
          reporter.note(`note: ${t.repository}:${t.tag} was named but is ${t.reason}`);
        }
      }

      if (dryRun || (plan.tags.length === 0 && plan.manifests.length === 0)) {
        // Nothing to remove, but a killed run's trash and journal are still finished.
        if (!dryRun) await apply({ plan, ...(cache === undefined ? {} : { cache }), runId: `${now.getTime()}-${deps.pid}` });
        const gc = dryRun ? undefined : await session.collect();
        if (gc !== undefined) counts.gcFreedBytes = gc.freedBytes;
        const line = dryRun
          ? undefined
          : summaryLine({ tags: 0, manifests: 0, failed: 0, reclaimable: plan.reclaimableBytes, gc, seconds: (deps.now().getTime() - startedAt) / 1000, code: gc?.ok === false ? worse(code, EXIT.failure) : code });
        if (asJson) json(deps, { ...planJson(plan, dryRun, opts.verbose === true, driver.stats()), ...(gc === undefined ? {} : { gc: gcJson(gc) }), ...(line === undefined ? {} : { summary: line }) });
        else if (policy !== undefined && opts.explain === true) renderExplain(deps, policy, plan, now, { summary: true, dryRun });
        else renderPlan(deps, plan, now, opts.verbose === true, dryRun, tableLook(opts));
        if (gc !== undefined) code = worse(code, renderGc(deps, session, gc, asJson));
        explainExit(deps, plan, undefined, gc, reporter.warnings);
        if (line !== undefined && !asJson) deps.stdout.write(`${line}\n`);
        finish(code);
        return;
      }
      if (policy !== undefined && opts.explain === true && !asJson) renderExplain(deps, policy, plan, now, { summary: false, dryRun: false });
      if (opts.yes !== true) {
        deps.stderr.write(confirmationText(plan, now));
        const ok = await deps.confirm(confirmationQuestion(plan));
        if (!ok) {
          reporter.note('nothing removed');
          if (asJson) json(deps, planJson(plan, false, opts.verbose === true));
          jsonError(deps, { code: 'NOT_CONFIRMED', message: 'not confirmed: nothing removed' });
          finish(EXIT.usage);
          return;
        }
      }
      const progress = removalProgress(deps, reporter, plan);
      const report = await apply({
        plan,
        ...(cache === undefined ? {} : { cache }),
        runId: `${now.getTime()}-${deps.pid}`,
        onOutcome: (o) => {
          session.record(o);
          progress(o);
        },
        beforeRemove: session.ahead,
        ...(session.lockTakenAtMs === undefined ? {} : { pushesSinceMs: session.lockTakenAtMs }),
        ...(deps.signal === undefined ? {} : { signal: deps.signal }),
      });
      reporter.clearProgress();
      const tagCounts = countResults(report.tags);
      const manifestCounts = countResults(splitLeftovers(plan, report).manifests);
      counts.tagsRemoved = tagCounts.removed;
      counts.manifestsUnlinked = manifestCounts.removed;
      const gc = await session.collect();
      if (gc !== undefined) counts.gcFreedBytes = gc.freedBytes;
      const failed = tagCounts.failed + countResults(report.manifests).failed;
      if (failed > 0) code = worse(code, EXIT.failure);
      // Only unlinked manifests give garbage-collect something to free; removed tags alone do not.
      const next = gc === undefined && manifestCounts.removed > 0 ? (driver.kind === 's3' ? s3NextStep(opts.config ?? '') : await nextStep(deps, lay, session.preparedGc)) : undefined;
      const line = summaryLine({
        tags: tagCounts.removed,
        manifests: manifestCounts.removed,
        failed,
        reclaimable: plan.reclaimableBytes + plan.unreferencedBytes,
        gc,
        seconds: (deps.now().getTime() - startedAt) / 1000,
        code: gc?.ok === false ? worse(code, EXIT.failure) : reporter.warnings > 0 ? worse(code, EXIT.warnings) : code,
      });
      if (asJson) {
        json(deps, {
          ...planJson(plan, false, opts.verbose === true, driver.stats()),
          ...outcomesJson(plan, report),
          ...(gc === undefined ? {} : { gc: gcJson(gc) }),
          ...(next === undefined ? {} : { nextStep: { regprune: next.regprune, byHand: next.byHand, placeholder: next.placeholder ?? null } }),
          summary: line,
        });
      } else renderOutcome(deps, plan, report);
      if (gc !== undefined) code = worse(code, renderGc(deps, session, gc, asJson));
      if (next !== undefined && !asJson) deps.stdout.write(nextStepText(next));
      explainExit(deps, plan, report, gc, reporter.warnings);
      if (!asJson) deps.stdout.write(`${line}\n`);
      finish(code);
    } finally {
      // The session releases the bucket's lock through the store: close the store after it.
      try {
        await session.close();
      } finally {
        driver.close();
      }
    }
  }));
}

/** Removal progress on a terminal: counts and rate, at most ten updates a second. */
function removalProgress(deps: CliDeps, reporter: Reporter, plan: Plan): (o: TagOutcome | ManifestOutcome) => void {
  const start = deps.now().getTime();
  let tags = 0;
  let manifests = 0;
  let shown = 0;
  return (o) => {
    if ('tag' in o) tags++;
    else manifests++;
    const t = deps.now().getTime();
    const last = tags === plan.tags.length && manifests === plan.manifests.length;
    if (t - shown < 100 && !last) return;
    shown = t;
    const rate = t > start ? Math.round(((tags + manifests) * 1000) / (t - start)) : 0;
    reporter.progress(`removing: ${tags}/${plan.tags.length} tags, ${manifests}/${plan.manifests.length} manifests (${rate}/s)`);
  };
}

/** One line at the end of every real run: the last line of stdout, or `summary` in the JSON. */
function summaryLine(s: { tags: number; manifests: number; failed: number; reclaimable: number; gc: GcReport | undefined; seconds: number; code: ExitCode }): string {
  const gcPart =
    s.gc === undefined
      ? `garbage-collect not run (${humanBytes(s.reclaimable)} to free)`
      : s.gc.dryRun
        ? `garbage-collect --dry-run: ${plural(s.gc.blobsEligible, 'blob')} eligible`
        : s.gc.exitCode === 0
          ? `garbage-collect freed ${humanBytes(s.gc.freedBytes)}${s.gc.restart?.result === 'restarted' ? ', registry restarted' : ''}`
          : 'garbage-collect FAILED';
  return (
    `regprune: ${s.code === EXIT.ok ? 'ok' : s.code === EXIT.warnings ? 'done with warnings' : 'FAILED'}: ` +
    `removed ${plural(s.tags, 'tag')}, unlinked ${plural(s.manifests, 'manifest')}` +
    (s.failed > 0 ? `, ${s.failed} failed` : '') +
    `; ${gcPart}; ${s.seconds.toFixed(1)}s (exit ${s.code})`
  );
}

/** The JSON `error` of a run that exits non-zero without an exception: the most serious reason first. */
function explainExit(deps: CliDeps, plan: Plan, report: ApplyReport | undefined, gc: GcReport | undefined, warnings: number): void {
  const failed = report === undefined ? [] : [...report.tags, ...report.manifests].filter((o) => o.result === 'failed');
  if (plan.missing.length > 0) {
    jsonError(deps, { code: 'MISSING', message: `named ${plan.missing.length === 1 ? 'tag' : 'tags'} not found: ${plan.missing.join(', ')}`, hint: 'regprune list --repo REPOSITORY shows the tags there are' });
  }
  if (failed.length > 0) {
    jsonError(deps, { code: 'FAILED', message: `${plural(failed.length, 'removal')} failed; see notRemoved`, hint: 'fix the cause (permissions, disk) and run again: what was removed stays removed' });
  }
  if (gc?.failure !== undefined) jsonError(deps, { code: 'GC', message: `${gc.failure.step} failed: ${gc.failure.message}` });
  if (warnings > 0) jsonError(deps, { code: 'WARNINGS', message: `${plural(warnings, 'warning')}: something in the tree was not understood and was left in place`, hint: 'see the warnings on stderr' });
}

/**
 * `--untagged` applies to the repositories the selection is about: those of
 * named tags, and those in the --repo/--exclude-repo scope when filters are
 * given or when --untagged is the only request (then: --repo, default all).
 */
function untaggedScope(selector: Selector) {
  const named = new Set(selector.refs.map((r) => r.repository as string));
  const scoped = hasFilters(selector) || selector.refs.length === 0;
  return (repo: string) => named.has(repo) || (scoped && inRepositoryScope(selector, repo));
}

function planJson(plan: Plan, dryRun: boolean, verbose: boolean, storageStats?: Record<string, unknown>) {
  return {
    version: plan.version,
    root: plan.root,
    dryRun,
    createdAt: plan.createdAt,
    tags: plan.tags,
    manifests: plan.manifests,
    leftovers: plan.leftovers,
    reclaimableBytes: plan.reclaimableBytes,
    reclaimableBlobs: plan.reclaimableBlobs,
    unreferencedBytes: plan.unreferencedBytes,
    unreferencedBlobs: plan.unreferencedBlobs,
    exact: plan.exact,
    ...(verbose ? { reclaimable: plan.reclaimable ?? [], unreferenced: plan.unreferenced ?? [] } : {}),
    missing: plan.missing,
    blocked: plan.blocked,
    ...(verbose ? { kept: plan.kept } : {}),
    stats: { ...plan.stats, ...storageStats },
    warnings: plan.warnings,
  };
}

/** Apply reports leftover revision dirs among manifests; they are no manifests: split them out. */
function splitLeftovers(plan: Plan, report: ApplyReport) {
  const keys = new Set(plan.leftovers.map((l) => `${l.repository}@${l.digest}`));
  const isLeftover = (m: { repository: string; digest: string }) => keys.has(`${m.repository}@${m.digest}`);
  return { manifests: report.manifests.filter((m) => !isLeftover(m)), leftovers: report.manifests.filter(isLeftover) };
}

function outcomesJson(plan: Plan, whole: ApplyReport) {
  const { manifests: manifestOutcomes, leftovers } = splitLeftovers(plan, whole);
  const report = { ...whole, manifests: manifestOutcomes };
  const removedTags = report.tags.filter((o) => o.result === 'removed');
  const removedManifests = report.manifests.filter((o) => o.result === 'removed');
  return {
    // On a real run, `tags` and `manifests` are what was actually removed.
    // Literals: rest-destructured copies are dictionary-mode objects, 4x the size, 84k of them at scale.
    tags: removedTags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt, reason: t.reason })),
    manifests: removedManifests.map((m) => ({ repository: m.repository, digest: m.digest, reason: m.reason })),
    leftovers: leftovers.map((m) => ({ repository: m.repository, digest: m.digest, reason: m.reason, result: m.result, ...(m.detail === undefined ? {} : { detail: m.detail }) })),
    notRemoved: {
      tags: report.tags.filter((o) => o.result !== 'removed'),
      manifests: report.manifests.filter((o) => o.result !== 'removed'),
    },
    results: { tags: countResults(report.tags), manifests: countResults(report.manifests) },
    trashFinished: report.trashFinished,
  };
}

function renderPlan(deps: CliDeps, plan: Plan, now: Date, verbose: boolean, dryRun: boolean, look: { noHeaders: boolean; full: boolean }): void {
  const out = deps.stdout;
  const fit = { noHeaders: look.noHeaders, ...(look.full ? {} : { width: TABLE_WIDTH, shrinkable: [0, 1, 4] }) };
  const tagRows = (tags: Plan['tags']) => tags.map((t) => [t.repository, t.tag, digestCell(t.digest, look.full), pushedCell(t.pushedAt, now), t.reason]);
  if (plan.tags.length > 0) out.write(table(['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED', 'REASON'], tagRows(plan.tags), fit));
  if (verbose && plan.kept.length > 0) {
    out.write(`\nkept:\n`);
    out.write(table(['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED', 'REASON'], tagRows(plan.kept), fit));
  }
  if (verbose && plan.manifests.length > 0) {
    out.write(`\nmanifests to unlink:\n`);
    out.write(
      table(
        ['REPOSITORY', 'DIGEST', 'REASON'],
        plan.manifests.map((m) => [m.repository, digestCell(m.digest, look.full), m.reason]),
        { noHeaders: look.noHeaders, ...(look.full ? {} : { width: TABLE_WIDTH, shrinkable: [0, 2] }) },
      ),
    );
  }
  for (const b of plan.blocked) out.write(`${b.repository}: ${b.reason}\n`);
  if (plan.tags.length === 0 && plan.manifests.length === 0) {
    out.write(`nothing to remove (${plural(plan.stats.tags, 'tag')} in ${plural(plan.stats.repositories, 'repository', 'repositories')} looked at)\n`);
    return;
  }
  const repoCount = new Set(plan.tags.map((t) => t.repository)).size;
  out.write(
    `\n${dryRun ? 'Would remove' : 'Removing'} ${plural(plan.tags.length, 'tag')} from ${plural(repoCount, 'repository', 'repositories')} ` +
      `and unlink ${plural(plan.manifests.length, 'manifest')}` +
      (plan.leftovers.length > 0 ? ` (and ${plural(plan.leftovers.length, 'empty revision directory', 'empty revision directories')})` : '') +
      `; ${gcFreeSentence(plan)}\n`,
  );
  if (dryRun) out.write('Dry run: nothing was changed. Run again without --dry-run to remove.\n');
}

/** What garbage-collect (without -m) frees after this run, and how much of it this run causes. */
function gcFreeSentence(plan: Plan): string {
  const total = plan.reclaimableBytes + plan.unreferencedBytes;
  const blobs = plan.reclaimableBlobs + plan.unreferencedBlobs;
  const bound = plan.exact ? '' : 'at least ';
  return (
    `garbage-collect will then free ${bound}${humanBytes(total)} (${plural(blobs, 'blob')})` +
    (plan.unreferencedBlobs > 0 ? `: ${humanBytes(plan.reclaimableBytes)} because of this run, ${humanBytes(plan.unreferencedBytes)} already unreferenced` : '') +
    (plan.exact ? '.' : ' (a lower bound: a repository not fully understood, see the warnings).')
  );
}

function renderOutcome(deps: CliDeps, plan: Plan, whole: ApplyReport): void {
  const out = deps.stdout;
  const report = { ...whole, manifests: splitLeftovers(plan, whole).manifests };
  const tags = countResults(report.tags);
  const manifests = countResults(report.manifests);
  for (const o of [...report.tags, ...report.manifests]) {
    if (o.result === 'removed' && o.detail === undefined) continue;
    const what = 'tag' in o ? `${o.repository}:${o.tag}` : `${o.repository}@${o.digest}`;
    out.write(`${o.result}: ${what}${o.detail === undefined ? '' : `: ${o.detail}`}\n`);
  }
  if (report.trashFinished > 0) out.write(`finished ${plural(report.trashFinished, 'entry', 'entries')} left in trash by an interrupted run\n`);
  out.write(
    `Removed ${plural(tags.removed, 'tag')} and unlinked ${plural(manifests.removed, 'manifest')}` +
      (tags.changed + manifests.changed > 0 ? `; ${tags.changed + manifests.changed} changed meanwhile and left in place` : '') +
      (tags.missing + manifests.missing > 0 ? `; ${tags.missing + manifests.missing} already gone` : '') +
      (tags.failed + manifests.failed > 0 ? `; ${tags.failed + manifests.failed} FAILED` : '') +
      '.\n',
  );
}
