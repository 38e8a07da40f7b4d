import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import type { Argv } from '../../src/gc/process.js';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import type { BuiltImage } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const ROOT = '/srv/registry';
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Programs the CLI tried to run (none expected here). */
  spawned: Argv[];
  questions: string[];
}

async function cli(reg: MemRegistry, argv: string[], opts: { tty?: boolean; answer?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const spawned: Argv[] = [];
  const questions: string[] = [];
  const deps: CliDeps = {
    fs: reg.fs,
    now: () => NOW,
    env: opts.env ?? {},
    cwd: '/srv',
    stdout: { write: (s) => void out.push(s), isTTY: false },
    stderr: { write: (s) => void err.push(s), isTTY: false },
    stdinIsTTY: opts.tty ?? false,
    confirm: async (q) => {
      questions.push(q);
      return opts.answer ?? false;
    },
    pid: 4242,
    version: '0.1.0-test',
    run: {
      run: async (argv) => {
        spawned.push(argv);
        return { started: false, notFound: true, message: 'no programs in unit tests' };
      },
      which: async () => undefined,
      isAlive: () => false,
      hostname: 'unit-test',
    },
  };
  const code = await runCli(argv, deps);
  return { code, stdout: out.join(''), stderr: err.join(''), spawned, questions };
}

/** Regular files under the root (memfs lists empty directories as null). */
function files(reg: MemRegistry): Record<string, string | null> {
  return Object.fromEntries(Object.entries(reg.vol.toJSON(ROOT)).filter(([, c]) => c !== null));
}

/** i1: T11, T12, T13 (own images over a shared base); i2: T21 and latest on one image; app/api: v1. */
function tree() {
  const reg = new MemRegistry(ROOT);
  const [t11, t12, t13] = [1, 2, 3].map((n) => reg.putImage('i1', { seed: `i1-${n}`, layers: ['base', `i1-${n}`] })) as [BuiltImage, BuiltImage, BuiltImage];
  const t21 = reg.putImage('i2', { seed: 'i2', layers: ['base', 'i2'] });
  const api = reg.putImage('app/api', { seed: 'api', layers: ['api'] });
  reg.tag('i1', 'T11', t11.manifest.digest, daysAgo(NOW, 40));
  reg.tag('i1', 'T12', t12.manifest.digest, daysAgo(NOW, 30));
  reg.tag('i1', 'T13', t13.manifest.digest, daysAgo(NOW, 50));
  reg.tag('i2', 'T21', t21.manifest.digest, daysAgo(NOW, 3));
  reg.tag('i2', 'latest', t21.manifest.digest, daysAgo(NOW, 2));
  reg.tag('app/api', 'v1', api.manifest.digest, new Date('2026-11-23T11:15:00Z'));
  return { reg, t11, t12, t13, t21, api };
}

const short = (img: BuiltImage) => img.manifest.digest.slice(0, 19);
const ownBytes = (img: BuiltImage) => img.manifest.size + img.config.size + (img.layers[1]?.size ?? 0);
/** The CLI's human size for 1 KiB <= n < 10 KiB, spelled out independently. */
const kib = (n: number) => {
  expect(n).toBeGreaterThanOrEqual(1024);
  expect(n).toBeLessThan(10 * 1024);
  return `${(n / 1024).toFixed(1)} KiB`;
};

describe('regprune prune: refusals', () => {
  it('no selector: exit 2 with the message, nothing touched', async () => {
    const { reg } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'regprune: nothing selected: name tags (REPOSITORY:TAG), or give --tag, --older-than, --before or --untagged; regprune never removes everything by default\n' +
        'hint: e.g. regprune prune --older-than 30d --keep-last 5 --dry-run\n',
    );
    expect(files(reg)).toEqual(before);
  });

  it('keep rules and scope alone select nothing: exit 2', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--keep-last', '3', '--repo', 'i1', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^regprune: nothing selected: /);
  });

  it('not a terminal, without --yes or --dry-run: exit 2, nothing changed', async () => {
    const { reg } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'regprune: refusing to remove without confirmation: stdin is not a terminal; pass --yes to remove, or --dry-run to preview\n',
    );
    expect(r.questions).toEqual([]);
    expect(files(reg)).toEqual(before);
  });

  it('on a terminal, answering no: exit 2, nothing changed', async () => {
    const { reg } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', 'i1:T11'], { tty: true, answer: false });
    expect(r.questions).toEqual(['Remove 2 tags from 1 repository? [y/N] ']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('nothing removed\n');
    expect(files(reg)).toEqual(before);
  });

  it('on a terminal, answering yes: removed', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12'], { tty: true, answer: true });
    expect(r.questions).toEqual(['Remove 1 tag from 1 repository? [y/N] ']);
    expect(r.code).toBe(0);
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(false);
  });
});

describe('regprune prune: bad arguments exit 2, name the argument, touch nothing', () => {
  const cases: Array<[name: string, args: string[], stderr: RegExp]> = [
    ['unknown duration unit', ['--older-than', '30x'], /^regprune: --older-than "30x": not a duration; /],
    ['negative duration', ['--older-than=-5d'], /^regprune: --older-than "-5d": not a duration; /],
    ['negative duration as a separate word', ['--older-than', '-5d'], /^regprune: --older-than "-5d": not a duration; /],
    ['zero duration', ['--older-than', '0d'], /^regprune: --older-than "0d": the amount must be a positive whole number\n/],
    ['--keep-last -1', ['--older-than', '30d', '--keep-last', '-1'], /^regprune: --keep-last "-1": expected a whole number of tags, 0 or more\n/],
    ['--keep-last=-1', ['--older-than', '30d', '--keep-last=-1'], /^regprune: --keep-last "-1": expected a whole number of tags, 0 or more\n/],
    ['--keep-last x', ['--older-than', '30d', '--keep-last', 'x'], /^regprune: --keep-last "x": expected a whole number of tags, 0 or more\n/],
    ['--keep-last 1.5', ['--older-than', '30d', '--keep-last', '1.5'], /^regprune: --keep-last "1.5": expected a whole number/],
    ['impossible --before date', ['--before', '2026-02-30'], /^regprune: --before "2026-02-30": not a valid date\n/],
    ['both cutoffs', ['--older-than', '30d', '--before', '2026-01-01'], /^regprune: --older-than and --before both give a push-time cutoff; use one of them\n/],
    ['invalid --tag regex', ['--tag', '/[/'], /^regprune: --tag "\/\[\/": invalid regular expression: /],
    ['invalid --keep glob', ['--older-than', '30d', '--keep', 'v[1'], /^regprune: --keep "v\[1": unclosed '\['\n/],
    ['uppercase --repo glob', ['--older-than', '30d', '--repo', 'I1'], /^regprune: --repo "I1": repository names are lowercase/],
    ['uppercase repository in a ref', ['I1:T12'], /^regprune: tag reference "I1:T12": repository "I1": invalid repository name component "I1" /],
    ['path traversal in a ref', ['../../etc:x'], /^regprune: tag reference "\.\.\/\.\.\/etc:x": repository "\.\.\/\.\.\/etc": invalid repository name component "\.\." /],
    ['ref without a tag', ['i1'], /^regprune: tag reference "i1": expected REPOSITORY:TAG, e.g. team\/app:v1\n/],
    ['unknown option', ['--older-than', '30d', '--frobnicate'], /^regprune: unknown option '--frobnicate'\n/],
  ];
  it.each(cases)('%s', async (_name, args, stderr) => {
    const { reg } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', ...args]);
    expect(r.stderr).toMatch(stderr);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.spawned).toEqual([]);
    expect(files(reg)).toEqual(before);
  });

  const roots: Array<[name: string, root: string, stderr: string]> = [
    [
      'a missing dir',
      '/nope',
      'regprune: /nope is not a registry storage root (no docker/registry/v2/repositories)\nhint: /nope does not exist\n',
    ],
    [
      'a dir that is not a storage root',
      '/srv',
      "regprune: /srv is not a registry storage root (no docker/registry/v2/repositories)\nhint: pass the storage driver rootdirectory with --root: /var/lib/registry in the registry:2/3 images, /var/lib/docker-registry for Debian's docker-registry\n",
    ],
  ];
  it.each(roots)('--root %s', async (_name, root, stderr) => {
    const { reg } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', root, '--yes', 'i1:T12']);
    expect([r.code, r.stdout, r.stderr]).toEqual([2, '', stderr]);
    expect(files(reg)).toEqual(before);
  });
});

describe('regprune prune --dry-run', () => {
  it('says the total garbage-collect frees and how much this run causes; --verbose --json lists the digests', async () => {
    const { reg, t12 } = tree();
    // An aborted push: a blob nothing references, which the same garbage-collect sweeps.
    const stray = Buffer.alloc(3000, 7);
    const { createHash } = await import('node:crypto');
    const strayDigest = `sha256:${createHash('sha256').update(stray).digest('hex')}` as never;
    reg.write(reg.lay.blobData(strayDigest), stray);
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', 'i1:T12']);
    expect(r.stdout).toContain(
      `garbage-collect will then free ${kib(ownBytes(t12) + 3000)} (4 blobs): ${kib(ownBytes(t12))} because of this run, ${kib(3000)} already unreferenced.\n`,
    );
    const j = await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--json', '--verbose', 'i1:T12']);
    const plan = JSON.parse(j.stdout) as { exact: boolean; unreferencedBytes: number; unreferencedBlobs: number; reclaimable: Array<{ digest: string; size: number }>; unreferenced: Array<{ digest: string; size: number }> };
    expect(plan).toMatchObject({ exact: true, unreferencedBytes: 3000, unreferencedBlobs: 1, unreferenced: [{ digest: strayDigest, size: 3000 }] });
    expect(plan.reclaimable.map((b) => b.digest).sort()).toEqual([t12.manifest.digest, t12.config.digest, t12.layers[1]?.digest].sort());
    const plain = await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--json', 'i1:T12']);
    expect(JSON.parse(plain.stdout)).not.toHaveProperty('unreferenced');
  });

  it('prints the table and the summary with human bytes, changes nothing', async () => {
    const { reg, t12 } = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', 'i1:T12']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'REPOSITORY  TAG  DIGEST               PUSHED            REASON\n' +
        `i1          T12  ${short(t12)}  2026-10-24 (30d)  named\n` +
        '\n' +
        `Would remove 1 tag from 1 repository and unlink 1 manifest; garbage-collect will then free ${kib(ownBytes(t12))} (3 blobs).\n` +
        'Dry run: nothing was changed. Run again without --dry-run to remove.\n',
    );
    expect(r.stderr).toBe('');
    expect(files(reg)).toEqual(before);
  });

  it('filters: one row per tag with its reason, sorted by repository then tag', async () => {
    const { reg, t11, t13 } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--older-than', '35d']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 3)).toEqual([
      'REPOSITORY  TAG  DIGEST               PUSHED            REASON',
      `i1          T11  ${short(t11)}  2026-10-14 (40d)  older than 35d (pushed 2026-10-14)`,
      `i1          T13  ${short(t13)}  2026-10-04 (50d)  older than 35d (pushed 2026-10-04)`,
    ]);
  });

  it('nothing matches: says so, exit 0', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--tag', 'nomatch']);
    expect([r.code, r.stdout]).toEqual([0, 'nothing to remove (6 tags in 3 repositories looked at)\n']);
  });

  it('--root may be the docker/registry/v2 dir, relative to the cwd, or come from REGPRUNE_ROOT', async () => {
    const { reg } = tree();
    const expected = (await cli(reg, ['prune', '--root', ROOT, '--dry-run', 'i1:T12'])).stdout;
    expect((await cli(reg, ['prune', '--root', `${ROOT}/docker/registry/v2`, '--dry-run', 'i1:T12'])).stdout).toBe(expected);
    expect((await cli(reg, ['prune', '--root', 'registry', '--dry-run', 'i1:T12'])).stdout).toBe(expected);
    expect((await cli(reg, ['prune', '--dry-run', 'i1:T12'], { env: { REGPRUNE_ROOT: ROOT } })).stdout).toBe(expected);
  });
});

describe('regprune prune --json', () => {
  it('dry run: one JSON object with the plan', async () => {
    const { reg, t12 } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--json', 'i1:T12']);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('}\n')).toBe(true);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({
      version: 1,
      root: ROOT,
      dryRun: true,
      tags: [{ repository: 'i1', tag: 'T12', digest: t12.manifest.digest, pushedAt: '2026-10-24T12:00:00.000Z', reason: 'named' }],
      manifests: [{ repository: 'i1', digest: t12.manifest.digest, reason: 'tag T12 removed' }],
      reclaimableBytes: ownBytes(t12),
      reclaimableBlobs: 3,
      missing: [],
      blocked: [],
      warnings: [],
    });
    expect(Object.keys((doc.tags as object[])[0] as object).sort()).toEqual(['digest', 'pushedAt', 'reason', 'repository', 'tag']);
  });

  it('real run: what was removed equals the dry-run plan', async () => {
    const { reg } = tree();
    const dry = JSON.parse((await cli(reg, ['prune', '--root', ROOT, '--dry-run', '--json', '--older-than', '35d'])).stdout) as Record<string, unknown>;
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', '--json', '--older-than', '35d']);
    expect(r.code).toBe(0);
    const real = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(real.dryRun).toBe(false);
    expect(real.tags).toEqual(dry.tags);
    expect(real.manifests).toEqual(dry.manifests);
    expect([real.reclaimableBytes, real.reclaimableBlobs]).toEqual([dry.reclaimableBytes, dry.reclaimableBlobs]);
    expect(real.results).toEqual({
      tags: { removed: 2, missing: 0, changed: 0, failed: 0 },
      manifests: { removed: 2, missing: 0, changed: 0, failed: 0 },
    });
    expect(real.notRemoved).toEqual({ tags: [], manifests: [] });
    // The storage lock was taken and released.
    expect(reg.exists(reg.lay.lockFile)).toBe(false);
    expect(r.spawned).toEqual([]);
  });
});

describe('regprune prune: partial results and warnings', () => {
  it('a named tag that does not exist: exit 1, the rest is still removed', async () => {
    const { reg, t12 } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', 'i1:T12', 'i1:NOPE']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`warning: ${ROOT}/docker/registry/v2/repositories/i1/_manifests/tags/NOPE: named tag i1:NOPE does not exist\n`);
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(false);
    expect(reg.exists(reg.lay.revision(R('i1'), t12.manifest.digest))).toBe(false);
    expect(r.stdout).toBe(
      `Removed 1 tag and unlinked 1 manifest.\nRun garbage-collect (without -m) to free about ${kib(ownBytes(t12))}, then restart the registry (its blob cache is stale).\n`,
    );
  });

  it('something in the tree not understood: exit 3, the rest is done', async () => {
    const { reg, t21 } = tree();
    const bad = reg.lay.tagCurrentLink(R('i2'), T('broken'));
    reg.write(bad, `${t21.manifest.digest}\n`);
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', 'i1:T12']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `warning: ${bad}: link ends with a newline (garbage-collect aborts on it: invalid checksum digest length); tag never selected\n`,
    );
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(false);
    expect(reg.exists(bad)).toBe(true);
  });

  it('a named tag that is kept by a rule: a note, exit 0', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--dry-run', 'i2:latest']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('note: i2:latest was named but is kept: latest\n');
    expect(r.stdout).toBe('nothing to remove (6 tags in 3 repositories looked at)\n');
  });
});

describe('regprune list', () => {
  it('sorted by repository then push time', async () => {
    const { reg, t11, t12, t13, t21, api } = tree();
    const r = await cli(reg, ['list', '--root', ROOT]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'REPOSITORY  TAG     DIGEST               PUSHED',
        `app/api     v1      ${short(api)}  2026-11-23 (45m)`,
        `i1          T13     ${short(t13)}  2026-10-04 (50d)`,
        `i1          T11     ${short(t11)}  2026-10-14 (40d)`,
        `i1          T12     ${short(t12)}  2026-10-24 (30d)`,
        `i2          T21     ${short(t21)}  2026-11-20 (3d)`,
        `i2          latest  ${short(t21)}  2026-11-21 (2d)`,
        '6 tags in 3 repositories',
        '',
      ].join('\n'),
    );
    expect(r.stderr).toBe('');
  });

  it('--json', async () => {
    const { reg, t13, api } = tree();
    const r = await cli(reg, ['list', '--root', ROOT, '--json', '--repo', 'app/**', '--repo', 'i1']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { tags: unknown[] };
    expect(doc).toMatchObject({ version: 1, root: ROOT, repositories: 2, warnings: 0 });
    expect(doc.tags).toHaveLength(4);
    expect(doc.tags[0]).toEqual({ repository: 'app/api', tag: 'v1', digest: api.manifest.digest, pushedAt: '2026-11-23T11:15:00.000Z' });
    expect(doc.tags[1]).toEqual({ repository: 'i1', tag: 'T13', digest: t13.manifest.digest, pushedAt: '2026-10-04T12:00:00.000Z' });
  });

  it('a warning makes the exit code 3', async () => {
    const { reg } = tree();
    reg.vol.mkdirSync(reg.lay.tag(R('i1'), T('empty')), { recursive: true });
    const r = await cli(reg, ['list', '--root', ROOT]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`warning: ${ROOT}/docker/registry/v2/repositories/i1/_manifests/tags/empty/current: tag directory has no current/link; never selected\n`);
  });

  it('an empty registry', async () => {
    const reg = new MemRegistry(ROOT);
    const r = await cli(reg, ['list', '--root', ROOT]);
    expect([r.code, r.stdout]).toEqual([0, `no tags in 0 repositories under ${ROOT}\n`]);
  });
});

describe('regprune help and version', () => {
  it.each([[['--help']], [['prune', '--help']], [['list', '--help']], [['help', 'prune']]])('%j: exit 0, usage on stdout', async (argv) => {
    const r = await cli(new MemRegistry(ROOT), argv);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: regprune/);
    expect(r.stderr).toBe('');
  });

  it('--version', async () => {
    const r = await cli(new MemRegistry(ROOT), ['--version']);
    expect([r.code, r.stdout]).toEqual([0, '0.1.0-test\n']);
  });

  it('no arguments: usage on stderr, exit 2', async () => {
    const r = await cli(new MemRegistry(ROOT), []);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: regprune/);
  });

  it('an unknown command: exit 2', async () => {
    const r = await cli(new MemRegistry(ROOT), ['purge']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^regprune: unknown command 'purge'/);
  });
});

