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

/**
 * Writes one JSON object, the same text as `JSON.stringify(value, null, 2)`,
 * in chunks: at 100k tags the whole string would be tens of MB on top of the
 * plan (stdout to a file or pipe is written synchronously on Linux).
 */
export function json(deps: CliDeps, value: unknown): void {
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
      v.forEach((item, j) => {
        const text = JSON.stringify(item === undefined ? null : item, null, 2) ?? 'null';
        chunk += `${j === 0 ? '' : ','}\n    ${text.replaceAll('\n', '\n    ')}`;
        flush(false);
      });
      chunk += '\n  ]';
    } else {
      chunk += JSON.stringify(v, null, 2).replaceAll('\n', '\n  ');
    }
    flush(false);
  });
  chunk += entries.length === 0 ? '}\n' : '\n}\n';
  flush(true);
}
