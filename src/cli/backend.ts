import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseRegistryConfig, s3KeyPrefix, type S3StorageConfig, type StorageConfig } from '../config/registry-config.js';
import { UsageError, errnoCode } from '../model/errors.js';
import type { Layout } from '../storage/paths.js';
import { resolveRoot } from '../storage/root.js';
import { openS3, type ObjectStore } from '../storage/s3/client.js';
import { openS3View } from '../storage/s3/view.js';
import { filesystemDriver, s3Driver, type StorageDriver } from '../storage/driver.js';
import type { CliDeps } from './deps.js';
import { rootDir } from './options.js';

/** Where the registry's tree is: a directory (filesystem driver) or a bucket (s3 driver). */
export type Backend =
  | { readonly kind: 'filesystem'; readonly lay: Layout }
  | {
      readonly kind: 's3';
      readonly config: S3StorageConfig;
      readonly store: ObjectStore;
      /** Key prefix of the rootdirectory: `''` or `reg/`. */
      readonly rootPrefix: string;
      /** `s3://bucket/rootdirectory`, for people and the JSON `root`. */
      readonly location: string;
    };

export function addConfigOption(cmd: Command): Command {
  return cmd.option(
    '--config <file>',
    "the registry's own config.yml: its storage section (filesystem or s3) and REGISTRY_STORAGE_* environment, read as the registry reads them (instead of --root)",
  );
}

/** Reads and parses `--config FILE` with the environment the CLI was given. */
export async function readStorageConfig(file: string, deps: CliDeps): Promise<StorageConfig> {
  if (file.trim() === '') throw new UsageError('--config: empty path');
  const path = isAbsolute(file) ? file : resolve(deps.cwd, file);
  let text: string;
  try {
    text = await deps.fs.readText(path);
  } catch (err) {
    const why = errnoCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new UsageError(`--config ${path}: cannot read the registry configuration: ${why}`);
  }
  return parseRegistryConfig(text, deps.env, path);
}

/** `--config` or `--root` (not both): the tree to work on. */
export async function openBackend(opts: { root?: string; config?: string }, deps: CliDeps): Promise<Backend> {
  if (opts.config === undefined) return { kind: 'filesystem', lay: await resolveRoot(deps.fs, rootDir(opts, deps)) };
  if (opts.root !== undefined) {
    throw new UsageError('--config and --root both say where the storage is; give one', {
      hint: "--config reads the root (or the bucket) from the registry's own configuration",
    });
  }
  const config = await readStorageConfig(opts.config, deps);
  if (config.driver === 'filesystem') {
    return { kind: 'filesystem', lay: await resolveRoot(deps.fs, rootDir({ root: config.rootdirectory }, deps)) };
  }
  const rootPrefix = s3KeyPrefix(config.rootdirectory);
  return {
    kind: 's3',
    config,
    store: await openS3(config),
    rootPrefix,
    location: `s3://${config.bucket}/${rootPrefix.replace(/\/$/, '')}`,
  };
}

/**
 * Where manifest bytes read from a bucket are kept between runs:
 * $REGPRUNE_CACHE_DIR, else $XDG_CACHE_HOME/regprune, else ~/.cache/regprune.
 */
export function cacheDir(deps: CliDeps): string | undefined {
  const env = deps.env;
  const base = env['REGPRUNE_CACHE_DIR'] ?? (env['XDG_CACHE_HOME'] !== undefined ? `${env['XDG_CACHE_HOME']}/regprune` : env['HOME'] !== undefined ? `${env['HOME']}/.cache/regprune` : undefined);
  if (base === undefined || base === '') return undefined;
  return isAbsolute(base) ? base : resolve(deps.cwd, base);
}

/**
 * `--config` or `--root`: the storage driver every command reads through. On
 * s3, the bucket is listed once here (the snapshot walk, graph and plan read).
 */
export async function openDriver(
  opts: { root?: string; config?: string },
  deps: CliDeps,
  onProgress?: (p: { keys: number }) => void,
): Promise<StorageDriver> {
  const backend = await openBackend(opts, deps);
  if (backend.kind === 'filesystem') return filesystemDriver(deps.readFs ?? deps.fs, backend.lay);
  const dir = cacheDir(deps);
  try {
    const view = await openS3View(backend.store, backend.rootPrefix, {
      ...(dir === undefined ? {} : { manifestCache: { fs: deps.fs, dir: `${dir}/s3-manifests` } }),
      ...(onProgress === undefined ? {} : { onProgress }),
    });
    return s3Driver(backend.store, view, backend.location, backend.rootPrefix);
  } catch (err) {
    backend.store.close();
    throw err;
  }
}
