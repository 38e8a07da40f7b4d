import { beforeAll, beforeEach } from 'vitest';

/**
 * `beforeAll(setup)`, except that when setup throws (e.g. the registry
 * binary is missing) every test of the suite FAILS with that error, where a
 * failing beforeAll would only mark them skipped.
 */
export function setupSuite(setup: () => Promise<void>): void {
  let failure: { error: unknown } | undefined;
  beforeAll(async () => {
    try {
      await setup();
    } catch (error) {
      failure = { error };
    }
  });
  beforeEach(() => {
    if (failure !== undefined) throw failure.error;
  });
}
