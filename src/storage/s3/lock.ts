import { randomBytes } from 'node:crypto';
import { RegpruneError } from '../../model/errors.js';
import { STATE_DIR } from '../paths.js';
import type { HeldLock, LockHost, LockOwner } from '../lock.js';
import type { ObjectStore, S3ObjectInfo } from './client.js';

/**
 * A lock on a bucket that two runs on different hosts cannot both hold,
 * without conditional writes (Swift's S3 API answers 501 to
 * `If-None-Match: *`; AWS S3 and MinIO honour it, but the lock must not
 * depend on it):
 *
 * 1. write a lock object of our own under `<root>/.regprune/locks/`
 *    (a unique name: nothing is ever overwritten);
 * 2. wait longer than LastModified's resolution (one second), so that any
 *    lock written after our listing has a later LastModified than ours;
 * 3. list the prefix: the live lock with the earliest (LastModified, key)
 *    holds it; every other run deletes its own object and is refused.
 *
 * Two runs that overlap both see both objects in step 3 and agree on the
 * first; a run that starts after the other's listing sorts after it. The
 * order uses the server's clock only (LastModified), never the hosts'.
 *
 * Stale locks: one whose host is this host and whose process is gone is
 * deleted; one older than `ttlMs` (by the server's clock, against our own
 * object's LastModified) is ignored and deleted. What remains (docs/operations.md):
 * the argument needs a listing that shows every object written before it
 * (read-after-write consistent listings: AWS S3 since 2020, MinIO, Ceph RGW;
 * Swift's container listings are updated asynchronously and may lag under load).
 */

export const LOCK_TTL_MS = 6 * 60 * 60 * 1000;
/** Longer than LastModified's one-second resolution, with margin for the PUT itself. */
const SETTLE_MS = 2100;

export interface S3LockOptions {
  readonly ttlMs?: number;
  readonly settleMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

interface LockBody extends LockOwner {
  readonly id: string;
}

function parseBody(body: Buffer): LockBody | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as Partial<LockBody>;
    if (typeof v.pid === 'number' && typeof v.hostname === 'string' && typeof v.startedAt === 'string' && typeof v.id === 'string') return v as LockBody;
  } catch {
    // fall through
  }
  return undefined;
}

const order = (a: S3ObjectInfo, b: S3ObjectInfo) =>
  a.lastModified.getTime() - b.lastModified.getTime() || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

async function listLocks(store: ObjectStore, prefix: string): Promise<S3ObjectInfo[]> {
  const out: S3ObjectInfo[] = [];
  await store.list(prefix, (page) => {
    out.push(...page);
  });
  return out.sort(order);
}

/** The bucket to lock: `rootPrefix` is the rootdirectory's key prefix (`''` or `reg/`). */
export interface S3LockTarget {
  readonly store: ObjectStore;
  readonly location: string;
  readonly rootPrefix: string;
}

export async function acquireS3Lock(driver: S3LockTarget, host: LockHost, options: S3LockOptions = {}): Promise<HeldLock> {
  const store = driver.store;
  const ttl = options.ttlMs ?? LOCK_TTL_MS;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const prefix = `${driver.rootPrefix}${STATE_DIR}/locks/`;
  const id = randomBytes(12).toString('hex');
  const mine = `${prefix}${host.now.getTime().toString().padStart(15, '0')}-${id}`;
  const owner: LockBody = { pid: host.pid, startedAt: host.now.toISOString(), hostname: host.hostname, id };
  await store.put(mine, `${JSON.stringify(owner)}\n`);
  const release = async () => {
    await store.delete(mine);
  };
  let tookOver: LockOwner | undefined;
  let takenAt = 0;
  try {
    await sleep(options.settleMs ?? SETTLE_MS);
    const locks = await listLocks(store, prefix);
    const self = locks.find((l) => l.key === mine);
    if (self === undefined) {
      throw new RegpruneError('LOCKED', `our lock object ${mine} is not in the listing of ${prefix}; refusing to run`, {
        hint: "the bucket's listing lags behind its writes; try again in a minute",
      });
    }
    takenAt = self.lastModified.getTime();
    for (const l of locks) {
      if (l.key === mine) break;
      // Older than ours: does it still hold?
      if (self.lastModified.getTime() - l.lastModified.getTime() > ttl) {
        await store.delete(l.key);
        continue;
      }
      const got = await store.get(l.key);
      if (got === undefined) continue; // released meanwhile
      const other = parseBody(got.body);
      if (other !== undefined && other.hostname === host.hostname && !host.isAlive(other.pid)) {
        await store.delete(l.key);
        tookOver = other;
        continue;
      }
      const who = other === undefined ? `a lock object ${l.key}` : `pid ${other.pid} on ${other.hostname}, started ${other.startedAt}`;
      throw new RegpruneError('LOCKED', `another regprune run holds the lock on ${driver.location} (${who})`, {
        hint: `wait for it to finish; a lock left by a crashed run on another host expires after ${Math.round(ttl / 3_600_000)} h, or delete the object ${l.key} from the bucket once you are sure no run is active`,
      });
    }
  } catch (err) {
    await release().catch(() => {});
    throw err;
  }
  let released = false;
  return {
    path: mine,
    // The bucket's clock: a link with a LastModified at or after it was written during this run.
    takenAtMs: takenAt,
    tookOver,
    tookOverHalfWritten: false,
    release: async () => {
      if (released) return;
      released = true;
      await release();
    },
  };
}
