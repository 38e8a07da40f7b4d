import { parseDocument, parse as parseYaml, isScalar } from 'yaml';
import { UsageError } from '../model/errors.js';

/**
 * The storage section of the registry's own config.yml, read as the registry
 * (distribution 2.8) reads it, with its `REGISTRY_…` environment overrides.
 *
 * Facts this follows (distribution configuration/parser.go and the drivers'
 * FromParameters):
 * - The file is YAML 1.1 (go-yaml v2): `yes`/`on`/`y` are booleans. `version`
 *   must be `0.1`.
 * - `storage` is a map of driver name to parameters, or a plain string naming
 *   a driver without parameters. `maintenance`, `cache`, `delete`, `redirect`
 *   and `tag` are settings, not drivers; more than one driver is refused.
 * - Environment: every variable named `REGISTRY_…` is applied in lexical order
 *   of names (so `REGISTRY_STORAGE` before `REGISTRY_STORAGE_S3_BUCKET`),
 *   split on `_`. `REGISTRY_STORAGE=s3` replaces the whole storage section;
 *   `REGISTRY_STORAGE_<DRIVER>_<KEY>=v` sets `<key>` (lowercased) under the
 *   driver whose name matches case-insensitively, creating the driver entry
 *   if there is none (so an override for another driver adds a second one).
 *   Values are YAML (`true` is a boolean, `5` a number).
 * - Drivers read their parameters by exact lowercase key: `regionEndpoint:`
 *   in the file is not `regionendpoint`. Booleans accept YAML booleans or the
 *   strings Go's strconv.ParseBool accepts; other values are stringified.
 */

export type StorageConfig = FilesystemStorageConfig | S3StorageConfig;

export interface FilesystemStorageConfig {
  readonly driver: 'filesystem';
  readonly rootdirectory: string;
}

export interface S3StorageConfig {
  readonly driver: 's3';
  readonly bucket: string;
  readonly region: string;
  /** Custom endpoint URL (MinIO, Ceph, Swift...); undefined for AWS. */
  readonly regionendpoint: string | undefined;
  /** As written; object keys are `<rootdirectory without leading/trailing slashes>/docker/registry/v2/...`. */
  readonly rootdirectory: string;
  /** Undefined (with secretkey) when the config has no keys: the standard AWS credential chain applies. */
  readonly accesskey: string | undefined;
  readonly secretkey: string | undefined;
  readonly secure: boolean;
  readonly skipverify: boolean;
  readonly v4auth: boolean;
  /**
   * Path-style requests. Explicit `forcepathstyle` (v3) wins; otherwise path
   * style whenever `regionendpoint` is set, as the 2.8 driver does.
   */
  readonly forcepathstyle: boolean;
}

/** The filesystem driver's default rootdirectory. */
export const DEFAULT_FILESYSTEM_ROOT = '/var/lib/registry';
const SUPPORTED_VERSION = '0.1';
const ENV_PREFIX = 'REGISTRY_';
/** Keys of `storage` that configure the registry, not a driver. */
const STORAGE_SETTINGS = new Set(['maintenance', 'cache', 'delete', 'redirect', 'tag']);

type Params = Record<string, unknown>;
type Storage = Record<string, Params | null>;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function yamlValue(text: string): unknown {
  return parseYaml(text, { version: '1.1' }) as unknown;
}

/** What go-yaml does unmarshalling into the registry's Storage type. */
function toStorage(value: unknown, what: string, fail: (msg: string) => never): Storage {
  if (value === null || value === undefined) return {};
  if (typeof value === 'string') return { [value]: {} };
  if (!isMap(value)) fail(`${what}: expected a map of storage driver to parameters, or a driver name`);
  const storage: Storage = {};
  for (const [key, params] of Object.entries(value)) {
    if (params !== null && !isMap(params)) fail(`${what}: storage.${key} must be a map of parameters`);
    storage[key] = params;
  }
  return storage;
}

function drivers(storage: Storage): string[] {
  return Object.keys(storage).filter((k) => !STORAGE_SETTINGS.has(k));
}

/** parser.go's overwriteMap over map[string]Parameters, then map[string]interface{}. */
function overwrite(map: Record<string, unknown>, path: readonly string[], payload: string): void {
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length > 0) {
    for (const key of Object.keys(map)) {
      if (key.toUpperCase() !== head) continue;
      const existing = map[key];
      if (existing === null || existing === undefined) break;
      // A nested map is descended; a scalar cannot hold a deeper key and is left as is.
      if (isMap(existing)) overwrite(existing, rest, payload);
      return;
    }
    const created: Record<string, unknown> = {};
    overwrite(created, rest, payload);
    map[head.toLowerCase()] = created;
    return;
  }
  map[head.toLowerCase()] = yamlValue(payload) ?? null;
}

/** fmt.Sprint of a YAML scalar; undefined for a missing or null value. */
function text(params: Params, key: string, fail: (msg: string) => never, driver: string): string | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return fail(`storage.${driver}.${key} must be a single value`);
}

function bool(params: Params, key: string, fallback: boolean, fail: (msg: string) => never, driver: string): boolean {
  const v = params[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    // strconv.ParseBool
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  }
  return fail(`storage.${driver}.${key} should be a boolean, not ${JSON.stringify(v)}`);
}

/**
 * Parses the registry's config.yml (`text`, read from `source`) with the
 * environment `env` as the registry would, and returns its storage driver
 * settings. Throws a UsageError naming the file and the setting.
 */
export function parseRegistryConfig(text_: string, env: Readonly<Record<string, string | undefined>>, source: string): StorageConfig {
  const fail = (msg: string): never => {
    throw new UsageError(`--config ${source}: ${msg}`);
  };
  const doc = parseDocument(text_, { version: '1.1', uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) fail(`not valid YAML: ${doc.errors[0]!.message}`);
  const top = doc.toJS() as unknown;
  if (!isMap(top)) fail('expected a YAML map (the registry configuration file)');
  const root = top as Record<string, unknown>;

  // go-yaml reads `version: 0.1` into a string field as written.
  const versionNode = doc.get('version', true);
  const version = isScalar(versionNode) && typeof versionNode.source === 'string' ? versionNode.source : String(root['version'] ?? '');
  if (version !== SUPPORTED_VERSION) {
    fail(`unsupported version ${JSON.stringify(version)} (the registry reads version ${SUPPORTED_VERSION} only)`);
  }

  let storage = toStorage(root['storage'], 'storage', fail);
  const names = Object.keys(env)
    .filter((k) => k.startsWith(ENV_PREFIX) && env[k] !== undefined)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const path = name.split('_').slice(1);
    if (path[0] !== 'STORAGE') continue;
    const payload = env[name] as string;
    if (path.length === 1) {
      storage = toStorage(yamlValue(payload), `environment ${name}`, fail);
    } else {
      overwrite(storage as Record<string, unknown>, path.slice(1), payload);
    }
  }

  const found = drivers(storage);
  if (found.length === 0) fail('no storage driver configured (storage.filesystem or storage.s3)');
  if (found.length > 1) {
    fail(`multiple storage drivers specified in configuration or environment: ${found.join(', ')} (the registry refuses to start)`);
  }
  const driver = found[0]!;
  const params: Params = storage[driver] ?? {};
  switch (driver) {
    case 'filesystem': {
      const rootdirectory = text(params, 'rootdirectory', fail, driver) ?? DEFAULT_FILESYSTEM_ROOT;
      if (rootdirectory === '') fail('storage.filesystem.rootdirectory is empty');
      return { driver: 'filesystem', rootdirectory };
    }
    case 's3': {
      const region = text(params, 'region', fail, driver);
      if (region === undefined || region === '') fail('storage.s3.region is missing (the registry requires it)');
      const bucket = text(params, 'bucket', fail, driver);
      if (bucket === undefined || bucket === '') fail('storage.s3.bucket is missing (the registry requires it)');
      const regionendpoint = text(params, 'regionendpoint', fail, driver) || undefined;
      const accesskey = text(params, 'accesskey', fail, driver) || undefined;
      const secretkey = text(params, 'secretkey', fail, driver) || undefined;
      if ((accesskey === undefined) !== (secretkey === undefined)) {
        fail(`storage.s3.${accesskey === undefined ? 'accesskey' : 'secretkey'} is missing while ${accesskey === undefined ? 'secretkey' : 'accesskey'} is set`);
      }
      return {
        driver: 's3',
        bucket: bucket!,
        region: region!,
        regionendpoint,
        rootdirectory: text(params, 'rootdirectory', fail, driver) ?? '',
        accesskey,
        secretkey,
        secure: bool(params, 'secure', true, fail, driver),
        skipverify: bool(params, 'skipverify', false, fail, driver),
        v4auth: bool(params, 'v4auth', true, fail, driver),
        forcepathstyle: bool(params, 'forcepathstyle', regionendpoint !== undefined, fail, driver),
      };
    }
    default:
      return fail(
        `storage driver ${JSON.stringify(driver)} is not supported by regprune (filesystem and s3 are)` +
          (['gcs', 'azure', 'swift', 'inmemory', 'oss'].includes(driver) ? '' : '; nor is it one the registry knows'),
      );
  }
}

/**
 * The key prefix of the tree in the bucket: the s3 driver trims slashes from
 * `rootdirectory` and joins it to `/docker/registry/v2/...`.
 */
export function s3KeyPrefix(rootdirectory: string): string {
  const trimmed = rootdirectory.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
