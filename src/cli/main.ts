import * as fsp from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { execaRunner } from '../gc/execa-runner.js';
import { storageFs } from '../storage/fs.js';
import { runCli } from './program.js';

// The production wiring: real filesystem, clock, terminal. Everything else takes these as parameters.
function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string; gitHead?: string };
    const build = process.env.REGPRUNE_BUILD ?? readBuild();
    return `${pkg.version ?? 'unknown'}${build === undefined ? '' : ` (${build})`}`;
  } catch {
    return 'unknown';
  }
}

function readBuild(): string | undefined {
  try {
    return readFileSync(new URL('../../BUILD', import.meta.url), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

const code = await runCli(process.argv.slice(2), {
  fs: storageFs(fsp),
  now: () => new Date(),
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
  stdinIsTTY: process.stdin.isTTY === true,
  confirm,
  pid: process.pid,
  version: version(),
  run: execaRunner(process.env),
});
process.exitCode = code;
