import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Argv, ProcessRunner, RunOptions, RunResult } from './process.js';

/** Splits chunks into lines; the remainder is flushed at the end. */
function lineSplitter(emit: (line: string) => void): { push(chunk: Buffer | string): void; end(): void } {
  let buf = '';
  return {
    push(chunk) {
      buf += chunk.toString();
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) emit(buf.slice(0, i).replace(/\r$/, ''));
    },
    end() {
      if (buf !== '') emit(buf);
      buf = '';
    },
  };
}

/** The production runner: execa with an argv array (never a shell), stdin closed. */
export function execaRunner(env: Readonly<Record<string, string | undefined>>): ProcessRunner {
  return {
    hostname: hostname(),
    async run(argv: Argv, options: RunOptions = {}): Promise<RunResult> {
      const [file, ...args] = argv;
      // Loaded on first use: most runs start no process, and execa costs start-up time.
      const { execa } = await import('execa');
      const child = execa(file, args, { reject: false, stdin: 'ignore', env: { ...env }, extendEnv: false, stripFinalNewline: false });
      const onLine = options.onLine;
      const out = lineSplitter((l) => onLine?.(l, 'stdout'));
      const err = lineSplitter((l) => onLine?.(l, 'stderr'));
      if (onLine !== undefined) {
        child.stdout?.on('data', (c: Buffer) => out.push(c));
        child.stderr?.on('data', (c: Buffer) => err.push(c));
      }
      const result = await child;
      out.end();
      err.end();
      if (result.exitCode === undefined && result.signal === undefined) {
        const code = (result as { code?: string }).code;
        return { started: false, notFound: code === 'ENOENT', message: result.shortMessage ?? 'could not start' };
      }
      return {
        started: true,
        exitCode: result.exitCode ?? -1,
        stdout: String(result.stdout ?? ''),
        stderr: String(result.stderr ?? ''),
        ...(result.signal === undefined ? {} : { signal: result.signal }),
      };
    },
    async which(name: string): Promise<string | undefined> {
      const candidates = name.includes('/')
        ? [name]
        : (env.PATH ?? '')
            .split(delimiter)
            .filter((d) => d !== '' && isAbsolute(d))
            .map((d) => join(d, name));
      for (const c of candidates) {
        try {
          await access(c, constants.X_OK);
          return c;
        } catch {
          // not here
        }
      }
      return undefined;
    },
    isAlive(pid: number): boolean {
      try {
        process.kill(pid, 0);
        return true;
      } catch (e) {
        // EPERM: it exists but belongs to someone else.
        return (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    },
  };
}
