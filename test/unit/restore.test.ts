import { describe, expect, test } from 'vitest';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { AuditLog, parseAuditLog, type AuditLine } from '../../src/storage/audit.js';
import { applyRestore, planRestore } from '../../src/storage/restore.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

const now = new Date('2026-11-23T12:00:00.000Z');
const ROOT = '/srv/registry';
const app = 'app' as RepositoryName;
const T = (t: string) => t as TagName;

const base = { time: now.toISOString(), root: ROOT, run: 'r1' };
const tagLine = (tag: string, digest: Digest, pushedAt: Date, run = 'r1'): AuditLine => ({
  ...base,
  run,
  action: 'remove-tag',
  repository: 'app',
  tag,
  digest,
  pushedAt: pushedAt.toISOString(),
  reason: 'named',
});
const manifestLine = (digest: Digest, repository = 'app'): AuditLine => ({ ...base, action: 'remove-manifest', repository, tag: null, digest, pushedAt: null, reason: 'only referenced by removed tags' });

/** A registry where `tags` were pushed, then removed (tag dir and revision dir), as prune does. */
function pruned() {
  const reg = new MemRegistry(ROOT);
  const a = reg.putImage('app', { seed: 'r-a', layers: ['r-base', 'r-a/top'] });
  const b = reg.putImage('app', { seed: 'r-b', layers: ['r-base', 'r-b/top'] });
  const idx = reg.putIndex('app', {
    children: [
      { seed: 'r-amd64', platform: { os: 'linux', architecture: 'amd64' }, layers: ['r-base'] },
      { seed: 'r-arm64', platform: { os: 'linux', architecture: 'arm64' }, layers: ['r-arm/top'] },
    ],
  });
  const at = { a: daysAgo(now, 40), b: daysAgo(now, 30), idx: daysAgo(now, 20) };
  reg.tag('app', 'a', a.manifest.digest, at.a);
  reg.tag('app', 'b', b.manifest.digest, at.b);
  reg.tag('app', 'multi', idx.manifest.digest, at.idx);
  const rm = (p: string) => reg.vol.rmSync(p, { recursive: true });
  for (const t of ['a', 'b', 'multi']) rm(reg.lay.tag(app, T(t)));
  for (const d of [a.manifest.digest, b.manifest.digest, idx.manifest.digest, ...idx.children.map((c) => c.manifest.digest)]) rm(reg.lay.revision(app, d));
  const lines: AuditLine[] = [
    tagLine('a', a.manifest.digest, at.a),
    tagLine('b', b.manifest.digest, at.b),
    tagLine('multi', idx.manifest.digest, at.idx),
    manifestLine(a.manifest.digest),
    manifestLine(b.manifest.digest),
    manifestLine(idx.manifest.digest),
    ...idx.children.map((c) => manifestLine(c.manifest.digest)),
  ];
  return { reg, a, b, idx, at, lines };
}

const summary = (entries: readonly { kind: string; tag: string | null; digest: string; action?: string; result?: string }[]) =>
  entries.map((e) => `${e.kind}:${e.tag ?? e.digest.slice(7, 15)}=${e.action ?? e.result}`);

describe('restore rules', () => {
  test('everything still there: revisions and tags come back, links exact, current/link mtime = pushedAt', async () => {
    const w = pruned();
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    expect(plan.tags.map((t) => [t.tag, t.action])).toEqual([
      ['a', 'restore'],
      ['b', 'restore'],
      ['multi', 'restore'],
    ]);
    expect(plan.manifests.every((m) => m.action === 'restore')).toBe(true);
    const out = await applyRestore(w.reg.fs, w.reg.lay, plan);
    expect([...out.manifests, ...out.tags].every((o) => o.result === 'restored')).toBe(true);
    const current = w.reg.lay.tagCurrentLink(app, T('a'));
    expect(w.reg.vol.readFileSync(current, 'utf8')).toBe(w.a.manifest.digest);
    expect(w.reg.vol.readFileSync(w.reg.lay.tagIndexLink(app, T('a'), w.a.manifest.digest), 'utf8')).toBe(w.a.manifest.digest);
    expect(w.reg.vol.readFileSync(w.reg.lay.revisionLink(app, w.a.manifest.digest), 'utf8')).toBe(w.a.manifest.digest);
    expect(w.reg.vol.statSync(current).mtimeMs).toBe(w.at.a.getTime());
    for (const c of w.idx.children) expect(w.reg.exists(w.reg.lay.revisionLink(app, c.manifest.digest))).toBe(true);
    // Again: all present, nothing written.
    const again = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    expect([...again.manifests, ...again.tags].every((d) => d.action === 'present')).toBe(true);
  });

  test('garbage-collect swept a blob: that manifest and its tag are refused; the others come back', async () => {
    const w = pruned();
    w.reg.vol.rmSync(w.reg.lay.blob(w.b.layers[1]!.digest), { recursive: true });
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    const b = plan.tags.find((t) => t.tag === 'b');
    expect(b?.action).toBe('refused');
    expect(b?.reason).toMatch(new RegExp(`its manifest cannot come back: blob ${w.b.layers[1]!.digest} of ${w.b.manifest.digest} is gone`));
    expect(plan.manifests.find((m) => m.digest === w.b.manifest.digest)?.action).toBe('refused');
    expect(plan.tags.find((t) => t.tag === 'a')?.action).toBe('restore');
    const out = await applyRestore(w.reg.fs, w.reg.lay, plan);
    expect(out.tags.find((t) => t.tag === 'b')?.result).toBe('refused');
    expect(w.reg.exists(w.reg.lay.tag(app, T('b')))).toBe(false);
    expect(w.reg.exists(w.reg.lay.revision(app, w.b.manifest.digest))).toBe(false);
  });

  test('a manifest blob gone: refused', async () => {
    const w = pruned();
    w.reg.vol.rmSync(w.reg.lay.blob(w.a.manifest.digest), { recursive: true });
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    expect(plan.manifests.find((m) => m.digest === w.a.manifest.digest)?.reason).toBe(`manifest blob ${w.a.manifest.digest} is gone (garbage-collect ran)`);
    expect(plan.tags.find((t) => t.tag === 'a')?.action).toBe('refused');
  });

  test('an index whose child lost a layer is refused, with the child (its dependants go with it)', async () => {
    const w = pruned();
    const arm = w.idx.children[1]!;
    w.reg.vol.rmSync(w.reg.lay.blob(arm.layers[0]!.digest), { recursive: true });
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    expect(plan.manifests.find((m) => m.digest === arm.manifest.digest)?.action).toBe('refused');
    expect(plan.manifests.find((m) => m.digest === w.idx.manifest.digest)?.reason).toMatch(new RegExp(`child manifest ${arm.manifest.digest}: blob .* is gone`));
    expect(plan.tags.find((t) => t.tag === 'multi')?.action).toBe('refused');
    // The other child is complete and comes back on its own.
    expect(plan.manifests.find((m) => m.digest === w.idx.children[0]!.manifest.digest)?.action).toBe('restore');
  });

  test('a tag pushed again since is never overwritten; one back on the same digest is present', async () => {
    const w = pruned();
    w.reg.tag('app', 'a', w.b.manifest.digest, now);
    w.reg.tag('app', 'b', w.b.manifest.digest, now);
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    expect(plan.tags.find((t) => t.tag === 'a')).toMatchObject({ action: 'exists', reason: `pushed again since: now points to ${w.b.manifest.digest}; left as is` });
    expect(plan.tags.find((t) => t.tag === 'b')?.action).toBe('present');
    await applyRestore(w.reg.fs, w.reg.lay, plan);
    expect(w.reg.vol.readFileSync(w.reg.lay.tagCurrentLink(app, T('a')), 'utf8')).toBe(w.b.manifest.digest);
    expect(w.reg.vol.statSync(w.reg.lay.tagCurrentLink(app, T('a'))).mtimeMs).toBe(now.getTime());
  });

  test('a push between plan and apply wins (current/link is created with O_EXCL)', async () => {
    const w = pruned();
    const plan = await planRestore(w.reg.fs, w.reg.lay, w.lines);
    w.reg.tag('app', 'a', w.b.manifest.digest, now);
    const out = await applyRestore(w.reg.fs, w.reg.lay, plan);
    expect(out.tags.find((t) => t.tag === 'a')).toMatchObject({ result: 'exists', detail: 'pushed again during restore; left as is' });
    expect(w.reg.vol.readFileSync(w.reg.lay.tagCurrentLink(app, T('a')), 'utf8')).toBe(w.b.manifest.digest);
  });

  test('a tag whose manifest is neither linked nor in the log is refused', async () => {
    const w = pruned();
    const lines = w.lines.filter((l) => !(l.action === 'remove-manifest' && l.digest === w.a.manifest.digest));
    const plan = await planRestore(w.reg.fs, w.reg.lay, lines);
    expect(plan.tags.find((t) => t.tag === 'a')).toMatchObject({ action: 'refused', reason: `manifest ${w.a.manifest.digest} is not in app and not in the log` });
  });

  test('the latest removal of a tag is the one undone', async () => {
    const w = pruned();
    const lines = [tagLine('a', w.b.manifest.digest, daysAgo(now, 90), 'r0'), ...w.lines];
    const plan = await planRestore(w.reg.fs, w.reg.lay, lines);
    expect(plan.tags.filter((t) => t.tag === 'a')).toHaveLength(1);
    expect(plan.tags.find((t) => t.tag === 'a')?.digest).toBe(w.a.manifest.digest);
  });

  test('missing _layers links of a restored manifest are written back', async () => {
    const w = pruned();
    const top = w.a.layers[1]!.digest;
    w.reg.vol.rmSync(w.reg.lay.layer(app, top), { recursive: true });
    await applyRestore(w.reg.fs, w.reg.lay, await planRestore(w.reg.fs, w.reg.lay, w.lines));
    expect(w.reg.vol.readFileSync(w.reg.lay.layerLink(app, top), 'utf8')).toBe(top);
  });

  test('names outside the grammar are ignored and reported', async () => {
    const w = pruned();
    const bad = { ...tagLine('a', w.a.manifest.digest, now), repository: 'App/../x' };
    const plan = await planRestore(w.reg.fs, w.reg.lay, [bad]);
    expect(plan.tags).toEqual([]);
    expect(plan.ignored).toEqual(['App/../x:a']);
    expect(summary(plan.manifests)).toEqual([]);
  });
});

describe('audit log', () => {
  test('appends one line per record, in order, with time, root and run; parse reads them back and reports junk', async () => {
    const reg = new MemRegistry(ROOT);
    let t = 0;
    const log = new AuditLog(reg.fs, '/var/log/regprune.jsonl', { root: ROOT, run: 'r9' }, () => new Date(now.getTime() + 1000 * t++));
    reg.vol.mkdirSync('/var/log', { recursive: true });
    await log.open();
    const d = `sha256:${'a'.repeat(64)}` as Digest;
    log.write({ action: 'remove-tag', repository: 'app', tag: 'v1', digest: d, pushedAt: now.toISOString(), reason: 'older than 30d' });
    log.write({ action: 'remove-manifest', repository: 'app', tag: null, digest: d, pushedAt: null, reason: 'orphan' });
    await log.flush();
    reg.vol.appendFileSync('/var/log/regprune.jsonl', '{"cut off');
    const text = reg.vol.readFileSync('/var/log/regprune.jsonl', 'utf8') as string;
    const lines = text.split('\n');
    // The first line is written when the log is opened: a log that cannot be written fails there.
    expect(JSON.parse(lines[0]!)).toEqual({ time: '2026-11-23T12:00:00.000Z', action: 'run-start', root: ROOT, run: 'r9' });
    expect(JSON.parse(lines[1]!)).toEqual({
      time: '2026-11-23T12:00:01.000Z',
      action: 'remove-tag',
      repository: 'app',
      tag: 'v1',
      digest: d,
      pushedAt: now.toISOString(),
      reason: 'older than 30d',
      root: ROOT,
      run: 'r9',
    });
    const parsed = parseAuditLog(text);
    expect(parsed.lines.map((l) => l.action)).toEqual(['run-start', 'remove-tag', 'remove-manifest']);
    expect(parsed.problems).toEqual([{ line: 4, message: 'not a JSON object' }]);
  });

  test('a log that cannot be opened fails before anything is removed', async () => {
    const reg = new MemRegistry(ROOT);
    const log = new AuditLog(reg.fs, '/nonexistent/dir/log.jsonl', { root: ROOT, run: 'r' }, () => now);
    await expect(log.open()).rejects.toThrow(/--log \/nonexistent\/dir\/log.jsonl: directory \/nonexistent\/dir does not exist/);
  });
});
