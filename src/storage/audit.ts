import { RegpruneError, ioError } from '../model/errors.js';
import { AppendOnlyFile } from './door.js';
import type { StorageFs } from './fs.js';

/**
 * The audit log (`--log FILE`): one JSON object per line, appended, never
 * rewritten, so a cron job's nights pile up in one file that `jq` and
 * `regprune restore` read. Every line carries the storage root and the run.
 */
export interface AuditContext {
  /** Storage rootdirectory. */
  readonly root: string;
  /** Unique per run (time and pid): groups the lines of one run. */
  readonly run: string;
}

export interface TagRemoval {
  readonly action: 'remove-tag';
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  /** mtime of current/link before removal: restore sets it back. */
  readonly pushedAt: string;
  readonly reason: string;
}

export interface ManifestRemoval {
  readonly action: 'remove-manifest';
  readonly repository: string;
  readonly tag: null;
  readonly digest: string;
  readonly pushedAt: null;
  readonly reason: string;
}

export interface GcRecord {
  readonly action: 'gc';
  readonly mode: string;
  readonly command: readonly string[];
  readonly exitCode: number | null;
  readonly marked: number;
  readonly blobsEligible: number;
  readonly manifestsEligible: number;
  readonly freedBytes: number;
  readonly layerLinksRemoved: number;
  readonly configUsed: string | null;
  readonly dryRun: boolean;
  readonly restart: string | null;
  readonly ok: boolean;
  readonly error: string | null;
}

export interface RestoreRecord {
  readonly action: 'restore-tag' | 'restore-manifest';
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: string;
  readonly pushedAt: string | null;
  readonly reason: string;
}

/** A removal logged ahead that then did not happen (pushed again meanwhile, or it failed). */
export interface NotRemoved {
  readonly action: 'not-removed';
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: string;
  readonly result: string;
  readonly detail: string | null;
}

export type AuditRecord = TagRemoval | ManifestRemoval | NotRemoved | GcRecord | RestoreRecord;
export type AuditLine = AuditRecord & { readonly time: string } & AuditContext;

/**
 * Appends lines in order, each written and flushed to disk before write()
 * returns (write-ahead: a removal is logged before it happens). The file is
 * checked first (not a symlink, a regular file, writable: usage errors) and
 * opened with O_NOFOLLOW.
 */
export class AuditLog {
  private file: AppendOnlyFile | undefined;
  private failure: unknown;
  constructor(
    private readonly fs: StorageFs,
    readonly path: string,
    private readonly context: AuditContext,
    private readonly now: () => Date,
  ) {}

  /**
   * Opens the file and writes this run's first line: fails before anything
   * is removed when the log cannot be written (a full disk included).
   */
  async open(): Promise<void> {
    this.file = await AppendOnlyFile.open(this.fs, this.path, '--log');
    try {
      this.file.append(`${JSON.stringify({ time: this.now().toISOString(), action: 'run-start', ...this.context })}\n`);
    } catch (err) {
      this.close();
      throw new RegpruneError('IO', `cannot write the audit log ${this.path}: ${(err as RegpruneError).cause instanceof Error ? ((err as RegpruneError).cause as Error).message : String(err)}; nothing was removed`, {
        cause: err,
        hint: 'free some space there, or give --log a file on another filesystem (regprune frees space here only after it can log), or run without --log',
      });
    }
  }

  /** Writes and flushes one line now; throws (nothing more should be removed) when it cannot. */
  writeAhead(record: AuditRecord): void {
    if (this.file === undefined) throw new RegpruneError('IO', `audit log ${this.path} is not open`);
    try {
      this.file.append(this.line(record));
    } catch (err) {
      const stopped = new RegpruneError('IO', `${(err as Error).message}; stopped before the next removal (the one it records was not made)`, {
        cause: err,
        hint: 'free space where the log is, or log to another filesystem, and run again: the rerun finishes what this run left',
      });
      // The same error comes out of flush(): the run ends with this message.
      this.failure ??= stopped;
      throw stopped;
    }
  }

  /** Writes one line; a failure is kept and thrown by flush(). */
  write(record: AuditRecord): void {
    if (this.file === undefined || this.failure !== undefined) return;
    try {
      this.file.append(this.line(record));
    } catch (err) {
      this.failure = err;
    }
  }

  private line(record: AuditRecord): string {
    const line: AuditLine = { time: this.now().toISOString(), ...record, ...this.context } as AuditLine;
    return `${JSON.stringify(line)}\n`;
  }

  async flush(): Promise<void> {
    this.close();
    if (this.failure !== undefined) {
      const f = this.failure;
      this.failure = undefined;
      throw f instanceof RegpruneError ? f : ioError(`writing audit log ${this.path}`, f);
    }
  }

  close(): void {
    this.file?.close();
    this.file = undefined;
  }
}

export interface ParsedAuditLog {
  readonly lines: readonly AuditLine[];
  /** Lines that are not audit records (1-based line numbers). */
  readonly problems: readonly { readonly line: number; readonly message: string }[];
}

const str = (v: unknown): v is string => typeof v === 'string';

/** Parses an audit log; unknown or broken lines are reported, not fatal (a crash can cut the last line). */
export function parseAuditLog(text: string): ParsedAuditLog {
  const lines: AuditLine[] = [];
  const problems: { line: number; message: string }[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let v: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      v = parsed as Record<string, unknown>;
    } catch {
      problems.push({ line: i + 1, message: 'not a JSON object' });
      return;
    }
    if (!str(v.time) || !str(v.root) || !str(v.run) || !str(v.action)) {
      problems.push({ line: i + 1, message: 'missing time, root, run or action' });
      return;
    }
    if (v.action === 'remove-tag' && !(str(v.repository) && str(v.tag) && str(v.digest) && str(v.pushedAt))) {
      problems.push({ line: i + 1, message: 'remove-tag without repository, tag, digest and pushedAt' });
      return;
    }
    if (v.action === 'remove-manifest' && !(str(v.repository) && str(v.digest))) {
      problems.push({ line: i + 1, message: 'remove-manifest without repository and digest' });
      return;
    }
    lines.push(v as unknown as AuditLine);
  });
  return { lines, problems };
}
