import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import { MemRegistry } from '../helpers/memtree.js';

async function script(shell: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const reg = new MemRegistry();
  const deps = {
    fs: reg.fs,
    now: () => new Date('2026-11-23T12:00:00Z'),
    env: {},
    cwd: '/',
    stdout: { write: (s: string) => void out.push(s) },
    stderr: { write: (s: string) => void err.push(s) },
    stdinIsTTY: false,
    confirm: async () => false,
    pid: 1,
    version: 'test',
    run: { run: async () => ({ started: false, notFound: true, message: 'none' }), which: async () => undefined, isAlive: () => false, hostname: 'h' },
  } as CliDeps;
  const code = await runCli(['completion', shell], deps);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** Runs the bash script's completion function on a command line; returns the candidates. */
async function complete(bashScript: string, words: string[]): Promise<string[]> {
  const r = await execa('bash', ['-c', 'eval "$SCRIPT"; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _regprune; printf "%s\\n" "${COMPREPLY[@]}"', '_', ...words], {
    env: { SCRIPT: bashScript, PATH: process.env.PATH ?? '' },
    extendEnv: false,
    cwd: '/',
  });
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('regprune completion', () => {
  it('bash: commands, options of the command at hand (read from the program), --gc modes', async () => {
    const { code, stdout } = await script('bash');
    expect(code).toBe(0);
    expect(await complete(stdout, ['regprune', 'pr'])).toEqual(['prune']);
    expect(await complete(stdout, ['regprune', 'prune', '--metr'])).toEqual(['--metrics-file']);
    expect(await complete(stdout, ['regprune', 'list', '--no-'])).toEqual(['--no-keep-latest', '--no-headers', '--no-trunc']);
    expect(await complete(stdout, ['regprune', 'prune', '--gc', 'd'])).toEqual(['docker:']);
    expect(await complete(stdout, ['regprune', 'policy', 'c'])).toEqual(['check']);
    expect(await complete(stdout, ['regprune', 'completion', 'f'])).toEqual(['fish']);
  });

  it('zsh: a #compdef function with an _arguments arm per command', async () => {
    const { stdout } = await script('zsh');
    expect(stdout.startsWith('#compdef regprune\n')).toBe(true);
    expect(stdout).toContain("    'prune:remove tags from the registry storage'\n");
    expect(stdout).toMatch(/'prune'\)\n\s+_arguments -s [^]*'--metrics-file\[write the run'\\''s metrics for node_exporter'\\''s textfile collector, e\.g\. \S+\]:file:_files'/);
    expect(stdout).toContain("'--gc[then run garbage-collect where the registry lives]:mode:(none local docker: kubectl:)'");
    expect(stdout).toContain('compdef _regprune regprune');
  });

  it('fish: complete lines per command and option', async () => {
    const { stdout } = await script('fish');
    expect(stdout).toContain("complete -c regprune -n '__fish_use_subcommand' -a gc -d 'run garbage-collect where the registry lives, report the bytes freed, remove dangling layer links, restart the registry'\n");
    expect(stdout).toContain("complete -c regprune -n '__fish_seen_subcommand_from prune' -l dry-run -s n -d 'show what would be removed and how many bytes garbage-collect would free'\n");
    expect(stdout).toContain("complete -c regprune -n '__fish_seen_subcommand_from list' -l root -r -F");
  });

  it('another shell is a usage error', async () => {
    const r = await script('tcsh');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('completion "tcsh": expected one of bash, zsh, fish');
  });
});
