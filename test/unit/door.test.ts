import * as nodeFs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume, createFsFromVolume } from 'memfs';
import { afterAll, describe, expect, test } from 'vitest';
import { RegpruneError } from '../../src/model/errors.js';
import { storageDoor } from '../../src/storage/door.js';
import { RAW, storageFs, type StorageFs } from '../../src/storage/fs.js';

// The door every change to disk goes through, on memfs and on the real filesystem (the same
// cases: a conformance suite for the filesystem driver's mutations).

interface Env {
  readonly fs: StorageFs;
  readonly root: string;
  readonly victim: string;
  mkdir(p: string): void;
  write(p: string, text: string): void;
  link(target: string, p: string): void;
  read(p: string): string;
  list(p: string): string[];
}

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

function envOf(mod: typeof nodeFs | ReturnType<typeof createFsFromVolume>, base: string): Env {
  const m = mod as typeof nodeFs;
  const root = join(base, 'root');
  const victim = join(base, 'victim');
  m.mkdirSync(root, { recursive: true });
  m.mkdirSync(victim, { recursive: true });
  m.writeFileSync(join(victim, 'precious'), 'keep');
  return {
    fs: storageFs(mod),
    root,
    victim,
    mkdir: (p) => void m.mkdirSync(p, { recursive: true }),
    write: (p, t) => m.writeFileSync(p, t),
    link: (t, p) => m.symlinkSync(t, p),
    read: (p) => String(m.readFileSync(p, 'utf8')),
    list: (p) => (m.readdirSync(p) as string[]).map(String).sort(),
  };
}

const envs: Array<[string, () => Env]> = [
  ['memfs', () => envOf(createFsFromVolume(new Volume()), '/w')],
  [
    'real filesystem',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'regprune-door-'));
      tmp.push(d);
      return envOf(nodeFs, d);
    },
  ],
];

const unsafe = (p: Promise<unknown>) => expect(p).rejects.toSatisfy((e: unknown) => e instanceof RegpruneError && e.code === 'UNSAFE');

describe.each(envs)('storage door on %s', (_name, make) => {
  test('every call refuses a path through a symbolic link, and the victim is untouched', async () => {
    const e = make();
    e.mkdir(join(e.root, 'a'));
    e.link(e.victim, join(e.root, 'a', 'l'));
    e.write(join(e.root, 'a', 'f'), 'x');
    const door = storageDoor(e.fs, e.root);
    await unsafe(door.ensureDir(join(e.root, 'a', 'l', 'sub')));
    await unsafe(door.createFile(join(e.root, 'a', 'l', 'new'), 'x'));
    await unsafe(door.putAtomic(join(e.root, 'a', 'l', 'precious'), 'overwritten', 0o600));
    await unsafe(door.move(join(e.root, 'a', 'f'), join(e.root, 'a', 'l', 'moved')));
    await unsafe(door.move(join(e.root, 'a', 'l', 'precious'), join(e.root, 'a', 'g')));
    await unsafe(door.delete(join(e.root, 'a', 'l', 'precious')));
    await unsafe(door.delete(join(e.root, 'a', 'l')));
    expect(e.list(e.victim)).toEqual(['precious']);
    expect(e.read(join(e.victim, 'precious'))).toBe('keep');
  });

  test('paths outside the root, the root itself, and .. are refused', async () => {
    const e = make();
    const door = storageDoor(e.fs, e.root);
    await unsafe(door.delete(join(e.victim, 'precious')));
    await unsafe(door.delete(e.root));
    await unsafe(door.createFile(`${e.root}/a/../../victim/x`, 'x'));
    await unsafe(door.delete(`${e.root}-other/x`));
  });

  test('createFile is exclusive (never truncates), putAtomic replaces whole and leaves no temp file', async () => {
    const e = make();
    const door = storageDoor(e.fs, e.root);
    await door.ensureDir(join(e.root, 'd', 'e'));
    const p = join(e.root, 'd', 'e', 'f');
    expect(await door.createFile(p, 'one')).toBe('created');
    expect(await door.createFile(p, 'two')).toBe('exists');
    expect(e.read(p)).toBe('one');
    await door.putAtomic(p, 'three', 0o600);
    expect(e.read(p)).toBe('three');
    expect(e.list(join(e.root, 'd', 'e'))).toEqual(['f']);
    expect(await door.delete(p)).toBe('deleted');
    expect(await door.delete(p)).toBe('missing');
    expect(await door.move(p, join(e.root, 'x'))).toBe('missing');
  });

  test('a failed write (a full disk) leaves no half-written file and says which file and call', async () => {
    const e = make();
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const full: StorageFs = { ...e.fs, [RAW]: { ...e.fs[RAW], write: () => { throw enospc; } } };
    const door = storageDoor(full, e.root);
    const p = join(e.root, 'state.json');
    await expect(door.putAtomic(p, 'data', 0o600)).rejects.toThrow(/^write .*\.state\.json\.[0-9a-f]{24}\.tmp: ENOSPC: no space left on device, write$/);
    await expect(door.createFile(p, 'data')).rejects.toThrow(`write ${p}: ENOSPC`);
    expect(e.list(e.root)).toEqual([]);
  });

  test('a marker (the lock) is a symlink created whole; it is moved and deleted as itself', async () => {
    const e = make();
    const door = storageDoor(e.fs, e.root);
    const p = join(e.root, 'lock');
    expect(await door.createMarker(p, e.victim)).toBe('created');
    expect(await door.createMarker(p, 'other')).toBe('exists');
    expect(await e.fs.readlink(p)).toBe(e.victim);
    await unsafe(door.delete(p));
    expect(await door.move(p, join(e.root, 'lock.aside'), { marker: true })).toBe('moved');
    expect(await door.delete(join(e.root, 'lock.aside'), { marker: true })).toBe('deleted');
    expect(e.list(e.victim)).toEqual(['precious']);
  });
  test('a parent verified earlier in the run is trusted only while it is the same directory: an ancestor swapped for a link is refused', async () => {
    const e = make();
    const tags = join(e.root, 'v2', 'team', 'app', 'tags');
    for (const t of ['t1', 't2', 't3']) {
      e.mkdir(join(tags, t, 'current'));
      e.write(join(tags, t, 'current', 'link'), t);
    }
    e.mkdir(join(e.root, 'trash'));
    const door = storageDoor(e.fs, e.root);
    // Verifies (and remembers) tags/ and trash/.
    expect(await door.move(join(tags, 't1'), join(e.root, 'trash', '1'))).toBe('moved');
    expect(await door.linkOnPath(join(tags, 't2', 'current'))).toBeUndefined();
    // The registry's user swaps the repository for a link to a look-alike outside the tree.
    // (Moved out whole and linked back, it would be the same directory, which the identity
    // check lets through: the call then changes exactly what it would have changed in place.)
    const outside = join(e.victim, 'team');
    for (const t of ['t2', 't3']) e.mkdir(join(outside, 'app', 'tags', t, 'current'));
    await e.fs[RAW].rename(join(e.root, 'v2', 'team'), join(e.root, 'v2', 'team.old'));
    e.link(outside, join(e.root, 'v2', 'team'));
    expect(await door.linkOnPath(join(tags, 't2', 'current'))).toBe(join(e.root, 'v2', 'team'));
    await unsafe(door.move(join(tags, 't2'), join(e.root, 'trash', '2')));
    await unsafe(door.delete(join(tags, 't3')));
    expect(e.list(join(outside, 'app', 'tags'))).toEqual(['t2', 't3']);
    // The trash itself swapped for a link: refused too.
    e.mkdir(join(e.victim, 'trash', '1'));
    await e.fs[RAW].rename(join(e.root, 'trash'), join(e.root, 'trash.old'));
    e.link(join(e.victim, 'trash'), join(e.root, 'trash'));
    await unsafe(door.delete(join(e.root, 'trash', '1')));
    expect(e.list(join(e.victim, 'trash'))).toEqual(['1']);
  });

  test('after the first entry, a mutation under the same parent lstats only below that parent', async () => {
    const e = make();
    const tags = join(e.root, 'docker', 'registry', 'v2', 'repositories', 'team', 'app', '_manifests', 'tags');
    for (const t of ['t1', 't2']) e.mkdir(join(tags, t, 'current'));
    e.mkdir(join(e.root, 'trash'));
    const seen: string[] = [];
    const counting: StorageFs = { ...e.fs, lstat: (p: string) => (seen.push(p), e.fs.lstat(p)) };
    const door = storageDoor(counting, e.root);
    await door.move(join(tags, 't1'), join(e.root, 'trash', '1'));
    seen.length = 0;
    await door.move(join(tags, 't2'), join(e.root, 'trash', '2'));
    // tags/ and t2, trash/ and trash/2, then both parents again after the rename.
    expect(seen.sort()).toEqual([tags, tags, join(tags, 't2'), join(e.root, 'trash'), join(e.root, 'trash'), join(e.root, 'trash', '2')].sort());
  });

  test('delete removes a tree with links inside as rm -r does: the links, never what they point to', async () => {
    const e = make();
    const d = join(e.root, 'trash', 'x');
    e.mkdir(join(d, 'a', 'b'));
    e.write(join(d, 'a', 'b', 'f'), 'x');
    e.link(e.victim, join(d, 'a', 'dirlink'));
    e.link(join(e.victim, 'precious'), join(d, 'filelink'));
    const door = storageDoor(e.fs, e.root);
    expect(await door.delete(d)).toBe('deleted');
    expect(e.list(join(e.root, 'trash'))).toEqual([]);
    expect(e.list(e.victim)).toEqual(['precious']);
    expect(e.read(join(e.victim, 'precious'))).toBe('keep');
    expect(await door.delete(d)).toBe('missing');
  });
});
