import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** `<repo>/bin/regprune`: imports dist/src/cli/main.js, so the suite builds first (test/run.sh). */
export const REGPRUNE_BIN = fileURLToPath(new URL('../../bin/regprune', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface RunOptions {
  /** Added to the inherited environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  readonly input?: string;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

export interface RunResult {
  /** -1 when killed by a signal (see stderr). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the built CLI as a user would, with no TTY on any stream (stdout and
 * stderr are pipes, stdin a pipe or /dev/null) so it must not prompt or draw
 * progress. NO_COLOR=1 is set. stdout/stderr are returned exactly (final
 * newline kept). Never throws on a non-zero exit.
 */
export async function runRegprune(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await execa(process.execPath, [REGPRUNE_BIN, ...args], {
    reject: false,
    cwd: opts.cwd ?? REPO_ROOT,
    env: { NO_COLOR: '1', ...opts.env },
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    stripFinalNewline: false,
    timeout: opts.timeoutMs ?? 60_000,
  });
  const signal = result.signal === undefined ? '' : `\n[regprune killed by ${result.signal}${result.timedOut ? ' (timeout)' : ''}]`;
  return {
    exitCode: result.exitCode ?? -1,
    stdout: result.stdout,
    stderr: result.stderr + signal,
  };
}
