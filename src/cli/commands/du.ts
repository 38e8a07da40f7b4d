import { Command } from 'commander';
import { measureUsage } from '../../graph/usage.js';
import { inRepositoryScope } from '../../policy/selector.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRepoOptions, addRootOption, parseRepoFilter, type RepoOptionValues } from '../options.js';
import { bar, humanBytes, plural, table } from '../render.js';
import { Reporter, json } from '../session.js';
import { addConfigOption, openDriver } from '../backend.js';

interface DuOptions extends RepoOptionValues {
  root?: string;
  config?: string;
  json?: boolean;
}

export function duCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('du').description(
    'disk usage per repository: bytes referenced, bytes only it references; shared, unreferenced and upload totals',
  );
  addConfigOption(addRootOption(addRepoOptions(cmd))).option('--json', 'print one JSON object on stdout');
  return cmd.action(async (opts: DuOptions) => {
    const filter = parseRepoFilter(opts);
    const reporter = new Reporter(deps);
    const driver = await openDriver(opts, deps, (p) => reporter.progress(`listing: ${p.keys} keys`));
    const scope = { ...filter, refs: [], tags: [], keep: [], keepLatest: true };
    // A bucket that cannot be listed fails here, not as a warning per directory.
    if (driver.kind === 's3') await driver.view.ready().catch((err: unknown) => {
      driver.close();
      throw err;
    });
    const measured = await measureUsage(driver.fs, driver.layout, {
      now: deps.now(),
      includeRepository: (name) => inRepositoryScope(scope, name),
      onWarning: reporter.warn,
      onProgress: (p) => reporter.progress(`measuring: ${p.done} ${p.phase} read`),
    }).finally(() => driver.close());
    const usage = { ...measured, root: driver.location };
    reporter.clearProgress();
    const stats = driver.stats();
    if (opts.json === true) json(deps, { version: 1, ...usage, ...(stats === undefined ? {} : { stats }) });
    else {
      const max = Math.max(1, ...usage.repositories.map((r) => r.exclusiveBytes));
      const out = deps.stdout;
      if (usage.repositories.length > 0) {
        out.write(
          table(
            ['REPOSITORY', 'TAGS', 'MANIFESTS', 'REFERENCED', 'EXCLUSIVE', ''],
            usage.repositories.map((r) => [
              r.repository + (r.incomplete === undefined ? '' : ' (incomplete)'),
              String(r.tags),
              String(r.manifests),
              humanBytes(r.referencedBytes),
              humanBytes(r.exclusiveBytes),
              bar(r.exclusiveBytes / max),
            ]),
            [1, 2, 3, 4],
          ),
        );
        out.write('\n');
      }
      const u = usage;
      out.write(
        table(
          ['TOTAL', 'BYTES', ''],
          [
            ['blob store', humanBytes(u.blobStore.bytes), plural(u.blobStore.blobs, 'blob')],
            ['  exclusive to one repository', humanBytes(u.exclusiveBytes), ''],
            ['  shared between repositories', humanBytes(u.sharedBytes), ''],
            ['  unreferenced (garbage-collect frees it now)', humanBytes(u.unreferenced.bytes), plural(u.unreferenced.blobs, 'blob')],
            ['uploads in progress or abandoned', humanBytes(u.uploads.bytes), `${u.uploads.count} (${u.uploads.stale} started over 24h ago: ${humanBytes(u.uploads.staleBytes)})`],
          ],
          [1],
        ),
      );
    }
    done(reporter.warnings > 0 ? EXIT.warnings : EXIT.ok);
  });
}
