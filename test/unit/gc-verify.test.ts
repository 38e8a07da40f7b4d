import { describe, expect, test } from 'vitest';
import { KNOWN_CONFIGS, localRunner } from '../../src/gc/adapters.js';
import type { PreparedGc } from '../../src/gc/collect.js';
import { configuredStorage, verifyGcStorage } from '../../src/gc/verify.js';
import { UsageError } from '../../src/model/errors.js';
import { MemRegistry } from '../helpers/memtree.js';
import { recordingRunner } from '../helpers/standins.js';

const [V2, V3] = KNOWN_CONFIGS;
const fsConfig = (root: string) => `version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n`;

describe('configuredStorage', () => {
  test.each([
    { name: 'filesystem with rootdirectory', text: fsConfig('/srv/r'), env: {}, want: { driver: 'filesystem', rootdirectory: '/srv/r' } },
    { name: 'filesystem without parameters: the driver default', text: 'storage:\n  filesystem:\n', env: {}, want: { driver: 'filesystem', rootdirectory: '/var/lib/registry' } },
    { name: 'env rootdirectory overrides the file', text: fsConfig('/srv/r'), env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/data' }, want: { driver: 'filesystem', rootdirectory: '/data' } },
    { name: 's3 (maintenance and cache are not drivers)', text: 'storage:\n  maintenance: {readonly: {enabled: true}}\n  s3: {bucket: b}\n', env: {}, want: { driver: 's3', rootdirectory: undefined } },
    { name: 'REGISTRY_STORAGE names the driver', text: fsConfig('/srv/r'), env: { REGISTRY_STORAGE: 'gcs' }, want: { driver: 'gcs', rootdirectory: undefined } },
  ])('$name', ({ text, env, want }) => {
    expect(configuredStorage(text, env, '/c.yml')).toMatchObject(want);
  });
  test('no storage section is a usage error naming the file', () => {
    expect(() => configuredStorage('version: 0.1\n', {}, '/c.yml')).toThrow(/\/c\.yml: no storage driver configured/);
  });
});

describe('--gc local: the config that matches --root', () => {
  const prepared = (config: string, configSource: 'given' | 'found'): PreparedGc => ({ runner: localRunner('/usr/bin/registry'), config, configSource, dryRun: false, restart: undefined });

  test('a found default that names another root is not used silently: the known config that matches is', async () => {
    const mem = new MemRegistry('/srv/registry');
    mem.write(V2 as string, fsConfig('/var/lib/docker-registry'));
    mem.write(V3 as string, fsConfig('/srv/registry'));
    const v = await verifyGcStorage({ fs: mem.fs, layout: mem.lay, proc: recordingRunner(), gc: prepared(V2 as string, 'found'), env: {}, token: 'abcdefgh-1' });
    expect(v.gc.config).toBe(V3);
  });

  test('no found config matches: usage error listing what each names', async () => {
    const mem = new MemRegistry('/srv/registry');
    mem.write(V2 as string, fsConfig('/var/lib/docker-registry'));
    const err = await verifyGcStorage({ fs: mem.fs, layout: mem.lay, proc: recordingRunner(), gc: prepared(V2 as string, 'found'), env: {}, token: 'abcdefgh-1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(
      `--gc local: garbage-collect would not run on --root /srv/registry: its storage is ${V2}: /var/lib/docker-registry (does not exist here) (storage.filesystem.rootdirectory in ${V2})`,
    );
  });

  test('the environment of this process overrides the config, as it does for garbage-collect', async () => {
    const mem = new MemRegistry('/srv/registry');
    mem.write('/c.yml', fsConfig('/elsewhere'));
    const v = await verifyGcStorage({ fs: mem.fs, layout: mem.lay, proc: recordingRunner(), gc: prepared('/c.yml', 'given'), env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry' }, token: 'abcdefgh-1' });
    expect(v.rootdirectory).toBe('/srv/registry');
  });
});
