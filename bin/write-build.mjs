#!/usr/bin/env node
// `npm run build` ends here: records which commit dist/ was built from in dist/BUILD, which
// src/cli/main.ts reads for `regprune --version`. bin/package.mjs uses buildId() for the bundles.
// Never fails the build: outside a git checkout (an unpacked source tarball, a container build
// context without .git) there is no commit to record, and a stale dist/BUILD is removed instead.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * The build id: REGPRUNE_BUILD when set (CI may pass its own), else the short commit with
 * `-dirty` when tracked files differ from it (as `git describe --dirty` counts it), else undefined.
 */
export function buildId(root = repoRoot, env = process.env) {
  if (env.REGPRUNE_BUILD !== undefined && env.REGPRUNE_BUILD !== '') return env.REGPRUNE_BUILD;
  // GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock; other work may be committing.
  const git = (...args) =>
    execFileSync('git', ['-C', root, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...env, GIT_OPTIONAL_LOCKS: '0' },
    }).trim();
  try {
    const commit = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return undefined;
  }
}

function main() {
  const dist = fileURLToPath(new URL('../dist/', import.meta.url));
  const file = `${dist}BUILD`;
  const id = buildId();
  if (id === undefined) {
    rmSync(file, { force: true });
    process.stderr.write('write-build: not a git checkout (or no git); dist/BUILD not written, --version shows no build\n');
    return;
  }
  mkdirSync(dist, { recursive: true });
  writeFileSync(file, `${id}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
