import type { Digest } from '../../model/names.js';
import { DATA } from '../paths.js';
import type { ObjectStore } from './client.js';
import { blobsPrefix } from './keys.js';

/**
 * Every blob in the bucket's blob store with its size, from the listing alone
 * (`blobs/sha256/<hex[0:2]>/<hex>/data`): no HEAD per blob. The sizes are
 * what garbage-collect frees when it deletes a blob.
 */
export async function listBlobSizes(store: ObjectStore, rootPrefix: string): Promise<{ sizes: Map<Digest, number>; keys: number }> {
  const prefix = blobsPrefix(rootPrefix);
  const sizes = new Map<Digest, number>();
  let keys = 0;
  await store.list(prefix, (page) => {
    for (const o of page) {
      keys++;
      const parts = o.key.slice(prefix.length).split('/');
      if (parts.length !== 3 || parts[2] !== DATA) continue;
      const [shard, hex] = parts as [string, string, string];
      // Only what the registry itself would find at that digest's path.
      if (!/^[a-f0-9]{64}$/.test(hex) || hex.slice(0, 2) !== shard) continue;
      sizes.set(`sha256:${hex}` as Digest, o.size);
    }
  });
  return { sizes, keys };
}
