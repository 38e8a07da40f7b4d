/**
 * How regprune runs other programs (docker, kubectl, the registry binary, a
 * restart command). Production passes the execa runner (gc/execa-runner.ts);
 * tests pass the same runner with stand-in executables first on PATH, or a
 * recorder. Arguments are always an argv array: nothing goes through a shell.
 */

/** A program and its arguments: `argv[0]` is looked up on PATH (or is a path). */
export type Argv = readonly [string, ...string[]];

export interface RunOptions {
  /** Each complete line of output as it arrives (without the newline). */
  readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export type RunResult =
  | { readonly started: true; readonly exitCode: number; readonly stdout: string; readonly stderr: string; readonly signal?: string }
  | { readonly started: false; readonly notFound: boolean; readonly message: string };

export interface ProcessRunner {
  run(argv: Argv, options?: RunOptions): Promise<RunResult>;
  /** Absolute path of `name` found on PATH, or undefined. */
  which(name: string): Promise<string | undefined>;
  /** Whether a process with this pid exists on this host (for stale locks). */
  isAlive(pid: number): boolean;
  readonly hostname: string;
}

/** `docker exec registry ...` as one line for messages (quotes only where needed). */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The last few non-empty lines of a program's output, for an error message. */
export function tail(text: string, lines = 5): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .slice(-lines)
    .join('\n');
}
