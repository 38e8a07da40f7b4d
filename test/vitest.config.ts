import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    // Real-registry tests start processes and wait on HTTP; give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: real-registry suites each run a registry process.
    maxWorkers: 2,
  },
});
