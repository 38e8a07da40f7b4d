import type { StorageFs } from './fs.js';
import type { Layout } from './paths.js';
import type { ObjectStore } from './s3/client.js';
import type { S3View } from './s3/view.js';

/**
 * The storage seam, at the registry's level (its storagedriver: GetContent,
 * PutContent, Stat, List, Walk, Delete, Move). Walk, graph, plan, du and check
 * read through `fs` (path-shaped reads: list = readdir, stat = lstat, get
 * content = readFile) with the same code on every driver; changes go through
 * each driver's own mechanics:
 *
 * - filesystem: the door (src/storage/door.ts): rename into a trash, no
 *   symlink followed, exclusive flushed writes; the lock is a symlink marker;
 * - s3: objects (src/storage/s3/apply.ts): no rename, so a journal object
 *   and re-checks of each tag's current/link before and after its deletion;
 *   the lock is a listed set of lock objects.
 */
export type StorageDriver =
  | {
      readonly kind: 'filesystem';
      /** Where the tree is, for people and the JSON `root`. */
      readonly location: string;
      readonly layout: Layout;
      readonly fs: StorageFs;
      stats(): undefined;
      close(): void;
    }
  | {
      readonly kind: 's3';
      readonly location: string;
      readonly layout: Layout;
      /** A read-only view of one listing of the bucket (src/storage/s3/view.ts). */
      readonly fs: StorageFs;
      readonly view: S3View;
      /** Live requests (re-checks, deletes, the journal and the lock). */
      readonly store: ObjectStore;
      /** Key prefix of the rootdirectory (`''` or `reg/`). */
      readonly rootPrefix: string;
      /** Request counts by kind, and what the view answered without a request. */
      stats(): Record<string, unknown>;
      close(): void;
    };

export function filesystemDriver(fs: StorageFs, lay: Layout): StorageDriver {
  return { kind: 'filesystem', location: lay.root, layout: lay, fs, stats: () => undefined, close: () => {} };
}

export function s3Driver(store: ObjectStore, view: S3View, location: string, rootPrefix: string): StorageDriver {
  return {
    kind: 's3',
    location,
    rootPrefix,
    layout: view.layout,
    fs: view.fs,
    view,
    store,
    stats: () => ({ ...view.stats(), ...store.stats() }),
    close: () => store.close(),
  };
}
