import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGcOutput } from '../../src/gc/output.js';
import type { Digest } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { runRegprune, type RunResult } from './cli.js';
import { blobDigests, blobStoreBytes, tagsOnDisk } from './disk.js';
import { prng, writeTree, type OracleTree } from './oracle-tree.js';
import { findRegistryBinary, registryConfig, runGarbageCollect, type CommandResult } from './registry.js';

/**
 * The differential oracle: regprune against the registry's own
 * `garbage-collect --dry-run` on generated trees (test/helpers/oracle-tree.ts).
 * Every check returns disagreements as text instead of throwing, so a long
 * run can list them all; the test asserts the list is empty.
 */

/** What one `garbage-collect --dry-run` said. */
export interface GcView {
  readonly run: CommandResult;
  /** Exit 0 and a summary line: it read every manifest. */
  readonly ok: boolean;
  readonly eligible: Set<Digest>;
  /** Per repository: the manifests it marked (its revisions), each with the references it marked for it, in order. */
  readonly manifests: Map<string, Map<Digest, Digest[]>>;
}

const MARK_MANIFEST = /^(.+): marking manifest (sha256:[a-f0-9]{64})\s*$/;
const MARK_BLOB = /^(.+): marking blob (sha256:[a-f0-9]{64})\s*$/;

/**
 * 2.8 marks one revision at a time: `<repo>: marking manifest <d>`, then a
 * `<repo>: marking blob <x>` line for each reference it read from that
 * manifest (index children included). So the lines give the registry's own
 * edges.
 */
export function parseGcView(run: CommandResult): GcView {
  const parsed = parseGcOutput(run.stdout);
  const manifests = new Map<string, Map<Digest, Digest[]>>();
  let current: Digest[] | undefined;
  let currentRepo = '';
  for (const line of run.stdout.split('\n')) {
    const m = MARK_MANIFEST.exec(line);
    if (m !== null) {
      const repo = m[1] as string;
      const byRepo = manifests.get(repo) ?? new Map<Digest, Digest[]>();
      manifests.set(repo, byRepo);
      current = [];
      currentRepo = repo;
      byRepo.set(m[2] as Digest, current);
      continue;
    }
    const b = MARK_BLOB.exec(line);
    if (b !== null && current !== undefined && b[1] === currentRepo) current.push(b[2] as Digest);
  }
  return { run, ok: run.exitCode === 0 && parsed.summary, eligible: new Set(parsed.eligibleBlobs), manifests };
}

export async function blobSizes(root: string): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  for (const d of await blobDigests(root)) out.set(d as Digest, (await stat(layout(root).blobData(d as Digest))).size);
  return out;
}

const sum = (digests: Iterable<Digest>, sizes: Map<Digest, number>) => {
  let total = 0;
  for (const d of digests) total += sizes.get(d) ?? 0;
  return total;
};

/** Digests from a JSON list of `{digest, size}` (or of digests), or undefined when the field is not such a list. */
function digestList(v: unknown): Set<Digest> | undefined {
  if (!Array.isArray(v)) return undefined;
  const out = new Set<Digest>();
  for (const x of v) {
    if (typeof x === 'string') out.add(x as Digest);
    else if (typeof x === 'object' && x !== null && typeof (x as { digest?: unknown }).digest === 'string') out.add((x as { digest: Digest }).digest);
    else return undefined;
  }
  return out;
}

const setDiff = (a: Set<Digest>, b: Set<Digest>) => [...a].filter((x) => !b.has(x)).sort();

export interface OracleRun {
  readonly tree: OracleTree;
  readonly disagreements: string[];
  /** garbage-collect aborted on the generated tree (then only the warning checks ran). */
  readonly gcAborted: boolean;
  /** prune claimed exact figures (its JSON has no `"exact": false`). */
  readonly exact: boolean;
  /** du claimed an exact unreferenced figure (no repository `incomplete`). */
  readonly duExact: boolean;
  /** Tags and manifests the prune removed (0 where garbage-collect aborted: no prune then). */
  readonly removed: { readonly tags: number; readonly manifests: number };
  readonly args: string[];
}

export class Oracle {
  private constructor(
    readonly dir: string,
    readonly root: string,
    readonly configPath: string,
  ) {}

  /** One config file and one rootdirectory, reused (emptied) for every tree. */
  static async create(): Promise<Oracle> {
    await findRegistryBinary();
    const dir = await mkdtemp(join(tmpdir(), 'regprune-oracle-'));
    const root = join(dir, 'root');
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, registryConfig({ root, port: 5000, readOnly: false }));
    return new Oracle(dir, root, configPath);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  async gcDryRun(): Promise<GcView> {
    return parseGcView(await runGarbageCollect(this.configPath, ['--dry-run']));
  }

  /** Runs one tree through every check. */
  async check(tree: OracleTree): Promise<OracleRun> {
    const out: string[] = [];
    const say = (s: string) => out.push(s);
    await rm(this.root, { recursive: true, force: true });
    await mkdir(this.root, { recursive: true });
    await writeTree(this.root, tree);
    const root = this.root;
    const args = selection(tree);

    const gc0 = await this.gcDryRun();
    const du = await runRegprune(['du', '--json', '--root', root]);
    const duJson = parseJson(du, 'du', say);

    if (!gc0.ok) {
      // garbage-collect aborts on this tree: regprune must say something is wrong and claim no exact figure.
      const dry = await runRegprune(['prune', ...args, '--dry-run', '--json', '--verbose', '--root', root]);
      const dj = parseJson(dry, 'prune --dry-run', say);
      const abortLine = lastLine(gc0.run.stderr) || lastLine(gc0.run.stdout);
      if (dry.exitCode !== 3) say(`garbage-collect aborts (${abortLine}) but prune --dry-run exits ${dry.exitCode}, not 3 (warnings: ${JSON.stringify(dj?.warnings ?? [])})`);
      if (dj !== undefined && dj.exact !== false) say(`garbage-collect aborts (${abortLine}) but prune --dry-run JSON has exact=${JSON.stringify(dj.exact)}`);
      if (du.exitCode !== 3) say(`garbage-collect aborts (${abortLine}) but du exits ${du.exitCode}, not 3`);
      return { tree, disagreements: out, gcAborted: true, exact: false, duExact: false, removed: { tags: 0, manifests: 0 }, args };
    }

    // The prune runs now, so that its plan (made before it removes anything) can be compared too.
    const tagsBefore = await tagsOnDisk(root);
    const applied = await runRegprune(['prune', ...args, '--yes', '--json', '--verbose', '--root', root]);
    const aj = parseJson(applied, 'prune --yes', say);
    // Where regprune says a figure is a lower bound (a repository it does not fully understand), it is checked as one.
    const duExact = !((duJson?.repositories as Array<{ incomplete?: unknown }> | undefined) ?? []).some((r) => r.incomplete !== undefined);
    const exact = aj?.exact !== false;
    const removed = { tags: ((aj?.tags as unknown[] | undefined) ?? []).length, manifests: ((aj?.manifests as unknown[] | undefined) ?? []).length };
    const differs = (regprune: Set<Digest>, gc: Set<Digest>, exactly: boolean) =>
      exactly ? setDiff(regprune, gc).length + setDiff(gc, regprune).length > 0 : setDiff(regprune, gc).length > 0;

    // (a) the view: what garbage-collect frees now.
    const sizes0 = await blobSizes(root);
    const eligible0 = gc0.eligible;
    const eligible0Bytes = sum(eligible0, sizes0);
    const u = duJson?.unreferenced as { bytes?: number; blobs?: number | unknown[]; digests?: unknown } | unknown[] | undefined;
    const duList = digestList(u) ?? digestList((u as { blobs?: unknown } | undefined)?.blobs) ?? digestList((u as { digests?: unknown } | undefined)?.digests);
    if (duList !== undefined) {
      if (differs(duList, eligible0, duExact)) {
        say(`view: du unreferenced - gc eligible = ${setDiff(duList, eligible0).join(' ')}; gc eligible - du unreferenced = ${setDiff(eligible0, duList).join(' ')}`);
      }
    }
    const uObj = u as { bytes?: number; blobs?: unknown } | undefined;
    if (uObj !== undefined && typeof uObj.bytes === 'number') {
      if (duExact ? uObj.bytes !== eligible0Bytes : uObj.bytes > eligible0Bytes) say(`view${duExact ? '' : ' (lower bound)'}: du says ${uObj.bytes} unreferenced bytes, garbage-collect would free ${eligible0Bytes} (${eligible0.size} blobs: ${[...eligible0].sort().join(' ')})`);
      if (typeof uObj.blobs === 'number' && (duExact ? uObj.blobs !== eligible0.size : uObj.blobs > eligible0.size)) say(`view: du says ${uObj.blobs} unreferenced blobs, garbage-collect ${eligible0.size}`);
    } else if (duList === undefined) {
      say(`view: du --json has no unreferenced figure: ${du.stdout.slice(0, 200)}`);
    }

    // (b) the prediction: ask garbage-collect after the prune.
    if (applied.exitCode !== 0 && applied.exitCode !== 3) say(`prune --yes exited ${applied.exitCode}: ${applied.stderr.trim()}`);
    if (applied.exitCode === 3 && (aj?.warnings as unknown[] | undefined)?.length === 0) say('prune --yes exited 3 without a warning in its JSON');
    const gc1 = await this.gcDryRun();
    if (!gc1.ok) {
      say(`garbage-collect --dry-run fails after the prune (it did not before): ${lastLine(gc1.run.stderr) || lastLine(gc1.run.stdout)}`);
      return { tree, disagreements: out, gcAborted: false, exact, duExact, removed, args };
    }
    const sizes1 = await blobSizes(root);
    const eligible1 = gc1.eligible;
    const eligible1Bytes = sum(eligible1, sizes1);
    if (aj !== undefined) {
      const reclaimList = digestList(aj.reclaimable);
      const unrefList = digestList(aj.unreferenced);
      if (reclaimList !== undefined && unrefList !== undefined) {
        const predicted = new Set([...reclaimList, ...unrefList]);
        const missed = setDiff(eligible1, predicted);
        const extra = setDiff(predicted, eligible1);
        if (exact && missed.length + extra.length > 0) say(`prediction (exact): garbage-collect also frees ${missed.join(' ') || '-'}; predicted but kept ${extra.join(' ') || '-'}`);
        if (!exact && extra.length > 0) say(`prediction (lower bound): predicted but kept by garbage-collect ${extra.join(' ')}`);
      }
      const reclaimable = Number(aj.reclaimableBytes);
      const unreferenced = typeof aj.unreferencedBytes === 'number' ? aj.unreferencedBytes : eligible0Bytes;
      const blobs = Number(aj.reclaimableBlobs) + (typeof aj.unreferencedBlobs === 'number' ? aj.unreferencedBlobs : eligible0.size);
      if (unrefList !== undefined && differs(unrefList, eligible0, exact)) {
        say(`view: prune's unreferenced - gc eligible before = ${setDiff(unrefList, eligible0).join(' ') || '-'}; gc eligible before - prune's unreferenced = ${setDiff(eligible0, unrefList).join(' ') || '-'}`);
      }
      if (typeof aj.unreferencedBytes === 'number' && (exact ? aj.unreferencedBytes !== eligible0Bytes : aj.unreferencedBytes > eligible0Bytes)) {
        say(`prune says ${aj.unreferencedBytes} bytes already unreferenced, garbage-collect --dry-run said ${eligible0Bytes} before the prune`);
      }
      if (exact && reclaimable + unreferenced !== eligible1Bytes) {
        say(`prediction: reclaimable ${reclaimable} + unreferenced ${unreferenced} = ${reclaimable + unreferenced} bytes, garbage-collect would free ${eligible1Bytes}${aj.exact === undefined ? ' (no "exact" field)' : ''}`);
      }
      if (exact && blobs !== eligible1.size) say(`prediction: ${blobs} blobs, garbage-collect would free ${eligible1.size}`);
      if (!exact && reclaimable + unreferenced > eligible1Bytes) say(`prediction (lower bound): ${reclaimable + unreferenced} bytes > ${eligible1Bytes} that garbage-collect frees`);
    }

    // Nothing kept is lost: every manifest a kept tag reaches (by garbage-collect's own edges before the prune) is still marked.
    const tagsAfter = await tagsOnDisk(root);
    const removedTags = new Set(((aj?.tags as Array<{ repository: string; tag: string }> | undefined) ?? []).map((t) => `${t.repository}:${t.tag}`));
    for (const [ref] of tagsBefore) {
      if (removedTags.has(ref) === tagsAfter.has(ref)) say(`tag ${ref}: ${removedTags.has(ref) ? 'reported removed but still on disk' : 'gone but not reported removed'}`);
    }
    for (const [ref, digest] of tagsAfter) {
      const repo = ref.slice(0, ref.lastIndexOf(':'));
      const before = gc0.manifests.get(repo);
      const after = gc1.manifests.get(repo) ?? new Map<Digest, Digest[]>();
      if (before === undefined || !before.has(digest as Digest)) continue; // the tag names no live revision: nothing to keep
      const stack = [digest as Digest];
      const seen = new Set<Digest>();
      while (stack.length > 0) {
        const d = stack.pop() as Digest;
        if (seen.has(d)) continue;
        seen.add(d);
        if (!after.has(d)) say(`lost: ${repo}@${d}, reached from kept tag ${ref}, is no longer marked`);
        for (const r of before.get(d) ?? []) if (before.has(r)) stack.push(r);
      }
    }
    // Untagged referrers of a kept manifest stay.
    for (const r of tree.referrers) {
      const before = gc0.manifests.get(r.repo);
      const after = gc1.manifests.get(r.repo);
      if (before?.has(r.digest) !== true || before.has(r.subject) !== true) continue;
      if (after?.has(r.subject) === true && !after.has(r.digest)) say(`lost: referrer ${r.repo}@${r.digest} of kept ${r.subject}`);
    }

    // The real garbage-collect frees what its dry run said.
    const bytesBefore = await blobStoreBytes(root);
    const real = await runGarbageCollect(this.configPath);
    if (real.exitCode !== 0) say(`garbage-collect failed: ${lastLine(real.stderr)}`);
    const freed = bytesBefore - (await blobStoreBytes(root));
    if (freed !== eligible1Bytes) say(`garbage-collect freed ${freed} bytes, its dry run said ${eligible1Bytes}`);
    return { tree, disagreements: out, gcAborted: false, exact, duExact, removed, args };
  }
}

function lastLine(s: string): string {
  return s.trim().split('\n').pop() ?? '';
}

function parseJson(r: RunResult, what: string, say: (s: string) => void): Record<string, unknown> | undefined {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    say(`${what}: no JSON on stdout (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 300)}`);
    return undefined;
  }
}

/**
 * A random selection over the tree's readable tags: some named tags, now and
 * then a filter (--older-than, --tag, --keep-last) or --untagged.
 */
export function selection(tree: OracleTree): string[] {
  if (tree.args !== undefined) return [...tree.args];
  const rnd = prng(tree.seed * 7919 + 17);
  const args: string[] = [];
  for (const t of tree.tags) if (rnd() < 0.3) args.push(`${t.repo}:${t.tag}`);
  if (rnd() < 0.3) args.push('--untagged');
  if (args.length === 0 || rnd() < 0.2) {
    args.push('--older-than', `${1 + Math.floor(rnd() * 150)}d`);
    if (rnd() < 0.5) args.push('--keep-last', String(Math.floor(rnd() * 3)));
  }
  return args;
}

/** One line per tree for the log: seed, features, what garbage-collect did. */
export function describeRun(r: OracleRun): string {
  return `seed ${r.tree.seed}: ${r.gcAborted ? 'gc aborts; ' : `${r.exact ? '' : 'prune: lower bound; '}${r.duExact ? '' : 'du: lower bound; '}`}${r.tree.tags.length} tags; features ${[...r.tree.features].sort().join(',') || '-'}; args ${r.args.join(' ')}`;
}
