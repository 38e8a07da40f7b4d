import { describe, expect, test } from 'vitest';
import { DEFAULT_RETRY, backoffMs, endpointUrl, isRetryable, withRetries } from '../../src/storage/s3/client.js';
import { parseRegistryConfig, type S3StorageConfig } from '../../src/config/registry-config.js';

/** An error shaped as the AWS SDK v3 throws it for an S3 error response. */
function s3Error(status: number, code: string): Error {
  return Object.assign(new Error(code), { name: code, $metadata: { httpStatusCode: status } });
}

describe('isRetryable', () => {
  test.each([
    ['503 SlowDown', s3Error(503, 'SlowDown'), true],
    ['503 ServiceUnavailable', s3Error(503, 'ServiceUnavailable'), true],
    ['500 InternalError', s3Error(500, 'InternalError'), true],
    ['429', s3Error(429, 'TooManyRequests'), true],
    ['connection reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true],
    ['404 NoSuchKey', s3Error(404, 'NoSuchKey'), false],
    ['403 AccessDenied', s3Error(403, 'AccessDenied'), false],
    ['400 InvalidArgument', s3Error(400, 'InvalidArgument'), false],
    ['a plain bug', new TypeError('x is undefined'), false],
  ])('%s -> %s', (_name, err, want) => {
    expect(isRetryable(err)).toBe(want);
  });
});

describe('withRetries', () => {
  const run = async (failures: Error[], maxAttempts = DEFAULT_RETRY.maxAttempts) => {
    const sleeps: number[] = [];
    let attempts = 0;
    let retries = 0;
    let calls = 0;
    const result = withRetries(
      { ...DEFAULT_RETRY, maxAttempts },
      async () => {
        const failure = failures[calls++];
        if (failure !== undefined) throw failure;
        return 'ok';
      },
      { onAttempt: () => attempts++, onRetry: () => retries++, sleep: async (ms) => void sleeps.push(ms) },
    );
    return { result: await result.catch((e: unknown) => e), attempts, retries, sleeps };
  };

  test('SlowDown twice, then success: three attempts counted, two backoffs', async () => {
    const r = await run([s3Error(503, 'SlowDown'), s3Error(503, 'SlowDown')]);
    expect(r).toMatchObject({ result: 'ok', attempts: 3, retries: 2 });
    expect(r.sleeps).toHaveLength(2);
    expect(r.sleeps[0]).toBeLessThan(DEFAULT_RETRY.baseMs);
    expect(r.sleeps[1]).toBeLessThan(DEFAULT_RETRY.baseMs * 2);
  });

  test('an error that is not retryable fails at once', async () => {
    const denied = s3Error(403, 'AccessDenied');
    const r = await run([denied]);
    expect(r).toMatchObject({ result: denied, attempts: 1, retries: 0, sleeps: [] });
  });

  test('gives up after maxAttempts with the last error', async () => {
    const errors = [s3Error(503, 'SlowDown'), s3Error(503, 'SlowDown'), s3Error(500, 'InternalError')];
    const r = await run(errors, 3);
    expect(r).toMatchObject({ result: errors[2], attempts: 3, retries: 2 });
  });

  test('backoff grows exponentially up to the cap (full jitter)', () => {
    const top = () => 0.999999;
    expect(backoffMs(DEFAULT_RETRY, 1, top)).toBe(DEFAULT_RETRY.baseMs - 1);
    expect(backoffMs(DEFAULT_RETRY, 4, top)).toBe(DEFAULT_RETRY.baseMs * 8 - 1);
    expect(backoffMs(DEFAULT_RETRY, 20, top)).toBe(DEFAULT_RETRY.capMs - 1);
    expect(backoffMs(DEFAULT_RETRY, 3, () => 0)).toBe(0);
  });
});

describe('endpointUrl', () => {
  const config = (extra: string): S3StorageConfig =>
    parseRegistryConfig(`version: 0.1\nstorage:\n  s3:\n    region: r\n    bucket: b\n${extra}`, {}, 'c.yml') as S3StorageConfig;
  test.each([
    ['none: AWS', '', undefined],
    ['with a scheme, as given', '    regionendpoint: http://127.0.0.1:9000\n', 'http://127.0.0.1:9000'],
    ['without a scheme, https when secure', '    regionendpoint: minio.local:9000\n', 'https://minio.local:9000'],
    ['without a scheme, http when secure: false', '    regionendpoint: minio.local:9000\n    secure: false\n', 'http://minio.local:9000'],
  ])('%s', (_name, extra, want) => {
    expect(endpointUrl(config(extra))).toBe(want);
  });
});
