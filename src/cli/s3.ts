import { isAbsolute, resolve } from 'node:path';
import { formatArgv } from '../gc/process.js';
import { listBlobSizes } from '../storage/s3/blobs.js';
import { acquireS3Lock, type S3LockTarget } from '../storage/s3/lock.js';
import type { BucketStorage } from './commands/gc.js';
import type { LockHost } from '../storage/lock.js';
import type { CliDeps } from './deps.js';
import type { NextStep } from './nextstep.js';

/** This process, for a lock. */
export function lockHost(deps: CliDeps): LockHost {
  return { pid: deps.pid, hostname: deps.run.hostname, now: deps.now(), isAlive: (pid) => deps.run.isAlive(pid) };
}

/** After a prune on a bucket: garbage-collect with the same config file, which the registry's s3 driver reads too. */
export function s3NextStep(config: string): NextStep {
  return {
    regprune: `regprune gc local --config ${formatArgv([config])}`,
    byHand: [formatArgv(['registry', 'garbage-collect', config]), 'restart every registry replica'],
    placeholder: undefined,
  };
}

/** A bucket for RunSession: the lock on it, its blob store measured from a listing, the config garbage-collect must use. */
export function bucketStorage(target: S3LockTarget, configPath: string, host: LockHost): BucketStorage {
  return {
    location: target.location,
    configPath,
    lock: () => acquireS3Lock(target, host),
    blobSizes: async () => (await listBlobSizes(target.store, target.rootPrefix)).sizes,
  };
}

/** `--config FILE` as an absolute path (what garbage-collect is given). */
export function configPathOf(file: string, deps: CliDeps): string {
  return isAbsolute(file) ? file : resolve(deps.cwd, file);
}
