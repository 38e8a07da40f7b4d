import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDuration, parseInstant } from '../model/duration.js';
import { UsageError } from '../model/errors.js';
import { parseTagRef } from '../model/names.js';
import { parseRepoGlob, parseTagPattern } from '../model/pattern.js';
import type { Selector } from '../policy/selector.js';
import type { CliDeps } from './deps.js';

export const DEFAULT_ROOT = '/var/lib/registry';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addRootOption(cmd: Command): Command {
  return cmd.option(
    '--root <dir>',
    `storage rootdirectory of the registry's filesystem driver, or its docker/registry/v2 dir (default: $REGPRUNE_ROOT or ${DEFAULT_ROOT}; Debian's docker-registry uses /var/lib/docker-registry)`,
  );
}

export function rootDir(opts: { root?: string }, deps: CliDeps): string {
  const given = opts.root ?? deps.env.REGPRUNE_ROOT ?? DEFAULT_ROOT;
  if (given.trim() === '') throw new UsageError('--root: empty path');
  return isAbsolute(given) ? resolve(given) : resolve(deps.cwd, given);
}

export function addRepoOptions(cmd: Command): Command {
  return cmd
    .option('--repo <glob>', 'only repositories matching GLOB (repeatable; * within a path component, ** across: team/*, **)', collect)
    .option('--exclude-repo <glob>', 'skip repositories matching GLOB (repeatable)', collect);
}

export function addSelectorOptions(cmd: Command): Command {
  return addRepoOptions(cmd)
    .option('--tag <pattern>', "tags matching a glob ('3.3.0-alpha.*') or /regex/ (repeatable)", collect)
    .option('--older-than <duration>', 'tags last pushed longer ago than DURATION: 90m, 12h, 30d, 2w, 6mo, 1y')
    .option('--before <date>', 'tags last pushed before DATE (ISO 8601: 2026-09-01 or 2026-09-01T12:00:00Z)')
    .option('--keep <pattern>', 'never remove tags matching PATTERN (glob or /regex/; repeatable)', collect)
    .option('--keep-last <n>', 'never remove the N most recently pushed tags of each repository')
    .option('--no-keep-latest', "allow removing tags named 'latest' (kept by default)");
}

export interface RepoOptionValues {
  repo?: string[];
  excludeRepo?: string[];
}

export interface SelectorOptionValues extends RepoOptionValues {
  tag?: string[];
  olderThan?: string;
  before?: string;
  keep?: string[];
  keepLast?: string;
  keepLatest: boolean;
}

export function parseRepoFilter(opts: RepoOptionValues): { repos: Selector['repos']; excludeRepos: Selector['excludeRepos'] } {
  return {
    repos: (opts.repo ?? []).map((g) => parseRepoGlob(g, '--repo')),
    excludeRepos: (opts.excludeRepo ?? []).map((g) => parseRepoGlob(g, '--exclude-repo')),
  };
}

export function parseKeepLast(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`--keep-last ${JSON.stringify(text)}: expected a whole number of tags, 0 or more`);
  return Number(text.trim());
}

/** Parses the selection flags and positional refs into a Selector (usage errors name the argument). */
export function parseSelector(refs: readonly string[], opts: SelectorOptionValues): Selector {
  if (opts.olderThan !== undefined && opts.before !== undefined) {
    throw new UsageError('--older-than and --before both give a push-time cutoff; use one of them');
  }
  const keepLast = parseKeepLast(opts.keepLast);
  const olderThan = opts.olderThan === undefined ? undefined : parseDuration(opts.olderThan, '--older-than');
  const before = opts.before === undefined ? undefined : parseInstant(opts.before, '--before');
  return {
    refs: refs.map(parseTagRef),
    ...parseRepoFilter(opts),
    tags: (opts.tag ?? []).map((p) => parseTagPattern(p, '--tag')),
    ...(olderThan === undefined ? {} : { olderThan }),
    ...(before === undefined ? {} : { before }),
    keep: (opts.keep ?? []).map((p) => parseTagPattern(p, '--keep')),
    ...(keepLast === undefined ? {} : { keepLast }),
    keepLatest: opts.keepLatest,
  };
}

/** Table flags for people and scripts: `--no-headers`, `--no-trunc`. */
export function addTableOptions(cmd: Command): Command {
  return cmd
    .option('--no-headers', 'print the table without its header line')
    .option('--no-trunc', 'full digests, and no cutting of long cells to fit 100 columns');
}

export interface TableOptionValues {
  headers: boolean;
  trunc: boolean;
}

/** What the table flags mean for render.table(). */
export function tableLook(opts: Partial<TableOptionValues>): { noHeaders: boolean; full: boolean } {
  return { noHeaders: opts.headers === false, full: opts.trunc === false };
}
