import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runRegprune } from '../helpers/cli.js';
import { runGarbageCollect } from '../helpers/registry.js';
import { pushSample } from '../helpers/sample.js';
import { startS3Registry, startSwift } from '../helpers/swift.js';

test('measure (throwaway)', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'regprune-measure-'));
  const swift = await startSwift();
  await swift.createBucket('m');
  const reg = await startS3Registry(swift, 'm');
  try {
    await pushSample(reg.url);
    const env = { REGPRUNE_CACHE_DIR: cacheDir };
    const out: Record<string, unknown> = {};
    const time = async (name: string, args: string[]) => {
      const t0 = Date.now();
      const r = await runRegprune(args, { env });
      const ms = Date.now() - t0;
      expect(r.exitCode, r.stderr).toBeLessThan(2);
      out[name] = { ms, stats: (JSON.parse(r.stdout) as { stats?: unknown }).stats };
    };
    await time('dryRunCold', ['prune', 'i1:T12', 'i2:T22', 'i5:T52', '--config', reg.configPath, '--dry-run', '--json']);
    await time('dryRunWarm', ['prune', 'i1:T12', 'i2:T22', 'i5:T52', '--config', reg.configPath, '--dry-run', '--json']);
    await time('du', ['du', '--config', reg.configPath, '--json']);
    await time('check', ['check', '--config', reg.configPath, '--json']);
    await reg.stop();
    const t0 = Date.now();
    const gc = await runGarbageCollect(reg.configPath, ['--dry-run']);
    out['gcDryRunMs'] = Date.now() - t0;
    expect(gc.exitCode).toBe(0);
    await time('apply', ['prune', 'i1:T12', 'i2:T22', 'i5:T52', '--config', reg.configPath, '--yes', '--json']);
    console.log(`MEASURE ${JSON.stringify(out)}`);
  } finally {
    await reg.stop();
    await swift.stop();
    await rm(cacheDir, { recursive: true, force: true });
  }
});
