import { Command } from 'commander';
import { checkStorage } from '../../graph/check.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption } from '../options.js';
import { plural, table } from '../render.js';
import { json } from '../session.js';
import { addConfigOption, openDriver } from '../backend.js';

interface CheckOptions {
  root?: string;
  config?: string;
  json?: boolean;
}

export function checkCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('check').description(
    'read-only consistency check: what breaks a pull or makes garbage-collect abort (exit 1), and leftovers that break nothing (listed, exit 0)',
  );
  addConfigOption(addRootOption(cmd)).option('--json', 'print one JSON object on stdout');
  return cmd.action(async (opts: CheckOptions) => {
    const driver = await openDriver(opts, deps);
    // A bucket that cannot be listed fails here, not as a warning per directory.
    const findings = await (async () => {
      if (driver.kind === 's3') await driver.view.ready();
      return checkStorage(driver.fs, driver.layout, { now: deps.now() });
    })().finally(() => driver.close());
    const errors = findings.filter((f) => f.severity === 'error').length;
    const stats = driver.stats();
    if (opts.json === true) {
      json(deps, { version: 1, root: driver.location, ok: errors === 0, findings, ...(stats === undefined ? {} : { stats }) });
    } else if (findings.length === 0) {
      deps.stdout.write(`ok: no problems found under ${driver.location}\n`);
    } else {
      deps.stdout.write(table(['SEVERITY', 'KIND', 'PATH', 'PROBLEM'], findings.map((f) => [f.severity, f.kind, f.path, f.message])));
      deps.stdout.write(`${plural(findings.length, 'finding')}: ${errors} that break pulls or garbage-collect\n`);
    }
    done(errors === 0 ? EXIT.ok : EXIT.failure);
  });
}
