import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startRegistry, tellWatchdog, type RunningRegistry, type StartOptions } from './registry.js';

/**
 * A real S3 endpoint on 127.0.0.1 for tests: OpenStack Swift (Debian's
 * packages) with its s3api middleware, one device, one replica, memcached for
 * tempauth's tokens. Facts from /work/shared/S3.md: servers run with `-v`
 * (they log to syslog only otherwise) and `user = root` (they drop to user
 * `swift` and then cannot write a root-owned devices dir: the proxy answers
 * 503, which s3api reports as SlowDown).
 */

// Tests that open the S3 client in-process: the AWS SDK's Node-version notice is noise here
// as in the CLI (src/cli/main.ts sets the same switch).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

export const SWIFT_PACKAGES = 'swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached';
const SWIFT_CONF = '/etc/swift/swift.conf';
const INSTALL_HINT =
  `The S3 tests need OpenStack Swift and memcached (Debian packages: ${SWIFT_PACKAGES}). ` +
  `Install them with \`apt-get install -y ${SWIFT_PACKAGES}\` (as root), or run .ci/run.`;
const READY_TIMEOUT_MS = 30_000;
const LOG_LIMIT = 256 * 1024;

export const S3_ACCESS_KEY = 'test:tester';
export const S3_SECRET_KEY = 'testing';
export const S3_REGION = 'us-east-1';

export interface RunningSwift {
  /** `http://127.0.0.1:<proxy port>`: the S3 endpoint (path-style) and the Swift API. */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Creates a bucket (a Swift container of the test account). */
  createBucket(name: string): Promise<void>;
  /** Every object of a bucket with its size, ETag (hex, no quotes) and last-modified, by name (Swift API). */
  listObjects(bucket: string, prefix?: string): Promise<SwiftObject[]>;
  /** The temp dir holding rings, configs and the device (removed by stop()). */
  readonly dir: string;
  /** Process-group ids of the servers started (each server and its workers). */
  readonly groups: readonly number[];
  /** The last lines each server wrote. */
  logs(): string;
  /** Stops every server and removes the temp dir (idempotent). */
  stop(): Promise<void>;
}

export interface SwiftObject {
  readonly name: string;
  readonly bytes: number;
  readonly hash: string;
  readonly last_modified: string;
}

const BINARIES = [
  'memcached',
  'swift-ring-builder',
  'swift-account-server',
  'swift-container-server',
  'swift-object-server',
  'swift-proxy-server',
] as const;

async function which(bin: string): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir === '') continue;
    try {
      await access(join(dir, bin), constants.X_OK);
      return join(dir, bin);
    } catch {
      // next
    }
  }
  return undefined;
}

/** The Python that runs swift-ring-builder (its `#!` line): the one Swift is installed for. */
async function ringBuilderPython(): Promise<string> {
  const builder = await which('swift-ring-builder');
  if (builder === undefined) throw new Error(`swift-ring-builder is missing. ${INSTALL_HINT}`);
  const first = (await readFile(builder, 'utf8')).split('\n', 1)[0] ?? '';
  const m = /^#!\s*(\S+)/.exec(first);
  if (m === null) throw new Error(`${builder} has no #! line naming its Python`);
  return m[1]!;
}

/** What is missing to run Swift here, or undefined. */
export async function swiftProblem(): Promise<string | undefined> {
  const missing: string[] = [];
  for (const bin of BINARIES) if ((await which(bin)) === undefined) missing.push(bin);
  if (missing.length > 0) return `missing on PATH: ${missing.join(', ')}. ${INSTALL_HINT}`;
  try {
    await access(SWIFT_CONF, constants.R_OK);
  } catch {
    return `${SWIFT_CONF} is missing (Swift reads its hash prefix/suffix and storage policy from that fixed path; the swift package installs it). ${INSTALL_HINT}`;
  }
  return undefined;
}

async function freePorts(n: number): Promise<number[]> {
  // Held open together so that the n ports differ.
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('could not get a free port on 127.0.0.1');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function serverConf(kind: 'account' | 'container' | 'object', port: number, dir: string, workers: number): string {
  return [
    '[DEFAULT]',
    'bind_ip = 127.0.0.1',
    `bind_port = ${port}`,
    `swift_dir = ${dir}`,
    `devices = ${join(dir, 'devices')}`,
    'mount_check = false',
    `workers = ${workers}`,
    'user = root',
    'log_level = WARNING',
    '',
    '[pipeline:main]',
    `pipeline = healthcheck ${kind}-server`,
    '',
    `[app:${kind}-server]`,
    `use = egg:swift#${kind}`,
    '',
    '[filter:healthcheck]',
    'use = egg:swift#healthcheck',
    '',
    // Background daemons are not started; their sections only keep config parsing quiet.
    '',
  ].join('\n');
}

const PROXY_FILTERS = ['catch_errors', 'gatekeeper', 'healthcheck', 'proxy-logging', 'cache', 'listing_formats', 'bulk', 's3api', 'tempauth', 'copy', 'slo', 'dlo'];

function proxyConf(port: number, dir: string, memcachedPort: number, workers: number): string {
  const lines = [
    '[DEFAULT]',
    'bind_ip = 127.0.0.1',
    `bind_port = ${port}`,
    `swift_dir = ${dir}`,
    `workers = ${workers}`,
    'user = root',
    'log_level = WARNING',
    '',
    '[pipeline:main]',
    `pipeline = ${PROXY_FILTERS.join(' ')} proxy-logging proxy-server`,
    '',
    '[app:proxy-server]',
    'use = egg:swift#proxy',
    'account_autocreate = true',
    '',
  ];
  for (const name of PROXY_FILTERS) {
    lines.push(`[filter:${name}]`, `use = egg:swift#${name === 'cache' ? 'memcache' : name.replace('-', '_')}`);
    if (name === 'cache') lines.push(`memcache_servers = 127.0.0.1:${memcachedPort}`);
    if (name === 's3api') lines.push(`location = ${S3_REGION}`);
    if (name === 'tempauth') lines.push('user_test_tester = testing .admin');
    if (name === 'proxy-logging') lines.push('access_log_level = WARNING');
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * Starts memcached and Swift's four servers on free ports of 127.0.0.1 with
 * a fresh temp dir (rings, one device). Throws, naming what is missing, if
 * Swift is not installed or does not come up.
 */
export async function startSwift(options: { workers?: number } = {}): Promise<RunningSwift> {
  // One process per server unless asked (the tests); Swift's own default, `auto`, is one per core.
  const workers = options.workers ?? 1;
  const problem = await swiftProblem();
  if (problem !== undefined) throw new Error(`cannot start OpenStack Swift: ${problem}`);
  const dir = await mkdtemp(join(tmpdir(), 'regprune-swift-'));
  tellWatchdog('dir', dir);
  const children: ChildProcess[] = [];
  const logs = new Map<string, string>();
  const exits = new Map<string, string>();
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        // Each server is its own process group (detached; Swift also calls setsid):
        // signalling the group reaches its forked worker too.
        const signal = (sig: NodeJS.Signals) => {
          try {
            process.kill(-child.pid!, sig);
          } catch {
            // already gone
          }
        };
        const groupAlive = () => {
          try {
            process.kill(-child.pid!, 0);
            return true;
          } catch {
            return false;
          }
        };
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), 3000);
        await gone;
        clearTimeout(timer);
        // The forked worker exits a moment after its parent: wait for the whole group.
        for (let i = 0; groupAlive(); i++) {
          if (i === 60) signal('SIGKILL');
          await delay(50);
        }
        tellWatchdog('done', -child.pid!);
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };

  const launch = (name: string, bin: string, args: readonly string[]): void => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: dir });
    children.push(child);
    if (child.pid !== undefined) tellWatchdog('pid', -child.pid);
    logs.set(name, '');
    const append = (chunk: Buffer) => {
      let text = (logs.get(name) ?? '') + chunk.toString('utf8');
      if (text.length > LOG_LIMIT) text = text.slice(text.length - LOG_LIMIT);
      logs.set(name, text);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('exit', (code, sig) => exits.set(name, sig === null ? `exit code ${code}` : `signal ${sig}`));
    child.once('error', (err) => exits.set(name, `spawn error: ${err.message}`));
  };

  const allLogs = (): string =>
    [...logs].map(([name, text]) => `--- ${name}${exits.has(name) ? ` (${exits.get(name)})` : ''} ---\n${text.trimEnd()}`).join('\n');

  try {
    const [memcachedPort, accountPort, containerPort, objectPort, proxyPort] = (await freePorts(5)) as [number, number, number, number, number];
    await mkdir(join(dir, 'devices', 'd1'), { recursive: true });
    const asRoot = process.getuid?.() === 0;
    launch('memcached', 'memcached', ['-l', '127.0.0.1', '-p', String(memcachedPort), '-U', '0', '-m', '16', ...(asRoot ? ['-u', 'root'] : [])]);

    // Three rings with swift-ring-builder's own code (create, add, rebalance each), run in one
    // Python process: nine separate swift-ring-builder runs take ~10 s on a loaded 2-core machine
    // (most of it Python start-up and imports), one process ~1 s.
    const ringPorts = { account: accountPort, container: containerPort, object: objectPort } as const;
    const steps = (Object.keys(ringPorts) as Array<keyof typeof ringPorts>).flatMap((kind) => [
      [`${kind}.builder`, 'create', '6', '1', '1'],
      [`${kind}.builder`, 'add', `r1z1-127.0.0.1:${ringPorts[kind]}/d1`, '1'],
      [`${kind}.builder`, 'rebalance'],
    ]);
    const script = [
      'import json, sys',
      'from swift.cli.ringbuilder import main',
      'for argv in json.loads(sys.argv[1]):',
      '    try:',
      "        main(['swift-ring-builder'] + argv)",
      '    except SystemExit as e:',
      // 1 is swift-ring-builder's "done, with a warning" (rebalance on a one-device ring).
      '        if e.code not in (None, 0, 1):',
      "            sys.exit('swift-ring-builder %s failed with exit code %s' % (' '.join(argv), e.code))",
    ].join('\n');
    const rings = await execa(await ringBuilderPython(), ['-c', script, JSON.stringify(steps)], { reject: false, cwd: dir, stdin: 'ignore' });
    if (rings.exitCode !== 0) throw new Error(`building the rings failed (exit ${rings.exitCode}):\n${rings.stdout}\n${rings.stderr}`);
    for (const kind of ['account', 'container', 'object'] as const) {
      const conf = join(dir, `${kind}-server.conf`);
      await writeFile(conf, serverConf(kind, ringPorts[kind], dir, workers));
      launch(kind, `swift-${kind}-server`, [conf, '-v']);
    }
    const proxy = join(dir, 'proxy-server.conf');
    await writeFile(proxy, proxyConf(proxyPort, dir, memcachedPort, workers));
    launch('proxy', 'swift-proxy-server', [proxy, '-v']);

    const endpoint = `http://127.0.0.1:${proxyPort}`;
    const checks = [accountPort, containerPort, objectPort, proxyPort].map((p) => `http://127.0.0.1:${p}/healthcheck`);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const url of checks) {
      for (;;) {
        if (exits.size > 0) throw new Error(`a Swift server exited during start-up: ${[...exits].map(([n, e]) => `${n}: ${e}`).join(', ')}`);
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
          const body = await res.text();
          if (res.status === 200 && body.startsWith('OK')) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`Swift did not answer ${url} with OK within ${READY_TIMEOUT_MS} ms`);
        await delay(50);
      }
    }

    const auth = async (): Promise<{ storageUrl: string; token: string }> => {
      const res = await fetch(`${endpoint}/auth/v1.0`, { headers: { 'X-Auth-User': S3_ACCESS_KEY, 'X-Auth-Key': S3_SECRET_KEY } });
      await res.body?.cancel();
      const storageUrl = res.headers.get('x-storage-url');
      const token = res.headers.get('x-auth-token');
      if (res.status !== 200 || storageUrl === null || token === null) throw new Error(`Swift tempauth answered ${res.status}`);
      return { storageUrl, token };
    };
    // The account is created on first use; the first request proves the whole chain works.
    await auth();

    return {
      endpoint,
      accessKey: S3_ACCESS_KEY,
      secretKey: S3_SECRET_KEY,
      region: S3_REGION,
      async createBucket(name) {
        const { storageUrl, token } = await auth();
        const res = await fetch(`${storageUrl}/${encodeURIComponent(name)}`, { method: 'PUT', headers: { 'X-Auth-Token': token } });
        await res.body?.cancel();
        if (res.status !== 201 && res.status !== 202) throw new Error(`creating bucket ${name}: Swift answered ${res.status}\n${allLogs()}`);
      },
      async listObjects(bucket, prefix = '') {
        const { storageUrl, token } = await auth();
        const out: SwiftObject[] = [];
        let marker = '';
        for (;;) {
          const q = new URLSearchParams({ format: 'json', prefix, marker, limit: '10000' });
          const res = await fetch(`${storageUrl}/${encodeURIComponent(bucket)}?${q}`, { headers: { 'X-Auth-Token': token } });
          if (res.status !== 200) throw new Error(`listing bucket ${bucket}: Swift answered ${res.status}`);
          const page = (await res.json()) as SwiftObject[];
          if (page.length === 0) return out;
          out.push(...page);
          marker = page[page.length - 1]!.name;
        }
      },
      dir,
      groups: children.flatMap((c) => (c.pid === undefined ? [] : [c.pid])),
      logs: allLogs,
      stop,
    };
  } catch (err) {
    const message = `cannot start OpenStack Swift in ${dir}: ${(err as Error).message}\n${allLogs()}`;
    await stop();
    throw new Error(message, { cause: err });
  }
}

/** The registry's `storage` section for the s3 driver on a Swift bucket (indented under `storage:`). */
export function s3StorageYaml(swift: RunningSwift, bucket: string, rootdirectory = '/reg'): string[] {
  return [
    '  s3:',
    `    accesskey: ${JSON.stringify(swift.accessKey)}`,
    `    secretkey: ${JSON.stringify(swift.secretKey)}`,
    `    region: ${swift.region}`,
    `    regionendpoint: ${JSON.stringify(swift.endpoint)}`,
    `    bucket: ${JSON.stringify(bucket)}`,
    '    secure: false',
    '    v4auth: true',
    `    rootdirectory: ${JSON.stringify(rootdirectory)}`,
    // Else blob GETs answer 307 to the S3 endpoint.
    '  redirect:',
    '    disable: true',
  ];
}

/**
 * docker-registry 2.8.2 with its s3 driver on a bucket of `swift`
 * (AWS_CA_BUNDLE is dropped from its environment by the registry helper).
 */
export async function startS3Registry(
  swift: RunningSwift,
  bucket: string,
  opts: Omit<StartOptions, 'storage' | 'root'> & { rootdirectory?: string } = {},
): Promise<RunningRegistry> {
  const { rootdirectory, ...rest } = opts;
  return startRegistry({ ...rest, storage: s3StorageYaml(swift, bucket, rootdirectory) });
}

/**
 * Writes `body` to `key` as a one-part multipart upload (as the registry
 * writes big blobs): its ETag ends in `-1` and is no MD5 of the body.
 */
export async function multipartPut(swift: RunningSwift, bucket: string, key: string, body: string): Promise<void> {
  const sdk = await import('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    region: swift.region,
    endpoint: swift.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.accessKey, secretAccessKey: swift.secretKey },
  });
  try {
    const { UploadId } = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const part = await client.send(new sdk.UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: body }));
    await client.send(new sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
  } finally {
    client.destroy();
  }
}
