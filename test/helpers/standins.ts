import type { Argv, ProcessRunner, RunOptions, RunResult } from '../../src/gc/process.js';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Stand-in `docker`, `kubectl`, `registry` and `restart-registry`
 * executables, written into a temp bin dir that tests put FIRST on PATH when
 * they run ./bin/regprune. Each appends its argv (as a JSON array, the
 * program name first) to a record file, then behaves like the real tool just
 * enough: `exec ... test -f PATH` answers from a map of in-container paths,
 * `exec ... registry garbage-collect [...] CONFIG` runs the REAL registry
 * binary with the in-container config path mapped to the test's config, an
 * unknown container gets docker's own `No such container` answer, and
 * restarts can restart the test's registry through a loopback control URL.
 */

export interface StandinConfig {
  /** Containers `docker` knows. */
  readonly containers?: readonly string[];
  /** Pods `kubectl` knows, per namespace (`default` when -n is not given). */
  readonly pods?: Readonly<Record<string, readonly string[]>>;
  /** Deployments `kubectl` knows, per namespace. */
  readonly deployments?: Readonly<Record<string, readonly string[]>>;
  /** Contexts `kubectl --context` accepts (any when undefined). */
  readonly contexts?: readonly string[];
  /** In-container path -> host path: what `test -f` finds and what garbage-collect reads. */
  readonly files?: Readonly<Record<string, string>>;
  /**
   * In-container dir -> host dir, for \`cat\` (the storage marker). Without it the
   * container sees the host's paths (its volume is mounted at the same path).
   */
  readonly mounts?: Readonly<Record<string, string>>;
  /** What \`env\` prints in the container (REGISTRY_* overrides of the config). */
  readonly env?: Readonly<Record<string, string>>;
  /** The real registry binary garbage-collect runs. */
  readonly registryBin: string;
  /** Restarts (docker restart, kubectl rollout restart, restart-registry) fail. */
  readonly restartFails?: boolean;
  /** Restarts GET this URL (the test's control server restarts the registry) and wait for 200. */
  readonly restartUrl?: string;
  /** garbage-collect writes `waiting` and waits for `release` to exist before it runs. */
  readonly holdGc?: { readonly waiting: string; readonly release: string };
}

const IMPL = String.raw`
'use strict';
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');

function sleep(ms) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }

module.exports = async function main(tool, configPath) {
  const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  const argv = process.argv.slice(2);
  fs.appendFileSync(cfg.record, JSON.stringify([tool, ...argv]) + '\n');
  const fail = (msg, code) => { process.stderr.write(msg + '\n'); process.exit(code); };
  const files = cfg.files || {};

  const hostPath = (p) => {
    if (Object.prototype.hasOwnProperty.call(files, p)) return files[p];
    if (cfg.mounts === undefined) return p;
    for (const [c, h] of Object.entries(cfg.mounts)) if (p === c || p.startsWith(c + '/')) return h + p.slice(c.length);
    return undefined;
  };
  // Runs a command "inside" the container: only test -f, cat, env and registry garbage-collect exist there.
  const inside = (cmd) => {
    if (cmd[0] === 'test' && cmd[1] === '-f' && cmd.length === 3) return Object.prototype.hasOwnProperty.call(files, cmd[2]) ? 0 : 1;
    if (cmd[0] === 'cat' && cmd.length === 2) {
      const host = hostPath(cmd[1]);
      let text;
      try { text = host === undefined ? undefined : fs.readFileSync(host); } catch { text = undefined; }
      if (text === undefined) { process.stderr.write('cat: can\'t open \'' + cmd[1] + '\': No such file or directory\n'); return 1; }
      process.stdout.write(text);
      return 0;
    }
    if (cmd[0] === 'env' && cmd.length === 1) {
      for (const [k, v] of Object.entries(cfg.env || {})) process.stdout.write(k + '=' + v + '\n');
      return 0;
    }
    if (cmd[0] === 'registry' && cmd[1] === 'garbage-collect') {
      const args = cmd.slice(2);
      const config = args[args.length - 1];
      const host = files[config];
      if (host === undefined) { process.stderr.write('configuration error: open ' + config + ': no such file or directory\n'); return 1; }
      if (cfg.holdGc) {
        fs.writeFileSync(cfg.holdGc.waiting, String(process.pid));
        while (!fs.existsSync(cfg.holdGc.release)) sleep(50);
      }
      const env = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
      const r = spawnSync(cfg.registryBin, ['garbage-collect', ...args.slice(0, -1), host], { stdio: 'inherit', env });
      return r.status === null ? 128 : r.status;
    }
    process.stderr.write('exec: "' + cmd[0] + '": executable file not found in $PATH\n');
    return 127;
  };
  const restart = async () => {
    if (cfg.restartFails) return false;
    if (cfg.restartUrl) {
      const res = await fetch(cfg.restartUrl);
      if (res.status !== 200) return false;
    }
    return true;
  };

  if (tool === 'docker') {
    const [sub, container, ...rest] = argv;
    const known = (cfg.containers || []).includes(container);
    if (sub === 'exec') {
      if (!known) fail('Error response from daemon: No such container: ' + container, 1);
      process.exit(inside(rest));
    }
    if (sub === 'restart') {
      if (!known) fail('Error response from daemon: No such container: ' + container, 1);
      if (!(await restart())) fail('Error response from daemon: Cannot restart container ' + container + ': simulated failure', 1);
      process.stdout.write(container + '\n');
      process.exit(0);
    }
    fail('stand-in docker: unsupported: ' + argv.join(' '), 125);
  }

  if (tool === 'kubectl') {
    let a = argv.slice();
    if (a[0] === '--context') {
      const ctx = a[1];
      if (cfg.contexts && !cfg.contexts.includes(ctx)) fail('error: context "' + ctx + '" does not exist', 1);
      a = a.slice(2);
    }
    const takeNs = (list) => {
      const i = list.indexOf('-n');
      if (i < 0) return ['default', list];
      return [list[i + 1], [...list.slice(0, i), ...list.slice(i + 2)]];
    };
    const resolve = (ns, target) => {
      if (target.startsWith('deployment/')) {
        const name = target.slice('deployment/'.length);
        if (!((cfg.deployments || {})[ns] || []).includes(name)) fail('Error from server (NotFound): deployments.apps "' + name + '" not found', 1);
        return;
      }
      if (!((cfg.pods || {})[ns] || []).includes(target)) fail('Error from server (NotFound): pods "' + target + '" not found', 1);
    };
    if (a[0] === 'exec') {
      const dash = a.indexOf('--');
      if (dash < 0) fail('error: you must specify at least one command for the container', 1);
      const [ns, rest] = takeNs(a.slice(1, dash));
      if (rest.length !== 1) fail('stand-in kubectl: expected one target, got ' + JSON.stringify(rest), 1);
      resolve(ns, rest[0]);
      const code = inside(a.slice(dash + 1));
      if (code !== 0) fail('command terminated with exit code ' + code, code);
      process.exit(0);
    }
    if (a[0] === 'rollout' && (a[1] === 'restart' || a[1] === 'status')) {
      const [ns, rest] = takeNs(a.slice(2));
      const target = rest[0] || '';
      resolve(ns, target);
      const name = target.slice('deployment/'.length);
      if (a[1] === 'restart') {
        if (!(await restart())) fail('error: failed to patch deployment ' + name + ': simulated failure', 1);
        process.stdout.write('deployment.apps/' + name + ' restarted\n');
      } else process.stdout.write('deployment "' + name + '" successfully rolled out\n');
      process.exit(0);
    }
    fail('stand-in kubectl: unsupported: ' + argv.join(' '), 1);
  }

  if (tool === 'registry') {
    // The local registry binary: record, then the real one.
    const r = spawnSync(cfg.registryBin, argv, { stdio: 'inherit' });
    process.exit(r.status === null ? 128 : r.status);
  }

  if (tool === 'restart-registry') {
    if (!(await restart())) fail('restart-registry: simulated failure', 1);
    process.exit(0);
  }
  fail('unknown stand-in ' + tool, 2);
};
`;

export type StandinTool = 'docker' | 'kubectl' | 'registry' | 'restart-registry';

export interface Standins {
  /** Put this first on PATH. */
  readonly binDir: string;
  readonly recordFile: string;
  /** Every recorded call, in order: [program, ...argv]. */
  calls(): Promise<string[][]>;
  clearCalls(): Promise<void>;
  /** Replaces the stand-ins' configuration (takes effect at their next run). */
  configure(config: StandinConfig): Promise<void>;
  /** PATH with the stand-ins first, then `rest` (default: the current PATH). */
  path(rest?: string): string;
  remove(): Promise<void>;
}

/** Writes the stand-ins (`tools`, default all four) into a fresh temp bin dir. */
export async function makeStandins(config: StandinConfig, tools: readonly StandinTool[] = ['docker', 'kubectl', 'registry', 'restart-registry']): Promise<Standins> {
  const dir = await mkdtemp(join(tmpdir(), 'regprune-standins-'));
  const binDir = join(dir, 'bin');
  const recordFile = join(dir, 'calls.jsonl');
  const configFile = join(dir, 'standins.json');
  const impl = join(dir, 'standin-impl.cjs');
  await writeFile(impl, IMPL);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(binDir);
  const configure = async (c: StandinConfig) => writeFile(configFile, JSON.stringify({ ...c, record: recordFile }));
  await configure(config);
  await writeFile(recordFile, '');
  for (const tool of tools) {
    const path = join(binDir, tool);
    // An absolute node in the shebang: tests run some stand-ins with a PATH that has no node on it.
    await writeFile(
      path,
      `#!${process.execPath}\nrequire(${JSON.stringify(impl)})(${JSON.stringify(tool)}, ${JSON.stringify(configFile)}).catch((e) => { process.stderr.write(String(e && e.stack || e) + '\\n'); process.exit(99); });\n`,
    );
    await chmod(path, 0o755);
  }
  return {
    binDir,
    recordFile,
    async calls() {
      const text = await readFile(recordFile, 'utf8');
      return text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as string[]);
    },
    async clearCalls() {
      await writeFile(recordFile, '');
    },
    configure: async (c) => {
      await configure(c);
    },
    path: (rest = process.env.PATH ?? '') => (rest === '' ? binDir : `${binDir}:${rest}`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A loopback server whose GET /restart runs `restart` (e.g. the harness registry's stop+start) and answers 200 when done. */
export async function restartControl(restart: () => Promise<void>): Promise<{ url: string; count(): number; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/restart') {
      res.statusCode = 404;
      res.end();
      return;
    }
    restart().then(
      () => {
        n++;
        res.end('restarted\n');
      },
      (err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${addr.port}/restart`,
    count: () => n,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ------------------------------------------------------------------ recorder

export interface RecordingRunner extends ProcessRunner {
  /** Every argv run, in order. */
  readonly calls: string[][];
}

/**
 * A ProcessRunner for pure tests: records argv and answers from `answer`
 * (default: exit 0, no output). Output lines are fed to onLine as a real run would.
 */
export function recordingRunner(
  answer: (argv: readonly string[]) => RunResult | Promise<RunResult> = () => ({ started: true, exitCode: 0, stdout: '', stderr: '' }),
  options: { onPath?: readonly string[]; alive?: (pid: number) => boolean; hostname?: string } = {},
): RecordingRunner {
  const calls: string[][] = [];
  return {
    calls,
    hostname: options.hostname ?? 'testhost',
    async run(argv: Argv, opts: RunOptions = {}) {
      calls.push([...argv]);
      const r = await answer(argv);
      if (r.started && opts.onLine !== undefined) {
        for (const l of r.stdout.split('\n')) if (l !== '') opts.onLine(l, 'stdout');
        for (const l of r.stderr.split('\n')) if (l !== '') opts.onLine(l, 'stderr');
      }
      return r;
    },
    async which(name: string) {
      if (name.includes('/')) return (options.onPath ?? []).includes(name) ? name : undefined;
      return (options.onPath ?? []).includes(name) ? `/usr/bin/${name}` : undefined;
    },
    isAlive: options.alive ?? (() => false),
  };
}
