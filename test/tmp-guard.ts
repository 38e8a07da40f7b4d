import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The suite leaves nothing in the temp dir: every run gets its own TMPDIR
 * (workers and the programs they start inherit it), and teardown fails the
 * run, naming what is left, when a test did not clean up after itself.
 * The registry helper's watchdog removes its dirs when a worker exits, so
 * teardown gives it time first. The dir itself is always removed.
 */
export default function setup(): () => Promise<void> {
  return guardTmp({ anyMs: 10_000, watchdogMs: 90_000 });
}

export function guardTmp(wait: { anyMs: number; watchdogMs: number }): () => Promise<void> {
  const parent = process.env.TMPDIR ?? tmpdir();
  const dir = mkdtempSync(join(parent, 'regprune-test-run-'));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return async () => {
    let left = readdirSync(dir);
    // Up to anyMs for anything; up to watchdogMs while only registry dirs remain: the watchdog
    // deletes their trees (thousands of files for the crash and concurrency suites) on a busy machine.
    const start = Date.now();
    const watchdogs = () => left.every((n) => n.startsWith('regprune-registry-'));
    while (left.length > 0 && Date.now() - start < (watchdogs() ? wait.watchdogMs : wait.anyMs)) {
      await new Promise((r) => setTimeout(r, 100));
      left = readdirSync(dir);
    }
    rmSync(dir, { recursive: true, force: true });
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    if (left.length > 0) {
      // vitest reports an error thrown here but still exits 0: set the code too.
      process.exitCode = 1;
      throw new Error(`the test run left ${left.length} entries in its temp dir (a test does not remove what it made): ${left.sort().join(', ')}`);
    }
  };
}
