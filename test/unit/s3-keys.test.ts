import { describe, expect, test } from 'vitest';
import { blobsPrefix, linkEtag } from '../../src/storage/s3/keys.js';

describe('s3 keys', () => {
  test('blob store prefix under a rootdirectory and at the bucket root', () => {
    expect(blobsPrefix('reg/')).toBe('reg/docker/registry/v2/blobs/sha256/');
    expect(blobsPrefix('')).toBe('docker/registry/v2/blobs/sha256/');
  });

  test("a link's ETag is the hex MD5 of its 71 bytes (md5sum of `sha256:abab...`)", () => {
    expect(linkEtag(`sha256:${'ab'.repeat(32)}`)).toBe('36f6769913c757cd5f39ec96e06ef47d');
  });
});
