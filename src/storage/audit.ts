import { ioError } from '../model/errors.js';
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

export type AuditRecord = TagRemoval | ManifestRemoval | GcRecord | RestoreRecord;
export type AuditLine = AuditRecord & { readonly time: string } & AuditContext;

/** Appends lines in order; a write error is kept and thrown by flush(). */
export class AuditLog {
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  constructor(
    private readonly fs: StorageFs,
    readonly path: string,
    private readonly context: AuditContext,
    private readonly now: () => Date,
  ) {}

  /** Creates the file if needed: fails before anything is removed when it cannot be written. */
  async open(): Promise<void> {
    try {
      await this.fs.appendFile(this.path, '');
    } catch (err) {
      throw ioError(`opening audit log ${this.path}`, err);
    }
  }

  write(record: AuditRecord): void {
    const line: AuditLine = { time: this.now().toISOString(), ...record, ...this.context } as AuditLine;
    const text = `${JSON.stringify(line)}\n`;
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return;
      try {
        await this.fs.appendFile(this.path, text);
      } catch (err) {
        this.failure = err;
      }
    });
  }

  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw ioError(`writing audit log ${this.path}`, this.failure);
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
