import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import type { ProcessRunner } from '../../src/gc/process.js';
import type { RepositoryName, TagName } from '../../src/model/names.js';
import type { BuiltImage } from '../helpers/images.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// What an operator sees: JSON on every failing exit, the confirmation, progress,
// the next step, the summary line, the metrics file, list's selectors and tables.

const NOW = new Date('2026-11-23T12:00:00Z');
const ROOT = '/srv/registry';
const R = (name: string) => name as RepositoryName;
const T = (name: string) => name as TagName;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  questions: string[];
}

async function cli(
  reg: MemRegistry,
  argv: string[],
  opts: { tty?: boolean; answer?: boolean; stderrTTY?: boolean; onPath?: Record<string, string>; clock?: () => Date } = {},
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const questions: string[] = [];
  const run: ProcessRunner = {
    run: async () => ({ started: false, notFound: true, message: 'no programs in unit tests' }),
    which: async (name) => opts.onPath?.[name],
    isAlive: () => false,
    hostname: 'unit-test',
  };
  const deps: CliDeps = {
    fs: reg.fs,
    now: opts.clock ?? (() => NOW),
    env: {},
    cwd: '/srv',
    stdout: { write: (s) => void out.push(s), isTTY: false },
    stderr: { write: (s) => void err.push(s), isTTY: opts.stderrTTY ?? false },
    stdinIsTTY: opts.tty ?? false,
    confirm: async (q) => {
      questions.push(q);
      return opts.answer ?? false;
    },
    pid: 4242,
    version: '0.1.0-test',
    run,
  };
  const code = await runCli(argv, deps);
  return { code, stdout: out.join(''), stderr: err.join(''), questions };
}

/** i1: T11 (40d), T12 (30d), T13 (50d); i2: T21 (3d) and latest on one image. */
function tree() {
  const reg = new MemRegistry(ROOT);
  const [t11, t12, t13] = [1, 2, 3].map((n) => reg.putImage('i1', { seed: `i1-${n}`, layers: ['base', `i1-${n}`] })) as [BuiltImage, BuiltImage, BuiltImage];
  const t21 = reg.putImage('i2', { seed: 'i2', layers: ['base', 'i2'] });
  reg.tag('i1', 'T11', t11.manifest.digest, daysAgo(NOW, 40));
  reg.tag('i1', 'T12', t12.manifest.digest, daysAgo(NOW, 30));
  reg.tag('i1', 'T13', t13.manifest.digest, daysAgo(NOW, 50));
  reg.tag('i2', 'T21', t21.manifest.digest, daysAgo(NOW, 3));
  reg.tag('i2', 'latest', t21.manifest.digest, daysAgo(NOW, 2));
  return { reg, t11, t12, t13, t21 };
}

const parse = (r: Run) => {
  // Exactly one JSON object on stdout.
  expect(r.stdout.trim().startsWith('{')).toBe(true);
  return JSON.parse(r.stdout) as Record<string, unknown> & { error?: { code: string; message: string; hint: string | null } };
};

describe('--json: every failing exit prints one object with version and error', () => {
  it('exit 2, usage error before anything: version and error {code, message, hint}', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', '--json']);
    expect(r.code).toBe(2);
    const o = parse(r);
    expect(o).toEqual({
      version: 1,
      error: {
        code: 'USAGE',
        message: expect.stringMatching(/^nothing selected: /),
        hint: 'e.g. regprune prune --older-than 30d --keep-last 5 --dry-run',
      },
    });
  });

  it('exit 2, not a storage root', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['list', '--root', '/nowhere', '--json']);
    expect(r.code).toBe(2);
    expect(parse(r).error).toMatchObject({ code: 'NOT_A_ROOT', message: expect.stringContaining('/nowhere'), hint: '/nowhere does not exist' });
  });

  it('exit 2, an unknown option (commander)', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--frobnicate', '--json']);
    expect(r.code).toBe(2);
    expect(parse(r)).toEqual({ version: 1, error: { code: 'USAGE', message: "unknown option '--frobnicate'", hint: null } });
  });

  it('exit 1, a named tag missing: the plan and outcomes, plus error MISSING', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', '--json', 'i1:T12', 'i1:NOPE']);
    expect(r.code).toBe(1);
    const o = parse(r);
    expect(o.version).toBe(1);
    expect((o.tags as unknown[]).length).toBe(1);
    expect(o.error).toEqual({ code: 'MISSING', message: 'named tag not found: i1:NOPE', hint: 'regprune list --repo REPOSITORY shows the tags there are' });
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(false);
  });

  it('exit 1, garbage-collect cannot be reached: error GC, nothing removed', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', '--json', 'i1:T12', '--gc', 'docker:registry']);
    expect(r.code).toBe(1);
    expect(parse(r)).toEqual({ version: 1, error: { code: 'GC', message: expect.stringContaining('docker: not found on PATH'), hint: expect.any(String) } });
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(true);
  });

  it('exit 1, another run holds the lock: error LOCKED', async () => {
    const { reg } = tree();
    reg.write(reg.lay.lockFile, JSON.stringify({ pid: 1, startedAt: '2026-11-23T11:00:00Z', hostname: 'elsewhere' }));
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', '--json', 'i1:T12']);
    expect(r.code).toBe(1);
    expect(parse(r).error).toMatchObject({ code: 'LOCKED', hint: expect.stringContaining('host elsewhere') });
  });

  it('exit 3, something not understood: the result plus error WARNINGS', async () => {
    const { reg, t21 } = tree();
    reg.write(reg.lay.tagCurrentLink(R('i2'), T('broken')), `${t21.manifest.digest}\n`);
    const r = await cli(reg, ['list', '--root', ROOT, '--json']);
    expect(r.code).toBe(3);
    const o = parse(r);
    expect((o.tags as unknown[]).length).toBe(5);
    expect(o.error).toMatchObject({ code: 'WARNINGS' });
  });

  it('exit 0: no error member', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['list', '--root', ROOT, '--json']);
    expect(r.code).toBe(0);
    expect(parse(r)).not.toHaveProperty('error');
  });
});

describe('the confirmation informs before it asks', () => {
  it('totals, bytes garbage-collect will free, repositories, first tags, then the question', async () => {
    const { reg, t11, t12, t13 } = tree();
    const own = [t11, t12, t13].reduce((n, i) => n + i.manifest.size + i.config.size + (i.layers[1]?.size ?? 0), 0);
    expect(own).toBeGreaterThan(1024);
    expect(own).toBeLessThan(10240);
    const r = await cli(reg, ['prune', '--root', ROOT, '--older-than', '20d'], { tty: true, answer: false });
    expect(r.questions).toEqual(['Remove 3 tags from 1 repository? [y/N] ']);
    expect(r.stderr).toBe(
      [
        'About to change /srv/registry:',
        '  remove  3 tags in 1 repository',
        '  unlink  3 manifests nothing kept references',
        `  free    ${(own / 1024).toFixed(1)} KiB (9 blobs) when garbage-collect runs`,
        '',
        'Repositories:',
        '  REPOSITORY  TAGS  MANIFESTS',
        '  i1             3          3',
        '',
        'Tags:',
        '  TAG     PUSHED            REASON',
        '  i1:T11  2026-10-14 (40d)  older than 20d (pushed 2026-10-14)',
        '  i1:T12  2026-10-24 (30d)  older than 20d (pushed 2026-10-24)',
        '  i1:T13  2026-10-04 (50d)  older than 20d (pushed 2026-10-04)',
        '',
        'nothing removed',
        '',
      ].join('\n'),
    );
    expect(reg.exists(reg.lay.tag(R('i1'), T('T11')))).toBe(true);
  });

  it('many tags: the five most affected repositories and the first eight tags, with how many more', async () => {
    const reg = new MemRegistry(ROOT);
    for (let repo = 0; repo < 7; repo++) {
      for (let i = 0; i <= repo; i++) {
        const img = reg.putImage(`r${repo}`, { seed: `r${repo}-${i}`, layers: [`r${repo}-${i}`] });
        reg.tag(`r${repo}`, `t${i}`, img.manifest.digest, daysAgo(NOW, 40));
      }
    }
    const r = await cli(reg, ['prune', '--root', ROOT, '--older-than', '30d'], { tty: true, answer: false });
    expect(r.stderr).toContain('  remove  28 tags in 7 repositories\n');
    expect(r.stderr).toContain('Most affected repositories (5 of 7):\n  REPOSITORY  TAGS  MANIFESTS\n  r6             7          7\n  r5             6          6\n');
    expect(r.stderr).toContain('First 8 of 28 tags:\n');
    expect(r.stderr).toContain('  ... and 20 more (--dry-run lists them all)\n');
  });

  it('--yes asks nothing and shows no confirmation', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--older-than', '20d', '--yes'], { tty: true });
    expect(r.questions).toEqual([]);
    expect(r.stderr).not.toContain('About to change');
    expect(r.code).toBe(0);
  });
});

describe('progress, next step, summary', () => {
  it('removal progress with counts and rate on a terminal; none on a pipe', async () => {
    const { reg } = tree();
    let t = NOW.getTime();
    const clock = () => new Date((t += 250));
    const tty = await cli(reg, ['prune', '--root', ROOT, '--older-than', '20d', '--yes'], { stderrTTY: true, clock });
    expect(tty.stderr).toMatch(/\r\x1b\[Kremoving: 3\/3 tags, 3\/3 manifests \(\d+\/s\)/);
    const { reg: reg2 } = tree();
    const pipe = await cli(reg2, ['prune', '--root', ROOT, '--older-than', '20d', '--yes']);
    expect(pipe.stderr).not.toContain('removing:');
    expect(pipe.stderr).not.toContain('\r');
  });

  it('du shows its progress on a terminal, not on a pipe', async () => {
    const { reg } = tree();
    const tty = await cli(reg, ['du', '--root', ROOT], { stderrTTY: true });
    expect(tty.stderr).toMatch(/\r\x1b\[Kmeasuring: \d+ tags read/);
    expect(tty.stderr).toMatch(/\r\x1b\[Kmeasuring: \d+ manifests read/);
    expect(tty.stderr.endsWith('\r\x1b[K')).toBe(true);
    const pipe = await cli(reg, ['du', '--root', ROOT]);
    expect(pipe.stderr).toBe('');
  });

  it('no --gc: the exact command for this host (its config found by rootdirectory, its binary), the restart, and the summary line', async () => {
    const { reg } = tree();
    reg.write('/etc/docker/registry/config.yml', `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${ROOT}\n`);
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes'], { onPath: { 'docker-registry': '/usr/bin/docker-registry' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        '^Removed 1 tag and unlinked 1 manifest\\.\\n' +
          'Next: run garbage-collect \\(never with -m\\) to free the space, then restart the registry \\(its blob cache is stale\\); with the registry read-only or stopped \\(docs/operations.md\\):\\n' +
          "  regprune gc local --root /srv/registry --gc-config /etc/docker/registry/config.yml --restart-cmd 'systemctl restart docker-registry'\\n" +
          'or by hand:\\n' +
          '  /usr/bin/docker-registry garbage-collect /etc/docker/registry/config.yml\\n' +
          '  systemctl restart docker-registry\\n' +
          'regprune: ok: removed 1 tag, unlinked 1 manifest; garbage-collect not run \\([\\d.]+ KiB to free\\); 0\\.0s \\(exit 0\\)\\n$',
      ),
    );
  });

  it('no config here names the root: the container form, with what to fill in said', async () => {
    const { reg } = tree();
    reg.write('/etc/docker/registry/config.yml', 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n');
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes', '--json']);
    expect(parse(r).nextStep).toEqual({
      regprune: 'regprune gc docker:CONTAINER --root /srv/registry --restart',
      byHand: ['docker exec CONTAINER registry garbage-collect /etc/docker/registry/config.yml', 'docker restart CONTAINER'],
      placeholder: expect.stringContaining('no registry config on this host names /srv/registry'),
    });
  });

  it('tags removed but no manifest unlinked: garbage-collect has nothing to free, no next step', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, 'i2:T21', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Removed 1 tag and unlinked 0 manifests\.\nregprune: ok: removed 1 tag, unlinked 0 manifests; garbage-collect not run \(0 B to free\); 0\.0s \(exit 0\)\n$/);
  });

  it('nothing removed: no next step', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, '--tag', 'nomatch', '--yes']);
    expect(r.stdout).not.toContain('Next:');
    expect(r.stdout).toMatch(/regprune: ok: removed 0 tags, unlinked 0 manifests; garbage-collect not run \(0 B to free\); 0\.0s \(exit 0\)\n$/);
  });
});

describe('--metrics-file', () => {
  const read = (reg: MemRegistry, p: string) => String(reg.vol.readFileSync(p, 'utf8'));

  it('a real run: the textfile collector format, labelled by root, nothing temporary left', async () => {
    const { reg, t12 } = tree();
    reg.vol.mkdirSync('/var/lib/node_exporter', { recursive: true });
    let t = NOW.getTime();
    const clock = () => new Date((t += 1500));
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes', '--metrics-file', '/var/lib/node_exporter/regprune.prom'], { clock });
    expect(r.code).toBe(0);
    const text = read(reg, '/var/lib/node_exporter/regprune.prom');
    const labels = '{root="/srv/registry",command="prune"}';
    const value = (name: string) => text.match(new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm'))?.[1];
    expect(text).toContain('# TYPE regprune_last_run_success gauge\n');
    expect(value('regprune_last_run_success')).toBe('1');
    expect(value('regprune_tags_removed')).toBe('1');
    expect(value('regprune_manifests_unlinked')).toBe('1');
    expect(Number(value('regprune_reclaimable_bytes'))).toBe(t12.manifest.size + t12.config.size + (t12.layers[1]?.size ?? 0));
    expect(value('regprune_gc_freed_bytes')).toBe('0');
    expect(Number(value('regprune_last_run_timestamp_seconds'))).toBeGreaterThan(NOW.getTime() / 1000);
    expect(value('regprune_last_success_timestamp_seconds')).toBe(value('regprune_last_run_timestamp_seconds'));
    expect(Number(value('regprune_run_duration_seconds'))).toBeGreaterThan(0);
    expect(reg.vol.readdirSync('/var/lib/node_exporter')).toEqual(['regprune.prom']);
  });

  it('a failed run is written too: success 0, the last success carried over', async () => {
    const { reg } = tree();
    reg.vol.mkdirSync('/m', { recursive: true });
    const first = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes', '--metrics-file', '/m/r.prom']);
    expect(first.code).toBe(0);
    const success = read(reg, '/m/r.prom').match(/^regprune_last_success_timestamp_seconds\S* (\d+)$/m)?.[1];
    expect(success).toBeDefined();
    reg.write(reg.lay.lockFile, JSON.stringify({ pid: 1, startedAt: '2026-11-23T11:00:00Z', hostname: 'elsewhere' }));
    const later = new Date(NOW.getTime() + 86_400_000);
    const failed = await cli(reg, ['prune', '--root', ROOT, 'i1:T11', '--yes', '--metrics-file', '/m/r.prom'], { clock: () => later });
    expect(failed.code).toBe(1);
    const text = read(reg, '/m/r.prom');
    expect(text).toMatch(/^regprune_last_run_success\{root="\/srv\/registry",command="prune"\} 0$/m);
    expect(text).toMatch(/^regprune_last_run_exit_code\{[^}]*\} 1$/m);
    expect(text).toContain(`regprune_last_success_timestamp_seconds{root="/srv/registry",command="prune"} ${success}\n`);
    expect(text).toContain(`regprune_last_run_timestamp_seconds{root="/srv/registry",command="prune"} ${later.getTime() / 1000}\n`);
  });

  it('a name the collector would not read is a usage error', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes', '--metrics-file', '/m/regprune.txt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--metrics-file /m/regprune.txt: the name must end in .prom');
    expect(reg.exists(reg.lay.tag(R('i1'), T('T12')))).toBe(true);
  });
});

describe('list: the selectors of prune, --no-headers, short digests, 100 columns', () => {
  it('--older-than 35d lists what that prune would select, with the reason', async () => {
    const { reg, t11, t13 } = tree();
    const r = await cli(reg, ['list', '--root', ROOT, '--older-than', '35d']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'REPOSITORY  TAG  DIGEST               PUSHED            REASON',
        `i1          T13  ${t13.manifest.digest.slice(0, 19)}  2026-10-04 (50d)  older than 35d (pushed 2026-10-04)`,
        `i1          T11  ${t11.manifest.digest.slice(0, 19)}  2026-10-14 (40d)  older than 35d (pushed 2026-10-14)`,
        '2 tags in 1 repository',
        '',
      ].join('\n'),
    );
  });

  it('keep rules apply as in prune; --no-headers prints rows only; --no-trunc full digests', async () => {
    const { reg, t13 } = tree();
    const r = await cli(reg, ['list', '--root', ROOT, '--older-than', '35d', '--keep-last', '2', '--no-headers', '--no-trunc']);
    expect(t13.manifest.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.stdout).toBe(`i1  T13  ${t13.manifest.digest}  2026-10-04 (50d)  older than 35d (pushed 2026-10-04)\n`);
  });

  it('the same parser as prune: the same usage errors', async () => {
    const { reg } = tree();
    const r = await cli(reg, ['list', '--root', ROOT, '--older-than', '30x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^regprune: --older-than "30x": not a duration; /);
  });

  it('long names are cut to fit 100 columns (--no-trunc does not cut)', async () => {
    const reg = new MemRegistry(ROOT);
    const repo = `team/${'very-long-component-name/'.repeat(4)}service`;
    const img = reg.putImage(repo, { seed: 'long', layers: ['l'] });
    reg.tag(repo, `release-${'x'.repeat(60)}`, img.manifest.digest, daysAgo(NOW, 3));
    const cut = await cli(reg, ['list', '--root', ROOT]);
    const lines = cut.stdout.trimEnd().split('\n');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100);
    expect(lines[1]).toMatch(/~/);
    const full = await cli(reg, ['list', '--root', ROOT, '--no-trunc']);
    expect(full.stdout).toContain(repo);
    expect(full.stdout).toContain(`release-${'x'.repeat(60)}`);
  });
});

describe('restore --run with an id the log does not have', () => {
  it('names the run and the runs the log has, not some default root', async () => {
    const { reg } = tree();
    const pruned = await cli(reg, ['prune', '--root', ROOT, 'i1:T12', '--yes', '--log', '/srv/audit.jsonl']);
    expect(pruned.code).toBe(0);
    const r = await cli(reg, ['restore', '/srv/audit.jsonl', '--run', 'nope', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`regprune: --run nope: no such run in /srv/audit.jsonl\nhint: runs in the log: ${NOW.getTime()}-4242\n`);
    expect(r.stderr).not.toContain('/var/lib/registry');
  });
});
