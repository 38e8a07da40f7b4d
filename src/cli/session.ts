import { resolveRoot } from '../storage/root.js';
import type { Layout } from '../storage/paths.js';
import type { StorageWarning } from '../storage/warnings.js';
import type { CliDeps } from './deps.js';
import { rootDir } from './options.js';
import { warningLine } from './render.js';

/** Warnings go to stderr as they happen; the count decides the exit code. */
export class Reporter {
  warnings = 0;
  private progressShown = false;
  constructor(
    private readonly deps: CliDeps,
    private readonly quiet = false,
  ) {}

  warn = (w: StorageWarning): void => {
    if (w.code !== 'missing-tag') this.warnings++;
    this.clearProgress();
    this.deps.stderr.write(warningLine(w));
  };

  /** Progress only on a terminal: crontab mail and pipes stay clean. */
  progress = (text: string): void => {
    if (this.quiet || this.deps.stderr.isTTY !== true) return;
    this.deps.stderr.write(`\r\x1b[K${text}`);
    this.progressShown = true;
  };

  clearProgress(): void {
    if (!this.progressShown) return;
    this.deps.stderr.write('\r\x1b[K');
    this.progressShown = false;
  }

  note(text: string): void {
    this.clearProgress();
    this.deps.stderr.write(`${text}\n`);
  }
}

export async function openStorage(opts: { root?: string }, deps: CliDeps): Promise<Layout> {
  return resolveRoot(deps.fs, rootDir(opts, deps));
}

/** The `error` member of the JSON output of a run that exits 1, 2 or 3. */
export interface ErrorJson {
  readonly code: string;
  readonly message: string;
  readonly hint: string | null;
}

/** A --json run: its object is held until the exit code is known, so a failure can add `error`. */
interface JsonRun {
  pending: Record<string, unknown> | undefined;
  error: ErrorJson | undefined;
}
const jsonRuns = new WeakMap<CliDeps, JsonRun>();

/** Called by runCli when --json was given: json() then holds its object for finishJson(). */
export function startJson(deps: CliDeps): void {
  jsonRuns.set(deps, { pending: undefined, error: undefined });
}

/** Why the run is about to exit non-zero, for the JSON `error` (the first reason given wins). */
export function jsonError(deps: CliDeps, error: { code: string; message: string; hint?: string | undefined }): void {
  const run = jsonRuns.get(deps);
  if (run !== undefined && run.error === undefined) run.error = { code: error.code, message: error.message, hint: error.hint ?? null };
}

const GENERIC: Record<number, ErrorJson> = {
  1: { code: 'FAILURE', message: 'the run did not fully succeed; see the other fields and stderr', hint: null },
  2: { code: 'USAGE', message: 'refused: nothing was touched', hint: null },
  3: { code: 'WARNINGS', message: 'done, but something in the tree was not understood and was left in place', hint: 'see the warnings on stderr' },
};

/**
 * Writes the held object (or `{version: 1}` when the run failed before it
 * had one) once, with `error` when the exit code is not 0. `thrown` is the
 * error that ended the run, if one did.
 */
export function finishJson(deps: CliDeps, exitCode: number, thrown?: { code: string; message: string; hint?: string | undefined }): void {
  const run = jsonRuns.get(deps);
  if (run === undefined) return;
  jsonRuns.delete(deps);
  const error = thrown !== undefined ? { code: thrown.code, message: thrown.message, hint: thrown.hint ?? null } : exitCode === 0 ? undefined : (run.error ?? GENERIC[exitCode] ?? GENERIC[1]);
  if (run.pending === undefined && error === undefined) return;
  writeJson(deps, { ...(run.pending ?? { version: 1 }), ...(error === undefined ? {} : { error }) });
}

export function json(deps: CliDeps, value: unknown): void {
  const run = jsonRuns.get(deps);
  if (run !== undefined && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    run.pending = value as Record<string, unknown>;
    return;
  }
  writeJson(deps, value);
}

/**
 * Writes one JSON object, the same text as `JSON.stringify(value, null, 2)`,
 * in chunks: at 100k tags the whole string would be tens of MB on top of the
 * plan (stdout to a file or pipe is written synchronously on Linux).
 */
const JSON_ITEMS = 256;

function writeJson(deps: CliDeps, value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    deps.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    return;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function');
  let chunk = '{';
  const flush = (force: boolean) => {
    if (force || chunk.length > 65536) {
      deps.stdout.write(chunk);
      chunk = '';
    }
  };
  entries.forEach(([key, v], i) => {
    chunk += `${i === 0 ? '' : ','}\n  ${JSON.stringify(key)}: `;
    if (Array.isArray(v) && v.length > 0) {
      chunk += '[';
      // A few hundred items per stringify: their lines come out at two spaces, and get two more.
      for (let s = 0; s < v.length; s += JSON_ITEMS) {
        const text = JSON.stringify(v.slice(s, s + JSON_ITEMS), null, 2);
        chunk += `${s === 0 ? '' : ','}\n  ${text.slice(2, -2).replaceAll('\n', '\n  ')}`;
        flush(false);
      }
      chunk += '\n  ]';
    } else {
      chunk += JSON.stringify(v, null, 2).replaceAll('\n', '\n  ');
    }
    flush(false);
  });
  chunk += entries.length === 0 ? '}\n' : '\n}\n';
  flush(true);
}
