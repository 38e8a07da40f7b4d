import { createHash } from 'node:crypto';
import type { Digest } from '../../model/names.js';
import { ALGORITHM, V2_SUFFIX } from '../paths.js';

/**
 * The registry's tree as object keys: `<rootdirectory>/docker/registry/v2/...`
 * with the filesystem layout below it (storage/paths.ts), one object per
 * file, no directories. The tree itself is read through the view
 * (src/storage/s3/view.ts); these are the facts about keys and ETags that
 * the view, the apply and the blob listing share.
 */

/** Key prefix of the blob store. */
export function blobsPrefix(rootPrefix: string): string {
  return `${rootPrefix}${V2_SUFFIX}/blobs/${ALGORITHM}/`;
}

/**
 * The ETag of a link object holding `digest`, written with a single PUT: the
 * hex MD5 of its content (S3, MinIO, Swift's S3 API; a multipart upload's ETag
 * has another form and proves nothing). A listing thus tells what a link reads
 * without a GET.
 */
export function linkEtag(digest: Digest | string): string {
  return createHash('md5').update(digest).digest('hex');
}
