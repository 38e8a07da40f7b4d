import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    // Each run in its own TMPDIR, checked empty at the end (test/tmp-guard.ts).
    globalSetup: ['test/tmp-guard.ts'],
    // Real-registry tests start processes and wait on HTTP; give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // test/tmp-guard.ts may wait for the registry watchdog to delete large trees.
    teardownTimeout: 120_000,
    // Two cores: real-registry suites each run a registry process.
    maxWorkers: 2,
  },
});
