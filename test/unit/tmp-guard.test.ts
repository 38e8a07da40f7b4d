import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { guardTmp } from '../tmp-guard.js';

// The check that a test run leaves nothing in the temp dir (test/tmp-guard.ts, the suite's globalSetup).

describe('the temp-dir guard', () => {
  const exitCode = process.exitCode;
  afterEach(() => {
    process.exitCode = exitCode;
  });

  test('fails the run and names what a test left; removes it all the same', async () => {
    const outer = process.env.TMPDIR;
    const teardown = guardTmp({ anyMs: 200, watchdogMs: 400 });
    const dir = tmpdir();
    expect(dir).not.toBe(outer ?? '/tmp');
    mkdirSync(join(dir, 'regprune-leaky-x'));
    writeFileSync(join(dir, 'stray.txt'), 'x');
    await expect(teardown()).rejects.toThrow('the test run left 2 entries in its temp dir (a test does not remove what it made): regprune-leaky-x, stray.txt');
    expect(process.exitCode).toBe(1);
    expect(existsSync(dir)).toBe(false);
    expect(process.env.TMPDIR).toBe(outer);
  });

  test('a clean run passes', async () => {
    const teardown = guardTmp({ anyMs: 200, watchdogMs: 400 });
    const dir = tmpdir();
    await expect(teardown()).resolves.toBeUndefined();
    expect(existsSync(dir)).toBe(false);
  });
});
