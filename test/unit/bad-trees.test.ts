import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import { ManifestCache } from '../../src/graph/load.js';
import { parseDuration } from '../../src/model/duration.js';
import { errnoCode } from '../../src/model/errors.js';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { applyPlan } from '../../src/plan/apply.js';
import { buildPlan } from '../../src/plan/build.js';
import type { Plan } from '../../src/plan/plan.js';
import { selectTags } from '../../src/policy/select.js';
import type { Selector } from '../../src/policy/selector.js';
import { RAW, readPlainByPath, type ReadPlainOptions, type StorageFs } from '../../src/storage/fs.js';
import type { StorageWarning, WarningCode } from '../../src/storage/warnings.js';
import { limiter } from '../../src/util/limit.js';
import { buildImage, sha256Digest, type BuiltImage } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// Issue 6, bad trees: for each thing in the storage that regprune cannot read
// exactly, a prune that would otherwise remove things in that repository
// warns with the exact path, keeps the item and everything it might
// reference, finishes (the other repository is pruned), and exits 3 (1 when
// something also failed).

const NOW = new Date('2026-11-23T12:00:00Z');
const ROOT = '/srv/registry';
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;
const APP = R('app');
const OTHER = R('other');
const OLDER_THAN_30D: Selector = { refs: [], repos: [], excludeRepos: [], tags: [], keep: [], keepLatest: true, olderThan: parseDuration('30d') };

// ------------------------------------------------------------ filesystems

/**
 * memfs follows a symbolic link given as the path to rename() or rm() (it
 * moves or deletes the target); node does not (it moves or unlinks the link
 * itself). These two act like node, so what apply does to a symlink here is
 * what it would do on a real disk.
 */
function nodeLike(reg: MemRegistry): StorageFs {
  const fs = reg.fs;
  const rm = async (path: string, opts: { recursive: boolean; force: boolean }): Promise<void> => {
    let st;
    try {
      st = await fs.lstat(path);
    } catch (err) {
      if (opts.force && errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    if (!st.isDirectory()) {
      reg.vol.unlinkSync(path);
      return;
    }
    if (!opts.recursive) throw Object.assign(new Error(`EISDIR: is a directory, rm '${path}'`), { code: 'ERR_FS_EISDIR' });
    for (const e of await fs.readdir(path, { withFileTypes: true })) await rm(posix.join(path, e.name), opts);
    reg.vol.rmdirSync(path);
  };
  return {
    ...fs,
    [RAW]: {
      ...fs[RAW],
      rename: async (from: string, to: string) => {
        const st = await fs.lstat(from);
        if (!st.isSymbolicLink()) return fs[RAW].rename(from, to);
        reg.vol.symlinkSync(String(reg.vol.readlinkSync(from)), to);
        reg.vol.unlinkSync(from);
      },
      rm,
    },
  };
}

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/**
 * A subtree with mode 000, as root would not see it: listing or reading
 * `dir`, or anything beneath it, fails with EACCES (so does lstat, rename or
 * rm beneath it). regprune runs as root, where permissions are not enforced,
 * so the error is injected.
 */
function denied(fs: StorageFs, dir: string): StorageFs {
  const eacces = (op: string, path: string) => Object.assign(new Error(`EACCES: permission denied, ${op} '${path}'`), { code: 'EACCES' });
  const guard =
    <A extends unknown[], T>(op: string, fn: (path: string, ...rest: A) => Promise<T>, self: boolean) =>
    (path: string, ...rest: A): Promise<T> =>
      (self ? under(path, dir) : path.startsWith(`${dir}/`)) ? Promise.reject(eacces(op, path)) : fn(path, ...rest);
  const reads = {
    readFile: guard('open', (p) => fs.readFile(p), true),
    readText: guard('open', (p) => fs.readText(p), true),
    lstat: guard('lstat', (p) => fs.lstat(p), false),
  };
  return {
    ...fs,
    ...reads,
    readdir: guard('scandir', (p, o: { withFileTypes: true }) => fs.readdir(p, o), true),
    // The stat and the read each denied as above.
    readPlain: ((p: string, o: ReadPlainOptions) => readPlainByPath(reads, p, o)) as StorageFs['readPlain'],
    [RAW]: {
      ...fs[RAW],
      rm: guard('rm', (p, o: { recursive: boolean; force: boolean }) => fs[RAW].rm(p, o), false),
      rename: (from: string, to: string) => (from.startsWith(`${dir}/`) ? Promise.reject(eacces('rename', from)) : fs[RAW].rename(from, to)),
    },
  };
}

/** Every entry under `dir` with its type, bytes, mode and mtime (symlinks not followed). */
function snapshot(reg: MemRegistry, dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (d: string) => {
    for (const name of (reg.vol.readdirSync(d) as string[]).sort()) {
      const path = posix.join(d, name);
      const st = reg.vol.lstatSync(path);
      const meta = `mode=${st.mode.toString(8)} mtime=${st.mtimeMs}`;
      if (st.isSymbolicLink()) out.set(path, `symlink -> ${String(reg.vol.readlinkSync(path))}`);
      else if (st.isDirectory()) {
        out.set(path, `dir ${meta}`);
        visit(path);
      } else out.set(path, `file ${Buffer.from(reg.vol.readFileSync(path) as Buffer).toString('base64')} ${meta}`);
    }
  };
  visit(dir);
  return out;
}

// ------------------------------------------------------------ the tree

/**
 * app: old-a (60d), old-b (50d), new (1d), each its own image over a shared
 * base; other: old (70d), new (2d). `--older-than 30d` removes app:old-a,
 * app:old-b, other:old and their three manifests.
 */
function base() {
  const reg = new MemRegistry(ROOT);
  const [a, b, c] = ['a', 'b', 'c'].map((s) => reg.putImage('app', { seed: s, layers: ['base', s] })) as [BuiltImage, BuiltImage, BuiltImage];
  reg.tag('app', 'old-a', a.manifest.digest, daysAgo(NOW, 60));
  reg.tag('app', 'old-b', b.manifest.digest, daysAgo(NOW, 50));
  reg.tag('app', 'new', c.manifest.digest, daysAgo(NOW, 1));
  const o = reg.putImage('other', { seed: 'o', layers: ['base', 'o'] });
  const p = reg.putImage('other', { seed: 'p', layers: ['base', 'p'] });
  reg.tag('other', 'old', o.manifest.digest, daysAgo(NOW, 70));
  reg.tag('other', 'new', p.manifest.digest, daysAgo(NOW, 2));
  return { reg, a, b, c, o, p, lay: reg.lay };
}
type Tree = ReturnType<typeof base>;

const UUID = '0b5d3c1e-aaaa-4bbb-8ccc-000000000000';
const HEX = '0123456789abcdef'.repeat(4);

/** Adds one more image to app, not tagged yet; returns it. */
function extra(t: Tree, seed: string): BuiltImage {
  return t.reg.putImage('app', { seed, layers: ['base', seed] });
}

/** A tag dir in app whose current/link holds `content`, pushed 90 days ago (old enough to be selected). */
function badLink(t: Tree, tag: string, content: string): string {
  const path = t.lay.tagCurrentLink(APP, T(tag));
  t.reg.write(path, content);
  t.reg.vol.utimesSync(path, daysAgo(NOW, 90), daysAgo(NOW, 90));
  return path;
}

/** A manifest blob with these bytes, linked as a revision of app; returns its digest. */
function revisionWithBytes(t: Tree, bytes: Buffer): Digest {
  const d = sha256Digest(bytes);
  t.reg.write(t.lay.blobData(d), bytes);
  t.reg.write(t.lay.revisionLink(APP, d), d);
  return d;
}

/** What a case expects. Every case also checks: other:old and its manifest go; the apply finishes. */
interface Expect {
  /** The warning (code and exact path); undefined: a tree regprune reads exactly, no warning. */
  readonly warning: { code: WarningCode; path: string } | undefined;
  /** No manifest of app is removed, and (unless its revisions could not even be listed) the plan says why. */
  readonly blocked: boolean;
  /** false: app's revisions cannot be listed, so the plan has none to block (the warning says why). */
  readonly blockListed?: false;
  /** app tags the plan must (not) contain. */
  readonly planned: readonly string[];
  /** Paths that must still exist after the apply. */
  readonly kept: readonly string[];
  /** Subtrees that must be byte for byte the same after the apply (symlink targets, skipped repositories). */
  readonly untouched?: readonly string[];
  /** Replaces the filesystem regprune sees (EACCES). */
  readonly fs?: (fs: StorageFs) => StorageFs;
  readonly exit: 0 | 1 | 3;
}

const ALL_OLD = ['old-a', 'old-b'];

const cases: Array<[name: string, setup: (t: Tree) => Expect]> = [
  // ---- link files
  ...(
    [
      ['tag link with a trailing newline', (d: string) => `${d}\n`],
      ['tag link of the wrong length', (d: string) => d.slice(0, 70)],
      ['tag link with an unknown algorithm (sha512:)', () => `sha512:${HEX}${HEX}`],
      ['tag link that is empty', () => ''],
    ] as const
  ).map(([name, content]): [string, (t: Tree) => Expect] => [
    name,
    (t) => {
      // The bad link names (or nearly names) image d, whose only other reference is gone: d must stay.
      const d = extra(t, 'd');
      const path = badLink(t, 'bad', content(d.manifest.digest));
      return {
        warning: { code: 'bad-link', path },
        blocked: true,
        planned: ALL_OLD,
        kept: [path, t.lay.revision(APP, d.manifest.digest), t.lay.revision(APP, t.a.manifest.digest)],
        exit: 3,
      };
    },
  ]),
  [
    'link.<uuid>.tmp next to a valid link: ignored, the valid link is used',
    (t) => {
      const tmp = `${t.lay.tagCurrentLink(APP, T('old-a'))}.${UUID}.tmp`;
      t.reg.write(tmp, t.c.manifest.digest);
      return { warning: undefined, blocked: false, planned: ALL_OLD, kept: [t.lay.revision(APP, t.c.manifest.digest)], exit: 0 };
    },
  ],
  [
    'link.<uuid>.tmp instead of a link: the tag is never selected',
    (t) => {
      const d = extra(t, 'd');
      const tmp = `${t.lay.tagCurrentLink(APP, T('half'))}.${UUID}.tmp`;
      t.reg.write(tmp, d.manifest.digest);
      return {
        warning: { code: 'missing-link', path: t.lay.tagCurrentLink(APP, T('half')) },
        blocked: true,
        planned: ALL_OLD,
        kept: [tmp, t.lay.revision(APP, d.manifest.digest)],
        exit: 3,
      };
    },
  ],
  [
    'tag dir without current/',
    (t) => {
      const d = extra(t, 'd');
      t.reg.write(t.lay.tagIndexLink(APP, T('nocurrent'), d.manifest.digest), d.manifest.digest);
      return {
        warning: { code: 'missing-link', path: t.lay.tagCurrentDir(APP, T('nocurrent')) },
        blocked: true,
        planned: ALL_OLD,
        kept: [t.lay.tag(APP, T('nocurrent')), t.lay.revision(APP, d.manifest.digest)],
        exit: 3,
      };
    },
  ],

  // ---- manifests and blobs
  [
    'revision whose blob is missing',
    (t) => {
      const lost = buildImage({ seed: 'lost' }).manifest.digest;
      t.reg.write(t.lay.revisionLink(APP, lost), lost);
      return {
        warning: { code: 'missing-blob', path: t.lay.revision(APP, lost) },
        blocked: true,
        planned: ALL_OLD,
        kept: [t.lay.revision(APP, lost), t.lay.revision(APP, t.a.manifest.digest), t.lay.revision(APP, t.b.manifest.digest)],
        exit: 3,
      };
    },
  ],
  [
    'manifest that is not JSON',
    (t) => {
      const d = revisionWithBytes(t, Buffer.from('{"schemaVersion": 2, "config": ', 'utf8'));
      return {
        warning: { code: 'bad-manifest', path: t.lay.blobData(d) },
        blocked: true,
        planned: ALL_OLD,
        kept: [t.lay.revision(APP, d), t.lay.revision(APP, t.a.manifest.digest)],
        exit: 3,
      };
    },
  ],
  [
    'manifest JSON of an unknown media type',
    (t) => {
      // It names a's config: whatever it is, it might reference what a references.
      const doc = { schemaVersion: 2, mediaType: 'application/vnd.example.future.manifest.v9+json', config: { digest: t.a.config.digest } };
      const d = revisionWithBytes(t, Buffer.from(JSON.stringify(doc), 'utf8'));
      return {
        warning: { code: 'bad-manifest', path: t.lay.blobData(d) },
        blocked: true,
        planned: ALL_OLD,
        kept: [t.lay.revision(APP, d), t.lay.revision(APP, t.a.manifest.digest), t.lay.layerLink(APP, t.a.config.digest)],
        exit: 3,
      };
    },
  ],
  [
    "a manifest's blob dir without data",
    (t) => {
      const d = extra(t, 'd');
      t.reg.vol.unlinkSync(t.lay.blobData(d.manifest.digest));
      return {
        warning: { code: 'missing-blob', path: t.lay.revision(APP, d.manifest.digest) },
        blocked: true,
        planned: ALL_OLD,
        kept: [t.lay.blob(d.manifest.digest), t.lay.revision(APP, d.manifest.digest), t.lay.revision(APP, t.b.manifest.digest)],
        exit: 3,
      };
    },
  ],

  // ---- symbolic links (never followed)
  [
    'symlink as a tag dir',
    (t) => {
      const dir = t.lay.tag(APP, T('linked'));
      t.reg.vol.symlinkSync(t.lay.tag(APP, T('old-a')), dir);
      return {
        warning: { code: 'symlink', path: dir },
        blocked: true,
        planned: ALL_OLD,
        kept: [dir, t.lay.revision(APP, t.a.manifest.digest)],
        exit: 3,
      };
    },
  ],
  [
    'symlink as current/',
    (t) => {
      t.reg.write('/elsewhere/current/link', t.b.manifest.digest);
      const dir = t.lay.tagCurrentDir(APP, T('curlink'));
      t.reg.vol.mkdirSync(posix.dirname(dir), { recursive: true });
      t.reg.vol.symlinkSync('/elsewhere/current', dir);
      return {
        warning: { code: 'symlink', path: dir },
        blocked: true,
        planned: ALL_OLD,
        kept: [dir, t.lay.revision(APP, t.b.manifest.digest)],
        untouched: ['/elsewhere'],
        exit: 3,
      };
    },
  ],
  [
    'symlink as a repository dir (to a repository outside the storage)',
    (t) => {
      const img = buildImage({ seed: 'outside' });
      const outside = '/elsewhere/repo';
      t.reg.write(posix.join(outside, '_manifests/tags/v1/current/link'), img.manifest.digest);
      t.reg.vol.utimesSync(posix.join(outside, '_manifests/tags/v1/current/link'), daysAgo(NOW, 90), daysAgo(NOW, 90));
      t.reg.write(posix.join(outside, '_manifests/revisions/sha256', img.manifest.digest.slice(7), 'link'), img.manifest.digest);
      t.reg.vol.mkdirSync(posix.join(outside, '_layers'), { recursive: true });
      const link = posix.join(t.lay.repositories, 'evil');
      t.reg.vol.symlinkSync(outside, link);
      return { warning: { code: 'symlink', path: link }, blocked: false, planned: ALL_OLD, kept: [link], untouched: ['/elsewhere'], exit: 3 };
    },
  ],
  [
    'symlink as a revision dir',
    (t) => {
      const d = buildImage({ seed: 'revlink' });
      t.reg.blob(d.manifest);
      t.reg.write(posix.join('/elsewhere/rev', 'link'), d.manifest.digest);
      const dir = t.lay.revision(APP, d.manifest.digest);
      t.reg.vol.symlinkSync('/elsewhere/rev', dir);
      return {
        warning: { code: 'symlink', path: dir },
        blocked: true,
        planned: ALL_OLD,
        kept: [dir, t.lay.revision(APP, t.a.manifest.digest)],
        untouched: ['/elsewhere'],
        exit: 3,
      };
    },
  ],
  [
    "symlink as a manifest's blob dir",
    (t) => {
      // A revision of app whose blob dir points elsewhere: regprune must not read the manifest through it.
      const d = extra(t, 'd');
      const blobDir = t.lay.blob(d.manifest.digest);
      t.reg.write('/elsewhere/blob/data', d.manifest.bytes);
      t.reg.vol.rmSync(blobDir, { recursive: true });
      t.reg.vol.symlinkSync('/elsewhere/blob', blobDir);
      return {
        warning: { code: 'symlink', path: blobDir },
        blocked: true,
        planned: ALL_OLD,
        kept: [blobDir, t.lay.revision(APP, d.manifest.digest), t.lay.revision(APP, t.a.manifest.digest)],
        untouched: ['/elsewhere'],
        exit: 3,
      };
    },
  ],
  [
    'symlink as _manifests/tags',
    (t) => {
      // app's real tags moved elsewhere and linked back: never read or removed through the link.
      const tags = t.lay.tags(APP);
      t.reg.vol.mkdirSync('/elsewhere', { recursive: true });
      t.reg.vol.renameSync(tags, '/elsewhere/tags');
      t.reg.vol.symlinkSync('/elsewhere/tags', tags);
      return {
        warning: { code: 'symlink', path: tags },
        blocked: true,
        planned: [],
        kept: [tags, t.lay.revision(APP, t.a.manifest.digest), t.lay.revision(APP, t.b.manifest.digest)],
        untouched: ['/elsewhere'],
        exit: 3,
      };
    },
  ],
  [
    'symlink as _manifests/revisions',
    (t) => {
      const revisions = posix.dirname(t.lay.revisions(APP));
      t.reg.vol.mkdirSync('/elsewhere', { recursive: true });
      t.reg.vol.renameSync(revisions, '/elsewhere/revisions');
      t.reg.vol.symlinkSync('/elsewhere/revisions', revisions);
      return {
        warning: { code: 'symlink', path: revisions },
        blocked: true,
        blockListed: false,
        planned: ALL_OLD,
        kept: [revisions],
        untouched: ['/elsewhere'],
        exit: 3,
      };
    },
  ],

  // ---- unreadable subtrees (EACCES)
  [
    "unreadable tags dir: the repository's manifests are all kept, even with tags that cannot be seen",
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.tags(APP) },
      blocked: true,
      planned: [],
      kept: [t.lay.tag(APP, T('old-a')), t.lay.revision(APP, t.a.manifest.digest), t.lay.revision(APP, t.c.manifest.digest)],
      fs: (fs) => denied(fs, t.lay.tags(APP)),
      exit: 3,
    }),
  ],
  [
    "unreadable tag dir",
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.tagCurrentDir(APP, T('old-a')) },
      blocked: true,
      planned: ['old-b'],
      kept: [t.lay.tag(APP, T('old-a')), t.lay.revision(APP, t.a.manifest.digest)],
      fs: (fs) => denied(fs, t.lay.tag(APP, T('old-a'))),
      exit: 3,
    }),
  ],
  [
    'unreadable tag link',
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.tagCurrentLink(APP, T('new')) },
      blocked: true,
      planned: ALL_OLD,
      kept: [t.lay.tag(APP, T('new')), t.lay.revision(APP, t.c.manifest.digest)],
      fs: (fs) => denied(fs, t.lay.tagCurrentLink(APP, T('new'))),
      exit: 3,
    }),
  ],
  [
    'unreadable revisions dir',
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.revisions(APP) },
      blocked: true,
      blockListed: false,
      planned: ALL_OLD,
      kept: [t.lay.revision(APP, t.a.manifest.digest), t.lay.revision(APP, t.b.manifest.digest)],
      fs: (fs) => denied(fs, t.lay.revisions(APP)),
      exit: 3,
    }),
  ],
  [
    'unreadable manifest blob',
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.blobData(t.c.manifest.digest) },
      blocked: true,
      planned: ALL_OLD,
      kept: [t.lay.revision(APP, t.a.manifest.digest), t.lay.revision(APP, t.c.manifest.digest)],
      fs: (fs) => denied(fs, t.lay.blob(t.c.manifest.digest)),
      exit: 3,
    }),
  ],
  [
    'unreadable repository dir',
    (t) => ({
      warning: { code: 'unreadable', path: t.lay.repository(APP) },
      blocked: false,
      planned: [],
      kept: [t.lay.tag(APP, T('old-a')), t.lay.revision(APP, t.a.manifest.digest)],
      untouched: [t.lay.repository(APP)],
      fs: (fs) => denied(fs, t.lay.repository(APP)),
      exit: 3,
    }),
  ],

  // ---- empty repositories: valid trees (all tags deleted; pushed by digest only), no warning
  [
    'empty repository: _manifests without tags/ or revisions/',
    (t) => {
      const repo = posix.join(t.lay.repositories, 'empty');
      t.reg.vol.mkdirSync(posix.join(repo, '_manifests'), { recursive: true });
      t.reg.vol.mkdirSync(posix.join(repo, '_layers'), { recursive: true });
      return { warning: undefined, blocked: false, planned: ALL_OLD, kept: [], untouched: [repo], exit: 0 };
    },
  ],
  [
    'empty repository: empty tags/ and revisions/',
    (t) => {
      const repo = posix.join(t.lay.repositories, 'empty');
      t.reg.vol.mkdirSync(t.lay.tags(R('empty')), { recursive: true });
      t.reg.vol.mkdirSync(t.lay.revisions(R('empty')), { recursive: true });
      t.reg.vol.mkdirSync(t.lay.layers(R('empty')), { recursive: true });
      return { warning: undefined, blocked: false, planned: ALL_OLD, kept: [], untouched: [repo], exit: 0 };
    },
  ],
  [
    'an empty directory under repositories/ (not a repository)',
    (t) => {
      const dir = posix.join(t.lay.repositories, 'team', 'nothing');
      t.reg.vol.mkdirSync(dir, { recursive: true });
      return { warning: undefined, blocked: false, planned: ALL_OLD, kept: [], untouched: [posix.dirname(dir)], exit: 0 };
    },
  ],

  // ---- names outside the grammar
  ...(
    [
      ['uppercase repository dir', 'App'],
      ['..-like repository dir', '...'],
      ['repository name of 300 characters (nested)', `${'a'.repeat(100)}/${'b'.repeat(99)}/${'c'.repeat(99)}`],
    ] as const
  ).map(([name, repo]): [string, (t: Tree) => Expect] => [
    name,
    (t) => {
      const img = t.reg.putImage(repo, { seed: 'misnamed', layers: ['base', 'misnamed'] });
      t.reg.tag(repo, 'old', img.manifest.digest, daysAgo(NOW, 90));
      const dir = posix.join(t.lay.repositories, repo);
      return { warning: { code: 'bad-name', path: dir }, blocked: false, planned: ALL_OLD, kept: [], untouched: [dir], exit: 3 };
    },
  ]),
  [
    'tag name outside the grammar',
    (t) => {
      const d = extra(t, 'd');
      const path = t.lay.tagCurrentLink(APP, T('.hidden'));
      t.reg.write(path, d.manifest.digest);
      t.reg.vol.utimesSync(path, daysAgo(NOW, 90), daysAgo(NOW, 90));
      return {
        warning: { code: 'bad-name', path: t.lay.tag(APP, T('.hidden')) },
        blocked: true,
        planned: ALL_OLD,
        kept: [path, t.lay.revision(APP, d.manifest.digest)],
        exit: 3,
      };
    },
  ],
];

function selectOld(fs: StorageFs, reg: MemRegistry, untaggedIn?: (r: RepositoryName) => boolean, onWarning?: (w: StorageWarning) => void): Promise<Plan> {
  return buildPlan({
    fs,
    layout: reg.lay,
    now: NOW,
    decide: (repos, dependent) => selectTags(repos, OLDER_THAN_30D, NOW, dependent),
    ...(untaggedIn === undefined ? {} : { untaggedIn }),
    ...(onWarning === undefined ? {} : { onWarning }),
  });
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(fs: StorageFs, argv: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const deps: CliDeps = {
    fs,
    now: () => NOW,
    env: {},
    cwd: '/srv',
    stdout: { write: (s) => void out.push(s), isTTY: false },
    stderr: { write: (s) => void err.push(s), isTTY: false },
    stdinIsTTY: false,
    confirm: async () => false,
    pid: 4242,
    version: '0.1.0-test',
    run: {
      run: async () => ({ started: false, notFound: true, message: 'no programs in unit tests' }),
      which: async () => undefined,
      isAlive: () => false,
      hostname: 'unit-test',
    },
  };
  const code = await runCli(argv, deps);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const key = (t: { repository: string; tag: string }) => `${t.repository}:${t.tag}`;

describe('bad trees: warned with the path, kept with what they might reference, the run finishes', () => {
  // With --untagged too: a repository whose tags cannot all be seen must not have its manifests taken for untagged.
  const modes = [
    ['--older-than 30d', false],
    ['--older-than 30d --untagged', true],
  ] as const;
  const table = cases.flatMap(([name, setup]) => modes.map(([mode, untagged]) => [`${name} (${mode})`, setup, untagged] as const));

  it.each(table)('%s', async (_name, setup, untagged) => {
    const t = base();
    const want = setup(t);
    const fs = want.fs === undefined ? nodeLike(t.reg) : want.fs(nodeLike(t.reg));
    const untouched = new Map((want.untouched ?? []).map((dir) => [dir, snapshot(t.reg, dir)]));
    const appRevisions = (t.reg.vol.existsSync(t.lay.revisions(APP)) ? (t.reg.vol.readdirSync(t.lay.revisions(APP)) as string[]) : []).map((h) =>
      posix.join(t.lay.revisions(APP), h),
    );

    const streamed: StorageWarning[] = [];
    const plan = await selectOld(fs, t.reg, untagged ? () => true : undefined, (w) => streamed.push(w));
    if (want.warning === undefined) expect(plan.warnings).toEqual([]);
    else expect(plan.warnings).toContainEqual(expect.objectContaining(want.warning));
    expect(streamed).toEqual(plan.warnings);

    // The rest of the run: other is pruned as if nothing were wrong.
    expect(plan.tags.filter((p) => p.repository === 'other').map(key)).toEqual(['other:old']);
    expect(plan.manifests.filter((m) => m.repository === 'other').map((m) => m.digest)).toEqual([t.o.manifest.digest]);
    expect(plan.tags.filter((p) => p.repository === 'app').map((p) => p.tag)).toEqual(want.planned);
    if (want.blocked) {
      expect(plan.manifests.filter((m) => m.repository === 'app')).toEqual([]);
      const listed = want.blockListed !== false && (want.planned.length > 0 || untagged);
      expect(plan.blocked.map((b) => b.repository)).toEqual(listed ? ['app'] : []);
    } else {
      expect(plan.blocked).toEqual([]);
    }
    // Only app and other can have planned entries (never a misnamed or symlinked repository).
    expect(new Set([...plan.tags, ...plan.manifests].map((e) => e.repository))).toEqual(new Set(want.planned.length > 0 ? ['app', 'other'] : ['other']));

    const report = await applyPlan({ fs, layout: t.lay, plan, runId: 'bad-tree' });
    expect([...report.tags, ...report.manifests].filter((o) => o.result !== 'removed')).toEqual([]);
    for (const path of want.kept) expect(exists(t.reg, path), path).toBe(true);
    if (want.blocked) for (const path of appRevisions) expect(exists(t.reg, path), path).toBe(true);
    for (const [dir, before] of untouched) expect(snapshot(t.reg, dir), dir).toEqual(before);
    expect(t.reg.vol.existsSync(t.lay.tag(OTHER, T('old')))).toBe(false);
    expect(t.reg.vol.existsSync(t.lay.revision(OTHER, t.o.manifest.digest))).toBe(false);
    expect(t.reg.vol.readdirSync(t.lay.trashDir)).toEqual([]);

    // The CLI on the same tree (made again): exit code and the warning line.
    const again = base();
    const w2 = setup(again);
    const fs2 = w2.fs === undefined ? nodeLike(again.reg) : w2.fs(nodeLike(again.reg));
    const r = await cli(fs2, ['prune', '--root', ROOT, '--older-than', '30d', '--yes', ...(untagged ? ['--untagged'] : [])]);
    expect(r.code, r.stderr).toBe(want.exit);
    if (want.warning !== undefined) expect(r.stderr).toContain(`warning: ${want.warning.path}: `);
    else expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Removed \d+ tags? and unlinked \d+ manifests?/m);
    expect(again.reg.vol.existsSync(again.lay.tag(OTHER, T('old')))).toBe(false);
    for (const path of w2.kept) expect(exists(again.reg, path), `${path} after the CLI run`).toBe(true);
  });
});

/** The path exists (a symlink counts, wherever it points). */
function exists(reg: MemRegistry, path: string): boolean {
  return reg.vol.existsSync(path) || isLink(reg, path);
}

function isLink(reg: MemRegistry, path: string): boolean {
  try {
    return reg.vol.lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

describe('apply never deletes through a symbolic link that appeared after the plan', () => {
  // The plan is made on the tree as it was; then a directory on the way to a
  // planned entry is moved elsewhere and replaced by a symlink to it (as an
  // admin moving a repository to another disk would). Whatever apply does,
  // the moved directory (the symlink's target) is untouched.
  const swaps: Array<[name: string, path: (t: Tree) => string]> = [
    ['a planned tag dir', (t) => t.lay.tag(APP, T('old-a'))],
    ["a planned tag's current/", (t) => t.lay.tagCurrentDir(APP, T('old-a'))],
    ['a planned revision dir', (t) => t.lay.revision(APP, t.a.manifest.digest)],
    ['the repository dir', (t) => t.lay.repository(APP)],
    ['_manifests/tags', (t) => t.lay.tags(APP)],
    ['_manifests/revisions', (t) => posix.dirname(t.lay.revisions(APP))],
  ];
  it.each(swaps)('%s', async (_name, which) => {
    const t = base();
    const fs = nodeLike(t.reg);
    const plan = await selectOld(fs, t.reg);
    expect(plan.tags.map(key)).toEqual(['app:old-a', 'app:old-b', 'other:old']);
    expect(plan.manifests.map((m) => m.digest).sort()).toEqual([t.a.manifest.digest, t.b.manifest.digest, t.o.manifest.digest].sort());

    const path = which(t);
    t.reg.vol.mkdirSync('/elsewhere', { recursive: true });
    t.reg.vol.renameSync(path, '/elsewhere/moved');
    t.reg.vol.symlinkSync('/elsewhere/moved', path);
    const before = snapshot(t.reg, '/elsewhere');
    expect(before.size).toBeGreaterThan(1);

    const report = await applyPlan({ fs, layout: t.lay, plan, runId: 'swap' });
    expect(snapshot(t.reg, '/elsewhere')).toEqual(before);
    // other was not involved: pruned as planned.
    expect(report.tags.filter((o) => o.repository === 'other').map((o) => o.result)).toEqual(['removed']);
    expect(t.reg.vol.existsSync(t.lay.revision(OTHER, t.o.manifest.digest))).toBe(false);
  });
});

describe('manifest reads see blobs pushed during the run', () => {
  it('a blob shard that did not exist at the first look is looked at again', async () => {
    const reg = new MemRegistry(ROOT);
    const img = buildImage({ seed: 'late' });
    const cache = new ManifestCache(reg.fs, reg.lay, limiter(4));
    // Another digest in the same (not yet existing) shard, looked up first.
    const sibling = `sha256:${img.manifest.digest.slice(7, 9)}${'0'.repeat(62)}` as Digest;
    expect(await cache.load(sibling)).toMatchObject({ ok: false, missing: true });
    reg.blob(img.manifest);
    expect(await cache.load(img.manifest.digest)).toMatchObject({ ok: true, size: img.manifest.size });
  });
});
