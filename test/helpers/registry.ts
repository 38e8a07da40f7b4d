import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { execa } from 'execa';

/**
 * Runs the real registry (Debian's `docker-registry`, distribution 2.8.2)
 * on 127.0.0.1 for integration tests. Each registry gets its own config.yml
 * and, unless a root is given, a fresh storage root in a temp dir.
 */

export * from './images.js';
export * from './http.js';
export { blobStoreBytes, blobDigests, repositoriesOnDisk, tagsOnDisk, removeUploads } from './disk.js';

export interface StartOptions {
  /** Storage root (`rootdirectory`); default a fresh temp dir, removed by stop(). */
  readonly root?: string;
  /** `storage.maintenance.readonly.enabled: true`: pushes get 405. */
  readonly readOnly?: boolean;
  /** Extra environment for the registry process (e.g. `REGISTRY_*` overrides). */
  readonly env?: Readonly<Record<string, string>>;
  /** The registry binary; default `$REGPRUNE_REGISTRY_BIN` or `docker-registry` on PATH. */
  readonly bin?: string;
  /** YAML lines for a storage driver section in place of `filesystem` (e.g. `s3:` and its settings, indented 2). */
  readonly storage?: readonly string[];
}

export interface RunningRegistry {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly root: string;
  readonly configPath: string;
  /** Absolute path of the registry binary in use. */
  readonly bin: string;
  /** What the registry wrote to stdout and stderr so far (the last 256 KiB). */
  logs(): string;
  /** Kills the registry (idempotent). Files stay until the test process exits, for garbage-collect and restart(). */
  stop(): Promise<void>;
  /** Stops (if running) and starts again on the same port and config: clears the in-memory blob cache. */
  restart(): Promise<void>;
}

export const REGISTRY_BIN_ENV = 'REGPRUNE_REGISTRY_BIN';
const DEFAULT_BIN = 'docker-registry';
const READY_TIMEOUT_MS = 20_000;
const LOG_LIMIT = 256 * 1024;

const INSTALL_HINT =
  'The real-registry tests need Debian\'s docker-registry package (distribution 2.8). ' +
  'Install it with `apt-get install -y docker-registry` (as root), or run `npm test`, which installs it when run as root. ' +
  `To use another binary, set ${REGISTRY_BIN_ENV}=/path/to/registry.`;

// Test runners do not always let a worker exit normally (vitest kills its
// workers), so an 'exit' hook alone leaks registries and temp dirs. A small
// detached watchdog holds a pipe from this process; when the pipe closes,
// however this process ended, it kills the registries still running and
// removes the temp dirs. Only processes this harness started are named to it.
const WATCHDOG = `
const fs = require('node:fs');
const pids = new Set(), dirs = new Set();
let buf = '';
for (const s of ['SIGINT', 'SIGHUP', 'SIGTERM']) process.on(s, () => {});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  for (let i; (i = buf.indexOf('\\n')) >= 0; buf = buf.slice(i + 1)) {
    const line = buf.slice(0, i), sp = line.indexOf(' '), op = line.slice(0, sp), arg = line.slice(sp + 1);
    if (op === 'pid') pids.add(Number(arg));
    else if (op === 'done') pids.delete(Number(arg));
    else if (op === 'dir') dirs.add(arg);
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch {} }
  for (const dir of dirs) { try { fs.rmSync(dir, { recursive: true, force: true }); } catch {} }
  process.exit(0);
});
`;

let watchdog: ChildProcess | undefined;
export function tellWatchdog(op: 'pid' | 'done' | 'dir', arg: string | number): void {
  if (watchdog === undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.unref();
    // Keep the pipe from holding this process's event loop open.
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    watchdog.stdin?.on('error', () => {});
  }
  watchdog.stdin?.write(`${op} ${arg}\n`);
}

// Belt and braces for plain `node` runs, where 'exit' does fire.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of the registry binary, or an Error saying what is missing and how to install it. */
export async function findRegistryBinary(bin = process.env[REGISTRY_BIN_ENV] ?? DEFAULT_BIN): Promise<string> {
  if (bin.includes('/')) {
    const abs = isAbsolute(bin) ? bin : join(process.cwd(), bin);
    if (await isExecutable(abs)) return abs;
    throw new Error(`registry binary ${abs} is missing or not executable. ${INSTALL_HINT}`);
  }
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = join(dir, bin);
    if (await isExecutable(candidate)) return candidate;
  }
  throw new Error(`registry binary \`${bin}\` was not found on PATH (${dirs.join(delimiter)}). ${INSTALL_HINT}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not get a free port on 127.0.0.1'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** The config the harness runs with. Strings are JSON-quoted, which YAML reads as-is. */
export function registryConfig(options: { root: string; port: number; readOnly: boolean; storage?: readonly string[] }): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    ...(options.storage ?? ['  filesystem:', `    rootdirectory: ${JSON.stringify(options.root)}`]),
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    '    readonly:',
    `      enabled: ${options.readOnly}`,
    'http:',
    `  addr: ${JSON.stringify(`127.0.0.1:${options.port}`)}`,
    // A fixed secret: otherwise 2.8 warns on every start and upload state does not survive restart().
    '  secret: regprune-test-harness',
    '',
  ].join('\n');
}

/** The parent's REGISTRY_* variables would override the config; pass only the caller's. */
function registryEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // AWS_CA_BUNDLE (set on some machines) makes 2.8's s3 driver panic at start (LoadCustomCABundleError).
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE') env[k] = v;
  return { ...env, ...extra };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startRegistry(opts: StartOptions = {}): Promise<RunningRegistry> {
  const bin = await findRegistryBinary(opts.bin);
  installExitHook();
  const work = await mkdtemp(join(tmpdir(), 'regprune-registry-'));
  // Holds config.yml (and the root unless given). Kept after stop() so garbage-collect
  // can run against the config between stop() and restart(); the watchdog removes it
  // when this process ends.
  tellWatchdog('dir', work);
  const root = opts.root ?? join(work, 'root');
  await mkdir(root, { recursive: true });
  const configPath = join(work, 'config.yml');
  const env = registryEnv(opts.env);

  let log = '';
  const append = (chunk: Buffer): void => {
    log += chunk.toString('utf8');
    if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT);
  };

  let child: ChildProcess | undefined;
  let port = 0;

  const launch = async (): Promise<void> => {
    await writeFile(configPath, registryConfig({ root, port, readOnly: opts.readOnly === true, ...(opts.storage === undefined ? {} : { storage: opts.storage }) }));
    const proc = spawn(bin, ['serve', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    live.add(proc);
    if (proc.pid !== undefined) tellWatchdog('pid', proc.pid);
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    let exited: string | undefined;
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      if (proc.pid !== undefined) tellWatchdog('done', proc.pid);
      exited = signal === null ? `exit code ${code}` : `signal ${signal}`;
    });
    proc.once('error', (err) => {
      exited = `spawn error: ${err.message}`;
    });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exited !== undefined) {
        throw new Error(`registry (${bin} serve ${configPath}) exited before answering on ${url}: ${exited}\n--- registry output ---\n${log}`);
      }
      try {
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await kill();
        throw new Error(`registry on ${url} did not answer GET /v2/ with 200 within ${READY_TIMEOUT_MS} ms\n--- registry output ---\n${log}`);
      }
      await delay(50);
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };

  // Another process can take the port between freePort() and the registry's bind: retry.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      const busy = /address already in use/i.test(log);
      if (!busy || attempt >= 3) {
        await kill();
        await rm(work, { recursive: true, force: true });
        throw err;
      }
      log = '';
    }
  }

  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    root,
    configPath,
    bin,
    logs: () => log,
    stop: kill,
    async restart() {
      await kill();
      await launch();
    },
  };
}

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `docker-registry garbage-collect [args] CONFIG`, the real one. Never throws on a non-zero exit. */
export async function runGarbageCollect(configPath: string, args: readonly string[] = [], bin?: string): Promise<CommandResult> {
  const binary = await findRegistryBinary(bin);
  const result = await execa(binary, ['garbage-collect', ...args, configPath], {
    reject: false,
    env: registryEnv(undefined),
    extendEnv: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}
