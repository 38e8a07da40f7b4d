import { describe, expect, test } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// `policy check` and `prune --policy` through runCli on memfs: the policy file
// is read through deps.fs, relative to deps.cwd.

const NOW = new Date('2026-11-23T12:00:00Z');
const ROOT = '/srv/registry';

async function cli(reg: MemRegistry, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const deps: CliDeps = {
    fs: reg.fs,
    now: () => NOW,
    env: {},
    cwd: '/etc/regprune',
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

const POLICY = `rules:
  - repositories: ["releases/**"]
    keep: ["*"]
  - repositories: ["team/*"]
    tags: ["pr-*"]
    olderThan: 7d
    keepLast: 1
  - repositories: ["other"]
    olderThan: 90d
    keepSemver: {perMinor: 1}
`;

function tree(): MemRegistry {
  const reg = new MemRegistry(ROOT);
  const img = (repo: string, tag: string, days: number) => {
    const built = reg.putImage(repo, { seed: `${repo}/${tag}`, layers: ['base', `${repo}/${tag}`] });
    reg.tag(repo, tag, built.manifest.digest, daysAgo(NOW, days));
  };
  img('releases/x', 'v1', 400);
  img('team/app', 'pr-1', 30);
  img('team/app', 'pr-2', 20);
  img('team/app', 'main', 300);
  img('other', 'v1.0.0', 200);
  img('other', 'v1.0.1', 200);
  img('other', 'nightly', 100);
  img('loose', 'x', 900);
  reg.write('/etc/regprune/policy.yaml', POLICY);
  return reg;
}

function files(reg: MemRegistry): Record<string, string | null> {
  return Object.fromEntries(Object.entries(reg.vol.toJSON(ROOT)).filter(([, c]) => c !== null));
}

describe('regprune policy check', () => {
  test('valid: exit 0, a summary of the rules on stdout, nothing on stderr', async () => {
    const r = await cli(tree(), ['policy', 'check', 'policy.yaml']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'policy.yaml: valid, 3 rules; the first rule that matches a repository governs it:\n' +
        '  rule 1 (line 2): releases/**: keep every tag\n' +
        '  rule 2 (line 4): team/*: remove tags matching pr-* and older than 7d; keep latest, the last 1 pushed\n' +
        '  rule 3 (line 8): other: remove tags older than 90d; keep latest, the newest 1 patch releases of each major.minor\n' +
        '  any other repository: left alone\n',
    );
  });

  test('-q: nothing on stdout', async () => {
    const r = await cli(tree(), ['policy', 'check', '-q', '/etc/regprune/policy.yaml']);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  test('valid with warnings: exit 0, warnings on stderr as FILE:LINE:COL', async () => {
    const reg = tree();
    reg.write('/etc/regprune/w.yaml', 'rules:\n  - repositories: ["a"]\n    keepLast: 3\n');
    const r = await cli(reg, ['policy', 'check', 'w.yaml']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^w\.yaml:2:5: warning: rule 1 removes nothing: /);
    expect(r.stdout).toMatch(/^w\.yaml: valid, 1 rule \(1 warning\);/);
  });

  test('invalid: exit 2, every problem on stderr in file order, nothing on stdout', async () => {
    const reg = tree();
    reg.write('/etc/regprune/bad.json', '{\n  "rules": [\n    {"repositories": ["a"], "olderThan": "1x", "keepLast": true}\n  ]\n}\n');
    const r = await cli(reg, ['policy', 'check', 'bad.json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'bad.json:3:42: rule 1: olderThan "1x": not a duration; use a whole number and a unit: minutes (m), hours (h), days (d), weeks (w), months (mo), years (y), e.g. 30d\n' +
        'bad.json:3:60: rule 1: keepLast: expected a whole number 0 or more, got boolean true\n' +
        'bad.json: invalid (2 errors)\n',
    );
  });

  test('a missing file: exit 2', async () => {
    const r = await cli(tree(), ['policy', 'check', 'nope.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('regprune: reading policy file nope.yaml: no such file\n');
  });
});

describe('regprune prune --policy', () => {
  test('--dry-run --explain: per repository, the rule and each verdict; the repositories left alone; nothing changes', async () => {
    const reg = tree();
    const before = files(reg);
    const r = await cli(reg, ['prune', '--policy', 'policy.yaml', '--root', ROOT, '--dry-run', '--explain']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/garbage-collect would then free [^(]+\(/, 'garbage-collect would then free N (')).toBe(
      [
        'other: rule 3 (line 8): other: remove tags older than 90d; keep latest, the newest 1 patch releases of each major.minor',
        '          TAG      PUSHED            WHY',
        '  remove  nightly  2026-08-15 (3mo)  older than 90d (pushed 2026-08-15)',
        '  remove  v1.0.0   2026-05-07 (6mo)  older than 90d (pushed 2026-05-07)',
        '  keep    v1.0.1   2026-05-07 (6mo)  kept: keepSemver perMinor 1 (newest of 1.0.x)',
        '  and 2 manifests unlinked',
        '',
        'releases/x: rule 1 (line 2): releases/**: keep every tag',
        '        TAG  PUSHED             WHY',
        '  keep  v1   2025-10-19 (13mo)  kept: keep *',
        '',
        'team/app: rule 2 (line 4): team/*: remove tags matching pr-* and older than 7d; keep latest, the last 1 pushed',
        '          TAG   PUSHED            WHY',
        '  keep    main  2026-01-27 (9mo)  kept: matches none of tags',
        '  remove  pr-1  2026-10-24 (30d)  matches pr-*, older than 7d (pushed 2026-10-24)',
        '  keep    pr-2  2026-11-03 (20d)  kept: keepLast 1',
        '  and 1 manifest unlinked',
        '',
        'left alone, no rule matches:',
        '  loose (1 tag)',
        '',
        'Would remove 3 tags from 2 repositories and unlink 3 manifests; garbage-collect would then free N (policy policy.yaml, 3 rules).',
        'Dry run: nothing was changed.',
        '',
      ].join('\n'),
    );
    expect(files(reg)).toEqual(before);
  });

  test('--repo narrows: the others are listed as outside it', async () => {
    const r = await cli(tree(), ['prune', '--policy', 'policy.yaml', '--repo', 'team/*', '--root', ROOT, '--dry-run', '--explain']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('left alone, no rule matches:\n  loose (1 tag)\n\nleft alone, outside --repo/--exclude-repo:\n  other (3 tags)\n  releases/x (1 tag)\n');
    expect(r.stdout).toContain('Would remove 1 tag from 1 repository');
  });

  test('--yes applies the same plan; reasons name the rule', async () => {
    const reg = tree();
    const r = await cli(reg, ['prune', '--policy', '/etc/regprune/policy.yaml', '--root', ROOT, '--yes', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { tags: Array<{ repository: string; tag: string; reason: string }> };
    expect(out.tags.map((t) => `${t.repository}:${t.tag} ${t.reason}`)).toEqual([
      'other:nightly rule 3: older than 90d (pushed 2026-08-15)',
      'other:v1.0.0 rule 3: older than 90d (pushed 2026-05-07)',
      'team/app:pr-1 rule 2: matches pr-*, older than 7d (pushed 2026-10-24)',
    ]);
    expect(Object.keys(files(reg)).some((f) => f.includes('/team/app/_manifests/tags/pr-1/'))).toBe(false);
    expect(Object.keys(files(reg)).some((f) => f.includes('/team/app/_manifests/tags/pr-2/'))).toBe(true);
  });

  test.each([
    { name: 'invalid policy', args: ['--policy', 'bad.yaml'], stderr: /^regprune: policy file bad\.yaml is invalid \(1 problem\); nothing was touched:\nbad\.yaml:3:16: rule 1: olderThan "7x"/ },
    { name: 'missing policy', args: ['--policy', 'nope.yaml'], stderr: /^regprune: reading policy file nope\.yaml: no such file\n$/ },
    { name: '--older-than', args: ['--policy', 'policy.yaml', '--older-than', '1d'], stderr: /^regprune: --older-than cannot be combined with --policy: .*\nhint: write "olderThan" in the rules/ },
    { name: '--tag', args: ['--policy', 'policy.yaml', '--tag', 'x'], stderr: /^regprune: --tag cannot be combined with --policy/ },
    { name: '--before', args: ['--policy', 'policy.yaml', '--before', '2026-01-01'], stderr: /^regprune: --before cannot be combined with --policy/ },
    { name: '--no-keep-latest', args: ['--policy', 'policy.yaml', '--no-keep-latest'], stderr: /^regprune: --no-keep-latest cannot be combined with --policy.*\nhint: write "keepLatest: false"/ },
    { name: '--untagged', args: ['--policy', 'policy.yaml', '--untagged'], stderr: /^regprune: --untagged cannot be combined with --policy.*\nhint: write "untagged: true"/ },
    { name: '--explain without --policy', args: ['--older-than', '1d', '--explain'], stderr: /^regprune: --explain shows which policy rule applied: it needs --policy FILE\n/ },
  ])('refused, exit 2, nothing touched: $name', async ({ args, stderr }) => {
    const reg = tree();
    reg.write('/etc/regprune/bad.yaml', 'rules:\n  - repositories: ["**"]\n    olderThan: 7x\n');
    const before = files(reg);
    const r = await cli(reg, ['prune', ...args, '--root', ROOT, '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(stderr);
    expect(r.stdout).toBe('');
    expect(files(reg)).toEqual(before);
  });

  test('policy warnings go to stderr, not with --quiet', async () => {
    const reg = tree();
    reg.write('/etc/regprune/w.yaml', 'rules:\n  - repositories: ["team/*"]\n    keepLast: 3\n');
    const loud = await cli(reg, ['prune', '--policy', 'w.yaml', '--root', ROOT, '--dry-run']);
    expect(loud.code).toBe(0);
    expect(loud.stderr).toMatch(/^w\.yaml:2:5: warning: rule 1 removes nothing/);
    const quiet = await cli(reg, ['prune', '--policy', 'w.yaml', '--root', ROOT, '--dry-run', '--quiet']);
    expect(quiet.stderr).toBe('');
  });
});
