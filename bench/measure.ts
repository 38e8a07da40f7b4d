/**
 * Runs one command and measures it: wall time (hrtime around spawn/exit) and
 * peak RSS of the whole process tree. Peak RSS comes from GNU time's %M
 * (wait4's ru_maxrss, which covers children a shell pipeline waited for);
 * without /usr/bin/time it falls back to polling VmHWM in /proc, which can
 * miss short-lived children.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';

export interface Sample {
  readonly seconds: number;
  readonly peakRssKb: number | undefined;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
}

export interface RunFiles {
  readonly stdout: string;
  readonly stderr: string;
  /** Scratch file for GNU time's report. */
  readonly rss: string;
}

/** GNU time, when installed and able to write %M to a file (busybox's is not). */
export function findGnuTime(): string | undefined {
  for (const path of ['/usr/bin/time', '/bin/time']) {
    if (!existsSync(path)) continue;
    const probe = spawnSync(path, ['-f', '%M', '-o', '/dev/null', 'true'], { stdio: 'ignore' });
    if (probe.status === 0) return path;
  }
  return undefined;
}

function kbFromStatus(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return m?.[1] === undefined ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(' ')) {
          if (c.trim() !== '') {
            out.push(Number(c));
            stack.push(Number(c));
          }
        }
      } catch {
        // task ended
      }
    }
  }
  return out;
}

export interface MeasureOptions {
  readonly files: RunFiles;
  readonly timeBin: string | undefined;
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function measure(argv: readonly string[], options: MeasureOptions): Promise<Sample> {
  const { files, timeBin } = options;
  rmSync(files.rss, { force: true });
  const full = timeBin === undefined ? [...argv] : [timeBin, '-f', '%M', '-o', files.rss, ...argv];
  const [command, ...args] = full;
  if (command === undefined) throw new Error('measure: empty command');
  const out = openSync(files.stdout, 'w');
  const err = openSync(files.stderr, 'w');
  return new Promise<Sample>((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', out, err], cwd: options.cwd, env: options.env ?? process.env });
    let polledKb = 0;
    let poller: NodeJS.Timeout | undefined;
    if (timeBin === undefined && child.pid !== undefined) {
      const pid = child.pid;
      poller = setInterval(() => {
        for (const p of [pid, ...descendants(pid)]) polledKb = Math.max(polledKb, kbFromStatus(p));
      }, 25);
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      if (poller !== undefined) clearInterval(poller);
      closeSync(out);
      closeSync(err);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      clearTimeout(timer);
      if (poller !== undefined) clearInterval(poller);
      closeSync(out);
      closeSync(err);
      let peakRssKb: number | undefined = polledKb > 0 ? polledKb : undefined;
      if (timeBin !== undefined) {
        // GNU time writes "Command exited with non-zero status N" before %M on failure: take the last line.
        const lines = existsSync(files.rss) ? readFileSync(files.rss, 'utf8').trim().split('\n') : [];
        const kb = Number(lines[lines.length - 1]);
        peakRssKb = Number.isFinite(kb) && kb > 0 ? kb : undefined;
      }
      resolve({ seconds, peakRssKb, exitCode: code, signal, timedOut });
    });
  });
}

/** Tries to empty the page cache (root only). Returns whether it worked. */
export function dropCaches(): boolean {
  spawnSync('sync', [], { stdio: 'ignore' });
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The last `n` non-empty lines of a file, for error reports. */
export function tail(path: string, n = 3): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
    return lines.slice(-n).join(' | ');
  } catch {
    return '';
  }
}

export function countLines(path: string): number {
  try {
    const text = readFileSync(path);
    let n = 0;
    for (const byte of text) if (byte === 10) n++;
    return n;
  } catch {
    return 0;
  }
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

/** Quotes for sh -c. */
export function shq(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A shell word: quoted only when it has to be, so printed commands stay readable and pasteable. */
export function shellWord(text: string): string {
  return /^[\w./:+=,@-]+$/.test(text) ? text : shq(text);
}
