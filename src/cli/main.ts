import * as nodeFs from 'node:fs';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { execaRunner } from '../gc/execa-runner.js';
import { storageFs } from '../storage/fs.js';
import { readManifestsWith } from '../graph/load.js';
import { manifestThread } from '../storage/manifest-reader.js';
import { threadedReads } from '../storage/reader.js';
import { keepHeapSmall } from '../util/heap.js';
import { runCli } from './program.js';

// Peak memory: V8's heap kept near what is live (see src/util/heap.ts). Before the work starts.
keepHeapSmall();

// Set by bin/package.mjs (esbuild `define`) in the single-file builds (dist/regprune.mjs and the
// standalone executable): there, no package.json or dist/BUILD sits at a known place beside the code.
declare const REGPRUNE_BUNDLED_VERSION: string | undefined;
declare const REGPRUNE_BUNDLED_BUILD: string | undefined;

// The production wiring: real filesystem, clock, terminal. Everything else takes these as parameters.
function version(): string {
  try {
    const bundled = typeof REGPRUNE_BUNDLED_VERSION === 'string';
    const pkgVersion = bundled ? REGPRUNE_BUNDLED_VERSION : readPackageVersion();
    const build = process.env.REGPRUNE_BUILD ?? (bundled ? REGPRUNE_BUNDLED_BUILD : readBuild());
    return `${pkgVersion ?? 'unknown'}${build === undefined || build === '' ? '' : ` (${build})`}`;
  } catch {
    return 'unknown';
  }
}

function readPackageVersion(): string | undefined {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version;
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

// The AWS SDK (s3 configs) warns on stderr that its releases after January 2027 need
// Node 22; that notice is not regprune's output. Its own switch, read when it would warn.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// SIGINT/SIGTERM (a container's PID 1 gets SIGTERM on stop): apply finishes the entries in hand,
// the lock is released, and the exit status is 128 + the signal (130, 143). A second one ends at once.
const stop = new AbortController();
const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
let caught: keyof typeof SIGNALS | undefined;
for (const name of Object.keys(SIGNALS) as Array<keyof typeof SIGNALS>) {
  process.on(name, () => {
    if (caught !== undefined) process.exit(128 + SIGNALS[name]);
    caught = name;
    process.stderr.write(`regprune: ${name}: finishing the entries in hand, then stopping (again to stop at once)\n`);
    stop.abort(name);
  });
}

const disk = storageFs(nodeFs);

// No top-level await: the standalone executable runs this file bundled as CommonJS, the only
// kind of main script Node 20's single executable applications accept.
void runCli(process.argv.slice(2), {
  fs: disk,
  readFs: readManifestsWith(threadedReads(disk), manifestThread()),
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
  signal: stop.signal,
}).then((code) => {
  process.exitCode = caught === undefined ? code : 128 + SIGNALS[caught];
});
