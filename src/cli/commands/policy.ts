import { Command } from 'commander';
import { EXIT, type CliDeps, type ExitCode } from '../deps.js';
import { describeRule, problemLines, readPolicyFile } from '../policy.js';
import { plural } from '../render.js';

/** `regprune policy check FILE`: validate a policy file without touching any storage. */
export function policyCommand(deps: CliDeps, done: (code: ExitCode) => void): Command {
  const check = new Command('check')
    .description('validate a retention policy file (YAML or JSON): problems as FILE:LINE:COL on stderr, exit 0 valid, 2 invalid; prints a summary of the rules when valid')
    .argument('<file>', 'the policy file, e.g. /etc/regprune/policy.yaml')
    .option('-q, --quiet', 'print nothing when the file is valid (warnings still go to stderr)')
    .action(async (file: string, opts: { quiet?: boolean }) => {
      const loaded = await readPolicyFile(file, deps);
      deps.stderr.write(problemLines(file, 'errors' in loaded ? [...loaded.errors, ...loaded.warnings].sort((a, b) => a.line - b.line || a.col - b.col) : loaded.warnings));
      if ('errors' in loaded) {
        deps.stderr.write(`${file}: invalid (${plural(loaded.errors.length, 'error')}${loaded.warnings.length > 0 ? `, ${plural(loaded.warnings.length, 'warning')}` : ''})\n`);
        done(EXIT.usage);
        return;
      }
      if (opts.quiet !== true) {
        const { rules } = loaded.policy;
        deps.stdout.write(`${file}: valid, ${plural(rules.length, 'rule')}${loaded.warnings.length > 0 ? ` (${plural(loaded.warnings.length, 'warning')})` : ''}; the first rule that matches a repository governs it:\n`);
        for (const r of rules) deps.stdout.write(`  ${describeRule(r)}\n`);
        deps.stdout.write('  any other repository: left alone\n');
      }
      done(EXIT.ok);
    });
  const policy = new Command('policy').description('work with retention policy files (see prune --policy)').addCommand(check);
  // addCommand does not pass a parent's exitOverride and output settings down:
  // hand `check` whatever `policy` itself was given.
  policy.hook('preSubcommand', (self, sub) => {
    sub.copyInheritedSettings(self);
  });
  return policy;
}
