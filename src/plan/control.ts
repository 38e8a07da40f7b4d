import { RegpruneError } from '../model/errors.js';
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

/**
 * The order every driver's apply keeps: repository by repository (`repositories` at a
 * time, in name order), a repository's tags first (four at a time), then its planned
 * manifests and leftover revision dirs together, which are re-checked against what the
 * repository holds after its tags went. `removeTag` returns nothing for a tag it skipped.
 */
export async function applyByRepository(
  plan: Pick<Plan, 'tags' | 'manifests'> & { readonly leftovers?: Plan['leftovers'] },
  repositories: number,
  removeTag: (t: PlannedTag) => Promise<TagOutcome | undefined>,
  removeManifests: (repository: string, planned: readonly PlannedManifest[]) => Promise<ManifestOutcome[]>,
): Promise<{ tags: TagOutcome[]; manifests: ManifestOutcome[] }> {
  const tagsByRepo = groupByRepository(plan.tags);
  const manifestsByRepo = groupByRepository([...plan.manifests, ...(plan.leftovers ?? [])]);
  const names = [...new Set([...tagsByRepo.keys(), ...manifestsByRepo.keys()])].sort();
  const results = await mapLimit(names, Math.max(1, repositories), async (name) => {
    const tags = (await mapLimit(tagsByRepo.get(name) ?? [], 4, removeTag)).filter((o): o is TagOutcome => o !== undefined);
    const planned = manifestsByRepo.get(name) ?? [];
    const manifests = planned.length === 0 ? [] : await removeManifests(name, planned);
    return { tags, manifests };
  });
  return { tags: results.flatMap((r) => r.tags), manifests: results.flatMap((r) => r.manifests) };
}
