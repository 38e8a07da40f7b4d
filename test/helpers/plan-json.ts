/**
 * `regprune prune --json` as the tests and the S3 benchmark read it, and what
 * must be equal between two plans of the same tree on two backends (a
 * filesystem and a bucket).
 */

interface WarningJson {
  readonly code: string;
  readonly path: string;
  readonly message: string;
}

export interface PlanJson {
  version: number;
  root: string;
  dryRun: boolean;
  createdAt: string;
  tags: Array<{ repository: string; tag: string; digest: string; pushedAt: string; reason: string }>;
  manifests: Array<{ repository: string; digest: string; reason: string }>;
  leftovers: Array<{ repository: string; digest: string; reason: string }>;
  reclaimableBytes: number;
  reclaimableBlobs: number;
  unreferencedBytes: number;
  unreferencedBlobs: number;
  exact: boolean;
  /** With --verbose. */
  reclaimable?: Array<{ digest: string; size: number }>;
  unreferenced?: Array<{ digest: string; size: number }>;
  kept?: Array<{ repository: string; tag: string; reason: string }>;
  missing: string[];
  blocked: Array<{ repository: string; reason: string }>;
  /** On a bucket, also what the listing view answered and the requests by kind. */
  stats: {
    repositories: number;
    tags: number;
    manifests: number;
    keys?: number;
    linksProven?: number;
    linksRead?: number;
    manifestsFetched?: number;
    manifestsCached?: number;
    requests?: Record<string, number>;
    retries?: number;
  };
  warnings: WarningJson[];
  /** A real run: the outcomes by result. */
  results?: { tags: Record<string, number>; manifests: Record<string, number> };
}

export interface ComparableOptions {
  /**
   * A tag's reason, as it must compare (`undefined`: reasons are left out,
   * e.g. `older than 30d` on disk against `pushed before ...` on a bucket).
   * Default: as printed.
   */
  readonly reason?: (reason: string) => string | undefined;
  /** Paths in leftovers, blocked and warnings relative to each plan's root (the roots differ). */
  readonly relativePaths?: boolean;
}

/** Everything of a plan but push times, the root and the request stats. */
export function comparablePlan(p: PlanJson, opts: ComparableOptions = {}) {
  const rel = <T>(v: T): T => (opts.relativePaths === true ? (JSON.parse(JSON.stringify(v).replaceAll(`${p.root}/`, 'ROOT/')) as T) : v);
  const reason = opts.reason ?? ((r: string) => r);
  return {
    tags: p.tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest, reason: reason(t.reason) })),
    manifests: p.manifests,
    reclaimableBytes: p.reclaimableBytes,
    reclaimableBlobs: p.reclaimableBlobs,
    unreferencedBytes: p.unreferencedBytes,
    unreferencedBlobs: p.unreferencedBlobs,
    exact: p.exact,
    leftovers: rel(p.leftovers),
    missing: p.missing,
    blocked: rel(p.blocked),
    counts: { repositories: p.stats.repositories, tags: p.stats.tags, manifests: p.stats.manifests },
    warnings: rel(p.warnings),
  };
}
