import { RegpruneError } from '../model/errors.js';
import { parseDigest, parseRepositoryName, parseTagName, type Digest, type RepositoryName, type TagName } from '../model/names.js';
import { mapLimit } from '../util/limit.js';
import type { ManifestOutcome, Plan, PlannedManifest, PlannedTag, TagOutcome } from './plan.js';

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** What every driver's apply is given to report and to stop by. */
export interface ApplyHooks {
  readonly onOutcome?: (o: TagOutcome | ManifestOutcome) => void;
  readonly beforeRemove?: (entry: PlannedTag | PlannedManifest) => void;
  readonly signal?: AbortSignal;
}

/**
 * The part of an apply that is the same on every driver: outcomes reported as
 * they happen, the write-ahead hook, and stopping (a signal, or a log that
 * cannot be written) after the entries in hand. `halt` is set once nothing
 * more may start; the apply throws it at the end.
 */
export class ApplyControl {
  halt: RegpruneError | undefined;

  constructor(
    private readonly hooks: ApplyHooks,
    /** What the next run finishes (`the journal and the trash`). */
    private readonly leftBehind: string,
  ) {}

  readonly stopping = (): boolean => {
    const signal = this.hooks.signal;
    if (this.halt === undefined && signal?.aborted === true) {
      this.halt = new RegpruneError('INTERRUPTED', `interrupted (${String(signal.reason ?? 'signal')}): the entries in hand were finished, nothing more was removed`, {
        hint: `run the same command again: it finishes what this run left (${this.leftBehind})`,
      });
    }
    return this.halt !== undefined;
  };

  /** Write-ahead: the audit line is flushed before the removal; if it throws, nothing more is removed. */
  readonly ahead = (entry: PlannedTag | PlannedManifest): void => {
    try {
      this.hooks.beforeRemove?.(entry);
    } catch (err) {
      this.halt ??= err instanceof RegpruneError ? err : new RegpruneError('IO', message(err), { cause: err });
      throw this.halt;
    }
  };

  readonly emitTag = (t: PlannedTag, result: TagOutcome['result'], detail?: string): TagOutcome => {
    // Literals, not `{ ...t, result }`: V8 makes spread-plus-extra objects dictionaries, 4x the size.
    const base = { repository: t.repository, tag: t.tag, digest: t.digest, pushedAt: t.pushedAt, reason: t.reason, result };
    const o: TagOutcome = detail === undefined ? base : { ...base, detail };
    this.hooks.onOutcome?.(o);
    return o;
  };

  readonly emitManifest = (m: PlannedManifest, result: ManifestOutcome['result'], detail?: string): ManifestOutcome => {
    const base = { repository: m.repository, digest: m.digest, reason: m.reason, result };
    const o: ManifestOutcome = detail === undefined ? base : { ...base, detail };
    this.hooks.onOutcome?.(o);
    return o;
  };
}

function groupByRepository<T extends { readonly repository: string }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(item.repository);
    if (list === undefined) out.set(item.repository, [item]);
    else list.push(item);
  }
  return out;
}

/** A planned tag's names, parsed (a plan file is input). */
export interface TagNames {
  readonly repo: RepositoryName;
  readonly tag: TagName;
  readonly digest: Digest;
}

/**
 * The order every driver's apply keeps: repository by repository (`repositories` at a
 * time, in name order), a repository's tags first (four at a time), then its planned
 * manifests and leftover revision dirs together, which are re-checked against what the
 * repository holds after its tags went. Names are parsed here (a plan file is input): an
 * entry that does not parse fails without reaching the driver. `removeTag` returns
 * nothing for a tag it skipped.
 */
export async function applyByRepository(
  run: ApplyControl,
  plan: Pick<Plan, 'tags' | 'manifests'> & { readonly leftovers?: Plan['leftovers'] },
  repositories: number,
  removeTag: (t: PlannedTag, names: TagNames) => Promise<TagOutcome | undefined>,
  removeManifests: (repo: RepositoryName, planned: readonly PlannedManifest[], digests: readonly Digest[]) => Promise<ManifestOutcome[]>,
): Promise<{ tags: TagOutcome[]; manifests: ManifestOutcome[] }> {
  const tagsByRepo = groupByRepository(plan.tags);
  const manifestsByRepo = groupByRepository([...plan.manifests, ...(plan.leftovers ?? [])]);
  const names = [...new Set([...tagsByRepo.keys(), ...manifestsByRepo.keys()])].sort();
  const tagOf = async (t: PlannedTag): Promise<TagOutcome | undefined> => {
    let names: TagNames;
    try {
      names = { repo: parseRepositoryName(t.repository), tag: parseTagName(t.tag), digest: parseDigest(t.digest) };
    } catch (err) {
      return run.emitTag(t, 'failed', `invalid plan entry: ${message(err)}`);
    }
    return removeTag(t, names);
  };
  const manifestsOf = async (name: string, planned: readonly PlannedManifest[]): Promise<ManifestOutcome[]> => {
    let repo: RepositoryName;
    let digests: Digest[];
    try {
      repo = parseRepositoryName(name);
      digests = planned.map((m) => parseDigest(m.digest));
    } catch (err) {
      return planned.map((m) => run.emitManifest(m, 'failed', `invalid plan entry: ${message(err)}`));
    }
    return removeManifests(repo, planned, digests);
  };
  const results = await mapLimit(names, Math.max(1, repositories), async (name) => {
    const tags = (await mapLimit(tagsByRepo.get(name) ?? [], 4, tagOf)).filter((o): o is TagOutcome => o !== undefined);
    const planned = manifestsByRepo.get(name) ?? [];
    const manifests = planned.length === 0 ? [] : await manifestsOf(name, planned);
    return { tags, manifests };
  });
  return { tags: results.flatMap((r) => r.tags), manifests: results.flatMap((r) => r.manifests) };
}
