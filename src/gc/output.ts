import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';

/** What garbage-collect (2.8.x; v3 prints the same lines) said it did. */
export interface GcOutput {
  /** False when no summary line was found (the run failed early, or an unknown version). */
  readonly summary: boolean;
  readonly marked: number;
  readonly blobsEligible: number;
  readonly manifestsEligible: number;
  /** `blob eligible for deletion: <digest>` lines, in order. */
  readonly eligibleBlobs: readonly Digest[];
  /** `manifest eligible for deletion: <digest>` lines (only with -m, which regprune never passes). */
  readonly eligibleManifests: readonly Digest[];
  /** `<repo>: marking manifest|blob` lines seen. */
  readonly markingLines: number;
}

const SUMMARY = /^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion\s*$/;
const BLOB = /^blob eligible for deletion: (\S+)\s*$/;
const MANIFEST = /^manifest eligible for deletion: (\S+)\s*$/;
const MARKING = /: marking (?:manifest|blob) sha256:[a-f0-9]{64}\s*$/;

/** True for the per-item `marking` lines: progress, not news. */
export function isMarkingLine(line: string): boolean {
  return MARKING.test(line);
}

/**
 * Parses garbage-collect's stdout. Pure: the same text gives the same counts.
 * The summary line is `N blobs marked, N blobs and N manifests eligible for
 * deletion`, printed after marking and before the `blob eligible` lines.
 */
export function parseGcOutput(text: string): GcOutput {
  let summary: RegExpExecArray | null = null;
  const eligibleBlobs: Digest[] = [];
  const eligibleManifests: Digest[] = [];
  let markingLines = 0;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const s = SUMMARY.exec(line);
    if (s !== null) {
      summary = s;
      continue;
    }
    const b = BLOB.exec(line);
    if (b !== null && isDigest(b[1] ?? '')) {
      eligibleBlobs.push(b[1] as Digest);
      continue;
    }
    const m = MANIFEST.exec(line);
    if (m !== null && isDigest(m[1] ?? '')) {
      eligibleManifests.push(m[1] as Digest);
      continue;
    }
    if (MARKING.test(line)) markingLines++;
  }
  return {
    summary: summary !== null,
    marked: summary === null ? 0 : Number(summary[1]),
    blobsEligible: summary === null ? eligibleBlobs.length : Number(summary[2]),
    manifestsEligible: summary === null ? eligibleManifests.length : Number(summary[3]),
    eligibleBlobs,
    eligibleManifests,
    markingLines,
  };
}
