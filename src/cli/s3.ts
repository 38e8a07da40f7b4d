import { formatArgv } from '../gc/process.js';
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
