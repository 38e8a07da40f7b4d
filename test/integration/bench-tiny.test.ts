import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test, onTestFinished } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

// The benchmark runs once at a tiny size so it keeps working; nothing here is
// timed (speed targets live in `npm run bench`, not in tests).

describe('npm run bench, tiny', () => {
  test('every measurement runs and the results file is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-bench-tiny-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const out = join(dir, 'results.json');
    const r = await execa(process.execPath, [join(REPO_ROOT, 'dist/bench/run.js'), '--repos', '4', '--tags', '5', '--runs', '1', '--apply-runs', '1', '--cache', 'warm', '--out', out], {
      reject: false,
      cwd: REPO_ROOT,
      timeout: 180_000,
    });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const doc = JSON.parse(await readFile(out, 'utf8')) as {
      version: number;
      measurements: Array<{ id: string; median: number | null; failed: string | null; skipped: string | null; seconds: number[]; peakRssMbPerRun: Array<number | null> }>;
      oldTagsLeftAfterApply: Record<string, number>;
      rss: string;
    };
    expect(doc.version).toBe(1);
    const ids = doc.measurements.map((m) => m.id).sort();
    // (d) on both trees: the small one too.
    for (const id of ['b', 'c', 'd1', 'd2', 'd1s', 'd2s', 'e1', 'e2']) expect(ids).toContain(id);
    // regprune keeps `latest`; the recipe removes every old tag: nothing old left after it, on either tree.
    expect(doc.oldTagsLeftAfterApply['d2']).toBe(0);
    expect(doc.oldTagsLeftAfterApply['d2s']).toBe(0);
    for (const m of doc.measurements) {
      expect(m.failed, `measurement ${m.id}`).toBeNull();
      expect(m.skipped, `measurement ${m.id}`).toBeNull();
      expect(m.median, `measurement ${m.id}`).toBeGreaterThan(0);
      // A peak RSS for every run of every command (with GNU time; /proc polling may miss a short one).
      expect(m.peakRssMbPerRun.length, `measurement ${m.id}`).toBe(m.seconds.length);
      if (doc.rss === 'gnu-time') for (const rss of m.peakRssMbPerRun) expect(rss, `measurement ${m.id}`).toBeGreaterThan(0);
    }
  });
});
