#!/usr/bin/env node
// `npm run package`: the single-file builds, for registry hosts that have no npm and no way out.
//   dist/regprune.mjs              one ESM file, needs only `node` (>= 20.19)
//   dist/regprune-<os>-<arch>      a standalone executable: Node's single executable application
//                                  (SEA) support, the blob injected into a copy of this node binary
// Only the running platform's executable can be built: the SEA is a copy of process.execPath, and
// no other node binary (linux-arm64, say) may be fetched from here. See docs/install.md.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build as esbuild, formatMessages } from 'esbuild';
import { buildId } from './write-build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist/`;
// Intermediate files per process, and outputs renamed into place when complete: test suites in one
// checkout may package at the same time, and one must never copy another's half-injected binary.
const work = `${dist}sea/${process.pid}/`;
const entry = `${root}src/cli/main.ts`;
// The sentinel Node's own build places in the binary; postject flips it to say "a blob is inside".
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const id = buildId();
const mib = (file) => `${(statSync(file).size / 1048576).toFixed(1)} MiB`;
const say = (line) => process.stderr.write(`package: ${line}\n`);

// Both builds read these instead of package.json and dist/BUILD (see src/cli/main.ts).
const define = {
  REGPRUNE_BUNDLED_VERSION: JSON.stringify(pkg.version),
  REGPRUNE_BUNDLED_BUILD: JSON.stringify(id ?? ''),
};
const common = {
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  target: 'node20.19',
  define,
  legalComments: 'none',
  logLevel: 'silent',
};

// main.ts reads import.meta.url only when the defines above are absent (the tsc build), so the
// CommonJS bundle's empty import.meta is harmless there. Anywhere else it would break the
// executable at run time: fail instead.
async function build(options) {
  const result = await esbuild(options);
  const expected = (w) => w.id === 'empty-import-meta' && w.location?.file === 'src/cli/main.ts';
  const shown = result.warnings.filter((w) => !expected(w));
  if (shown.length > 0) process.stderr.write((await formatMessages(shown, { kind: 'warning' })).join(''));
  if (shown.some((w) => w.id === 'empty-import-meta')) {
    say(`import.meta is used outside src/cli/main.ts: it would be empty in ${options.outfile.slice(root.length)}`);
    process.exit(1);
  }
  return result;
}

mkdirSync(work, { recursive: true });
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// 1. dist/regprune.mjs. commander is CommonJS and require()s node builtins, which an ESM bundle
// has no require for: give it one.
const mjs = `${dist}regprune.mjs`;
await build({
  ...common,
  format: 'esm',
  outfile: `${work}regprune.mjs`,
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __regpruneCreateRequire } from 'node:module';\nconst require = __regpruneCreateRequire(import.meta.url);",
  },
});
chmodSync(`${work}regprune.mjs`, 0o755);
renameSync(`${work}regprune.mjs`, mjs);
say(`${mjs.slice(root.length)} (${mib(mjs)}), version ${pkg.version}${id === undefined ? '' : ` (${id})`}`);

// 2. The standalone executable. Node 20's SEA runs one CommonJS script whose require() reaches
// only builtins: hence a second, CommonJS bundle with every dependency inside.
const cjs = `${work}regprune.cjs`;
await build({ ...common, format: 'cjs', outfile: cjs });

const target = `${process.platform}-${process.arch}`;
const exe = `${dist}regprune-${target}`;
const blob = `${work}regprune.blob`;
const seaConfig = `${work}sea-config.json`;
writeFileSync(
  seaConfig,
  JSON.stringify(
    {
      main: cjs,
      output: blob,
      // A cron job's mail should not carry "single executable applications is experimental" each night.
      disableExperimentalSEAWarning: true,
    },
    null,
    2,
  ),
);

// macOS and Windows need code-signing steps around the injection; registry hosts run Linux.
if (process.platform !== 'linux') {
  say(`the standalone executable is built on Linux only (this is ${target}); dist/regprune.mjs is ready`);
  process.exit(0);
}
if (!readFileSync(process.execPath).includes(SEA_FUSE)) {
  say(`${process.execPath} has no SEA fuse (not an official Node build?); cannot make ${exe.slice(root.length)}`);
  process.exit(1);
}
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });

const partial = `${work}regprune-${target}`;
copyFileSync(process.execPath, partial);
chmodSync(partial, 0o755);
const { inject } = createRequire(import.meta.url)('postject');
// postject (LIEF) prints "warning: Can't find string offset for section name '.note.100'" a few
// times on Node's Linux binaries; harmless, the executable works (nodejs/postject#83).
await inject(partial, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });

// Proof it stands alone: an empty environment, so no PATH and no node to lean on.
const shown = execFileSync(partial, ['--version'], { env: {}, encoding: 'utf8' }).trim();
if (shown === process.version) {
  say(`${partial.slice(root.length)} runs as plain node (${shown}): the blob was not injected`);
  process.exit(1);
}
renameSync(partial, exe);
say(`${exe.slice(root.length)} (${mib(exe)}), --version: ${shown}`);
for (const other of ['linux-x64', 'linux-arm64'].filter((t) => t !== target)) {
  say(`regprune-${other}: not built (it needs a ${other} node binary, and none may be downloaded here)`);
}
