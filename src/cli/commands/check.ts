import { Command } from 'commander';
import { checkStorage } from '../../graph/check.js';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { addRootOption } from '../options.js';
import { plural, table } from '../render.js';
import { json, openStorage } from '../session.js';

interface CheckOptions {
  root?: string;
  json?: boolean;
}

export function checkCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const cmd = new Command('check').description(
    'read-only consistency check: what breaks a pull or makes garbage-collect abort (exit 1), and leftovers that break nothing (listed, exit 0)',
  );
  addRootOption(cmd).option('--json', 'print one JSON object on stdout');
  return cmd.action(async (opts: CheckOptions) => {
    const lay = await openStorage(opts, deps);
    const findings = await checkStorage(deps.fs, lay, { now: deps.now() });
    const errors = findings.filter((f) => f.severity === 'error').length;
    if (opts.json === true) {
      json(deps, { version: 1, root: lay.root, ok: errors === 0, findings });
    } else if (findings.length === 0) {
      deps.stdout.write(`ok: no problems found under ${lay.root}\n`);
    } else {
      deps.stdout.write(table(['SEVERITY', 'KIND', 'PATH', 'PROBLEM'], findings.map((f) => [f.severity, f.kind, f.path, f.message])));
      deps.stdout.write(`${plural(findings.length, 'finding')}: ${errors} that break pulls or garbage-collect\n`);
    }
    done(errors === 0 ? EXIT.ok : EXIT.failure);
  });
}
