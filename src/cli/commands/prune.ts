import { Command } from 'commander';
import { limiter } from '../../util/limit.js';
import { ManifestCache } from '../../graph/load.js';
import { UsageError } from '../../model/errors.js';
import { applyPlan } from '../../plan/apply.js';
import { buildPlan } from '../../plan/build.js';
import { countResults, type ApplyReport, type Plan } from '../../plan/plan.js';
import { selectTags } from '../../policy/select.js';
import { hasFilters, inRepositoryScope, isEmptySelection, type Selector } from '../../policy/selector.js';
import { EXIT, worse, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption, addSelectorOptions, parseSelector, type SelectorOptionValues } from '../options.js';
import { humanBytes, plural, pushedCell, table } from '../render.js';
import { Reporter, json, openStorage } from '../session.js';
import { addPolicyOptions, loadPolicyForPrune, preparePolicy, renderExplain, type PolicyOptionValues } from '../policy.js';
import { RunSession, addGcOptions, gcJson, parseGcOptions, renderGc, type GcOptionValues } from './gc.js';

interface PruneOptions extends SelectorOptionValues, PolicyOptionValues, GcOptionValues {
  root?: string;
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
  addGcOptions(addRootOption(addSelectorOptions(cmd)))
    .option('--untagged', 'also remove manifests that were already untagged in the selected repositories (keeps multi-platform images whole)')
    .option('-n, --dry-run', 'show what would be removed and how many bytes garbage-collect would free; change nothing')
    .option('-y, --yes', 'remove without asking (needed when not on a terminal)')
    .option('--json', 'print one JSON object on stdout (the plan, and outcomes when applied)')
    .option('-v, --verbose', 'also list the kept tags and why')
    .option('-q, --quiet', 'no progress or reminders on stderr');
  addPolicyOptions(cmd);
  return cmd.action(async (refs: string[], opts: PruneOptions) => {
    const selector = parseSelector(refs, opts);
    const loaded = await loadPolicyForPrune(opts, deps);
    if (loaded === undefined && isEmptySelection(selector) && opts.untagged !== true) {
      throw new UsageError(NOTHING_SELECTED, { hint: 'e.g. regprune prune --older-than 30d --keep-last 5 --dry-run' });
    }
    const dryRun = opts.dryRun === true;
    if (!dryRun && opts.yes !== true && !deps.stdinIsTTY) {
      throw new UsageError('refusing to remove without confirmation: stdin is not a terminal; pass --yes to remove, or --dry-run to preview');
    }
    const runSettings = parseGcOptions(opts, deps);
    const lay = await openStorage(opts, deps);
    const reporter = new Reporter(deps, opts.quiet === true);
    const now = deps.now();
    const policy = loaded === undefined ? undefined : preparePolicy(loaded, selector, now);
    const session = new RunSession(deps, runSettings, reporter, opts.quiet === true, opts.verbose === true);
    try {
      // Real runs take the storage lock (dry runs only read); with --gc, check now that it can run there.
      await session.begin(lay, !dryRun, `${now.getTime()}-${deps.pid}`);
      // Shared with apply so manifests are read once; a dry run does not hold it while printing.
      const cache = dryRun ? undefined : new ManifestCache(deps.fs, lay, limiter(64));
      const plan = await buildPlan({
        fs: deps.fs,
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
      let code: ExitCode = plan.missing.length > 0 ? EXIT.failure : EXIT.ok;
      if (reporter.warnings > 0) code = worse(code, EXIT.warnings);
      for (const t of plan.kept) {
        if (refs.length > 0 && selector.refs.some((r) => r.repository === t.repository && r.tag === t.tag)) {
          reporter.note(`note: ${t.repository}:${t.tag} was named but is ${t.reason}`);
        }
      }

      if (dryRun || (plan.tags.length === 0 && plan.manifests.length === 0)) {
        // Nothing to remove, but a killed run's trash and journal are still finished.
        if (!dryRun) await applyPlan({ fs: deps.fs, layout: lay, plan, ...(cache === undefined ? {} : { cache }), runId: `${now.getTime()}-${deps.pid}` });
        const gc = dryRun ? undefined : await session.collect();
        if (opts.json === true) json(deps, { ...planJson(plan, dryRun, opts.verbose === true), ...(gc === undefined ? {} : { gc: gcJson(gc) }) });
        else if (policy !== undefined && opts.explain === true) renderExplain(deps, policy, plan, now, { summary: true, dryRun });
        else renderPlan(deps, plan, now, opts.verbose === true, dryRun);
        if (gc !== undefined) code = worse(code, renderGc(deps, session, gc, opts.json === true));
        done(code);
        return;
      }
      if (policy !== undefined && opts.explain === true && opts.json !== true) renderExplain(deps, policy, plan, now, { summary: false, dryRun: false });
      if (opts.yes !== true) {
        const repoCount = new Set(plan.tags.map((t) => t.repository)).size;
        const ok = await deps.confirm(`Remove ${plural(plan.tags.length, 'tag')} from ${plural(repoCount, 'repository', 'repositories')}? [y/N] `);
        if (!ok) {
          reporter.note('nothing removed');
          done(EXIT.usage);
          return;
        }
      }
      const report = await applyPlan({ fs: deps.fs, layout: lay, plan, ...(cache === undefined ? {} : { cache }), runId: `${now.getTime()}-${deps.pid}`, onOutcome: session.record });
      const gc = await session.collect();
      const failed = [...report.tags, ...report.manifests].some((o) => o.result === 'failed');
      if (failed) code = worse(code, EXIT.failure);
      if (opts.json === true) json(deps, { ...planJson(plan, false, opts.verbose === true), ...outcomesJson(plan, report), ...(gc === undefined ? {} : { gc: gcJson(gc) }) });
      else renderOutcome(deps, plan, report, gc !== undefined);
      if (gc !== undefined) code = worse(code, renderGc(deps, session, gc, opts.json === true));
      done(code);
    } finally {
      await session.close();
    }
  });
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

function planJson(plan: Plan, dryRun: boolean, verbose: boolean) {
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
    stats: plan.stats,
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

function renderPlan(deps: CliDeps, plan: Plan, now: Date, verbose: boolean, dryRun: boolean): void {
  const out = deps.stdout;
  if (plan.tags.length > 0) {
    out.write(
      table(
        ['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED', 'REASON'],
        plan.tags.map((t) => [t.repository, t.tag, t.digest.slice(0, 19), pushedCell(t.pushedAt, now), t.reason]),
      ),
    );
  }
  if (verbose && plan.kept.length > 0) {
    out.write(`\nkept:\n`);
    out.write(
      table(
        ['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED', 'REASON'],
        plan.kept.map((t) => [t.repository, t.tag, t.digest.slice(0, 19), pushedCell(t.pushedAt, now), t.reason]),
      ),
    );
  }
  if (verbose && plan.manifests.length > 0) {
    out.write(`\nmanifests to unlink:\n`);
    out.write(table(['REPOSITORY', 'DIGEST', 'REASON'], plan.manifests.map((m) => [m.repository, m.digest, m.reason])));
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

function renderOutcome(deps: CliDeps, plan: Plan, whole: ApplyReport, gcRan = false): void {
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
      (gcRan
        ? `.\n`
        : `.\nRun garbage-collect (without -m) to free ${plan.exact ? 'about' : 'at least'} ${humanBytes(plan.reclaimableBytes + plan.unreferencedBytes)}, then restart the registry (its blob cache is stale).\n`),
  );
}
