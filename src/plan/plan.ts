import type { StorageWarning } from '../storage/warnings.js';

/**
 * A plan is plain, versioned data: what will be removed and why. `--dry-run`
 * renders it; apply executes it (re-checking each entry against the disk).
 */
export const PLAN_VERSION = 1;

export interface PlannedTag {
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  /** ISO 8601 UTC: mtime of current/link. */
  readonly pushedAt: string;
  readonly reason: string;
}

export interface PlannedManifest {
  readonly repository: string;
  readonly digest: string;
  readonly reason: string;
}

export interface BlobSize {
  readonly digest: string;
  readonly size: number;
}

export interface BlockedRepository {
  readonly repository: string;
  readonly reason: string;
}

export interface Plan {
  readonly version: typeof PLAN_VERSION;
  /** Absolute rootdirectory of the storage. */
  readonly root: string;
  readonly createdAt: string;
  readonly untagged: boolean;
  /** Tags to remove. */
  readonly tags: readonly PlannedTag[];
  /** Tags looked at and kept, with why (shown with --verbose). */
  readonly kept: readonly PlannedTag[];
  /** Revisions to unlink: manifests nothing kept references any more. */
  readonly manifests: readonly PlannedManifest[];
  /** Named tags that do not exist. */
  readonly missing: readonly string[];
  /** Affected repositories where no manifest is removed because the tree is not fully understood there. */
  readonly blocked: readonly BlockedRepository[];
  /** Bytes and blobs garbage-collect will free because of this plan (blobs nothing else references). */
  readonly reclaimableBytes: number;
  readonly reclaimableBlobs: number;
  /**
   * Blobs nothing referenced before this run either (an aborted push, an
   * earlier API delete): the same garbage-collect (without -m) frees them too.
   * reclaimable + unreferenced = what it frees.
   */
  readonly unreferencedBytes: number;
  readonly unreferencedBlobs: number;
  /**
   * False when a repository not fully understood (see warnings) makes the
   * figures a lower bound: its linked layers were counted as referenced.
   */
  readonly exact: boolean;
  /** With `listBlobs`: the blobs behind reclaimableBytes and unreferencedBytes. */
  readonly reclaimable?: readonly BlobSize[];
  readonly unreferenced?: readonly BlobSize[];
  /**
   * Revision directories without a link (left by the HTTP API's manifest
   * DELETE) in repositories this plan prunes: no manifest to the registry,
   * removed with the same re-checks as manifests.
   */
  readonly leftovers: readonly PlannedManifest[];
  readonly stats: { readonly repositories: number; readonly tags: number; readonly manifests: number };
  readonly warnings: readonly StorageWarning[];
}

export type EntryResult = 'removed' | 'missing' | 'changed' | 'failed';

export interface TagOutcome extends PlannedTag {
  readonly result: EntryResult;
  readonly detail?: string;
}

export interface ManifestOutcome extends PlannedManifest {
  readonly result: EntryResult;
  readonly detail?: string;
}

export interface ApplyReport {
  readonly tags: readonly TagOutcome[];
  readonly manifests: readonly ManifestOutcome[];
  /** Entries left in trash by an interrupted earlier run, finished now. */
  readonly trashFinished: number;
}

export function countResults(outcomes: readonly { result: EntryResult }[]): Record<EntryResult, number> {
  const counts: Record<EntryResult, number> = { removed: 0, missing: 0, changed: 0, failed: 0 };
  for (const o of outcomes) counts[o.result]++;
  return counts;
}
