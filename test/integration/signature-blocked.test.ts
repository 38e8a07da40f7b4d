import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runRegprune } from '../helpers/cli.js';
import { pullAndVerify, pushImage, pushSignature, pushUntagged, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { layout } from '../../src/storage/paths.js';

// A signature follows what actually happens to its manifest. In a repository blocked by a
// warning no manifest is unlinked, so the signature of a named tag's manifest stays: that
// manifest still pulls by digest, and its signature must still verify.

const regs: RunningRegistry[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const r of regs) await r.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('signatures in a blocked repository', () => {
  test('naming a tag removes the tag only: its manifest stays (blocked), and so does its cosign signature', async () => {
    const reg = await startRegistry();
    regs.push(reg);
    const v1 = await pushImage(reg.url, 'app', 'v1', { seed: 'sb-v1', layers: ['sb-base', 'sb-v1/top'] });
    const sig = await pushSignature(reg.url, 'app', v1.manifest);
    await pushImage(reg.url, 'app', 'keep', { seed: 'sb-keep', layers: ['sb-base'] });
    // An untagged manifest whose blob is gone: regprune does not fully understand app, so no manifest is removed there.
    const broken = await pushUntagged(reg.url, 'app', { seed: 'sb-broken', layers: ['sb-broken/top'] });
    await rm(layout(reg.root).blobData(broken.manifest.digest));
    const dir = await mkdtemp(join(tmpdir(), 'regprune-sigblock-'));
    dirs.push(dir);

    const dry = await runRegprune(['prune', 'app:v1', '--root', reg.root, '--dry-run', '--json']);
    const plan = JSON.parse(dry.stdout) as { tags: Array<{ tag: string }>; manifests: unknown[]; blocked: Array<{ repository: string }>; kept: Array<{ tag: string; reason: string }> };
    expect(plan.blocked.map((b) => b.repository)).toEqual(['app']);
    expect(plan.manifests).toEqual([]);
    expect(plan.tags.map((t) => t.tag)).toEqual(['v1']);

    const r = await runRegprune(['prune', 'app:v1', '--root', reg.root, '--yes', '--json']);
    expect(r.exitCode, r.stderr).toBe(3);
    const out = JSON.parse(r.stdout) as { tags: Array<{ tag: string }> };
    expect(out.tags.map((t) => t.tag)).toEqual(['v1']);
    // The manifest stays and pulls by digest; its signature tag still pulls too.
    await pullAndVerify(reg.url, 'app', v1.manifest.digest);
    expect((await pullAndVerify(reg.url, 'app', sig.tag)).digest).toBe(sig.manifest.digest);
  }, 60_000);
});
