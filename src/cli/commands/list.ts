import { Command } from 'commander';
import type { RepositoryName } from '../../model/names.js';
import { selectTags, type TagFacts } from '../../policy/select.js';
import { inRepositoryScope, isEmptySelection } from '../../policy/selector.js';
import { walkRepositories, type RepositoryRecord } from '../../storage/walk.js';
import { addConfigOption, openDriver } from '../backend.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption, addSelectorOptions, addTableOptions, parseSelector, tableLook, type SelectorOptionValues, type TableOptionValues } from '../options.js';
import { TABLE_WIDTH, digestCell, plural, pushedCell, table } from '../render.js';
import { Reporter, json } from '../session.js';

interface ListOptions extends SelectorOptionValues, Partial<TableOptionValues> {
  root?: string;
  config?: string;
  json?: boolean;
}

interface Row extends TagFacts {
  readonly reason: string | undefined;
}

export function listCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('list')
    .description("list tags with digest and push time, by repository then push time; with prune's selectors, only the tags prune would remove (and why)")
    .argument('[refs...]', 'exact tags, as REPOSITORY:TAG')
    .usage('[REPO:TAG...] [selectors] [--json | --no-headers]');
  addTableOptions(addConfigOption(addRootOption(addSelectorOptions(cmd)))).option('--json', 'print one JSON object on stdout');
  return cmd.action(async (refs: string[], opts: ListOptions) => {
    // The same parser as prune: `list --older-than 30d --keep-last 5` shows what that prune would select.
    const selector = parseSelector(refs, opts);
    const reporter = new Reporter(deps);
    // One code path on every driver: the filesystem walk, on a bucket through its listing (src/storage/s3/view.ts).
    const driver = await openDriver(opts, deps, (p) => reporter.progress(`listing: ${p.keys} keys`));
    const named = new Set(selector.refs.map((r) => r.repository as string));
    const includeRepository = (name: Parameters<typeof inRepositoryScope>[1]) => named.has(name) || inRepositoryScope(selector, name);
    const repos: RepositoryRecord[] = await (async () => {
      if (driver.kind === 's3') await driver.view.ready();
      return walkRepositories(driver.fs, driver.layout, {
        includeRepository,
        onWarning: reporter.warn,
        onProgress: (p) => reporter.progress(`scanning: ${p.repositories} repositories, ${p.tags} tags`),
      });
    })().finally(() => driver.close());
    const root = driver.location;
    const stats = driver.stats();
    reporter.clearProgress();
    const now = deps.now();
    let rows: Row[];
    const selecting = !isEmptySelection(selector);
    if (selecting) {
      const byRepo = new Map<RepositoryName, readonly TagFacts[]>(repos.map((r) => [r.name, r.tags]));
      const selection = selectTags(byRepo, selector, now);
      rows = selection.decisions
        .filter((d) => d.verdict === 'remove')
        .map((d) => ({ repository: d.repository, tag: d.tag, digest: d.digest, pushedAt: d.pushedAt, reason: d.reason }));
      for (const m of selection.missing) reporter.note(`note: ${m.repository}:${m.tag} does not exist`);
    } else {
      rows = repos.flatMap((r) => r.tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt, reason: undefined })));
    }
    rows.sort((a, b) => (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : a.pushedAt.getTime() - b.pushedAt.getTime()));
    const look = tableLook(opts);
    if (opts.json === true) {
      json(deps, {
        version: 1,
        root,
        tags: rows.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt.toISOString(), ...(t.reason === undefined ? {} : { reason: t.reason }) })),
        repositories: repos.length,
        warnings: reporter.warnings,
        ...(stats === undefined ? {} : { stats }),
      });
    } else if (rows.length > 0) {
      const headers = ['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED', ...(selecting ? ['REASON'] : [])];
      const cells = rows.map((t) => [t.repository, t.tag, digestCell(t.digest, look.full), pushedCell(t.pushedAt.toISOString(), now), ...(selecting ? [t.reason ?? ''] : [])]);
      deps.stdout.write(table(headers, cells, { noHeaders: look.noHeaders, ...(look.full ? {} : { width: TABLE_WIDTH, shrinkable: selecting ? [0, 1, 4] : [0, 1] }) }));
      if (!look.noHeaders) deps.stdout.write(`${plural(rows.length, 'tag')} in ${plural(new Set(rows.map((r) => r.repository)).size, 'repository', 'repositories')}\n`);
    } else if (!look.noHeaders) {
      deps.stdout.write(selecting ? `no tag selected (${plural(repos.length, 'repository', 'repositories')} looked at)\n` : `no tags in ${plural(repos.length, 'repository', 'repositories')} under ${root}\n`);
    }
    done(reporter.warnings > 0 ? EXIT.warnings : EXIT.ok);
  });
}
