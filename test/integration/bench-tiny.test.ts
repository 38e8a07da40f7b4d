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
      measurements: Array<{ id: string; median: number | null; failed: string | null; skipped: string | null }>;
    };
    expect(doc.version).toBe(1);
    const ids = doc.measurements.map((m) => m.id).sort();
    for (const id of ['b', 'c', 'd1', 'e1', 'e2']) expect(ids).toContain(id);
    for (const m of doc.measurements) {
      expect(m.failed, `measurement ${m.id}`).toBeNull();
      expect(m.skipped, `measurement ${m.id}`).toBeNull();
      expect(m.median, `measurement ${m.id}`).toBeGreaterThan(0);
    }
  });
});
