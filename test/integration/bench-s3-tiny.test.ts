import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

// The S3 benchmark runs once at a tiny size so it keeps working: it checks
// that the dry-run plan on the bucket equals the plan on the tree on disk,
// and that a second run with the manifest cache, after new manifests were
// pushed, lists once per 1000 keys (+ regprune's own prefix) and GETs only
// the new manifests (it exits non-zero otherwise). Nothing here is timed.

interface RunStats {
  keys: number;
  manifests: number;
  linksRead: number;
  manifestsFetched: number;
  manifestsCached: number;
  requests: Record<string, number>;
}

describe('bench/s3, tiny', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('uploads a generated tree; garbage-collect --dry-run and the cold plan on the bucket; new manifests, then the warm plan GETs only them', async () => {
    const out = await mkdtemp(join(tmpdir(), 'regprune-bench-s3-test-'));
    dirs.push(out);
    const resultsFile = join(out, 'result.json');
    const r = await execa(process.execPath, [join(REPO_ROOT, 'dist/bench/s3.js'), '--repos', '2', '--tags', '3', '--runs', '2', '--new', '2', '--out', resultsFile], {
      reject: false,
      cwd: REPO_ROOT,
      timeout: 240_000,
    });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      tags: number;
      selected: number;
      reclaimableBytes: number;
      gcDryRunSeconds: number;
      planSeconds: number;
      newManifests: number;
      coldStats: RunStats;
      warmStats: RunStats;
      ok: boolean;
    };
    expect(last.tags).toBe(6);
    expect(last.ok).toBe(true);
    expect(last.selected).toBeGreaterThan(0);
    expect(last.reclaimableBytes).toBeGreaterThan(0);
    expect(last.gcDryRunSeconds).toBeGreaterThan(0);
    expect(last.planSeconds).toBeGreaterThan(0);
    // Cold: one page of docker/registry/v2/ and one of .regprune/; every manifest fetched once.
    expect(last.coldStats.requests).toEqual({ list: 2, get: last.coldStats.manifests, head: 0, put: 0, delete: 0 });
    expect(last.coldStats.manifestsFetched).toBe(last.coldStats.manifests);
    expect(last.coldStats.linksRead).toBe(0);
    // Warm, after 2 new manifests: the same lists, a GET for each new manifest, the rest from the cache.
    expect(last.newManifests).toBe(2);
    expect(last.warmStats.requests).toEqual({ list: 2, get: 2, head: 0, put: 0, delete: 0 });
    expect(last.warmStats.manifests).toBe(last.coldStats.manifests + 2);
    expect(last.warmStats.manifestsCached).toBe(last.coldStats.manifests);
    expect(r.stdout).toMatch(/check: the plan on the bucket = the plan on disk/);
    expect(r.stdout).toMatch(/load average: start /);
    const doc = JSON.parse(await readFile(resultsFile, 'utf8')) as { gcRuns: unknown[]; coldRuns: unknown[]; problems: unknown[]; result: unknown };
    expect(doc.gcRuns).toHaveLength(2);
    expect(doc.coldRuns).toHaveLength(2);
    expect(doc.problems).toEqual([]);
    expect(doc.result).toEqual(last);
  });
});
