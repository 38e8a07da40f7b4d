import { Command, CommanderError } from 'commander';
import { RegpruneError } from '../model/errors.js';
import { checkCommand } from './commands/check.js';
import { completionCommand } from './completion.js';
import { duCommand } from './commands/du.js';
import { gcCommand } from './commands/gc.js';
import { listCommand } from './commands/list.js';
import { policyCommand } from './commands/policy.js';
import { pruneCommand } from './commands/prune.js';
import { restoreCommand } from './commands/restore.js';
import { EXIT, type CliDeps, type ExitCode } from './deps.js';
import { finishJson, startJson } from './session.js';

const DESCRIPTION =
  "Free disk on a distribution registry (registry:2, registry:3, Debian's docker-registry) by removing tags, " +
  'and the manifests only they referenced, directly in its storage; garbage-collect (never -m) then frees the blobs.';

const EXAMPLES = `
Examples:
  regprune list --root /var/lib/registry
  regprune prune i1:T12 i2:T22 i5:T52 --dry-run
  regprune prune --older-than 30d --keep-last 5 --keep 'latest' --keep '/^v\\d+\\.\\d+\\.\\d+$/' --dry-run
  regprune prune --older-than 30d --keep-last 5 --yes --json > prune.json
  regprune policy check /etc/regprune/policy.yaml
  regprune prune --policy /etc/regprune/policy.yaml --dry-run --explain
  source <(regprune completion bash)

Exit codes: 0 done, 1 failure or partial (missing named tag, failed removal),
2 usage error or refusal (nothing touched), 3 done with warnings (something in
the tree was not understood and was left in place).`;

/** Builds the commander program; `done` receives the exit code of the command that ran. */
export function createProgram(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const program = new Command('regprune')
    .description(DESCRIPTION)
    .version(deps.version, '-V, --version', 'print the version and build')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, 'regprune: ')),
    })
    .addHelpText('after', EXAMPLES);
  const commands = [listCommand, pruneCommand, duCommand, checkCommand, gcCommand, restoreCommand, policyCommand];
  // addCommand (unlike .command()) does not pass exitOverride and the output
  // settings down: without them a bad option would exit 1 through process.exit.
  for (const make of commands) program.addCommand(make(deps, done).copyInheritedSettings(program));
  program.addCommand(completionCommand(deps, done, () => program).copyInheritedSettings(program));
  return program;
}

function explain(err: unknown): string {
  if (err instanceof RegpruneError) return `regprune: ${err.message}${err.hint === undefined ? '' : `\nhint: ${err.hint}`}\n`;
  const e = err instanceof Error ? err : new Error(String(err));
  // A system call that failed (ENOSPC, EIO, EROFS, EACCES ...): its message names the call and the path.
  if (/^E[A-Z0-9]+$/.test(String((e as { code?: unknown }).code))) return `regprune: ${e.message}\n`;
  return `regprune: unexpected error: ${e.stack ?? e.message}\n`;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  const program = createProgram(deps, (c) => {
    code = c;
  });
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  // With --json, every exit prints one object on stdout; a failure adds `error`.
  const dashes = argv.indexOf('--');
  const asJson = (dashes < 0 ? argv : argv.slice(0, dashes)).includes('--json');
  if (asJson) startJson(deps);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    if (asJson) finishJson(deps, code);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      if (asJson) finishJson(deps, EXIT.usage, { code: 'USAGE', message: err.message.replace(/^error: /, '') });
      return EXIT.usage;
    }
    deps.stderr.write(explain(err));
    const exit = err instanceof RegpruneError && (err.code === 'USAGE' || err.code === 'NOT_A_ROOT') ? EXIT.usage : EXIT.failure;
    if (asJson) {
      finishJson(
        deps,
        exit,
        err instanceof RegpruneError ? { code: err.code, message: err.message, hint: err.hint } : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) },
      );
    }
    return exit;
  }
}
