/**
 * The few error classes regprune raises. Each has a stable code; the CLI maps
 * codes to exit status (usage -> 2, everything else -> 1).
 */
export type ErrorCode =
  | 'USAGE' // bad argument or refusal: nothing was touched
  | 'NOT_A_ROOT' // --root is not a registry storage root
  | 'IO' // a filesystem operation failed
  | 'LOCKED' // another run holds the lock
  | 'GC' // garbage-collect (or the restart after it) failed
  | 'UNSAFE' // a change would go through a symbolic link or outside the root: refused
  | 'INTERRUPTED' // SIGINT/SIGTERM: the entry in hand was finished, the rest left for the next run
  | 'INTERNAL';

export class RegpruneError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegpruneError';
    this.code = code;
    this.hint = options.hint;
  }
}

export class UsageError extends RegpruneError {
  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super('USAGE', message, options);
    this.name = 'UsageError';
  }
}

/** Wraps a low-level error with the action and the object it was about. */
export function ioError(action: string, cause: unknown): RegpruneError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new RegpruneError('IO', `${action}: ${detail}`, { cause });
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
