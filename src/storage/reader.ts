import { Worker } from 'node:worker_threads';
import type { DirEntry, FileStats, PlainRead, ReadPlainOptions, StorageFs, StorageReads } from './fs.js';
import { NO_FOLLOW_READ, readPlainSync, withReads } from './fs.js';
import { workerLine } from './worker-line.js';

/**
 * The body of the reader thread: the plan's reads (lstat, readdir, a link's
 * text, a manifest's bytes) as plain synchronous calls, a batch per message.
 * A plan at 100k tags makes about 1.5 million of them, half its time; here
 * they run on the second core while the main thread parses and decides.
 * The calls are the very ones the main thread would make (node:fs, no
 * following of links beyond what those calls do), and the results come back
 * whole: stat fields, entry types, text, bytes, or the error as it was.
 */
const READER = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
${readPlainSync.toString()}
const stat = (s) => { const st = new Float64Array(8); put(st, 0, s); return st; };
const failure = (err) => ({ message: String(err && err.message), code: err && err.code, errno: err && err.errno, syscall: err && err.syscall, path: err && err.path });
const OPS = [
  (p) => stat(fs.lstatSync(p)),
  (p) => {
    const entries = fs.readdirSync(p, { withFileTypes: true });
    const names = new Array(entries.length);
    const types = new Uint8Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      names[i] = e.name;
      types[i] = e.isDirectory() ? 1 : e.isSymbolicLink() ? 2 : e.isFile() ? 3 : 0;
    }
    return [names, types];
  },
  (p) => fs.readFileSync(p, 'utf8'),
  (p) => fs.readFileSync(p),
  (p) => fs.readlinkSync(p),
  // readPlain: the path is [path, limit, text]
  ([p, limit, text]) => plain(p, limit, text),
  // lstat of many paths: [stats (8 numbers each, one array), [index, failure, ...]]
  (paths) => {
    const st = new Float64Array(paths.length * 8);
    const failed = [];
    for (let i = 0; i < paths.length; i++) {
      try { put(st, i, fs.lstatSync(paths[i])); } catch (err) { failed.push(i, failure(err)); }
    }
    transfer.push(st.buffer);
    return [st, failed];
  },
  // readPlain of many paths, given [paths, limit, text]:
  // [stats, texts or null, bytes or null, offsets (start and length, -1: none) or null, [index, read failure, ...], [index, thrown, ...]]
  ([paths, limit, text]) => {
    const n = paths.length;
    const st = new Float64Array(n * 8);
    const texts = text ? new Array(n) : undefined;
    const chunks = text ? undefined : [];
    const offsets = text ? undefined : new Float64Array(2 * n).fill(-1);
    const readFailed = [];
    const thrown = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      let r;
      try { r = readPlainSync(fs, paths[i], limit, text, ${NO_FOLLOW_READ}); } catch (err) { thrown.push(i, failure(err)); continue; }
      put(st, i, r.stats);
      if (r.error !== undefined) readFailed.push(i, failure(r.error));
      if (r.data === undefined) continue;
      if (texts !== undefined) texts[i] = r.data;
      else {
        offsets[2 * i] = total;
        offsets[2 * i + 1] = r.data.length;
        total += r.data.length;
        chunks.push(r.data);
      }
    }
    if (texts !== undefined) {
      transfer.push(st.buffer);
      return [st, texts, null, null, readFailed, thrown];
    }
    // One buffer of its own (not the pool's: it is handed over) for all the bytes.
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) { bytes.set(c, at); at += c.length; }
    transfer.push(st.buffer, bytes.buffer, offsets.buffer);
    return [st, null, bytes, offsets, readFailed, thrown];
  },
];
let transfer = [];
function put(st, i, s) {
  const o = i * 8;
  st[o] = s.mode; st[o + 1] = s.size; st[o + 2] = s.mtimeMs; st[o + 3] = s.dev;
  st[o + 4] = s.ino; st[o + 5] = s.uid; st[o + 6] = s.gid; st[o + 7] = s.birthtimeMs;
}
function plain(p, limit, text) {
  const r = readPlainSync(fs, p, limit, text, ${NO_FOLLOW_READ});
  return [stat(r.stats), r.data, r.error === undefined ? undefined : failure(r.error)];
}
parentPort.on('message', (batch) => {
  const out = new Array(batch.length);
  for (let i = 0; i < batch.length; i += 2) {
    try {
      out[i] = 0;
      out[i + 1] = OPS[batch[i]](batch[i + 1]);
    } catch (err) {
      out[i] = 1;
      out[i + 1] = failure(err);
    }
  }
  const t = transfer;
  transfer = [];
  parentPort.postMessage(out, t);
});
`;

const enum Op {
  lstat = 0,
  readdir = 1,
  readText = 2,
  readFile = 3,
  readlink = 4,
  readPlain = 5,
  lstatMany = 6,
  readPlainMany = 7,
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Stats read from an array of 8 numbers per entry (the thread's `put`: mode, size, mtimeMs, dev, ino, uid, gid, birthtimeMs). */
class StatsAt implements FileStats {
  constructor(
    private readonly b: Float64Array,
    private readonly o: number,
  ) {}
  private get mode(): number {
    return this.b[this.o] as number;
  }
  get size(): number {
    return this.b[this.o + 1] as number;
  }
  get mtimeMs(): number {
    return this.b[this.o + 2] as number;
  }
  get dev(): number {
    return this.b[this.o + 3] as number;
  }
  get ino(): number {
    return this.b[this.o + 4] as number;
  }
  get uid(): number {
    return this.b[this.o + 5] as number;
  }
  get gid(): number {
    return this.b[this.o + 6] as number;
  }
  get birthtimeMs(): number {
    return this.b[this.o + 7] as number;
  }
  /** As node's: the milliseconds rounded (new Date cuts them off), so it is the main thread's Date. */
  get mtime(): Date {
    return new Date(Math.round(this.mtimeMs));
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
}

class Entry implements DirEntry {
  constructor(
    readonly name: string,
    private readonly type: number,
  ) {}
  isDirectory(): boolean {
    return this.type === 1;
  }
  isSymbolicLink(): boolean {
    return this.type === 2;
  }
  isFile(): boolean {
    return this.type === 3;
  }
}

interface Waiting {
  readonly op: Op;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

type Failure = { message: string; code?: string; errno?: number; syscall?: string; path?: string };

const stats = (v: Float64Array) => new StatsAt(v, 0);

function errorOf(f: Failure): Error {
  const err = new Error(f.message);
  for (const k of ['code', 'errno', 'syscall', 'path'] as const) if (f[k] !== undefined) Object.assign(err, { [k]: f[k] });
  return err;
}

type PlainReply = [Float64Array, string | Uint8Array | undefined, Failure | undefined];

function plainRead([st, data, error]: PlainReply): PlainRead {
  return { stats: stats(st), ...(data === undefined ? {} : { data }), ...(error === undefined ? {} : { error: errorOf(error) }) };
}

function rebuild(op: Op, value: unknown): unknown {
  switch (op) {
    case Op.lstat:
      return stats(value as Float64Array);
    case Op.readPlain:
      return plainRead(value as PlainReply);
    case Op.lstatMany: {
      const [st, failed] = value as [Float64Array, Array<number | Failure>];
      const out: Array<FileStats | Error> = [];
      for (let i = 0; i < st.length / 8; i++) out.push(new StatsAt(st, 8 * i));
      for (let j = 0; j < failed.length; j += 2) out[failed[j] as number] = errorOf(failed[j + 1] as Failure);
      return out;
    }
    case Op.readPlainMany: {
      const [st, texts, bytes, offsets, readFailed, thrown] = value as [
        Float64Array,
        string[] | null,
        Uint8Array | null,
        Float64Array | null,
        Array<number | Failure>,
        Array<number | Failure>,
      ];
      const n = st.length / 8;
      const errors = new Map<number, Error>();
      for (let j = 0; j < readFailed.length; j += 2) errors.set(readFailed[j] as number, errorOf(readFailed[j + 1] as Failure));
      const out: Array<PlainRead | Error> = [];
      for (let i = 0; i < n; i++) {
        let d: string | Uint8Array | undefined;
        if (texts !== null) d = texts[i];
        else if (bytes !== null && offsets !== null && offsets[2 * i + 1] !== -1) {
          const start = offsets[2 * i] as number;
          d = bytes.subarray(start, start + (offsets[2 * i + 1] as number));
        }
        // Absent and undefined are the same to readers of a PlainRead; one object shape, no spreads.
        out.push({ stats: new StatsAt(st, 8 * i), data: d, error: errors.get(i) });
      }
      for (let j = 0; j < thrown.length; j += 2) out[thrown[j] as number] = errorOf(thrown[j + 1] as Failure);
      return out;
    }
    case Op.readdir: {
      const [names, types] = value as [string[], Uint8Array];
      return names.map((n, i) => new Entry(n, types[i] as number));
    }
    default:
      return value;
  }
}

/** Requests sent at once, at most: a reply is handled in one go, and a big one would delay the next batch. */
const MAX_BATCH = 16;

/**
 * A StorageFs whose reads run in a reader thread (started on the first read,
 * keeping the process alive only while reads are under way); realpath and the
 * mutating calls are `base`'s. For the real disk only, where `base` is
 * storageFs(node:fs): the thread calls node:fs itself.
 *
 * Reads are batched: the calls made in one turn of the event loop go in one
 * message (at most MAX_BATCH), and come back in one. The main thread's
 * callers are unchanged; what changes is that their system calls overlap
 * with the main thread's own work.
 */
export function threadedReads(base: StorageFs): StorageFs {
  const line = workerLine('reader thread', () => new Worker(READER, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 } }));
  /** Once the thread failed, every call fails (a plan's reads are all or nothing). */
  let broken: Error | undefined;
  let batch: unknown[] = [];
  let waiting: Waiting[] = [];
  let scheduled = false;

  /** Sends the calls of `list` as `message`; the reply answers each, in order. */
  const send = (list: readonly Waiting[], message: unknown[]) => {
    line.send(message).then(
      (reply) => {
        const out = reply as unknown[];
        list.forEach((wt, i) => (out[2 * i] === 0 ? wt.resolve(rebuild(wt.op, out[2 * i + 1])) : wt.reject(errorOf(out[2 * i + 1] as Failure))));
      },
      (err: Error) => {
        broken ??= err;
        for (const wt of list) wt.reject(err);
      },
    );
  };

  const flush = () => {
    scheduled = false;
    const list = waiting;
    const calls = batch;
    waiting = [];
    batch = [];
    if (broken !== undefined) {
      for (const wt of list) wt.reject(broken);
      return;
    }
    // Larger turns go in several messages, so the thread starts on the first while the rest are cloned.
    for (let i = 0; i < list.length; i += MAX_BATCH) send(list.slice(i, i + MAX_BATCH), calls.slice(2 * i, 2 * (i + MAX_BATCH)));
  };

  /** A batch call (a repository's worth of reads): sent at once, alone, so the thread works on it while this thread handles the answer to another. */
  const callAlone = <T>(op: Op, payload: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (broken !== undefined) return reject(broken);
      send([{ op, resolve: resolve as (v: unknown) => void, reject }], [op, payload]);
    });

  const call = <T>(op: Op, path: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (broken !== undefined) return reject(broken);
      waiting.push({ op, resolve: resolve as (v: unknown) => void, reject });
      batch.push(op, path);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });

  const reads: StorageReads = {
    lstat: (path) => call<FileStats>(Op.lstat, path),
    readdir: (path) => call<DirEntry[]>(Op.readdir, path),
    readText: (path) => call<string>(Op.readText, path),
    readFile: (path) => call<Uint8Array>(Op.readFile, path),
    readlink: (path) => call<string>(Op.readlink, path),
    readPlain: ((path: string, options: ReadPlainOptions) => call<PlainRead>(Op.readPlain, [path, options.limit, options.text])) as StorageFs['readPlain'],
    realpath: (path) => base.realpath(path),
  };
  return withReads(base, reads, {
    lstat: (paths) => callAlone<Array<FileStats | Error>>(Op.lstatMany, paths),
    readPlain: (paths, options) => callAlone<Array<PlainRead | Error>>(Op.readPlainMany, [paths, options.limit, options.text]),
  });
}
