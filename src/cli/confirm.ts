import type { Plan } from '../plan/plan.js';
import { humanBytes, plural, pushedCell, table } from './render.js';

const TOP_REPOSITORIES = 5;
const FIRST_TAGS = 8;

/**
 * What the question is about, before it is asked: the totals, the
 * repositories losing the most tags, the first few tags. (Bytes per
 * repository are not shown: a blob shared by several repositories is freed
 * only when none keeps it, so it belongs to no single one.)
 */
export function confirmationText(plan: Plan, now: Date): string {
  const perRepo = new Map<string, { tags: number; manifests: number }>();
  for (const t of plan.tags) {
    const e = perRepo.get(t.repository) ?? { tags: 0, manifests: 0 };
    e.tags++;
    perRepo.set(t.repository, e);
  }
  for (const m of plan.manifests) {
    const e = perRepo.get(m.repository) ?? { tags: 0, manifests: 0 };
    e.manifests++;
    perRepo.set(m.repository, e);
  }
  const repos = [...perRepo].sort((a, b) => b[1].tags - a[1].tags || b[1].manifests - a[1].manifests || (a[0] < b[0] ? -1 : 1));
  const lines: string[] = [];
  lines.push(`About to change ${plan.root}:`);
  lines.push(`  remove  ${plural(plan.tags.length, 'tag')} in ${plural(perRepo.size, 'repository', 'repositories')}`);
  lines.push(`  unlink  ${plural(plan.manifests.length, 'manifest')} nothing kept references`);
  const total = plan.reclaimableBytes + plan.unreferencedBytes;
  lines.push(
    `  free    ${plan.exact ? '' : 'at least '}${humanBytes(total)} (${plural(plan.reclaimableBlobs + plan.unreferencedBlobs, 'blob')}) when garbage-collect runs` +
      (plan.unreferencedBlobs > 0 ? `: ${humanBytes(plan.reclaimableBytes)} because of this run, ${humanBytes(plan.unreferencedBytes)} already unreferenced` : ''),
  );
  lines.push('');
  lines.push(repos.length > TOP_REPOSITORIES ? `Most affected repositories (${TOP_REPOSITORIES} of ${repos.length}):` : 'Repositories:');
  const topRows = repos.slice(0, TOP_REPOSITORIES).map(([name, e]) => ['  ' + name, String(e.tags), String(e.manifests)]);
  lines.push(table(['  REPOSITORY', 'TAGS', 'MANIFESTS'], topRows, [1, 2]).trimEnd());
  if (plan.tags.length > 0) {
    lines.push('');
    lines.push(plan.tags.length > FIRST_TAGS ? `First ${FIRST_TAGS} of ${plural(plan.tags.length, 'tag')}:` : 'Tags:');
    const tagRows = plan.tags.slice(0, FIRST_TAGS).map((t) => [`  ${t.repository}:${t.tag}`, pushedCell(t.pushedAt, now), t.reason]);
    lines.push(table(['  TAG', 'PUSHED', 'REASON'], tagRows).trimEnd());
    if (plan.tags.length > FIRST_TAGS) lines.push(`  ... and ${plan.tags.length - FIRST_TAGS} more (--dry-run lists them all)`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

export function confirmationQuestion(plan: Plan): string {
  const repoCount = new Set(plan.tags.map((t) => t.repository)).size;
  return `Remove ${plural(plan.tags.length, 'tag')} from ${plural(repoCount, 'repository', 'repositories')}? [y/N] `;
}
