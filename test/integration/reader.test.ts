import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  lstatMany,
  readPlainMany,
  readPlainSync,
  storageFs,
  type FileStats,
  type PlainRead,
  type ReadPlainOptions,
  type StorageFs,
} from '../../src/storage/fs.js';
import { threadedReads } from '../../src/storage/reader.js';
import { REPO_ROOT } from '../helpers/cli.js';

// The plan's fast reads on the real disk (src/storage/fs.ts readPlain and the batch calls) and the
// same through the reader thread (src/storage/reader.ts) must give what the plain calls give, for
// every kind of entry a tree can hold, and never read what a symbolic link points at.

const LIMIT = 1024;
const LINK = `sha256:${'3a'.repeat(32)}`; // a link file: 71 bytes
const SECRET = 'OUTSIDE-THE-TREE: must never be read\n';

let work: string;
let tree: string;
let direct: StorageFs;
let threaded: StorageFs;
let server: Server | undefined;
const p = (name: string) => join(tree, name);

/** Each kind of entry, by name under the tree. */
const NAMES = ['link', 'empty', 'big', 'dir', 'in-link', 'out-link', 'dangling', 'fifo', 'socket', 'missing', 'link/under'] as const;
/**
 * Whether the first read of the FIFO (through the thread) waited 10 s for a writer. It is released then
 * (the first test fails), and the FIFO is left out of the others: on the main thread the same read
 * would wait forever, where no test timeout can end it.
 */
let fifoBlocked = false;
const entries = () => NAMES.filter((n) => !(fifoBlocked && n === 'fifo'));

async function blocksOn(fifo: string): Promise<boolean> {
  const read = readPlain(threaded, fifo, { limit: LIMIT, text: false }).then(
    () => false,
    () => false,
  );
  let timer: NodeJS.Timeout | undefined;
  const blocked = await Promise.race([read, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 10_000)))]);
  clearTimeout(timer);
  if (blocked) {
    // A reader waits in open(): a writer's open returns at once, and lets it go on.
    nodeFs.closeSync(nodeFs.openSync(fifo, nodeFs.constants.O_WRONLY | nodeFs.constants.O_NONBLOCK));
    await read;
  }
  return blocked;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'regprune-reader-'));
  tree = join(work, 'tree');
  await mkdir(join(tree, 'dir', 'sub'), { recursive: true });
  await mkdir(join(work, 'outside'));
  await writeFile(join(work, 'outside', 'secret'), SECRET);
  await writeFile(p('link'), LINK);
  await writeFile(p('empty'), '');
  await writeFile(p('big'), 'b'.repeat(LIMIT + 500));
  await writeFile(p('dir/file'), 'in a dir');
  await symlink('link', p('in-link'));
  await symlink(join(work, 'outside', 'secret'), p('out-link'));
  await symlink(join(work, 'nowhere'), p('dangling'));
  await execa('mkfifo', [p('fifo')]);
  server = createServer();
  await new Promise<void>((resolve, reject) => {
    server?.once('error', reject);
    server?.listen(p('socket'), resolve);
  });
  direct = storageFs(nodeFs);
  threaded = threadedReads(direct);
  fifoBlocked = await blocksOn(p('fifo'));
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

type Outcome<T> = { ok: true; value: T } | { ok: false; code: unknown; message: string; error: Error };

async function outcome<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, code: (error as { code?: unknown }).code, message: (error as Error).message, error: error as Error };
  }
}

/** What two stats must agree on. */
const statFields = (s: FileStats) => ({
  isFile: s.isFile(),
  isDirectory: s.isDirectory(),
  isSymbolicLink: s.isSymbolicLink(),
  size: s.size,
  mtimeMs: s.mtimeMs,
  mtime: s.mtime.getTime(),
  ino: s.ino,
  dev: s.dev,
  uid: s.uid,
  gid: s.gid,
  birthtimeMs: s.birthtimeMs ?? 0,
});

const bytesOf = (d: string | Uint8Array | undefined) => (d === undefined || typeof d === 'string' ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex'));

/** What two errors must agree on: all that node:fs gives them. */
const errorFields = (e: Error) => {
  const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown };
  return { message: x.message, code: x.code, errno: x.errno, syscall: x.syscall, path: x.path };
};

/** What two readPlain answers must agree on. */
const plainFields = (r: PlainRead | Error) =>
  r instanceof Error
    ? { error: errorFields(r) }
    : {
        stats: statFields(r.stats),
        hasData: r.data !== undefined,
        type: r.data === undefined ? undefined : typeof r.data,
        data: bytesOf(r.data),
        readError: r.error === undefined ? undefined : errorFields(r.error),
      };

const comparable = <T>(o: Outcome<T>, f: (v: T) => unknown) => (o.ok ? { value: f(o.value) } : errorFields(o.error));

const readPlain = (fs: StorageFs, path: string, options: ReadPlainOptions) =>
  fs.readPlain(path, options as ReadPlainOptions & { text: true }) as Promise<PlainRead>;

describe('storageFs(node:fs) and threadedReads on every kind of entry', () => {
  test('readPlain of a FIFO returns at once (O_NONBLOCK): nobody has to write to it', () => {
    expect(fifoBlocked, 'the reader thread waited 10 s in the FIFO, for a writer').toBe(false);
  });

  test('lstat: the same stats, the same errors, with their code', async () => {
    for (const name of entries()) {
      const a = await outcome(() => direct.lstat(p(name)));
      const b = await outcome(() => threaded.lstat(p(name)));
      expect(comparable(b, statFields), name).toEqual(comparable(a, statFields));
    }
    const missing = await outcome(() => threaded.lstat(p('missing')));
    expect(missing.ok ? undefined : missing.code).toBe('ENOENT');
    expect(missing.ok ? undefined : missing.error).toBeInstanceOf(Error);
    expect(missing.ok ? undefined : (missing.error as { syscall?: string; path?: string }).syscall).toBe('lstat');
    expect(missing.ok ? undefined : (missing.error as { path?: string }).path).toBe(p('missing'));
    const under = await outcome(() => threaded.lstat(p('link/under')));
    expect(under.ok ? undefined : under.code).toBe('ENOTDIR');
    const out = await threaded.lstat(p('out-link'));
    expect([out.isSymbolicLink(), out.isFile()]).toEqual([true, false]);
    const fifo = await threaded.lstat(p('fifo'));
    expect([fifo.isFile(), fifo.isDirectory(), fifo.isSymbolicLink()]).toEqual([false, false, false]);
    expect(fifo.size).toBe(0);
  });

  for (const options of [
    { limit: LIMIT, text: true },
    { limit: LIMIT, text: false },
    { limit: Infinity, text: false },
    { limit: 0, text: true },
  ] as const) {
    test(`readPlain ${JSON.stringify(options)}: the same answer, nothing behind a link, no FIFO read`, { timeout: 30_000 }, async () => {
      for (const name of entries()) {
        const a = await outcome(() => readPlain(direct, p(name), options));
        const b = await outcome(() => readPlain(threaded, p(name), options));
        expect(comparable(b, plainFields), name).toEqual(comparable(a, plainFields));
      }
      for (const fs of [direct, threaded]) {
        const link = await readPlain(fs, p('link'), options);
        expect(link.stats.isFile()).toBe(true);
        expect(link.stats.size).toBe(71);
        if (options.limit >= 71) expect(Buffer.from(link.data ?? 'none').toString()).toBe(LINK);
        else expect(link.data).toBeUndefined();
        const empty = await readPlain(fs, p('empty'), options);
        expect(empty.data === undefined ? 'none' : Buffer.from(empty.data).length).toBe(0);
        const big = await readPlain(fs, p('big'), options);
        expect(big.stats.size).toBe(LIMIT + 500);
        if (options.limit === Infinity) expect(big.data?.length).toBe(LIMIT + 500);
        else expect(big.data).toBeUndefined();
        for (const name of ['in-link', 'out-link', 'dangling'] as const) {
          const r = await readPlain(fs, p(name), options);
          expect(r.stats.isSymbolicLink(), name).toBe(true);
          expect(r.data, name).toBeUndefined();
        }
        const dir = await readPlain(fs, p('dir'), options);
        expect([dir.stats.isDirectory(), dir.data]).toEqual([true, undefined]);
        if (!fifoBlocked) {
          const fifo = await readPlain(fs, p('fifo'), options);
          expect([fifo.stats.isFile(), fifo.stats.isSymbolicLink(), fifo.data, fifo.error]).toEqual([false, false, undefined, undefined]);
        }
        const socket = await readPlain(fs, p('socket'), options);
        expect([socket.stats.isFile(), socket.data]).toEqual([false, undefined]);
        const missing = await outcome(() => readPlain(fs, p('missing'), options));
        expect(missing.ok ? 'resolved' : missing.code).toBe('ENOENT');
        const under = await outcome(() => readPlain(fs, p('link/under'), options));
        expect(under.ok ? 'resolved' : under.code).toBe('ENOTDIR');
      }
    });

    test(`lstatMany and readPlainMany ${JSON.stringify(options)}: in the order given, errors as values`, { timeout: 30_000 }, async () => {
      // Twice over and shuffled, so that an answer in the wrong place shows.
      const names = [...entries(), ...entries().reverse()];
      const paths = names.map(p);
      const [la, lb] = [await lstatMany(direct, paths), await lstatMany(threaded, paths)];
      expect(lb).toHaveLength(paths.length);
      const lstatComparable = (r: FileStats | Error) =>
        r instanceof Error ? { error: errorFields(r) } : statFields(r);
      expect(lb.map(lstatComparable)).toEqual(la.map(lstatComparable));
      // And the single call's answer for each path.
      for (let i = 0; i < paths.length; i++) {
        const one = await outcome(() => direct.lstat(paths[i] as string));
        expect(lstatComparable(lb[i] as FileStats | Error), names[i]).toEqual(one.ok ? statFields(one.value) : { error: errorFields(one.error) });
      }
      const [ra, rb] = [await readPlainMany(direct, paths, options), await readPlainMany(threaded, paths, options)];
      expect(rb).toHaveLength(paths.length);
      expect(rb.map(plainFields)).toEqual(ra.map(plainFields));
      for (let i = 0; i < paths.length; i++) {
        const one = await outcome(() => readPlain(direct, paths[i] as string, options));
        expect(plainFields(rb[i] as PlainRead | Error), names[i]).toEqual(one.ok ? plainFields(one.value) : plainFields(one.error));
      }
      for (const results of [ra, rb]) {
        const at = (name: string) => results[names.indexOf(name as (typeof NAMES)[number])] as PlainRead | Error;
        for (const name of ['missing', 'link/under']) expect(at(name), name).toBeInstanceOf(Error);
        expect((at('missing') as { code?: unknown }).code).toBe('ENOENT');
        expect((at('link/under') as { code?: unknown }).code).toBe('ENOTDIR');
        const out = at('out-link') as PlainRead;
        expect(out.stats.isSymbolicLink()).toBe(true);
        expect(out.data).toBeUndefined();
        if (!fifoBlocked) expect((at('fifo') as PlainRead).data).toBeUndefined();
      }
      // Nothing read anywhere holds the outside file's content.
      for (const r of [...ra, ...rb]) if (!(r instanceof Error) && r.data !== undefined) expect(Buffer.from(r.data).toString()).not.toContain('OUTSIDE');
    });
  }

  test('a wrapper made by spreading the filesystem: the batch calls go through its own single calls', async () => {
    const seen: string[] = [];
    for (const base of [direct, threaded]) {
      seen.length = 0;
      const wrapper: StorageFs = {
        ...base,
        lstat: (path) => (seen.push(`lstat ${path}`), base.lstat(path)),
        readPlain: ((path: string, o: ReadPlainOptions) => (seen.push(`readPlain ${path}`), readPlain(base, path, o))) as StorageFs['readPlain'],
      };
      const paths = entries().map(p);
      const stats = await lstatMany(wrapper, paths);
      const reads = await readPlainMany(wrapper, paths, { limit: LIMIT, text: true });
      expect([...seen].sort()).toEqual([...paths.map((x) => `lstat ${x}`), ...paths.map((x) => `readPlain ${x}`)].sort());
      const lstatComparable = (r: FileStats | Error) =>
        r instanceof Error ? { error: errorFields(r) } : statFields(r);
      expect(stats.map(lstatComparable)).toEqual((await lstatMany(base, paths)).map(lstatComparable));
      expect(reads.map(plainFields)).toEqual((await readPlainMany(base, paths, { limit: LIMIT, text: true })).map(plainFields));
    }
  });

  test('readdir with types: the same names and types', async () => {
    const kinds = (entries: Awaited<ReturnType<StorageFs['readdir']>>) =>
      entries
        .map((e) => ({ name: e.name, dir: e.isDirectory(), file: e.isFile(), link: e.isSymbolicLink() }))
        .sort((x, y) => (x.name < y.name ? -1 : 1));
    const a = kinds(await direct.readdir(tree, { withFileTypes: true }));
    const b = kinds(await threaded.readdir(tree, { withFileTypes: true }));
    expect(b).toEqual(a);
    expect(b.find((e) => e.name === 'out-link')).toEqual({ name: 'out-link', dir: false, file: false, link: true });
    expect(b.find((e) => e.name === 'dir')).toEqual({ name: 'dir', dir: true, file: false, link: false });
    expect(b.find((e) => e.name === 'fifo')).toEqual({ name: 'fifo', dir: false, file: false, link: false });
    expect(b.map((e) => e.name)).toEqual(['big', 'dangling', 'dir', 'empty', 'fifo', 'in-link', 'link', 'out-link', 'socket']);
    for (const name of ['missing', 'link', 'link/under']) {
      const x = await outcome(() => direct.readdir(p(name), { withFileTypes: true }));
      const y = await outcome(() => threaded.readdir(p(name), { withFileTypes: true }));
      expect(comparable(y, kinds), name).toEqual(comparable(x, kinds));
      expect(y.ok ? 'resolved' : y.code).toBe(name === 'missing' ? 'ENOENT' : 'ENOTDIR');
    }
  });

  test('readText, readFile, readlink: the same answers and errors', async () => {
    // Not the FIFO: a read by path would wait for a writer.
    for (const name of NAMES.filter((n) => n !== 'fifo')) {
      for (const call of ['readText', 'readFile', 'readlink'] as const) {
        const a = await outcome(() => direct[call](p(name)) as Promise<string | Uint8Array>);
        const b = await outcome(() => threaded[call](p(name)) as Promise<string | Uint8Array>);
        expect(comparable(b, bytesOf), `${call} ${name}`).toEqual(comparable(a, bytesOf));
        if (!b.ok) expect(typeof b.code, `${call} ${name}`).toBe('string');
      }
    }
    expect(await threaded.readText(p('link'))).toBe(LINK);
    expect(Buffer.from(await threaded.readFile(p('link'))).toString()).toBe(LINK);
    expect(await threaded.readlink(p('out-link'))).toBe(join(work, 'outside', 'secret'));
    const notLink = await outcome(() => threaded.readlink(p('link')));
    expect(notLink.ok ? 'resolved' : notLink.code).toBe('EINVAL');
    const dir = await outcome(() => threaded.readText(p('dir')));
    expect(dir.ok ? 'resolved' : dir.code).toBe('EISDIR');
  });

  test('mtime (a Date) is node’s: the milliseconds rounded, not cut, in every form of stats', async () => {
    // 0.7 ms past the second: node's Stats.mtime rounds up; new Date(mtimeMs) would cut it off.
    const path = join(work, 'fraction');
    await writeFile(path, 'x');
    nodeFs.utimesSync(path, 1_700_000_000.0007, 1_700_000_000.0007);
    const want = nodeFs.lstatSync(path);
    expect(want.mtimeMs % 1).toBeGreaterThan(0.5);
    expect(want.mtime.getTime()).toBe(Math.round(want.mtimeMs));
    const plain = await readPlain(threaded, path, { limit: LIMIT, text: true });
    const [many] = await lstatMany(threaded, [path]);
    const [plainMany] = await readPlainMany(threaded, [path], { limit: LIMIT, text: false });
    const all: Record<string, FileStats> = {
      lstat: await threaded.lstat(path),
      readPlain: plain.stats,
      lstatMany: many as FileStats,
      readPlainMany: (plainMany as PlainRead).stats,
      direct: await direct.lstat(path),
    };
    for (const [name, st] of Object.entries(all)) {
      expect(st.mtimeMs, name).toBe(want.mtimeMs);
      expect(st.mtime.getTime(), name).toBe(want.mtime.getTime());
    }
  });

  test('realpath is the base filesystem’s', async () => {
    expect(await threaded.realpath(p('in-link'))).toBe(await direct.realpath(p('in-link')));
    expect(await threaded.realpath(p('in-link'))).toBe(p('link'));
  });
});

describe('readPlainSync on a file that changes under it (a fake filesystem)', () => {
  /** A regular file whose stats say `statSize` bytes and whose reads give `content`, `chunk` bytes at most per call. */
  function fakeFs(content: Buffer, statSize: number, chunk: number, opts: { openCode?: string; readFails?: boolean } = {}) {
    const calls = { open: 0, close: 0, readFileSync: 0, lstat: 0 };
    let pos = 0;
    const stats: FileStats = {
      size: statSize,
      mtimeMs: 1,
      mtime: new Date(1),
      dev: 1,
      ino: 2,
      uid: 0,
      gid: 0,
      isDirectory: () => false,
      isFile: () => true,
      isSymbolicLink: () => false,
    };
    const f: Parameters<typeof readPlainSync>[0] = {
      openSync: () => {
        calls.open++;
        if (opts.openCode !== undefined) throw Object.assign(new Error(opts.openCode), { code: opts.openCode });
        return 7;
      },
      fstatSync: () => stats,
      readSync: (fd, buffer, offset, length) => {
        expect(fd).toBe(7);
        if (opts.readFails === true) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        const n = Math.min(length, chunk, content.length - pos);
        content.copy(buffer, offset, pos, pos + n);
        pos += n;
        return n;
      },
      closeSync: (fd) => {
        expect(fd).toBe(7);
        calls.close++;
      },
      lstatSync: () => {
        calls.lstat++;
        return stats;
      },
      readFileSync: () => {
        calls.readFileSync++;
        return content;
      },
    };
    return { f, calls };
  }

  const content = randomBytes(300);

  test.each([
    { name: 'grew past the limit, in small reads', statSize: 10, chunk: 7, limit: 50, want: 51 },
    { name: 'grew past the limit, in one read', statSize: 10, chunk: 1000, limit: 50, want: 51 },
    { name: 'grew, still within the limit', statSize: 10, chunk: 7, limit: 1000, want: 300 },
    { name: 'grew, limit Infinity', statSize: 10, chunk: 64, limit: Infinity, want: 300 },
    { name: 'stat says exactly the limit, file is longer', statSize: 50, chunk: 1000, limit: 50, want: 51 },
    { name: 'shrank', statSize: 299, chunk: 1000, limit: 299, want: 299 },
  ])('$name: at most limit + 1 bytes, the file’s first bytes, descriptor closed', ({ statSize, chunk, limit, want }) => {
    const src = statSize === 299 ? content.subarray(0, 299) : content;
    const { f, calls } = fakeFs(src, statSize, chunk);
    const r = readPlainSync(f, '/x', limit, false, 1);
    const data = r.data as Uint8Array;
    expect(data.length).toBe(want);
    expect(data.length).toBeLessThanOrEqual(limit + 1);
    expect(Buffer.from(data).equals(content.subarray(0, want))).toBe(true);
    expect(r.error).toBeUndefined();
    expect(calls).toEqual({ open: 1, close: 1, readFileSync: 0, lstat: 0 });
  });

  test('text mode: at most limit + 1 bytes decoded', () => {
    const text = Buffer.from('a'.repeat(200));
    const { f } = fakeFs(text, 5, 3);
    expect(readPlainSync(f, '/x', 20, true, 1).data).toBe('a'.repeat(21));
  });

  test('after ELOOP, ENXIO or EACCES from open: the stats of lstat and the error of open, never a read by path (it would follow a link swapped in)', () => {
    for (const code of ['ELOOP', 'ENXIO', 'EACCES']) {
      const { f, calls } = fakeFs(content, 10, 1000, { openCode: code });
      const r = readPlainSync(f, '/x', 50, false, 1);
      expect([r.data, (r.error as { code?: string } | undefined)?.code, r.stats.size], code).toEqual([undefined, code, 10]);
      expect(calls, code).toEqual({ open: 1, close: 0, readFileSync: 0, lstat: 1 });
    }
  });

  test('ENOENT from open is thrown; a failing read is returned with the stats, the descriptor closed', () => {
    const gone = fakeFs(content, 10, 1000, { openCode: 'ENOENT' });
    expect(() => readPlainSync(gone.f, '/x', 50, false, 1)).toThrow('ENOENT');
    expect(gone.calls.lstat).toBe(0);
    const eio = fakeFs(content, 10, 1000, { readFails: true });
    const r = readPlainSync(eio.f, '/x', 50, false, 1);
    expect([r.stats.size, r.data, (r.error as { code?: string } | undefined)?.code]).toEqual([10, undefined, 'EIO']);
    expect(eio.calls.close).toBe(1);
  });
});

describe('manifest-sized files through the reader thread', () => {
  let dir: string;
  const files: Array<{ path: string; bytes: Buffer }> = [];

  beforeAll(async () => {
    dir = join(work, 'manifests');
    await mkdir(dir);
    const sizes = [5 * 1024, 200 * 1024, 71, 0, 5 * 1024 + 1, 64 * 1024, 1, 200 * 1024 + 3];
    for (let i = 0; i < sizes.length; i++) {
      const bytes = randomBytes(sizes[i] as number);
      const path = join(dir, `m${i}`);
      await writeFile(path, bytes);
      files.push({ path, bytes });
    }
  });

  const same = (d: string | Uint8Array | undefined, want: Buffer) => {
    expect(d).toBeInstanceOf(Uint8Array);
    const u = d as Uint8Array;
    expect(u.byteLength).toBe(want.length);
    expect(Buffer.from(u.buffer, u.byteOffset, u.byteLength).equals(want)).toBe(true);
  };

  test('readPlain with limit Infinity gives each file byte for byte', async () => {
    for (const { path, bytes } of files) {
      const r = await (threaded.readPlain(path, { limit: Infinity, text: false }) as Promise<PlainRead<Uint8Array>>);
      expect(r.stats.size).toBe(bytes.length);
      same(r.data, bytes);
    }
  });

  test('readPlainMany: one batch of several files, each slice exactly its file', async () => {
    // Some twice, and holes (a directory, a missing file) between them.
    const order = [0, 1, -1, 2, 3, 4, -2, 5, 6, 7, 1, 0];
    const paths = order.map((i) => (i === -1 ? dir : i === -2 ? join(dir, 'gone') : (files[i] as { path: string }).path));
    const results = await readPlainMany(threaded, paths, { limit: Infinity, text: false });
    expect(results).toHaveLength(order.length);
    for (let k = 0; k < order.length; k++) {
      const i = order[k] as number;
      const r = results[k] as PlainRead | Error;
      if (i === -2) {
        expect((r as { code?: unknown }).code).toBe('ENOENT');
        continue;
      }
      expect(r).not.toBeInstanceOf(Error);
      const read = r as PlainRead;
      if (i === -1) {
        expect([read.stats.isDirectory(), read.data]).toEqual([true, undefined]);
        continue;
      }
      same(read.data, (files[i] as { bytes: Buffer }).bytes);
    }
    // Text: the same bytes, decoded as the main thread decodes them (invalid UTF-8 included).
    const texts = await readPlainMany(threaded, paths, { limit: Infinity, text: true });
    const directTexts = await readPlainMany(direct, paths, { limit: Infinity, text: true });
    expect(texts.map(plainFields)).toEqual(directTexts.map(plainFields));
  });

  test('a limit between the sizes: the smaller files read, the larger not', async () => {
    const limit = 64 * 1024;
    const results = await readPlainMany(
      threaded,
      files.map((f) => f.path),
      { limit, text: false },
    );
    for (let i = 0; i < files.length; i++) {
      const r = results[i] as PlainRead;
      const want = (files[i] as { bytes: Buffer }).bytes;
      if (want.length <= limit) same(r.data, want);
      else expect([r.stats.size, r.data]).toEqual([want.length, undefined]);
    }
  });
});

describe('many calls at once', () => {
  test('2,000 single calls in one turn, batch calls among them: each answer is its own path’s', { timeout: 60_000 }, async () => {
    const dir = join(work, 'many');
    await mkdir(dir);
    const n = 200;
    const files: Array<{ path: string; text: string; ino: number }> = [];
    for (let i = 0; i < n; i++) {
      const path = join(dir, `f${i}`);
      const text = `file ${i} ${'x'.repeat(i)}`; // a size of its own
      await writeFile(path, text);
      files.push({ path, text, ino: nodeFs.lstatSync(path).ino });
    }
    const missing = (i: number) => join(dir, `missing-${i}`);
    type Check = () => void;
    const pending: Array<Promise<Check>> = [];
    const expectFile = (s: FileStats, i: number) => {
      const f = files[i] as (typeof files)[number];
      expect([s.ino, s.size, s.isFile()], f.path).toEqual([f.ino, Buffer.byteLength(f.text), true]);
    };
    for (let k = 0; k < 2000; k++) {
      const i = (k * 7) % n;
      const f = files[i] as (typeof files)[number];
      switch (k % 5) {
        case 0:
          pending.push(threaded.lstat(f.path).then((s) => () => expectFile(s, i)));
          break;
        case 1:
          pending.push(
            readPlain(threaded, f.path, { limit: LIMIT, text: true }).then((r) => () => {
              expectFile(r.stats, i);
              expect(r.data).toBe(f.text);
            }),
          );
          break;
        case 2:
          pending.push(
            readPlain(threaded, f.path, { limit: LIMIT, text: false }).then((r) => () => {
              expectFile(r.stats, i);
              expect(Buffer.from(r.data as Uint8Array).toString()).toBe(f.text);
            }),
          );
          break;
        case 3:
          pending.push(
            threaded.lstat(missing(k)).then(
              () => () => expect.fail(`lstat of ${missing(k)} resolved`),
              (err: Error & { code?: string; path?: string }) => () => expect([err.code, err.path]).toEqual(['ENOENT', missing(k)]),
            ),
          );
          break;
        default:
          pending.push(threaded.readText(f.path).then((t) => () => expect(t).toBe(f.text)));
      }
      if (k % 97 === 0) {
        const idx = [i, (i + 1) % n, (i + 50) % n, -1, (i + 3) % n];
        const paths = idx.map((j) => (j < 0 ? missing(k) : (files[j] as (typeof files)[number]).path));
        pending.push(
          lstatMany(threaded, paths).then((rs) => () => {
            expect(rs).toHaveLength(idx.length);
            idx.forEach((j, m) => (j < 0 ? expect((rs[m] as { code?: unknown }).code).toBe('ENOENT') : expectFile(rs[m] as FileStats, j)));
          }),
        );
        pending.push(
          readPlainMany(threaded, paths, { limit: LIMIT, text: k % 2 === 0 }).then((rs) => () => {
            expect(rs).toHaveLength(idx.length);
            idx.forEach((j, m) => {
              if (j < 0) return expect((rs[m] as { code?: unknown }).code).toBe('ENOENT');
              const r = rs[m] as PlainRead;
              expectFile(r.stats, j);
              expect(Buffer.from(r.data as string | Uint8Array).toString()).toBe((files[j] as (typeof files)[number]).text);
            });
          }),
        );
      }
    }
    const checks = await Promise.all(pending);
    expect(checks).toHaveLength(2000 + 2 * Math.ceil(2000 / 97));
    for (const c of checks) c();
    // And a second wave, issued while answers to the first kind come back turn by turn.
    const wave = await Promise.all(
      files.map(async (f, i) => {
        await new Promise((r) => setImmediate(r));
        const [s, t] = await Promise.all([threaded.lstat(f.path), threaded.readText(f.path)]);
        return s.ino === f.ino && t === f.text ? -1 : i;
      }),
    );
    expect(wave.filter((i) => i >= 0)).toEqual([]);
  });
});

describe('the process after the reader thread was used', () => {
  const url = (file: string) => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'storage', file)).href);
  const script = (path: string) => `
import * as nodeFs from 'node:fs';
import { lstatMany, readPlainMany, storageFs } from ${url('fs.js')};
import { threadedReads } from ${url('reader.js')};
const fs = threadedReads(storageFs(nodeFs));
const s = await fs.lstat(${JSON.stringify(path)});
const r = await fs.readPlain(${JSON.stringify(path)}, { limit: 1024, text: true });
const many = await readPlainMany(fs, [${JSON.stringify(path)}, ${JSON.stringify(path + '.missing')}], { limit: 1024, text: false });
const stats = await lstatMany(fs, [${JSON.stringify(path)}]);
console.log(JSON.stringify({ size: s.size, data: r.data, many: [many[0].data.length, many[1].code], lstat: stats[0].size }));
// A read left in flight as the script ends: the thread keeps the process until it is answered.
fs.readText(${JSON.stringify(path)}).then((t) => console.log('late ' + t));
`;

  test('exits by itself, with code 0, soon after its last read', { timeout: 60_000 }, async () => {
    // A script file, as test/integration/heap.test.ts: under `node --input-type=module -e` the
    // thread's eval'd code would be taken for a module too (execArgv is inherited), where
    // `require` is not defined; the CLI cannot be started that way.
    const file = join(work, 'exits.mjs');
    await writeFile(file, script(p('link')));
    const started = Date.now();
    const r = await execa(process.execPath, [file], { reject: false, timeout: 30_000 });
    const took = Date.now() - started;
    expect(r.timedOut, `still running after 30 s: ${r.stderr}`).toBe(false);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([JSON.stringify({ size: 71, data: LINK, many: [71, 'ENOENT'], lstat: 71 }), `late ${LINK}`]);
    // Node starts in well under a second; a kept-alive process would have hit the timeout.
    expect(took).toBeLessThan(15_000);
  });
});
