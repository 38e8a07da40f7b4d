import type { ProcessRunner } from '../gc/process.js';
import type { StorageFs } from '../storage/fs.js';

export interface Output {
  write(text: string): void;
  readonly isTTY?: boolean;
}

/** Everything the CLI touches in the world, passed in (tests pass memfs, a fixed clock, recorders). */
export interface CliDeps {
  readonly fs: StorageFs;
  /**
   * The same disk for the bulk reads of a plan, a listing or a check (production: fs with its
   * reads in a reader thread, src/storage/reader.ts); fs when absent. Removal, locking and
   * every check the door makes go through fs.
   */
  readonly readFs?: StorageFs;
  readonly now: () => Date;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: Output;
  readonly stderr: Output;
  readonly stdinIsTTY: boolean;
  /** Asks a yes/no question on the terminal; resolves true only for an explicit yes. */
  readonly confirm: (question: string) => Promise<boolean>;
  readonly pid: number;
  readonly version: string;
  /** Runs docker, kubectl, the registry binary, restart commands (argv arrays, never a shell); production: execa. */
  readonly run: ProcessRunner;
  /** Aborted on SIGINT/SIGTERM: apply finishes the entries in hand and stops (production: main.ts). */
  readonly signal?: AbortSignal;
}

/** Exit codes: the contract other tools and crontabs rely on. */
export const EXIT = {
  ok: 0,
  /** Runtime failure or partial result (a named tag missing, a removal failed). */
  failure: 1,
  /** Usage error or refusal: nothing was touched. */
  usage: 2,
  /** Done, but something in the tree was not understood; it was left in place (see warnings). */
  warnings: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The more serious of two exit codes: usage > failure > warnings > ok. */
export function worse(a: ExitCode, b: ExitCode): ExitCode {
  const rank = (c: ExitCode) => (c === EXIT.usage ? 3 : c === EXIT.failure ? 2 : c === EXIT.warnings ? 1 : 0);
  return rank(a) >= rank(b) ? a : b;
}
