/**
 * The metrics of one run, in Prometheus text exposition format, for
 * node_exporter's textfile collector. Pure: the CLI writes the file.
 */
export interface RunMetrics {
  readonly root: string;
  readonly command: 'prune' | 'gc';
  /** Unix seconds when the run ended. */
  readonly finishedAt: number;
  readonly durationSeconds: number;
  /** Exit 0 or 3 (done, with warnings about entries left in place). */
  readonly success: boolean;
  readonly exitCode: number;
  readonly dryRun: boolean;
  readonly tagsRemoved: number;
  readonly manifestsUnlinked: number;
  readonly reclaimableBytes: number;
  readonly gcFreedBytes: number;
  /** Carried over from the previous file when this run failed; undefined when there never was one. */
  readonly lastSuccessAt: number | undefined;
}

/** A label value with `\`, `"` and newlines escaped, as the format requires. */
export function labelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const GAUGES: ReadonlyArray<[name: string, help: string, value: (m: RunMetrics) => number | undefined]> = [
  ['regprune_last_run_timestamp_seconds', 'When the last regprune run ended (Unix time).', (m) => m.finishedAt],
  ['regprune_last_run_success', '1 when the last run succeeded (exit 0, or 3: done with warnings), else 0.', (m) => (m.success ? 1 : 0)],
  ['regprune_last_run_exit_code', 'Exit code of the last run (0 ok, 1 failure, 2 usage/refusal, 3 warnings).', (m) => m.exitCode],
  ['regprune_last_run_dry_run', '1 when the last run was a dry run.', (m) => (m.dryRun ? 1 : 0)],
  ['regprune_last_success_timestamp_seconds', 'When the last successful run ended (Unix time).', (m) => m.lastSuccessAt],
  ['regprune_run_duration_seconds', 'How long the last run took.', (m) => m.durationSeconds],
  ['regprune_tags_removed', 'Tags the last run removed.', (m) => m.tagsRemoved],
  ['regprune_manifests_unlinked', 'Manifests the last run unlinked.', (m) => m.manifestsUnlinked],
  ['regprune_reclaimable_bytes', 'Bytes garbage-collect frees because of the last plan.', (m) => m.reclaimableBytes],
  ['regprune_gc_freed_bytes', 'Bytes garbage-collect freed in the last run.', (m) => m.gcFreedBytes],
];

export function formatMetrics(m: RunMetrics): string {
  const labels = `{root="${labelValue(m.root)}",command="${m.command}"}`;
  let out = '';
  for (const [name, help, value] of GAUGES) {
    const v = value(m);
    if (v === undefined) continue;
    out += `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${labels} ${Number.isInteger(v) ? String(v) : v.toFixed(3)}\n`;
  }
  return out;
}

/** The last-success time in a previous metrics file written for the same root, if there is one. */
export function previousSuccess(text: string, root: string): number | undefined {
  const prefix = `regprune_last_success_timestamp_seconds{root="${labelValue(root)}",`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) return v;
  }
  return undefined;
}
