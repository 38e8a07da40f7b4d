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

export function json(deps: CliDeps, value: unknown): void {
  deps.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
