import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { RegpruneError } from '../../src/model/errors.js';
import { RAW, type ReadPlainOptions, type StorageFs } from '../../src/storage/fs.js';
import { resolveRoot } from '../../src/storage/root.js';
import { walkRepositories } from '../../src/storage/walk.js';
import type { StorageWarning } from '../../src/storage/warnings.js';
import { MemRegistry } from '../helpers/memtree.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const at = (iso: string) => new Date(iso);
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

/** Wraps a StorageFs and records every path any call touches. */
function recording(fs: StorageFs): { fs: StorageFs; touched: string[] } {
  const touched: string[] = [];
  const rec = <A extends unknown[], R>(fn: (path: string, ...rest: A) => R) =>
    (path: string, ...rest: A): R => {
      touched.push(path);
      return fn(path, ...rest);
    };
  return {
    touched,
    fs: {
      readdir: rec((p, o: { withFileTypes: true }) => fs.readdir(p, o)),
      lstat: rec((p) => fs.lstat(p)),
      readFile: rec((p) => fs.readFile(p)),
      readText: rec((p) => fs.readText(p)),
      readPlain: rec((p, o: ReadPlainOptions) => fs.readPlain(p, o as ReadPlainOptions & { text: true })) as StorageFs['readPlain'],
      readlink: rec((p) => fs.readlink(p)),
      realpath: rec((p) => fs.realpath(p)),
      [RAW]: {
        ...fs[RAW],
        mkdir: rec((p, m: number) => fs[RAW].mkdir(p, m)),
        open: rec((p, f: number, m: number) => fs[RAW].open(p, f, m)),
        rename: (from: string, to: string) => {
          touched.push(from, to);
          return fs[RAW].rename(from, to);
        },
        rm: rec((p, o: { recursive: boolean; force: boolean }) => fs[RAW].rm(p, o)),
        unlink: rec((p) => fs[RAW].unlink(p)),
        symlink: (target: string, p: string) => {
          touched.push(p);
          fs[RAW].symlink(target, p);
        },
        lchown: rec((p, u: number, g: number) => fs[RAW].lchown(p, u, g)),
      },
    },
  };
}

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/** A small healthy tree: nested repositories, uploads, tag history. */
function healthyTree() {
  const reg = new MemRegistry();
  const a = reg.putImage('team/app', { seed: 'a' });
  const b = reg.putImage('team/app', { seed: 'b' });
  const c = reg.putImage('team/app/api', { seed: 'c' });
  const d = reg.putImage('i1', { seed: 'd' });
  // History: v1 pointed at a before b (index link for a stays, as the registry leaves it).
  reg.tag('team/app', 'v1', a.manifest.digest, at('2026-08-01T00:00:00Z'));
  reg.tag('team/app', 'v1', b.manifest.digest, at('2026-09-01T08:30:00.123Z'));
  reg.tag('team/app', 'latest', b.manifest.digest, at('2026-09-02T00:00:00Z'));
  reg.tag('team/app', 'V2', a.manifest.digest, at('2026-07-01T00:00:00Z'));
  reg.tag('team/app', '10', a.manifest.digest, at('2026-07-01T00:00:00Z'));
  reg.tag('team/app/api', 'v1', c.manifest.digest, at('2026-10-01T00:00:00Z'));
  reg.tag('i1', 'T11', d.manifest.digest, at('2026-06-01T00:00:00Z'));
  for (const repo of ['team/app', 'team/app/api', 'i1']) {
    reg.write(posix.join(reg.lay.uploads(R(repo)), '5b1f6c1e-0000-4000-8000-000000000001', 'data'), 'partial');
    reg.write(posix.join(reg.lay.uploads(R(repo)), '5b1f6c1e-0000-4000-8000-000000000001', 'startedat'), NOW.toISOString());
  }
  return { reg, a, b, c, d };
}

describe('walkRepositories', () => {
  it('finds nested repositories, sorts repositories and tags, pushedAt is the mtime of current/link', async () => {
    const { reg, a, b, c, d } = healthyTree();
    const warnings: StorageWarning[] = [];
    const progress: Array<{ repositories: number; tags: number }> = [];
    const repos = await walkRepositories(reg.fs, reg.lay, { onWarning: (w) => warnings.push(w), onProgress: (p) => progress.push(p) });
    expect(warnings).toEqual([]);
    expect(repos).toEqual([
      {
        name: 'i1',
        tags: [{ repository: 'i1', tag: 'T11', digest: d.manifest.digest, pushedAt: at('2026-06-01T00:00:00Z') }],
        unreadableTags: 0,
      },
      {
        name: 'team/app',
        // Code-point order: digits, uppercase, lowercase.
        tags: [
          { repository: 'team/app', tag: '10', digest: a.manifest.digest, pushedAt: at('2026-07-01T00:00:00Z') },
          { repository: 'team/app', tag: 'V2', digest: a.manifest.digest, pushedAt: at('2026-07-01T00:00:00Z') },
          { repository: 'team/app', tag: 'latest', digest: b.manifest.digest, pushedAt: at('2026-09-02T00:00:00Z') },
          { repository: 'team/app', tag: 'v1', digest: b.manifest.digest, pushedAt: at('2026-09-01T08:30:00.123Z') },
        ],
        unreadableTags: 0,
      },
      {
        name: 'team/app/api',
        tags: [{ repository: 'team/app/api', tag: 'v1', digest: c.manifest.digest, pushedAt: at('2026-10-01T00:00:00Z') }],
        unreadableTags: 0,
      },
    ]);
    expect(progress.at(-1)).toEqual({ repositories: 3, tags: 6 });
  });

  it('never reads _layers, _uploads, _manifests/revisions or a tag index', async () => {
    const { reg, a } = healthyTree();
    const { fs, touched } = recording(reg.fs);
    await walkRepositories(fs, reg.lay);
    const forbidden: string[] = [];
    for (const repo of ['team/app', 'team/app/api', 'i1'].map(R)) {
      forbidden.push(posix.dirname(reg.lay.layers(repo)), reg.lay.uploads(repo), posix.dirname(reg.lay.revisions(repo)));
      for (const tag of ['v1', 'latest', 'V2', '10', 'T11'].map(T)) {
        forbidden.push(posix.dirname(posix.dirname(posix.dirname(reg.lay.tagIndexLink(repo, tag, a.manifest.digest)))));
      }
    }
    // The tree does have them, so the assertion below means something.
    const present = forbidden.filter((f) => reg.exists(f));
    expect(present.length).toBe(3 * 3 + 6);
    expect(touched.filter((p) => forbidden.some((f) => under(p, f)))).toEqual([]);
    // ... and never reads a blob.
    expect(touched.filter((p) => under(p, reg.lay.blobs))).toEqual([]);
    expect(touched.length).toBeGreaterThan(10);
  });

  it('includeRepository: only included repositories are read and returned; excluded ones are still descended', async () => {
    const { reg } = healthyTree();
    const { fs, touched } = recording(reg.fs);
    const repos = await walkRepositories(fs, reg.lay, { includeRepository: (name) => name !== 'team/app' });
    expect(repos.map((r) => r.name)).toEqual(['i1', 'team/app/api']);
    expect(touched.filter((p) => under(p, reg.lay.tags(R('team/app'))))).toEqual([]);
  });

  it('a repository with _layers but no _manifests (v2.8: blobs pushed, no manifest yet) has no tags', async () => {
    const reg = new MemRegistry();
    reg.write(reg.lay.layerLink(R('half'), `sha256:${'1'.repeat(64)}` as Digest), `sha256:${'1'.repeat(64)}`);
    expect(await walkRepositories(reg.fs, reg.lay)).toEqual([{ name: 'half', tags: [], unreadableTags: 0 }]);
  });

  it('warns (with the path) about what it cannot read exactly, and goes on', async () => {
    const { reg, b, c, d } = healthyTree();
    const lay = reg.lay;
    const app = R('team/app');
    // tag dir without current/link
    reg.vol.mkdirSync(posix.join(lay.tags(app), 'nocurrent'), { recursive: true });
    // current/ without link (only a leftover v3.1 temp file)
    reg.write(`${lay.tagCurrentLink(app, T('tmponly'))}.1f2e3d4c-0000-4000-8000-000000000000.tmp`, b.manifest.digest);
    // malformed link
    reg.write(lay.tagCurrentLink(app, T('newline')), `${b.manifest.digest}\n`);
    // tag name outside the grammar
    reg.write(lay.tagCurrentLink(app, T('.hidden')), b.manifest.digest);
    // symlinked tag dir
    reg.vol.symlinkSync(lay.tag(app, T('v1')), lay.tag(app, T('linked')));
    // symlinked current dir
    reg.vol.mkdirSync(lay.tag(app, T('curlink')), { recursive: true });
    reg.vol.symlinkSync(lay.tagCurrentDir(app, T('v1')), lay.tagCurrentDir(app, T('curlink')));
    // a file in the tags dir
    reg.write(posix.join(lay.tags(app), 'README'), 'not a tag');
    // symlinked repository dir (pointing at a real-looking repository elsewhere)
    reg.write('/elsewhere/repo/_manifests/tags/v1/current/link', d.manifest.digest);
    reg.vol.symlinkSync('/elsewhere/repo', posix.join(lay.repositories, 'evil'));
    // repository name outside the grammar
    reg.write(posix.join(lay.repositories, 'team', 'API', '_manifests', 'tags', 'v1', 'current', 'link'), c.manifest.digest);
    // symlinked _manifests in a repository
    reg.vol.mkdirSync(posix.join(lay.repositories, 'odd'), { recursive: true });
    reg.vol.mkdirSync('/elsewhere/manifests', { recursive: true });
    reg.vol.symlinkSync('/elsewhere/manifests', posix.join(lay.repositories, 'odd', '_manifests'));
    // a v2.8 repository (real _layers) whose _manifests is a symlink: its tags cannot be read
    reg.write(lay.layerLink(R('half'), d.config.digest), d.config.digest);
    reg.write(`/elsewhere/half/tags/v1/current/link`, d.manifest.digest);
    reg.vol.symlinkSync('/elsewhere/half', posix.join(lay.repositories, 'half', '_manifests'));

    const warnings: StorageWarning[] = [];
    const { fs, touched } = recording(reg.fs);
    const repos = await walkRepositories(fs, lay, { onWarning: (w) => warnings.push(w) });
    warnings.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    const v2 = '/srv/registry/docker/registry/v2/repositories';
    const tags = `${v2}/team/app/_manifests/tags`;
    expect(warnings).toEqual([
      { code: 'symlink', path: `${v2}/evil`, message: 'symbolic link under repositories; not followed' },
      { code: 'symlink', path: `${v2}/half/_manifests`, message: 'symbolic link in repository; not followed' },
      { code: 'symlink', path: `${v2}/odd/_manifests`, message: 'symbolic link in repository; not followed' },
      {
        code: 'bad-name',
        path: `${v2}/team/API`,
        message: 'invalid repository name component "API" (lowercase letters, digits and single separators . _ __ - only); repository skipped',
      },
      { code: 'bad-name', path: `${tags}/.hidden`, message: 'tag name ".hidden" is outside the tag grammar; never selected' },
      { code: 'unexpected', path: `${tags}/README`, message: 'not a directory in the tags directory; ignored' },
      { code: 'symlink', path: `${tags}/curlink/current`, message: 'current is a symbolic link; not followed, tag never selected' },
      { code: 'symlink', path: `${tags}/linked`, message: 'tag directory is a symbolic link; not followed, never selected' },
      {
        code: 'bad-link',
        path: `${tags}/newline/current/link`,
        message: 'link ends with a newline (garbage-collect aborts on it: invalid checksum digest length); tag never selected',
      },
      { code: 'missing-link', path: `${tags}/nocurrent/current`, message: 'tag directory has no current/link; never selected' },
      { code: 'missing-link', path: `${tags}/tmponly/current/link`, message: 'link file is missing; tag never selected' },
    ]);
    // The run went on: every readable tag is there, the unreadable ones are counted.
    // `half` is a repository (v2.8 marker _layers) whose tags could not be read: it must say so,
    // or the plan would take it for a repository without tags.
    expect(repos.map((r) => [r.name, r.tags.map((t) => t.tag), r.unreadableTags])).toEqual([
      ['half', [], 1],
      ['i1', ['T11'], 0],
      ['team/app', ['10', 'V2', 'latest', 'v1'], 7],
      ['team/app/api', ['v1'], 0],
    ]);
    expect(touched.filter((p) => under(p, '/elsewhere'))).toEqual([]);
  });
});

describe('resolveRoot', () => {
  const NOT_A_ROOT_HINT =
    "pass the storage driver rootdirectory with --root: /var/lib/registry in the registry:2/3 images, /var/lib/docker-registry for Debian's docker-registry";

  it.each([
    ['the rootdirectory', '/srv/registry'],
    ['the rootdirectory with a trailing slash', '/srv/registry/'],
    ['the docker/registry/v2 dir itself', '/srv/registry/docker/registry/v2'],
    ['the docker/registry/v2 dir with a trailing slash', '/srv/registry/docker/registry/v2/'],
    ['a path with . and ..', '/srv/./other/../registry'],
  ])('accepts %s: %s', async (_name, dir) => {
    const reg = new MemRegistry();
    const lay = await resolveRoot(reg.fs, dir);
    expect(lay.root).toBe('/srv/registry');
    expect(lay.repositories).toBe('/srv/registry/docker/registry/v2/repositories');
    expect(lay.trashDir).toBe('/srv/registry/.regprune/trash');
  });

  it('a symlink to the root is followed once, to the real root (/var/lib/registry -> /data/registry)', async () => {
    const reg = new MemRegistry();
    reg.vol.symlinkSync('/srv/registry', '/srv/link');
    expect((await resolveRoot(reg.fs, '/srv/link')).root).toBe('/srv/registry');
  });

  it('a storage root at / itself', async () => {
    const reg = new MemRegistry('/');
    expect((await resolveRoot(reg.fs, '/')).root).toBe('/');
    expect((await resolveRoot(reg.fs, '/docker/registry/v2')).root).toBe('/');
  });

  const bad: Array<[name: string, dir: string, message: string, hint: string]> = [
    ['a directory that is not a root', '/srv', '/srv is not a registry storage root (no docker/registry/v2/repositories)', NOT_A_ROOT_HINT],
    ['a file', '/srv/file', '/srv/file is not a registry storage root (no docker/registry/v2/repositories)', '/srv/file is not a directory; pass the directory itself'],
    ['a missing dir', '/nope', '/nope is not a registry storage root (no docker/registry/v2/repositories)', '/nope does not exist'],
    ['/', '/', '/ is not a registry storage root (no docker/registry/v2/repositories)', NOT_A_ROOT_HINT],
    ['the repositories dir', '/srv/registry/docker/registry/v2/repositories', '/srv/registry/docker/registry/v2/repositories is not a registry storage root (no docker/registry/v2/repositories)', NOT_A_ROOT_HINT],
    ['a symlink to a file', '/srv/filelink', '/srv/filelink is not a registry storage root (no docker/registry/v2/repositories)', '/srv/filelink is not a directory; pass the directory itself'],
  ];
  it.each(bad)('refuses %s', async (_name, dir, message, hint) => {
    const reg = new MemRegistry();
    reg.write('/srv/file', 'x');
    reg.vol.symlinkSync('/srv/file', '/srv/filelink');
    const err = await resolveRoot(reg.fs, dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RegpruneError);
    expect(err).toMatchObject({ code: 'NOT_A_ROOT', message, hint });
  });
});
