import { posix } from 'node:path';
import { errnoCode } from '../model/errors.js';
import type { Digest, RepositoryName } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { lstatMany, readPlainMany, type FileStats, type PlainRead, type StorageFs } from '../storage/fs.js';
import { EMPTY_LINK, readLink, readLinks, type LinkRead } from '../storage/links.js';
import { DATA, type Layout } from '../storage/paths.js';
import type { WarningCode, WarningSink } from '../storage/warnings.js';
import { walkRepositories, type RepositoryRecord, type WalkOptions } from '../storage/walk.js';
import { limiter, mapLimit, type Limiter } from '../util/limit.js';
import { DigestMarks, DigestTable } from './digest-table.js';
import { parseManifest, type ManifestRefs } from './manifest.js';
import type { RepoGraphView } from './reach.js';

/** A manifest blob as read from the blob store. */
export type ManifestEntry =
  | { readonly ok: true; readonly refs: ManifestRefs; readonly size: number }
  | {
      readonly ok: false;
      readonly problem: string;
      readonly missing: boolean;
      /** The registry cannot read it either (see ParsedManifest). */
      readonly refused?: true;
      /** What to report and where, when not the default (missing-blob at the revision, bad-manifest at the data). */
      readonly code?: WarningCode;
      readonly path?: string;
    };

export interface RepoManifests {
  readonly repository: RepositoryName;
  /**
   * Manifests the registry counts as present: `_manifests/revisions/sha256/<hex>/`
   * with a `link` (the registry reads only the link; a bad one is kept here and
   * makes the repository opaque).
   */
  readonly revisions: ReadonlySet<Digest>;
  /**
   * Revision directories without a `link`: what the HTTP API's manifest DELETE
   * leaves. The registry and garbage-collect see no manifest there.
   */
  readonly leftovers: readonly Digest[];
  /**
   * Set when reachability in this repository cannot be known exactly (a
   * manifest missing or not understood, a symlink among revisions): no
   * manifest of it is removed, and all its linked layers count as referenced.
   */
  opaque: string | undefined;
  /**
   * Set when what garbage-collect marks in this repository cannot be known
   * exactly (a manifest not understood, a bad revision link, a symlink). A
   * revision whose manifest blob is gone is opaque but not this: garbage-collect
   * skips it, marking nothing.
   */
  marksUnknown: string | undefined;
  /** Where marks are unknown: the blobs linked under `_layers` (what its manifests might reference). */
  linkedLayers: readonly Digest[];
}

/** A manifest as kept in memory: blob references as ids into the cache's arena. */
interface Stored {
  readonly ok: true;
  readonly kind: ManifestRefs['kind'];
  readonly mediaType: string;
  readonly size: number;
  readonly blobStart: number;
  readonly blobCount: number;
  readonly children: readonly Digest[];
  readonly subject: Digest | undefined;
  readonly foreign: readonly Digest[];
}

type Failed = Extract<ManifestEntry, { ok: false }>;

/** A manifest after releaseBlobRefs(): only what reachability follows. */
interface Linked {
  readonly ok: true;
  readonly children: readonly Digest[];
  readonly subject: Digest | undefined;
}

const NONE: readonly Digest[] = Object.freeze([]);
/** Most manifests are images without a subject: one object for all of them. */
const LEAF: Linked = Object.freeze({ ok: true, children: NONE, subject: undefined });

/**
 * Reads manifests once each, shared by all repositories (the blob store is
 * global). Manifest digests are interned strings; the config and layer blobs
 * they reference (three quarters of all digests) are ids of a DigestTable,
 * held in one Uint32Array: at 100k tags that is tens of MB less heap than a
 * string array per manifest.
 */
export class ManifestCache {
  private readonly entries = new Map<Digest, Promise<unknown>>();
  private readonly done = new Map<Digest, Stored | Linked | Failed>();
  private readonly interned = new Map<string, Digest>();
  private readonly mediaTypes = new Map<string, string>();
  private digests: DigestTable | undefined = new DigestTable();
  private arena = new Uint32Array(16384);
  private arenaUsed = 0;
  constructor(
    private readonly fs: StorageFs,
    private readonly lay: Layout,
    private readonly io: Limiter,
  ) {}

  /** Manifest blobs read so far (for progress). */
  reads = 0;

  /** Every digest a manifest references, and every manifest marked, by id. */
  get table(): DigestTable {
    if (this.digests === undefined) throw new Error('ManifestCache: blob references were released (releaseBlobRefs)');
    return this.digests;
  }

  /**
   * Keeps only what reachability needs (children, subject), for the apply: the
   * blob references, sizes and media types only the plan's byte figures use
   * are dropped, and manifests read from now on keep none. At 100k tags that
   * is the digest table and the arena (about 24 MB outside the heap) and a
   * tenth of the heap. peek, refs, size, mark and table throw afterwards.
   */
  releaseBlobRefs(): void {
    if (this.digests === undefined) return;
    this.digests = undefined;
    this.arena = new Uint32Array(0);
    this.arenaUsed = 0;
    this.mediaTypes.clear();
    // The digests stay shared: the keys below and the plan's entries hold the same strings.
    this.interned.clear();
    for (const [d, e] of this.done) if (e.ok) this.done.set(d, linked(e.children, e.subject));
  }

  private full(e: Stored | Linked | Failed): Stored | Failed {
    if (this.digests === undefined) throw new Error('ManifestCache: blob references were released (releaseBlobRefs)');
    return e as Stored | Failed;
  }

  /** One string per manifest digest, however many places hold it. */
  intern(d: Digest): Digest {
    const existing = this.interned.get(d);
    if (existing !== undefined) return existing;
    this.interned.set(d, d);
    return d;
  }

  /**
   * Keeps a manifest read: its blob references go into the arena as ids, `blobCount` of them,
   * the k-th being `blobId(k)` (by default refs.blobs, else the manifest thread's hex).
   */
  private store(
    refs: Omit<ManifestRefs, 'blobs'>,
    size: number,
    blobCount: number,
    blobId: (table: DigestTable, k: number) => number,
  ): Stored | Linked {
    if (this.digests === undefined) return linked(refs.children.map((c) => this.intern(c)), refs.subject === undefined ? undefined : this.intern(refs.subject));
    const blobStart = this.arenaUsed;
    if (blobStart + blobCount > this.arena.length) {
      const grown = new Uint32Array(Math.max(this.arena.length * 2, blobStart + blobCount));
      grown.set(this.arena);
      this.arena = grown;
    }
    for (let k = 0; k < blobCount; k++) this.arena[this.arenaUsed++] = blobId(this.digests, k);
    let mediaType = this.mediaTypes.get(refs.mediaType);
    if (mediaType === undefined) {
      mediaType = refs.mediaType;
      this.mediaTypes.set(mediaType, mediaType);
    }
    return {
      ok: true,
      kind: refs.kind,
      mediaType,
      size,
      blobStart,
      blobCount,
      children: refs.children.length === 0 ? NONE : refs.children.map((c) => this.intern(c)),
      subject: refs.subject === undefined ? undefined : this.intern(refs.subject),
      foreign: refs.foreign === undefined ? NONE : refs.foreign,
    };
  }

  private storeRefs(refs: ManifestRefs, size: number): Stored | Linked {
    return this.store(refs, size, refs.blobs.length, (table, k) => table.id(refs.blobs[k] as Digest));
  }

  /** store() for a manifest the manifest thread read: blob digests as one string of hex. */
  private storeCompact([kind, mediaType, size, blobsHex, children, subject, foreign]: ThreadManifest): Stored | Linked {
    const refs = { kind, mediaType, children, subject: subject ?? undefined, ...(foreign === null ? {} : { foreign }) };
    return this.store(refs, size, blobsHex.length / 64, (table, k) => table.idHex(blobsHex, 64 * k));
  }

  private materialize(e: Stored | Failed): ManifestEntry {
    if (!e.ok) return e;
    const blobs: Digest[] = [];
    for (let i = e.blobStart; i < e.blobStart + e.blobCount; i++) blobs.push(this.table.digest(this.arena[i] as number));
    return {
      ok: true,
      size: e.size,
      refs: { kind: e.kind, mediaType: e.mediaType, blobs, children: [...e.children], subject: e.subject, ...(e.foreign.length > 0 ? { foreign: e.foreign } : {}) },
    };
  }

  /** Ancestors of blob dirs (blobs, blobs/sha256, each shard) found to be there, checked once each. */
  private readonly checkedDirs = new Map<string, Promise<Failed | undefined>>();

  /**
   * readFile follows symbolic links anywhere on the path; the manifest would be
   * read from wherever they point. Refuse instead: a symlink, or an lstat that
   * fails other than ENOENT, makes the entry not understood.
   */
  private async notPlain(path: string, missing: string): Promise<Failed | undefined> {
    let st: FileStats | Error;
    try {
      st = await this.fs.lstat(path);
    } catch (err) {
      st = err as Error;
    }
    return plainDir(st, path, missing);
  }

  private checkDir(path: string): Promise<Failed | undefined> {
    let p = this.checkedDirs.get(path);
    if (p === undefined) {
      p = this.notPlain(path, 'manifest blob is missing');
      this.checkedDirs.set(path, p);
      // A shard that is not there yet may be made by a push during the run: look again next time.
      void p.then((e) => {
        if (e !== undefined && e.missing) this.checkedDirs.delete(path);
      });
    }
    return p;
  }

  load(digest: Digest): Promise<ManifestEntry> {
    return this.fetch([digest]).then(() => this.peek(digest) as ManifestEntry);
  }

  /** Reads `digests` into the cache (each once, in one batch of reads); resolves when they are there. */
  private fetch(digests: readonly Digest[]): Promise<unknown> {
    const waits: Array<Promise<unknown>> = [];
    const todo: Digest[] = [];
    const mine = new Set<Digest>();
    for (const digest of digests) {
      if (this.done.has(digest) || mine.has(digest)) continue;
      const inFlight = this.entries.get(digest);
      if (inFlight !== undefined) waits.push(inFlight);
      else {
        const key = this.intern(digest);
        todo.push(key);
        mine.add(key);
      }
    }
    if (todo.length > 0) {
      const p = this.io.run(() => this.readMany(todo)).then(
        (entries) => {
          todo.forEach((key, i) => this.done.set(key, entries[i] as Stored | Linked | Failed));
          // Only in-flight loads are kept as promises; done ones live in `done`.
          for (const key of todo) this.entries.delete(key);
        },
        (err: unknown) => {
          for (const key of todo) this.entries.delete(key);
          throw err;
        },
      );
      for (const key of todo) this.entries.set(key, p);
      waits.push(p);
    }
    return Promise.all(waits);
  }

  /**
   * Reads manifest blobs, without following a symbolic link anywhere below the root: the blob
   * store's directories down to each shard are checked once each, each blob dir by lstat, and
   * `data` is read by readPlain (a link there is not followed). What is not a readable regular
   * file is a Failed entry, not an error.
   */
  private async readMany(digests: readonly Digest[]): Promise<Array<Stored | Linked | Failed>> {
    // Filled, not sparse: flatMap below skips holes.
    const out = new Array<Stored | Linked | Failed | undefined>(digests.length).fill(undefined);
    // The store's directories above the blob dirs: blobs, blobs/sha256, the shard (each
    // <blobs>/sha256/<xx>/<hex>/data), each checked once per run.
    const blobDirs = digests.map((d) => this.lay.blob(d));
    const shards = new Map<string, Failed | undefined>();
    for (const dir of blobDirs) shards.set(posix.dirname(dir), undefined);
    for (const shard of shards.keys()) {
      for (const dir of [posix.dirname(posix.dirname(shard)), posix.dirname(shard), shard]) {
        const bad = await this.checkDir(dir);
        if (bad === undefined) continue;
        shards.set(shard, bad);
        break;
      }
    }
    blobDirs.forEach((dir, i) => {
      const bad = shards.get(posix.dirname(dir));
      if (bad !== undefined) out[i] = bad;
    });
    const left = out.flatMap((e, i) => (e === undefined ? [i] : []));
    this.reads += digests.length;
    const thread = manifestThreads.get(this.fs);
    // Read and parsed in the manifest thread; only the references come back. A thread that fails
    // (its heap limit, on a manifest of tens of MB) leaves the batch to be read here, the same way.
    const got = thread === undefined ? undefined : await thread.read(left.map((i) => blobDirs[i] as string)).catch(() => undefined);
    if (got !== undefined) {
      left.forEach((i, j) => {
        const r = got[j] as Failed | ThreadManifest;
        out[i] = Array.isArray(r) ? this.storeCompact(r) : r;
      });
      return out as Array<Stored | Linked | Failed>;
    }
    const dirs = await lstatMany(
      this.fs,
      left.map((i) => blobDirs[i] as string),
    );
    // Only through a blob dir that is there and not a symbolic link (manifestOfBlob says why not).
    const readable = left.filter((_, j) => {
      const st = dirs[j] as FileStats | Error;
      return !(st instanceof Error) && !st.isSymbolicLink();
    });
    // Bytes, not text: Go reads invalid UTF-8 its own way (see gojson.ts).
    const reads = await readPlainMany(
      this.fs,
      readable.map((i) => `${blobDirs[i] as string}/${DATA}`),
      { limit: Infinity, text: false },
    );
    const readOf = new Map(readable.map((i, k) => [i, reads[k] as PlainRead<Uint8Array> | Error]));
    left.forEach((i, j) => {
      const r = manifestOfBlob(blobDirs[i] as string, dirs[j] as FileStats | Error, readOf.get(i));
      out[i] = r.ok ? this.storeRefs(r.refs, r.size) : r;
    });
    return out as Array<Stored | Linked | Failed>;
  }

  /** The entry if already loaded (synchronous, for the pure reachability code). */
  peek(digest: Digest): ManifestEntry | undefined {
    const e = this.done.get(digest);
    return e === undefined ? undefined : this.materialize(this.full(e));
  }

  /** Why a loaded manifest could not be read or understood; undefined when it was (or is not loaded). No copy of its references is made. */
  failure(digest: Digest): Failed | undefined {
    const e = this.done.get(digest);
    return e === undefined || e.ok ? undefined : e;
  }

  /** What a loaded manifest references (built on each call: prefer children, subject, mark). */
  refs(digest: Digest): ManifestRefs | undefined {
    const e = this.done.get(digest);
    if (e === undefined) return undefined;
    const f = this.full(e);
    return f.ok ? (this.materialize(f) as { refs: ManifestRefs }).refs : undefined;
  }

  /** Child manifests of a loaded index (none for anything else, or not loaded). */
  children(digest: Digest): readonly Digest[] {
    const e = this.done.get(digest);
    return e !== undefined && e.ok ? e.children : NONE;
  }

  subject(digest: Digest): Digest | undefined {
    const e = this.done.get(digest);
    return e !== undefined && e.ok ? e.subject : undefined;
  }

  /** Size in bytes of a manifest read and understood. */
  size(digest: Digest): number | undefined {
    const e = this.done.get(digest);
    if (e === undefined) return undefined;
    const f = this.full(e);
    return f.ok ? f.size : undefined;
  }

  /**
   * Marks what garbage-collect marks for `manifest`: its own blob and every
   * descriptor it references (config, layers, child manifests).
   */
  mark(manifest: Digest, into: DigestMarks | Set<number>): void {
    into.add(this.table.id(manifest));
    const got = this.done.get(manifest);
    const e = got === undefined ? undefined : this.full(got);
    if (e === undefined || !e.ok) return;
    for (let i = e.blobStart; i < e.blobStart + e.blobCount; i++) into.add(this.arena[i] as number);
    for (const c of e.children) into.add(this.table.id(c));
  }

  /** Loads `roots` and, transitively, index children. */
  async loadClosure(roots: Iterable<Digest>): Promise<void> {
    let frontier = [...roots];
    const seen = new Set<Digest>();
    while (frontier.length > 0) {
      const next: Digest[] = [];
      const batch = frontier.filter((d) => !seen.has(d));
      for (const d of batch) seen.add(d);
      // Batches of a few hundred: one message each to the reader thread, the next read while this one is parsed.
      const chunks: Digest[][] = [];
      for (let i = 0; i < batch.length; i += FETCH_BATCH) chunks.push(batch.slice(i, i + FETCH_BATCH));
      await Promise.all(chunks.map((c) => this.fetch(c)));
      for (const d of batch) next.push(...this.children(d));
      frontier = next;
    }
  }
}

/**
 * A manifest blob as the manifest thread sends it back: kind, media type, size, the blobs it
 * references as one string of their hex (64 characters each, in order), children, subject, foreign.
 */
export type ThreadManifest = [ManifestRefs['kind'], string, number, string, Digest[], Digest | null, Digest[] | null];

/** Reads and parses manifest blobs elsewhere (src/storage/manifest-reader.ts: a thread), given their blob dirs. */
export interface ManifestReads {
  read(blobDirs: readonly string[]): Promise<Array<Failed | ThreadManifest>>;
}

const manifestThreads = new WeakMap<StorageFs, ManifestReads>();

/** Makes manifest caches on `fs` read and parse manifests with `reads` (for the program's main). */
export function readManifestsWith(fs: StorageFs, reads: ManifestReads | undefined): StorageFs {
  if (reads !== undefined) manifestThreads.set(fs, reads);
  return fs;
}

/**
 * What a manifest blob is, from the lstat of its directory and the read of its `data` (none when
 * the directory is not one to read through): its references and size, or why not. Pure: the
 * manifest thread runs it too.
 */
export function manifestOfBlob(blobDir: string, dir: FileStats | Error, read: PlainRead<Uint8Array> | Error | undefined): Failed | { ok: true; refs: ManifestRefs; size: number } {
  const bad = plainDir(dir, blobDir, 'manifest blob is missing');
  if (bad !== undefined) return bad;
  const path = `${blobDir}/${DATA}`;
  if (read === undefined) return { ok: false, missing: false, code: 'unreadable', path, problem: 'cannot read manifest blob: not read' };
  let problem: Error | undefined;
  if (read instanceof Error) problem = read;
  else if (read.stats.isSymbolicLink()) return { ok: false, missing: false, code: 'symlink', path, problem: `symbolic link at ${path}; not followed` };
  else if (read.error !== undefined) problem = read.error;
  else if (read.data === undefined) {
    // A directory, a FIFO: what reading it by path would have refused.
    problem = read.stats.isDirectory()
      ? Object.assign(new Error('EISDIR: illegal operation on a directory, read'), { code: 'EISDIR' })
      : Object.assign(new Error(`not a regular file: ${path}`), { code: 'EINVAL' });
  }
  if (problem !== undefined || read instanceof Error || read.data === undefined) {
    return errnoCode(problem) === 'ENOENT'
      ? { ok: false, missing: true, problem: 'manifest blob is missing' }
      : { ok: false, missing: false, code: 'unreadable', path, problem: `cannot read manifest blob: ${(problem as Error).message}` };
  }
  const parsed = parseManifest(read.data);
  // The size from the inode. Blobs never change.
  return parsed.ok ? { ok: true, refs: parsed.refs, size: read.stats.size } : { ok: false, missing: false, problem: parsed.problem, ...(parsed.refused === true ? { refused: true } : {}) };
}

/** Manifests read in one batch of calls. */
const FETCH_BATCH = 256;

/** A directory on the way to a manifest blob, by its lstat: a symlink, or an lstat that fails other than ENOENT, makes the entry not understood. */
function plainDir(st: FileStats | Error, path: string, missing: string): Failed | undefined {
  if (st instanceof Error) {
    if (errnoCode(st) === 'ENOENT') return { ok: false, missing: true, problem: missing };
    return { ok: false, missing: false, code: 'unreadable', path, problem: `cannot stat ${path}: ${st.message}` };
  }
  if (st.isSymbolicLink()) return { ok: false, missing: false, code: 'symlink', path, problem: `symbolic link at ${path}; not followed` };
  return undefined;
}

function linked(children: readonly Digest[], subject: Digest | undefined): Linked {
  return children.length === 0 && subject === undefined ? LEAF : { ok: true, children: children.length === 0 ? NONE : children, subject };
}

async function listDir(fs: StorageFs, io: Limiter, path: string, warn: WarningSink) {
  try {
    return await io.run(() => fs.readdir(path, { withFileTypes: true }));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    warn({ code: 'unreadable', path, message: `cannot list directory: ${(err as Error).message}` });
    return undefined;
  }
}

/** Lists `<dir>/<hex>` entries as digests; anything else is reported. */
async function listDigestDirs(
  fs: StorageFs,
  io: Limiter,
  dir: string,
  warn: WarningSink,
  /** Directories on the way to `dir` (and `dir`) that must not be symbolic links: listing would follow them. */
  plain: readonly string[] = [],
): Promise<{ digests: Digest[]; problem?: string }> {
  for (const p of plain) {
    try {
      if (!(await io.run(() => fs.lstat(p))).isSymbolicLink()) continue;
    } catch {
      continue; // ENOENT and the like: listDir below says what it is
    }
    warn({ code: 'symlink', path: p, message: 'symbolic link; not followed, no manifest of the repository removed' });
    return { digests: [], problem: `symbolic link at ${p}` };
  }
  const entries = await listDir(fs, io, dir, warn);
  if (entries === undefined) return { digests: [], problem: `cannot list ${dir}` };
  const digests: Digest[] = [];
  let problem: string | undefined;
  for (const e of entries) {
    const d = `sha256:${e.name}`;
    if (e.isDirectory() && isDigest(d)) {
      digests.push(d);
      continue;
    }
    const path = posix.join(dir, e.name);
    if (e.isSymbolicLink()) {
      warn({ code: 'symlink', path, message: 'symbolic link; not followed' });
      problem = `symbolic link at ${path}`;
    } else if (!isDigest(d)) {
      if (!e.name.includes('.tmp')) warn({ code: 'unexpected', path, message: 'not a sha256 digest directory; ignored' });
    } else if (e.isDirectory()) digests.push(d);
  }
  return problem === undefined ? { digests } : { digests, problem };
}

/** The blobs linked into a repository under `_layers` (config and layer links). */
export async function listLinkedLayers(fs: StorageFs, lay: Layout, repository: RepositoryName, warn: WarningSink = () => {}): Promise<Digest[]> {
  return (await listDigestDirs(fs, limiter(16), lay.layers(repository), warn)).digests;
}

export interface LoadGraphOptions {
  /** Reuse manifests already read (content-addressed, so never stale). */
  readonly cache?: ManifestCache;
  readonly onWarning?: WarningSink;
  readonly onProgress?: (p: { manifests: number }) => void;
  readonly concurrency?: number;
}

export interface RepoGraph extends RepoGraphView {
  readonly repos: ReadonlyMap<RepositoryName, RepoManifests>;
  readonly cache: ManifestCache;
}

/** A per-repository view over the shared cache (referrers are repository-local). */
export function repoView(cache: ManifestCache, revisions: Iterable<Digest>): RepoGraphView {
  const referrers = new Map<Digest, Digest[]>();
  for (const d of revisions) {
    const s = cache.subject(d);
    if (s === undefined) continue;
    const list = referrers.get(s);
    if (list === undefined) referrers.set(s, [d]);
    else list.push(d);
  }
  return { children: (d) => cache.children(d), referrers: (d) => referrers.get(d) ?? [] };
}

/** Reads repositories' revisions and the manifests behind them, one repository at a time, as they are found. */
export interface RepoManifestLoader {
  /** Reads `repository`; `tagDigests` are further digests that must be loaded (tag targets that may lack a revision link). */
  load(repository: RepositoryName, tagDigests: Iterable<Digest>): Promise<void>;
  /** What was read, by repository name (sorted). */
  result(): { repos: Map<RepositoryName, RepoManifests>; cache: ManifestCache };
}

export function repoManifestLoader(fs: StorageFs, lay: Layout, options: LoadGraphOptions = {}): RepoManifestLoader {
  const io = limiter(options.concurrency ?? 64);
  const warn: WarningSink = options.onWarning ?? (() => {});
  const cache = options.cache ?? new ManifestCache(fs, lay, io);
  let reported = cache.reads;
  const progress = () => {
    if (cache.reads - reported < 1000) return;
    reported = cache.reads;
    options.onProgress?.({ manifests: cache.reads });
  };
  const repos = new Map<RepositoryName, RepoManifests>();
  const warned = new Set<Digest>();
  const load = async (repository: RepositoryName, tagDigests: Iterable<Digest>): Promise<void> => {
    const revisionsDir = lay.revisions(repository);
    const listed = await listDigestDirs(fs, io, revisionsDir, warn, [posix.dirname(revisionsDir), revisionsDir]);
    // garbage-collect reads each revision's link with digest.Parse and aborts on
    // a bad one; a directory without one (an API delete) it passes over.
    const revisions = new Set<Digest>();
    const leftovers: Digest[] = [];
    let opaque = listed.problem;
    let marksUnknown = listed.problem;
    const readRevisionLink = async (d: Digest, first: LinkRead) => {
      let link = first;
      // Every manifest PUT rewrites the revision link (truncate, then write): one caught
      // empty during a push is usually whole a moment later.
      for (let attempt = 0; !link.ok && link.warning.message === EMPTY_LINK && attempt < 5; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20 * (attempt + 1)));
        link = await io.run(() => readLink(fs, lay.revisionLink(repository, d)));
      }
      return link;
    };
    const links: LinkRead[] = [];
    for (let i = 0; i < listed.digests.length; i += FETCH_BATCH) {
      const chunk = listed.digests.slice(i, i + FETCH_BATCH);
      const read = await io.run(() => readLinks(fs, chunk.map((d) => lay.revisionLink(repository, d))));
      for (let j = 0; j < chunk.length; j++) {
        const link = read[j] as LinkRead;
        links.push(!link.ok && link.warning.message === EMPTY_LINK ? await readRevisionLink(chunk[j] as Digest, link) : link);
      }
    }
    listed.digests.forEach((d, i) => {
      const link = links[i] as LinkRead;
      if (!link.ok && link.warning.code === 'missing-link') {
        leftovers.push(d);
        return;
      }
      revisions.add(cache.intern(d));
      let problem: string | undefined;
      if (!link.ok) problem = link.warning.message;
      else if (link.digest !== d) problem = `revision link names ${link.digest}, not ${d}`;
      if (problem === undefined) return;
      opaque ??= `revision ${d}: ${problem}`;
      marksUnknown ??= opaque;
      warn({
        code: link.ok ? 'bad-link' : link.warning.code,
        path: lay.revisionLink(repository, d),
        message: `${problem}; garbage-collect aborts or marks differently on it: nothing removed from ${repository}'s manifests`,
      });
    });
    await cache.loadClosure([...revisions, ...tagDigests]);
    progress();
    for (const d of revisions) {
      const e = cache.failure(d);
      if (e === undefined) continue;
      opaque ??= `manifest ${d}: ${e.problem}`;
      if (!e.missing) marksUnknown ??= opaque;
      if (!warned.has(d)) {
        warned.add(d);
        warn({
          code: e.code ?? (e.missing ? 'missing-blob' : 'bad-manifest'),
          path: e.path ?? (e.missing ? lay.revision(repository, d) : lay.blobData(d)),
          message: `${e.problem}; kept, with everything in ${repository} it might reference`,
        });
      }
    }
    let linkedLayers: Digest[] = [];
    if (marksUnknown !== undefined) linkedLayers = (await listDigestDirs(fs, io, lay.layers(repository), warn)).digests;
    repos.set(repository, { repository, revisions, leftovers, opaque, marksUnknown, linkedLayers });
  };
  return {
    load,
    result: () => {
      options.onProgress?.({ manifests: cache.reads });
      const sorted = new Map([...repos].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      return { repos: sorted, cache };
    },
  };
}

/**
 * Reads every repository's revisions and the manifests behind them. `extra`
 * gives further digests per repository that must be loaded (tag targets that
 * may lack a revision link).
 */
export async function loadRepoManifests(
  fs: StorageFs,
  lay: Layout,
  repositories: ReadonlyMap<RepositoryName, Iterable<Digest>>,
  options: LoadGraphOptions = {},
): Promise<{ repos: Map<RepositoryName, RepoManifests>; cache: ManifestCache }> {
  const loader = repoManifestLoader(fs, lay, options);
  await mapLimit([...repositories], 4, ([repository, tagDigests]) => loader.load(repository, tagDigests));
  return loader.result();
}

/**
 * walkRepositories and loadRepoManifests, overlapped: each repository's manifests are read as
 * soon as its tags are, while the walk goes on (on the real disk the reads run in a thread, and
 * this thread parses meanwhile).
 */
export async function walkAndLoad(
  fs: StorageFs,
  lay: Layout,
  walk: WalkOptions,
  load: LoadGraphOptions,
): Promise<{ records: RepositoryRecord[]; repos: Map<RepositoryName, RepoManifests>; cache: ManifestCache }> {
  const loader = repoManifestLoader(fs, lay, load);
  const records = await walkRepositories(fs, lay, { ...walk, onRepository: (r) => loader.load(r.name, r.tags.map((t) => t.digest)) });
  return { records, ...loader.result() };
}
