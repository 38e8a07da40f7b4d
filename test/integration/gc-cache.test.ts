import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { Digest } from '../../src/model/names.js';
import { runRegprune } from '../helpers/cli.js';
import {
  blobDigests,
  buildImage,
  pullAndVerify,
  pushBlob,
  pushImage,
  pushManifest,
  startRegistry,
  type BuiltImage,
  type RunningRegistry,
} from '../helpers/registry.js';
import { makeStandins, restartControl } from '../helpers/standins.js';

// The stale blob-descriptor cache, proven on the real registry: after
// garbage-collect deletes a layer, the SAME running registry still answers
// HEAD 200 for it, a client that checks first (as docker does: "Layer already
// exists") skips the upload, the manifest is accepted, and the image is
// broken. Restarting the registry after garbage-collect (--restart-cmd, here
// a stop+start of this registry) makes the next push upload the layer again.

/** Pushes like docker: HEAD each blob, upload only the ones the registry says it lacks. */
async function pushLikeDocker(url: string, repo: string, tag: string, image: BuiltImage): Promise<{ skipped: Digest[] }> {
  const skipped: Digest[] = [];
  for (const blob of [image.config, ...image.layers]) {
    const head = await fetch(`${url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
    if (head.status === 200) skipped.push(blob.digest);
    else await pushBlob(url, repo, blob);
  }
  await pushManifest(url, repo, tag, image.manifest);
  return { skipped };
}

const regs: RunningRegistry[] = [];
let current: RunningRegistry | undefined;
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && current !== undefined) console.error(`--- registry output ---\n${current.logs()}`);
});
afterAll(async () => {
  for (const r of regs) await r.stop();
});

async function pushPruneCollect(withRestart: boolean) {
  const reg = await startRegistry();
  regs.push(reg);
  current = reg;
  const old = await pushImage(reg.url, 'app', 'old', { seed: 'sc-old', layers: ['sc-old/layer'] });
  await pushImage(reg.url, 'app', 'keep', { seed: 'sc-keep', layers: ['sc-keep/layer'] });
  // --restart-cmd runs the stand-in restart-registry, which asks this test to stop and start the registry.
  const control = withRestart ? await restartControl(() => reg.restart()) : undefined;
  const standins = await makeStandins({ registryBin: reg.bin, ...(control === undefined ? {} : { restartUrl: control.url }) });
  const r = await runRegprune(
    ['prune', 'app:old', '--root', reg.root, '--yes', '--json', '--gc', 'local', '--gc-config', reg.configPath, ...(withRestart ? ['--restart-cmd', 'restart-registry'] : [])],
    { env: { PATH: standins.path() } },
  );
  await standins.remove();
  const restarts = control?.count() ?? 0;
  await control?.close();
  expect(r.exitCode, r.stderr).toBe(0);
  const layer = old.layers[0];
  if (layer === undefined) throw new Error('no layer');
  // garbage-collect really deleted the layer on disk.
  expect(await blobDigests(reg.root)).not.toContain(layer.digest);
  // A new image that reuses the deleted layer.
  const fresh = buildImage({ seed: 'sc-new', layers: ['sc-old/layer'] });
  expect(fresh.layers[0]?.digest).toBe(layer.digest);
  return { reg, r, layer, fresh, restarts };
}

describe('the stale blob cache after garbage-collect', () => {
  test('without restart: the re-pushed layer is skipped and the new image cannot be pulled; regprune warned', async () => {
    const { reg, r, layer, fresh } = await pushPruneCollect(false);
    expect(r.stderr).toMatch(/warning: garbage-collect deleted 3 blobs and the registry was not restarted\./);
    expect(r.stderr).toContain('"Layer already exists"');
    const { skipped } = await pushLikeDocker(reg.url, 'app', 'new', fresh);
    // The registry claimed to have the deleted layer: the upload was skipped, the manifest accepted.
    expect(skipped).toContain(layer.digest);
    expect(await blobDigests(reg.root)).not.toContain(layer.digest);
    // The pull fails: 2.8 answers the blob GET from its cache (200, Content-Length) and then
    // cannot open the data, so the body breaks off ("terminated"), or it answers 404.
    await expect(pullAndVerify(reg.url, 'app', 'new')).rejects.toThrow();
    const blob = await fetch(`${reg.url}/v2/app/blobs/${layer.digest}`);
    const delivered = blob.status === 200 ? await blob.arrayBuffer().then((b) => b.byteLength, () => -1) : -1;
    expect(delivered, `GET blob: ${blob.status}`).not.toBe(layer.size);
    await pullAndVerify(reg.url, 'app', 'keep');
  });

  test('with --restart-cmd (a stop+start of the registry): the layer is uploaded again and the image pulls', async () => {
    const { reg, r, layer, fresh, restarts } = await pushPruneCollect(true);
    expect(restarts).toBe(1);
    expect(r.stderr).not.toMatch(/not restarted/);
    expect((JSON.parse(r.stdout) as { gc: { restart: { result: string } } }).gc.restart.result).toBe('restarted');
    const { skipped } = await pushLikeDocker(reg.url, 'app', 'new', fresh);
    expect(skipped).not.toContain(layer.digest);
    expect(await blobDigests(reg.root)).toContain(layer.digest);
    await pullAndVerify(reg.url, 'app', 'new');
    await pullAndVerify(reg.url, 'app', 'keep');
  });
});
