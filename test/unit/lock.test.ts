import { Volume, createFsFromVolume } from 'memfs';
import { describe, expect, test } from 'vitest';
import { RegpruneError } from '../../src/model/errors.js';
import { storageFs } from '../../src/storage/fs.js';
import { acquireLock, parseLock, type LockHost } from '../../src/storage/lock.js';
import { layout } from '../../src/storage/paths.js';

const ROOT = '/srv/registry';
const now = new Date('2026-11-23T03:00:00.000Z');

function world() {
  const vol = new Volume();
  vol.mkdirSync(`${ROOT}/docker/registry/v2/repositories`, { recursive: true });
  return { vol, fs: storageFs(createFsFromVolume(vol)), lay: layout(ROOT) };
}

const host = (pid: number, alive: (pid: number) => boolean = () => true, hostname = 'reg1'): LockHost => ({ pid, hostname, now, isAlive: alive });

describe('acquireLock', () => {
  test('creates <root>/.regprune/lock (outside docker/registry/v2), a symlink whose text names pid, start time, hostname; release removes it', async () => {
    const w = world();
    const lock = await acquireLock(w.fs, w.lay, host(100));
    expect(lock.path).toBe(`${ROOT}/.regprune/lock`);
    expect(lock.tookOver).toBeUndefined();
    const text = String(w.vol.readlinkSync(lock.path));
    expect(parseLock(text)).toEqual({ pid: 100, startedAt: '2026-11-23T03:00:00.000Z', hostname: 'reg1' });
    await lock.release();
    expect(w.vol.existsSync(lock.path)).toBe(false);
    await lock.release(); // idempotent
  });

  test('a second run while the first is alive: LOCKED with the message crontabs see', async () => {
    const w = world();
    await acquireLock(w.fs, w.lay, host(100));
    const err = await acquireLock(w.fs, w.lay, host(200)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegpruneError);
    expect((err as RegpruneError).code).toBe('LOCKED');
    expect((err as Error).message).toBe(`another regprune run (pid 100, started 2026-11-23T03:00:00.000Z) holds the lock on ${ROOT}`);
    // The holder's lock is untouched.
    expect(parseLock(String(w.vol.readlinkSync(`${ROOT}/.regprune/lock`)))?.pid).toBe(100);
  });

  test('a lock whose process is gone (same host) is taken over, and says so', async () => {
    const w = world();
    await acquireLock(w.fs, w.lay, host(100));
    const lock = await acquireLock(w.fs, w.lay, host(200, (pid) => pid !== 100));
    expect(lock.tookOver).toEqual({ pid: 100, startedAt: now.toISOString(), hostname: 'reg1' });
    expect(parseLock(String(w.vol.readlinkSync(lock.path)))?.pid).toBe(200);
    expect(w.vol.readdirSync(`${ROOT}/.regprune`)).toEqual(['lock']);
  });

  test('a lock with our own pid on our host is a dead run (containers: every run is pid 1)', async () => {
    const w = world();
    await acquireLock(w.fs, w.lay, host(1));
    const lock = await acquireLock(w.fs, w.lay, host(1, () => true));
    expect(lock.tookOver?.pid).toBe(1);
  });

  test('a lock from another host is never taken over (its pid means nothing here)', async () => {
    const w = world();
    await acquireLock(w.fs, w.lay, host(100, () => true, 'reg2'));
    const err = await acquireLock(w.fs, w.lay, host(200, () => false, 'reg1')).catch((e: unknown) => e);
    expect((err as RegpruneError).code).toBe('LOCKED');
    expect((err as RegpruneError).hint).toMatch(/taken on host reg2/);
  });

  test('an unreadable lock (not JSON) is held, not guessed about', async () => {
    const w = world();
    w.vol.mkdirSync(`${ROOT}/.regprune`, { recursive: true });
    w.vol.writeFileSync(`${ROOT}/.regprune/lock`, 'garbage');
    const err = await acquireLock(w.fs, w.lay, host(200, () => false)).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`another regprune run (unknown pid, started at an unknown time) holds the lock on ${ROOT}`);
  });

  test('release leaves a lock that is no longer ours', async () => {
    const w = world();
    const mine = await acquireLock(w.fs, w.lay, host(100));
    // Someone took it over (e.g. decided this process was gone).
    w.vol.unlinkSync(mine.path);
    w.vol.symlinkSync(JSON.stringify({ pid: 300, startedAt: now.toISOString(), hostname: 'reg1' }), mine.path);
    await mine.release();
    expect(parseLock(String(w.vol.readlinkSync(mine.path)))?.pid).toBe(300);
  });

  test('two takeovers of the same stale lock: exactly one wins', async () => {
    const w = world();
    await acquireLock(w.fs, w.lay, host(100));
    const gone = (pid: number) => pid !== 100;
    const results = await Promise.allSettled([acquireLock(w.fs, w.lay, host(201, gone)), acquireLock(w.fs, w.lay, host(202, gone))]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((lost.reason as RegpruneError).code).toBe('LOCKED');
    const holder = parseLock(String(w.vol.readlinkSync(`${ROOT}/.regprune/lock`)));
    expect([201, 202]).toContain(holder?.pid);
  });

  test('an empty or cut-short lock FILE (a crash or a full disk with older versions) is taken over once it is 10 s old, with a note', async () => {
    for (const text of ['', '{"pid":12,"startedAt":"2026-']) {
      const w = world();
      w.vol.mkdirSync(`${ROOT}/.regprune`, { recursive: true });
      w.vol.writeFileSync(`${ROOT}/.regprune/lock`, text);
      const old = new Date(now.getTime() - 60_000);
      w.vol.utimesSync(`${ROOT}/.regprune/lock`, old, old);
      const lock = await acquireLock(w.fs, w.lay, host(200));
      expect(lock.tookOverHalfWritten).toBe(true);
      expect(lock.tookOver).toBeUndefined();
      expect(parseLock(String(w.vol.readlinkSync(lock.path)))?.pid).toBe(200);
      expect(w.vol.readdirSync(`${ROOT}/.regprune`)).toEqual(['lock']);
    }
  });

  test('an empty lock file written just now may be a run still writing it: held', async () => {
    const w = world();
    w.vol.mkdirSync(`${ROOT}/.regprune`, { recursive: true });
    w.vol.writeFileSync(`${ROOT}/.regprune/lock`, '');
    w.vol.utimesSync(`${ROOT}/.regprune/lock`, now, now);
    const err = await acquireLock(w.fs, w.lay, host(200)).catch((e: unknown) => e);
    expect((err as RegpruneError).code).toBe('LOCKED');
  });

  test('a symlinked .regprune is refused, never written through', async () => {
    const w = world();
    w.vol.mkdirSync('/victim', { recursive: true });
    w.vol.symlinkSync('/victim', `${ROOT}/.regprune`);
    const err = await acquireLock(w.fs, w.lay, host(200)).catch((e: unknown) => e);
    expect((err as RegpruneError).code).toBe('UNSAFE');
    expect((err as Error).message).toBe(`refusing to create directory ${ROOT}/.regprune: ${ROOT}/.regprune is a symbolic link`);
    expect(w.vol.readdirSync('/victim')).toEqual([]);
  });

  test('parseLock', () => {
    expect(parseLock('{"pid":1,"startedAt":"x","hostname":"h"}\n')).toEqual({ pid: 1, startedAt: 'x', hostname: 'h' });
    expect(parseLock('{"pid":0,"startedAt":"x","hostname":"h"}')).toBeUndefined();
    expect(parseLock('{"pid":"1","startedAt":"x","hostname":"h"}')).toBeUndefined();
    expect(parseLock('')).toBeUndefined();
  });
});
