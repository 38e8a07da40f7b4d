import { Command } from 'commander';
import { inRepositoryScope } from '../../policy/selector.js';
import { walkS3 } from '../../storage/s3/walk.js';
import { walkRepositories, type RepositoryRecord } from '../../storage/walk.js';
import { addConfigOption, openBackend } from '../backend.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRepoOptions, addRootOption, parseRepoFilter, type RepoOptionValues } from '../options.js';
import { plural, pushedCell, table } from '../render.js';
import { Reporter, json } from '../session.js';

interface ListOptions extends RepoOptionValues {
  root?: string;
  config?: string;
  json?: boolean;
}

export function listCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('list').description('list every tag with its digest and push time, by repository then push time');
  addConfigOption(addRootOption(addRepoOptions(cmd))).option('--json', 'print one JSON object on stdout');
  return cmd.action(async (opts: ListOptions) => {
    const filter = parseRepoFilter(opts);
    const backend = await openBackend(opts, deps);
    const reporter = new Reporter(deps);
    const scope = { ...filter, refs: [], tags: [], keep: [], keepLatest: true };
    const includeRepository = (name: Parameters<typeof inRepositoryScope>[1]) => inRepositoryScope(scope, name);
    let repos: RepositoryRecord[];
    let root: string;
    let stats: object | undefined;
    if (backend.kind === 's3') {
      try {
        const walk = await walkS3(backend.store, backend.rootPrefix, {
          includeRepository,
          onWarning: reporter.warn,
          onProgress: (p) => reporter.progress(`listing: ${p.keys} keys, ${p.repositories} repositories`),
          describe: (key) => `s3://${backend.config.bucket}/${key}`,
        });
        repos = walk.repositories;
        root = backend.location;
        stats = { keys: walk.keys, linksRead: walk.linksRead, ...backend.store.stats() };
      } finally {
        backend.store.close();
      }
    } else {
      repos = await walkRepositories(deps.fs, backend.lay, {
        includeRepository,
        onWarning: reporter.warn,
        onProgress: (p) => reporter.progress(`scanning: ${p.repositories} repositories, ${p.tags} tags`),
      });
      root = backend.lay.root;
    }
    reporter.clearProgress();
    const tags = repos.flatMap((r) => [...r.tags].sort((a, b) => a.pushedAt.getTime() - b.pushedAt.getTime()));
    const now = deps.now();
    if (opts.json === true) {
      json(deps, {
        version: 1,
        root,
        tags: tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt.toISOString() })),
        repositories: repos.length,
        warnings: reporter.warnings,
        ...(stats === undefined ? {} : { stats }),
      });
    } else if (tags.length > 0) {
      deps.stdout.write(
        table(
          ['REPOSITORY', 'TAG', 'DIGEST', 'PUSHED'],
          tags.map((t) => [t.repository, t.tag, t.digest.slice(0, 19), pushedCell(t.pushedAt.toISOString(), now)]),
        ),
      );
      deps.stdout.write(`${plural(tags.length, 'tag')} in ${plural(repos.length, 'repository', 'repositories')}\n`);
    } else {
      deps.stdout.write(`no tags in ${plural(repos.length, 'repository', 'repositories')} under ${root}\n`);
    }
    done(reporter.warnings > 0 ? EXIT.warnings : EXIT.ok);
  });
}
