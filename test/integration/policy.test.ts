import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fg from 'fast-glob';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { parseRepositoryName, parseTagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune } from '../helpers/cli.js';
import {
  expectManifestStatus,
  pullAndVerify,
  pushImage,
  pushIndex,
  pushUntagged,
  startRegistry,
  tagManifest,
  type RunningRegistry,
} from '../helpers/registry.js';
import { setupSuite } from '../helpers/suite.js';

// Issue 7, done when: a policy file runs against the real registry and every
// tag the policy keeps still pulls byte for byte; removed tags answer 404.
// Needs the build (test/run.sh builds first).

const POLICY = `# releases are kept for ever; feature branches for a week; the rest by age and version.
rules:
  - repositories: ["releases/**"]
    keep: ["*"]
  - repositories: ["team/*"]
    tags: ["pr-*", "/^feature-.+/"]
    olderThan: 7d
    keepLast: 3
  - repositories: ["other", "other/**"]
    olderThan: 90d
    keep: ["latest"]
    keepSemver: {perMinor: 2}
    untagged: true
`;

// The same policy as JSON.
const POLICY_JSON = JSON.stringify({
  rules: [
    { repositories: ['releases/**'], keep: ['*'] },
    { repositories: ['team/*'], tags: ['pr-*', '/^feature-.+/'], olderThan: '7d', keepLast: 3 },
    { repositories: ['other', 'other/**'], olderThan: '90d', keep: ['latest'], keepSemver: { perMinor: 2 }, untagged: true },
  ],
});

interface Pushed {
  readonly repo: string;
  readonly tag: string;
  readonly digest: string;
  /** Push age in days. */
  readonly age: number;
}

/** What the policy removes; every other pushed tag stays. */
const REMOVED = [
  'other:multi', // rule 3: older than 90d, an index: its children go too
  'other:nightly', // rule 3: older than 90d
  'other:v2.1.0', // rule 3: keepSemver keeps 2.1.2 and 2.1.1 only
  'team/app:feature-login', // rule 2
  'team/app:pr-1', // rule 2
  'team/app:pr-2', // rule 2; shares its manifest with main, which stays
].sort();

interface PlanJson {
  dryRun: boolean;
  tags: Array<{ repository: string; tag: string; digest: string; reason: string }>;
  manifests: Array<{ repository: string; digest: string; reason: string }>;
  kept?: Array<{ repository: string; tag: string; reason: string }>;
  results?: { tags: Record<string, number>; manifests: Record<string, number> };
}

async function treeSnapshot(root: string): Promise<string[]> {
  const files = await fg('**', { cwd: root, dot: true, ignore: ['.regprune/**'] });
  return Promise.all(files.sort().map(async (f) => `${f} ${(await readFile(join(root, f))).toString('base64')}`));
}

describe('prune --policy on the real registry', () => {
  let reg: RunningRegistry;
  let work: string;
  let policyFile: string;
  let jsonFile: string;
  const pushed: Pushed[] = [];
  let untaggedDigest = '';
  let multiChildren: string[] = [];

  setupSuite(async () => {
    reg = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'regprune-policy-'));
    policyFile = join(work, 'policy.yaml');
    jsonFile = join(work, 'policy.json');
    await writeFile(policyFile, POLICY);
    await writeFile(jsonFile, POLICY_JSON);
    const add = (repo: string, tag: string, digest: string, age: number) => pushed.push({ repo, tag, digest, age });
    const image = async (repo: string, tag: string, age: number) => {
      const img = await pushImage(reg.url, repo, tag, { seed: `${repo}/${tag}`, layers: ['policy-base', `${repo}/${tag}/top`] });
      add(repo, tag, img.manifest.digest, age);
      return img;
    };

    await image('releases/x', 'v1.0.0', 400);
    await image('releases/x', 'old-junk', 400);

    for (const [tag, age] of [
      ['pr-1', 30],
      ['feature-login', 10],
      ['pr-3', 3],
      ['pr-4', 2],
      ['pr-5', 1],
    ] as const) {
      await image('team/app', tag, age);
    }
    const main = await image('team/app', 'main', 300);
    await tagManifest(reg.url, 'team/app', 'pr-2', main.manifest);
    add('team/app', 'pr-2', main.manifest.digest, 20);
    // team/* is one path component: team/app/api falls to no rule and is left alone.
    await image('team/app/api', 'pr-9', 30);

    for (const [tag, age] of [
      ['latest', 200],
      ['v2.1.0', 200],
      ['v2.1.1', 200],
      ['v2.1.2', 200],
      ['v2.2.0-rc.1', 10],
      ['nightly', 100],
      ['fresh', 10],
    ] as const) {
      await image('other', tag, age);
    }
    const multi = await pushIndex(reg.url, 'other', 'multi', {
      children: [
        { seed: 'other/multi/amd64', platform: { os: 'linux', architecture: 'amd64' }, layers: ['policy-base', 'other/multi/amd64/top'] },
        { seed: 'other/multi/arm64', platform: { os: 'linux', architecture: 'arm64' }, layers: ['policy-base', 'other/multi/arm64/top'] },
      ],
    });
    add('other', 'multi', multi.manifest.digest, 120);
    multiChildren = multi.children.map((c) => c.manifest.digest);
    const multiKept = await pushIndex(reg.url, 'other', 'multi-new', {
      children: [{ seed: 'other/multi-new/amd64', platform: { os: 'linux', architecture: 'amd64' }, layers: ['policy-base'] }],
    });
    add('other', 'multi-new', multiKept.manifest.digest, 5);
    untaggedDigest = (await pushUntagged(reg.url, 'other', { seed: 'other/untagged', layers: ['other/untagged/top'] })).manifest.digest;

    await image('loose', 'ancient', 900);

    const lay = layout(reg.root);
    const now = Date.now();
    for (const p of pushed) {
      const t = new Date(now - p.age * 86_400_000);
      await utimes(lay.tagCurrentLink(parseRepositoryName(p.repo), parseTagName(p.tag)), t, t);
    }
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`--- registry output ---\n${reg?.logs() ?? '(no registry)'}`);
  });

  afterAll(async () => {
    await reg?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('policy check accepts the file and summarises its rules', async () => {
    const r = await runRegprune(['policy', 'check', policyFile]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      `${policyFile}: valid, 3 rules; the first rule that matches a repository governs it:\n` +
        '  rule 1 (line 3): releases/**: keep every tag\n' +
        '  rule 2 (line 5): team/*: remove tags matching pr-* or /^feature-.+/ and older than 7d; keep latest, the last 3 pushed\n' +
        '  rule 3 (line 9): other, other/**: remove tags older than 90d; keep latest, the newest 2 patch releases of each major.minor; also remove untagged manifests\n' +
        '  any other repository: left alone\n',
    );
  });

  test('policy check reports every problem as FILE:LINE:COL and exits 2', async () => {
    const bad = join(work, 'bad.yaml');
    await writeFile(bad, 'rules:\n  - repositories: ["**"]\n    olderThan: 7x\n  - repositories: ["team/*"]\n    keeplast: 3\n');
    const r = await runRegprune(['policy', 'check', bad]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${bad}:3:16: rule 1: olderThan "7x": not a duration`);
    expect(r.stderr).toContain(`${bad}:5:5: rule 2: unknown key "keeplast" (did you mean "keepLast"?)`);
    expect(r.stderr).toContain(`${bad}: invalid (2 errors)`);

    const shadowed = join(work, 'shadowed.yaml');
    await writeFile(shadowed, 'rules:\n  - repositories: ["**"]\n    olderThan: 90d\n  - repositories: ["team/*"]\n    olderThan: 7d\n');
    const s = await runRegprune(['policy', 'check', shadowed]);
    expect(s.exitCode).toBe(2);
    expect(s.stderr).toContain(`${shadowed}:4:19: rule 2 is unreachable`);

    const missing = await runRegprune(['policy', 'check', join(work, 'nope.yaml')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('reading policy file');
  });

  test('prune refuses an invalid policy and ambiguous flags (exit 2, nothing touched)', async () => {
    const before = await treeSnapshot(reg.root);
    const bad = join(work, 'bad-prune.yaml');
    await writeFile(bad, 'rules:\n  - repositories: ["**"]\n    olderThan: 7x\n');
    const r = await runRegprune(['prune', '--policy', bad, '--root', reg.root, '--yes']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${bad}:3:16: rule 1: olderThan "7x"`);
    for (const flags of [['--older-than', '1d'], ['--tag', 'x'], ['--before', '2026-01-01'], ['--no-keep-latest'], ['--untagged']]) {
      const a = await runRegprune(['prune', '--policy', policyFile, ...flags, '--root', reg.root, '--yes']);
      expect(a.exitCode, flags.join(' ')).toBe(2);
      expect(a.stderr, flags.join(' ')).toContain(`${flags[0]} cannot be combined with --policy`);
    }
    const e = await runRegprune(['prune', '--older-than', '1d', '--explain', '--root', reg.root, '--dry-run']);
    expect(e.exitCode).toBe(2);
    expect(e.stderr).toContain('--explain shows which policy rule applied: it needs --policy FILE');
    expect(await treeSnapshot(reg.root)).toEqual(before);
  });

  test('--dry-run --explain shows, per repository, the rule and why each tag stays or goes; nothing changes', async () => {
    const before = await treeSnapshot(reg.root);
    const r = await runRegprune(['prune', '--policy', policyFile, '--root', reg.root, '--dry-run', '--explain']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = r.stdout;
    expect(out).toContain('releases/x: rule 1 (line 3): releases/**: keep every tag\n');
    expect(out).toMatch(/\n {2}keep +old-junk +\S+ \(\S+\) +kept: keep \*\n/);
    expect(out).toContain('team/app: rule 2 (line 5): team/*: ');
    expect(out).toMatch(/\n {2}remove +pr-1 +\S+ \(30d\) +matches pr-\*, older than 7d \(pushed \d{4}-\d{2}-\d{2}\)\n/);
    expect(out).toMatch(/\n {2}keep +pr-5 +\S+ \(\S+\) +kept: keepLast 3\n/);
    expect(out).toMatch(/\n {2}keep +main +\S+ \(\S+\) +kept: matches none of tags\n/);
    expect(out).toMatch(/\n {2}keep +v2\.1\.1 +\S+ \(\S+\) +kept: keepSemver perMinor 2 \(newest of 2\.1\.x\)\n/);
    expect(out).toMatch(/\n {2}remove +v2\.1\.0 +\S+ \(\S+\) +older than 90d/);
    expect(out).toMatch(/\n {2}keep +v2\.2\.0-rc\.1 +\S+ \(\S+\) +kept: pushed \S+, within 90d\n/);
    expect(out).toContain('left alone, no rule matches:\n  loose (1 tag)\n  team/app/api (1 tag)\n');
    expect(out).toMatch(/\nWould remove 6 tags from 2 repositories and unlink \d+ manifests; garbage-collect would then free .* \(policy .*policy\.yaml, 3 rules\)\.\nDry run: nothing was changed\.\n$/);
    expect(await treeSnapshot(reg.root)).toEqual(before);
  });

  test('YAML and JSON give the same plan; every reason names its rule', async () => {
    const yaml = await runRegprune(['prune', '--policy', policyFile, '--root', reg.root, '--dry-run', '--json', '--verbose']);
    const json = await runRegprune(['prune', '--policy', jsonFile, '--root', reg.root, '--dry-run', '--json', '--verbose']);
    expect(yaml.exitCode).toBe(0);
    expect(json.exitCode).toBe(0);
    const a = JSON.parse(yaml.stdout) as PlanJson;
    const b = JSON.parse(json.stdout) as PlanJson;
    expect(b.tags).toEqual(a.tags);
    expect(b.manifests).toEqual(a.manifests);
    expect(a.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(REMOVED);
    for (const t of [...a.tags, ...(a.kept ?? [])]) expect(t.reason, `${t.repository}:${t.tag}`).toMatch(/^rule [123]: /);
    expect(a.kept?.map((t) => t.repository)).not.toContain('loose');
  });

  test('prune --policy --yes removes exactly what the policy says; every kept tag pulls byte for byte, removed ones 404', async () => {
    const r = await runRegprune(['prune', '--policy', policyFile, '--yes', '--json', '--root', reg.root]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as PlanJson;
    expect(out.dryRun).toBe(false);
    expect(out.tags.map((t) => `${t.repository}:${t.tag}`).sort()).toEqual(REMOVED);
    expect(out.results?.tags.failed).toBe(0);
    const byTag = new Map(out.tags.map((t) => [`${t.repository}:${t.tag}`, t.reason]));
    expect(byTag.get('team/app:pr-1')).toMatch(/^rule 2: matches pr-\*, older than 7d \(pushed \d{4}-\d{2}-\d{2}\)$/);
    expect(byTag.get('other:nightly')).toMatch(/^rule 3: older than 90d \(pushed \d{4}-\d{2}-\d{2}\)$/);
    // untagged: true on rule 3: the manifest pushed by digest only goes too, and the removed index's children.
    const unlinked = out.manifests.map((m) => `${m.repository}@${m.digest}`);
    expect(unlinked).toContain(`other@${untaggedDigest}`);
    for (const d of multiChildren) expect(unlinked).toContain(`other@${d}`);

    const removed = new Set(REMOVED);
    for (const p of pushed) {
      const ref = `${p.repo}:${p.tag}`;
      if (removed.has(ref)) {
        await expectManifestStatus(reg.url, p.repo, p.tag, 404);
      } else {
        const pulled = await pullAndVerify(reg.url, p.repo, p.tag);
        expect(pulled.digest, ref).toBe(p.digest);
      }
    }
    await expectManifestStatus(reg.url, 'other', untaggedDigest, 404);
    for (const d of multiChildren) await expectManifestStatus(reg.url, 'other', d, 404);
    // pr-2 shared main's manifest: still there by digest.
    const main = pushed.find((p) => p.repo === 'team/app' && p.tag === 'main');
    await pullAndVerify(reg.url, 'team/app', main?.digest ?? '');

    // A second nightly run finds nothing more to do.
    const again = await runRegprune(['prune', '--policy', policyFile, '--yes', '--json', '--root', reg.root]);
    expect(again.exitCode).toBe(0);
    expect((JSON.parse(again.stdout) as PlanJson).tags).toEqual([]);
  });

  test('command-line additions: --keep protects in every rule, --repo narrows, REPO:TAG still removes', async () => {
    const r = await runRegprune([
      'prune',
      '--policy',
      policyFile,
      'loose:ancient',
      'releases/x:old-junk',
      '--keep',
      'pr-3',
      '--repo',
      'team/*',
      '--root',
      reg.root,
      '--dry-run',
      '--json',
      '--verbose',
    ]);
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as PlanJson;
    expect(out.tags.map((t) => `${t.repository}:${t.tag} ${t.reason}`)).toEqual(['loose:ancient no rule: named']);
    const kept = new Map((out.kept ?? []).map((t) => [`${t.repository}:${t.tag}`, t.reason]));
    expect(kept.get('releases/x:old-junk')).toBe('rule 1: kept: keep *');
    expect(kept.get('team/app:pr-3')).toBe('rule 2: kept: --keep pr-3');
    expect([...kept.keys()].some((k) => k.startsWith('other:'))).toBe(false);
    expect(r.stderr).toContain('note: releases/x:old-junk was named but is rule 1: kept: keep *');
  });
});
