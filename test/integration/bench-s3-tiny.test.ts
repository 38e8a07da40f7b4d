import { execa } from 'execa';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

// The S3 benchmark runs once at a tiny size so it keeps working (it also checks
// that the S3 listing of the uploaded tree equals `list --root` on disk).
// Nothing here is timed.

describe('bench/s3, tiny', () => {
  test('uploads a generated tree, runs garbage-collect --dry-run and the listing walk on the bucket', async () => {
    const r = await execa(process.execPath, [join(REPO_ROOT, 'dist/bench/s3.js'), '--repos', '2', '--tags', '3'], {
      reject: false,
      cwd: REPO_ROOT,
      timeout: 180_000,
    });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      tags: number;
      objects: number;
      gcDryRunSeconds: number;
      listSeconds: number;
      stats: { keys: number; linksRead: number; requests: Record<string, number> };
    };
    expect(last.tags).toBe(6);
    expect(last.gcDryRunSeconds).toBeGreaterThan(0);
    expect(last.listSeconds).toBeGreaterThan(0);
    expect(last.stats.requests).toEqual({ list: 1, get: 0, head: 0, put: 0, delete: 0 });
    expect(last.stats.linksRead).toBe(0);
    expect(r.stdout).toMatch(/check: S3 listing = tree on disk, 6 tags/);
  });
});
