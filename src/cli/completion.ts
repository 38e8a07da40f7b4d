import { Command } from 'commander';
import { UsageError } from '../model/errors.js';
import { EXIT, type CliDeps, type ExitCode } from './deps.js';

/** What a completion script needs to know about one command. */
export interface CommandSpec {
  /** `prune`, or `policy check` for a nested one. */
  readonly name: string;
  readonly description: string;
  readonly options: readonly OptionSpec[];
}

export interface OptionSpec {
  readonly long: string;
  readonly short: string | undefined;
  readonly takesValue: boolean;
  readonly description: string;
}

/** Options whose value is a path (completed as files), and what --gc takes. */
const FILE_OPTIONS = new Set(['--root', '--log', '--policy', '--metrics-file', '--gc-config', '--registry-bin']);
const DIR_OPTIONS = new Set(['--root']);
const GC_MODES = ['none', 'local', 'docker:', 'kubectl:'];
const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** The commands and options of the program, read from commander (so completion never drifts from --help). */
export function commandSpecs(program: Command): CommandSpec[] {
  const out: CommandSpec[] = [];
  const visit = (cmd: Command, prefix: string) => {
    for (const sub of cmd.commands) {
      const name = prefix === '' ? sub.name() : `${prefix} ${sub.name()}`;
      if (sub.commands.length > 0) visit(sub, name);
      out.push({
        name,
        description: short(sub.description()),
        options: [
          ...sub.options
            .filter((o) => o.long !== undefined)
            .map((o) => ({ long: o.long as string, short: o.short, takesValue: o.required || o.optional, description: short(o.description) })),
          { long: '--help', short: '-h', takesValue: false, description: 'show help' },
        ],
      });
    }
  };
  visit(program, '');
  return out;
}

/** The first clause of a help text, without parentheses: completion menus are one line. */
const short = (text: string) => (text.replace(/\s*\([^)]*\)/g, '').split(/[;:]/)[0] ?? '').trim();

const top = (specs: readonly CommandSpec[]) => specs.filter((s) => !s.name.includes(' '));

export function bashCompletion(specs: readonly CommandSpec[]): string {
  const cases = specs
    .map((s) => `    '${s.name}') opts='${s.options.flatMap((o) => (o.short === undefined ? [o.long] : [o.short, o.long])).join(' ')}${s.name === 'completion' ? ' bash zsh fish' : ''}' ;;`)
    .join('\n');
  const subs = specs.filter((s) => s.name.includes(' '));
  const nested = [...new Set(subs.map((s) => s.name.split(' ')[0] as string))];
  return `# bash completion for regprune (regprune completion bash)
_regprune() {
  local cur prev cmd opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W '${top(specs)
      .map((s) => s.name)
      .join(' ')} --help --version' -- "$cur") )
    return
  fi
  cmd="\${COMP_WORDS[1]}"
${nested
  .map(
    (n) => `  if [ "$cmd" = '${n}' ]; then
    if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W '${subs
      .filter((s) => s.name.startsWith(`${n} `))
      .map((s) => s.name.split(' ')[1])
      .join(' ')}' -- "$cur") ); return; fi
    cmd="$cmd \${COMP_WORDS[2]}"
  fi`,
  )
  .join('\n')}
  case "$prev" in
    ${[...DIR_OPTIONS].join('|')}) COMPREPLY=( $(compgen -d -- "$cur") ); return ;;
    ${[...FILE_OPTIONS].filter((o) => !DIR_OPTIONS.has(o)).join('|')}) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --gc) COMPREPLY=( $(compgen -W '${GC_MODES.join(' ')}' -- "$cur") ); return ;;
  esac
  case "$cmd" in
${cases}
    *) opts='' ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -o default -F _regprune regprune
`;
}

/** `[`, `]`, `:` and `'` would end an _arguments spec early. */
const zshText = (s: string) => s.replace(/[[\]:]/g, ' ').replace(/'/g, "'\\''");

export function zshCompletion(specs: readonly CommandSpec[]): string {
  const optionSpec = (o: OptionSpec) => {
    const value = !o.takesValue ? '' : DIR_OPTIONS.has(o.long) ? ':dir:_files -/' : FILE_OPTIONS.has(o.long) ? ':file:_files' : o.long === '--gc' ? `:mode:(${GC_MODES.join(' ')})` : ':value:';
    const desc = `[${zshText(o.description)}]${value}`;
    return o.short === undefined ? `'${o.long}${desc}'` : `'(${o.short} ${o.long})'{${o.short},${o.long}}'${desc}'`;
  };
  const arms = specs
    .map((s) => `    '${s.name}')\n      _arguments -s ${s.options.map(optionSpec).join(' \\\n        ')}${s.name === 'completion' ? " \\\n        '1:shell:(bash zsh fish)'" : " \\\n        '*::argument:_files'"} ;;`)
    .join('\n');
  return `#compdef regprune
# zsh completion for regprune (regprune completion zsh)
_regprune() {
  local -a commands
  commands=(
${top(specs)
  .map((s) => `    '${s.name}:${zshText(s.description)}'`)
  .join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  local cmd="\${words[2]}"
  if [[ "$cmd" == policy && CURRENT -eq 3 ]]; then
    _values 'subcommand' check
    return
  fi
  [[ "$cmd" == policy ]] && cmd="policy \${words[3]}"
  case "$cmd" in
${arms}
  esac
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then _regprune "$@"; else compdef _regprune regprune; fi
`;
}

const fishText = (s: string) => s.replace(/\\/g, '\\\\').replace(/'/g, "\\'");

export function fishCompletion(specs: readonly CommandSpec[]): string {
  const lines = ['# fish completion for regprune (regprune completion fish)', 'complete -c regprune -f'];
  for (const s of top(specs)) lines.push(`complete -c regprune -n '__fish_use_subcommand' -a ${s.name} -d '${fishText(s.description)}'`);
  for (const s of specs) {
    const parts = s.name.split(' ');
    const cond =
      parts.length === 1
        ? `__fish_seen_subcommand_from ${parts[0]}`
        : `__fish_seen_subcommand_from ${parts[0]}; and __fish_seen_subcommand_from ${parts[1]}`;
    if (parts.length === 2) lines.push(`complete -c regprune -n '__fish_seen_subcommand_from ${parts[0]}; and not __fish_seen_subcommand_from ${parts[1]}' -a ${parts[1]} -d '${fishText(s.description)}'`);
    for (const o of s.options) {
      const value = !o.takesValue ? '' : FILE_OPTIONS.has(o.long) ? ' -r -F' : o.long === '--gc' ? ` -x -a '${GC_MODES.join(' ')}'` : ' -x';
      lines.push(`complete -c regprune -n '${cond}' -l ${o.long.slice(2)}${o.short === undefined ? '' : ` -s ${o.short.slice(1)}`}${value} -d '${fishText(o.description)}'`);
    }
    if (s.name === 'completion') lines.push(`complete -c regprune -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'`);
  }
  return `${lines.join('\n')}\n`;
}

/** `regprune completion bash|zsh|fish`: prints the script; the program is read when it runs. */
export function completionCommand(deps: CliDeps, done: (code: ExitCode) => void, program: () => Command): Command {
  return new Command('completion')
    .description('print a shell completion script: bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .addHelpText(
      'after',
      `
Install:
  bash: regprune completion bash > /etc/bash_completion.d/regprune     (or: source <(regprune completion bash))
  zsh:  regprune completion zsh > "\${fpath[1]}/_regprune"              (or: source <(regprune completion zsh))
  fish: regprune completion fish > ~/.config/fish/completions/regprune.fish`,
    )
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`completion ${JSON.stringify(shell)}: expected one of ${SHELLS.join(', ')}`);
      const specs = commandSpecs(program());
      deps.stdout.write(shell === 'bash' ? bashCompletion(specs) : shell === 'zsh' ? zshCompletion(specs) : fishCompletion(specs));
      done(EXIT.ok);
    });
}
