import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { S3StorageConfig } from '../../config/registry-config.js';
import { RegpruneError } from '../../model/errors.js';
import { limiter } from '../../util/limit.js';

/**
 * The few S3 requests regprune makes, over the AWS SDK for JavaScript v3:
 * bounded in parallel, retried with backoff on 503/SlowDown and the like,
 * and counted by kind for the JSON `stats`.
 *
 * The SDK is loaded only when an s3 config is used (it takes ~200 ms and
 * most runs are on a filesystem). Its own retries are off (maxAttempts 1):
 * each attempt is counted here, and the backoff is ours to test.
 */

export type RequestKind = 'list' | 'get' | 'head' | 'put' | 'delete';

export interface S3ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Hex, lowercase, without quotes. For a single PUT, the MD5 of the content; multipart ETags end in `-N`. */
  readonly etag: string;
  readonly lastModified: Date;
}

export interface S3Stats {
  /** Requests sent (each retry attempt counts), by kind. */
  readonly requests: Record<RequestKind, number>;
  /** Attempts that were retried after a throttling or server error. */
  readonly retries: number;
}

export interface ObjectStore {
  /** Every object under `prefix`, in key order, a page (up to 1000) at a time. */
  list(prefix: string, onPage: (objects: readonly S3ObjectInfo[]) => void | Promise<void>): Promise<void>;
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<{ readonly body: Buffer; readonly etag: string; readonly lastModified: Date } | undefined>;
  head(key: string): Promise<Omit<S3ObjectInfo, 'key'> | undefined>;
  put(key: string, body: Buffer | string): Promise<{ readonly etag: string }>;
  delete(key: string): Promise<void>;
  stats(): S3Stats;
  /** Closes idle connections. */
  close(): void;
}

/** Where a request failed, and why, in one message (keys, bucket and status; never credentials). */
export class S3RequestError extends RegpruneError {
  readonly status: number | undefined;
  readonly s3Code: string | undefined;
  constructor(action: string, cause: unknown, status: number | undefined, code: string | undefined) {
    const detail = cause instanceof Error ? cause.message || cause.name : String(cause);
    const hint = hintFor(status, code);
    super('IO', `${action}: ${status === undefined ? '' : `HTTP ${status} `}${code === undefined ? '' : `${code}: `}${detail}`, {
      cause,
      ...(hint === undefined ? {} : { hint }),
    });
    this.name = 'S3RequestError';
    this.status = status;
    this.s3Code = code;
  }
}

/** What to check, for the failures an operator can fix in the config or the environment. */
function hintFor(status: number | undefined, code: string | undefined): string | undefined {
  if (code === 'CredentialsProviderError') {
    return 'the config has no storage.s3.accesskey/secretkey and the AWS credential chain (environment, ~/.aws profiles, instance role) found none';
  }
  if (code === 'NoSuchBucket') return 'check storage.s3.bucket in the config (and REGISTRY_STORAGE_S3_BUCKET in the environment)';
  if (status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    return 'check storage.s3.accesskey/secretkey (or the AWS credentials in the environment) and the bucket policy: listing needs s3:ListBucket, reading s3:GetObject';
  }
  if (code !== undefined && NETWORK_CODES.has(code)) return 'check storage.s3.regionendpoint and secure in the config';
  return undefined;
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Delay before retry n (1-based): random up to min(cap, base * 2^(n-1)) (full jitter). */
  readonly baseMs: number;
  readonly capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseMs: 100, capMs: 5000 };
export const DEFAULT_S3_CONCURRENCY = 32;

const THROTTLE_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
  'TooManyRequestsException',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function errorStatus(err: unknown): number | undefined {
  return (err as SdkErrorShape | null)?.$metadata?.httpStatusCode;
}

function errorCode(err: unknown): string | undefined {
  const e = err as SdkErrorShape | null;
  return e?.Code ?? (e?.name === undefined || e.name === 'Error' ? undefined : e.name) ?? e?.code;
}

/** Throttling (503 SlowDown, 429), server errors (5xx) and dropped connections are worth another try. */
export function isRetryable(err: unknown): boolean {
  const status = errorStatus(err);
  if (status !== undefined && (status === 429 || status >= 500)) return true;
  const code = errorCode(err);
  if (code !== undefined && THROTTLE_CODES.has(code)) return true;
  const sys = (err as SdkErrorShape | null)?.code;
  if (sys !== undefined && NETWORK_CODES.has(sys)) return true;
  return code === 'TimeoutError';
}

export function backoffMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** (retry - 1)));
}

/** Counted, retried attempts of one request; the request itself is `attempt`. */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: () => Promise<T>,
  hooks: { onAttempt: () => void; onRetry: () => void; sleep: (ms: number) => Promise<void> },
): Promise<T> {
  for (let n = 1; ; n++) {
    hooks.onAttempt();
    try {
      return await attempt();
    } catch (err) {
      if (n >= policy.maxAttempts || !isRetryable(err)) throw err;
      hooks.onRetry();
      await hooks.sleep(backoffMs(policy, n));
    }
  }
}

const unquote = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/g, '').toLowerCase();

function isNotFound(err: unknown): boolean {
  const code = errorCode(err);
  return code !== 'NoSuchBucket' && (errorStatus(err) === 404 || code === 'NoSuchKey' || code === 'NotFound');
}

export interface OpenS3Options {
  readonly concurrency?: number;
  readonly retry?: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Per-request timeout. */
  readonly requestTimeoutMs?: number;
}

/** The endpoint URL for the SDK: 2.8's driver prefixes a scheme-less regionendpoint by `secure`. */
export function endpointUrl(config: S3StorageConfig): string | undefined {
  const ep = config.regionendpoint;
  if (ep === undefined) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(ep) ? ep : `${config.secure ? 'https' : 'http'}://${ep}`;
}

/** An ObjectStore on the bucket of an s3 storage config. */
export async function openS3(config: S3StorageConfig, options: OpenS3Options = {}): Promise<ObjectStore> {
  const sdk = await import('@aws-sdk/client-s3');
  const concurrency = options.concurrency ?? DEFAULT_S3_CONCURRENCY;
  const retry = options.retry ?? DEFAULT_RETRY;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: concurrency, rejectUnauthorized: !config.skipverify });
  const endpoint = endpointUrl(config);
  const client = new sdk.S3Client({
    region: config.region,
    ...(endpoint === undefined ? {} : { endpoint }),
    forcePathStyle: config.forcepathstyle,
    tls: config.secure,
    maxAttempts: 1,
    // Without keys in the config, the SDK's default chain: environment, shared
    // config and credentials files (profiles, SSO), web identity, ECS and EC2 metadata.
    ...(config.accesskey !== undefined && config.secretkey !== undefined
      ? { credentials: { accessKeyId: config.accesskey, secretAccessKey: config.secretkey } }
      : {}),
    // A connect that hangs (a firewall dropping packets) fails in 10 s instead of never, and is retried.
    requestHandler: { httpAgent, httpsAgent, connectionTimeout: 10_000, requestTimeout: options.requestTimeoutMs ?? 60_000 },
    // Checksums on every PUT/GET response (CRC32 by default since early 2025) are not
    // understood by every S3-compatible store; ask for them only where S3 requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const io = limiter(concurrency);
  const requests: Record<RequestKind, number> = { list: 0, get: 0, head: 0, put: 0, delete: 0 };
  let retries = 0;
  const bucket = config.bucket;

  const send = <T>(kind: RequestKind, action: string, attempt: () => Promise<T>): Promise<T> =>
    io.run(async () => {
      try {
        return await withRetries(retry, attempt, {
          onAttempt: () => requests[kind]++,
          onRetry: () => retries++,
          sleep,
        });
      } catch (err) {
        if (isNotFound(err) && (kind === 'get' || kind === 'head')) throw err;
        throw new S3RequestError(`${action} (bucket ${bucket})`, err, errorStatus(err), errorCode(err));
      }
    });

  return {
    async list(prefix, onPage) {
      let token: string | undefined;
      do {
        const page = await send('list', `listing s3://${bucket}/${prefix}`, () =>
          client.send(
            new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000, ...(token === undefined ? {} : { ContinuationToken: token }) }),
          ),
        );
        const objects: S3ObjectInfo[] = (page.Contents ?? []).map((o) => ({
          key: o.Key ?? '',
          size: o.Size ?? 0,
          etag: unquote(o.ETag),
          lastModified: o.LastModified ?? new Date(0),
        }));
        await onPage(objects);
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
        if (page.IsTruncated === true && token === undefined) {
          throw new S3RequestError(`listing s3://${bucket}/${prefix}`, new Error('truncated page without a continuation token'), undefined, undefined);
        }
      } while (token !== undefined);
    },
    async get(key) {
      try {
        const res = await send('get', `reading s3://${bucket}/${key}`, async () => {
          const r = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
          // Read the body inside the attempt: a connection dropped mid-body is retried too.
          const bytes = r.Body === undefined ? new Uint8Array() : await r.Body.transformToByteArray();
          return { body: Buffer.from(bytes), etag: unquote(r.ETag), lastModified: r.LastModified ?? new Date(0) };
        });
        return res;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async head(key) {
      try {
        const r = await send('head', `checking s3://${bucket}/${key}`, () => client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key })));
        return { size: r.ContentLength ?? 0, etag: unquote(r.ETag), lastModified: r.LastModified ?? new Date(0) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async put(key, body) {
      const r = await send('put', `writing s3://${bucket}/${key}`, () => client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength })));
      return { etag: unquote(r.ETag) };
    },
    async delete(key) {
      await send('delete', `deleting s3://${bucket}/${key}`, () => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key })));
    },
    stats: () => ({ requests: { ...requests }, retries }),
    close() {
      client.destroy();
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
