import { posix } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { RegpruneError, UsageError, errnoCode } from '../model/errors.js';
import type { StorageFs } from '../storage/fs.js';
import { writeMarker } from '../storage/marker.js';
import type { Layout } from '../storage/paths.js';
import { KNOWN_CONFIGS } from './adapters.js';
import type { PreparedGc } from './collect.js';
import { formatArgv, tail } from './process.js';
import type { ProcessRunner } from './process.js';

/** The filesystem driver's default when the config names no rootdirectory. */
export const DEFAULT_ROOTDIRECTORY = '/var/lib/registry';

/** Keys of `storage:` that configure the registry, not a driver. */
const NOT_DRIVERS = new Set(['maintenance', 'cache', 'delete', 'redirect', 'tag']);

export interface ConfiguredStorage {
  readonly driver: string;
  /** Only for the filesystem driver. */
  readonly rootdirectory: string | undefined;
  /** Where the rootdirectory came from, for messages. */
  readonly source: string;
}

/**
 * Which storage a registry config (plus the REGISTRY_* environment that
 * garbage-collect runs with, which overrides the file) points at. Pure.
 */
export function configuredStorage(text: string, env: Readonly<Record<string, string | undefined>>, configPath: string): ConfiguredStorage {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new UsageError(`${configPath}: not a registry config (YAML): ${doc.errors[0]?.message.split('\n')[0] ?? ''}`);
  const root = doc.toJS() as unknown;
  const storage = typeof root === 'object' && root !== null ? (root as Record<string, unknown>).storage : undefined;
  const drivers = isMap(doc.get('storage')) && typeof storage === 'object' && storage !== null ? Object.keys(storage).filter((k) => !NOT_DRIVERS.has(k.toLowerCase())) : [];
  const envDriver = env.REGISTRY_STORAGE;
  const driver = envDriver !== undefined && envDriver !== '' ? envDriver : drivers.length === 1 ? (drivers[0] as string) : undefined;
  if (driver === undefined) {
    throw new UsageError(
      drivers.length === 0 ? `${configPath}: no storage driver configured (storage: filesystem: rootdirectory: ...)` : `${configPath}: more than one storage driver (${drivers.join(', ')})`,
    );
  }
  if (driver !== 'filesystem') {
    return { driver, rootdirectory: undefined, source: envDriver !== undefined && envDriver !== '' ? 'REGISTRY_STORAGE' : `${configPath} storage.${driver}` };
  }
  const envRoot = env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY;
  if (envRoot !== undefined && envRoot !== '') return { driver, rootdirectory: envRoot, source: 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY' };
  const params = (storage as Record<string, unknown>).filesystem;
  const given = typeof params === 'object' && params !== null ? (params as Record<string, unknown>).rootdirectory : undefined;
  if (typeof given === 'string' && given !== '') return { driver, rootdirectory: given, source: `storage.filesystem.rootdirectory in ${configPath}` };
  return { driver, rootdirectory: DEFAULT_ROOTDIRECTORY, source: `the filesystem driver's default (${configPath} names no rootdirectory)` };
}

/** `KEY=value` lines (the output of `env`). */
export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function notFilesystem(s: ConfiguredStorage, where: string): UsageError {
  return new UsageError(`garbage-collect in ${where} would run on the ${s.driver} storage driver (${s.source}), not on a filesystem --root`, {
    hint: s.driver === 's3' ? 'use regprune with the bucket (S3 storage), or the config of the registry whose rootdirectory is --root' : 'pass the config of the registry that serves --root with --gc-config',
  });
}

export interface VerifyInput {
  readonly fs: StorageFs;
  readonly layout: Layout;
  readonly proc: ProcessRunner;
  readonly gc: PreparedGc;
  /** The environment of this process: garbage-collect --gc local runs with it. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Random, [A-Za-z0-9-]: names the marker file. */
  readonly token: string;
}

export interface Verified {
  readonly gc: PreparedGc;
  /** The rootdirectory garbage-collect will work on, as seen where it runs. */
  readonly rootdirectory: string;
  readonly how: string;
}

/**
 * Proves, before anything is removed, that garbage-collect will run on the
 * storage at --root. `local`: the config's rootdirectory resolves (realpath)
 * to the root; when the config was found rather than given, the known config
 * that matches is used. `docker:`/`kubectl:`: a marker file written under
 * the root is read back through the same exec path that runs
 * garbage-collect, at the rootdirectory of the container's config. A
 * mismatch is a UsageError naming both sides.
 */
export async function verifyGcStorage(input: VerifyInput): Promise<Verified> {
  const { gc } = input;
  return gc.runner.mode === 'local' ? verifyLocal(input) : verifyRemote(input);
}

async function realOrUndefined(fs: StorageFs, path: string): Promise<string | undefined> {
  try {
    return await fs.realpath(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR' || errnoCode(err) === 'EACCES') return undefined;
    throw err;
  }
}

async function verifyLocal(input: VerifyInput): Promise<Verified> {
  const { fs, layout: lay, gc, env } = input;
  const root = await fs.realpath(lay.root);
  const candidates = gc.configSource === 'given' ? [gc.config] : [gc.config, ...KNOWN_CONFIGS.filter((c) => c !== gc.config)];
  const seen: string[] = [];
  for (const config of candidates) {
    let text: string;
    try {
      text = await fs.readText(config);
    } catch (err) {
      if (gc.configSource === 'found' && errnoCode(err) === 'ENOENT') continue;
      throw new RegpruneError('GC', `reading the registry config ${config}: ${(err as Error).message}`, { cause: err });
    }
    const s = configuredStorage(text, env, config);
    if (s.driver !== 'filesystem' || s.rootdirectory === undefined) {
      if (gc.configSource === 'given') throw notFilesystem(s, 'this host');
      seen.push(`${config}: ${s.driver} storage`);
      continue;
    }
    const real = await realOrUndefined(fs, s.rootdirectory);
    if (real === root) {
      return { gc: config === gc.config ? gc : { ...gc, config }, rootdirectory: s.rootdirectory, how: `${s.source} is ${root}` };
    }
    seen.push(`${config}: ${s.rootdirectory}${real === undefined ? ' (does not exist here)' : real !== s.rootdirectory ? ` (= ${real})` : ''} (${s.source})`);
  }
  throw new UsageError(
    `--gc local: garbage-collect would not run on --root ${root}: ${seen.length === 1 ? `its storage is ${seen[0]}` : `no config found matches it: ${seen.join('; ')}`}`,
    { hint: `pass the config of the registry whose rootdirectory is ${root} with --gc-config PATH, or the right --root` },
  );
}

async function verifyRemote(input: VerifyInput): Promise<Verified> {
  const { fs, layout: lay, proc, gc } = input;
  const where = gc.runner.where;
  const readArgv = gc.runner.read(gc.config);
  const r = await proc.run(readArgv);
  if (!r.started || r.exitCode !== 0) {
    throw new RegpruneError('GC', `reading the registry config in ${where}: ${formatArgv(readArgv)}: ${r.started ? `exit code ${r.exitCode}: ${tail(r.stderr)}` : r.message}`);
  }
  // The environment the registry process runs with overrides the file; an image without `env` leaves the file as the answer.
  const e = await proc.run(gc.runner.environment());
  const env = e.started && e.exitCode === 0 ? parseEnv(e.stdout) : {};
  const s = configuredStorage(r.stdout, env, gc.config);
  if (s.driver !== 'filesystem' || s.rootdirectory === undefined) throw notFilesystem(s, where);
  const marker = await writeMarker(fs, lay, input.token);
  try {
    const inside = posix.join(s.rootdirectory, marker.relative);
    const argv = gc.runner.read(inside);
    const seen = await proc.run(argv);
    if (seen.started && seen.exitCode === 0 && seen.stdout === marker.content) {
      return { gc, rootdirectory: s.rootdirectory, how: `marker ${marker.relative} written under ${lay.root} read back as ${inside} in ${where}` };
    }
    const answer = !seen.started ? seen.message : seen.exitCode === 0 ? 'a different file' : tail(seen.stderr) || `exit code ${seen.exitCode}`;
    throw new UsageError(
      `--gc ${gc.runner.mode}: garbage-collect in ${where} would run on ${s.rootdirectory} (${s.source}), which is not the storage at --root ${lay.root}: ` +
        `the marker regprune wrote to ${marker.path} is not at ${inside} there (${formatArgv(argv)}: ${answer})`,
      { hint: `name the container or pod that serves ${lay.root} (its volume mounted at ${s.rootdirectory}), or pass the --root that is mounted there` },
    );
  } finally {
    await marker.remove();
  }
}

/** The known config on this host whose filesystem rootdirectory is `root` (realpath), if any. */
export async function findLocalConfig(fs: StorageFs, root: string, env: Readonly<Record<string, string | undefined>>): Promise<string | undefined> {
  const real = await realOrUndefined(fs, root);
  for (const config of KNOWN_CONFIGS) {
    let text: string;
    try {
      text = await fs.readText(config);
    } catch {
      continue;
    }
    try {
      const s = configuredStorage(text, env, config);
      if (s.rootdirectory !== undefined && real !== undefined && (await realOrUndefined(fs, s.rootdirectory)) === real) return config;
    } catch {
      // not a config we can read: not the one
    }
  }
  return undefined;
}
