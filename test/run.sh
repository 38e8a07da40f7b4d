#!/usr/bin/env bash
# The whole test suite, as README.md gives it: on a fresh Debian machine as
# root it installs the real registry (Debian's docker-registry) when missing,
# builds, and runs every test, the real-registry ones included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-registry >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test/run.sh: installing docker-registry (the real registry the integration tests run)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
  else
    echo "test/run.sh: docker-registry is missing and cannot be installed here (needs root and apt-get);" >&2
    echo "  install it with: sudo apt-get install -y docker-registry   (the real-registry tests will fail without it)" >&2
  fi
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
npx tsc -p test/tsconfig.json
# The run leaves the temp dir as it found it: everything it writes there (vitest's own module
# cache included) goes to one directory, removed at the end. test/tmp-guard.ts fails the run
# when a test leaves something behind.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/regprune-npm-test.XXXXXX")
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR="$run_tmp"
results=$(mktemp)
status=0
npx vitest run --config test/vitest.config.ts --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$results" 2>/dev/null || echo "tests: run did not complete (exit $status)"
rm -f "$results"
exit "$status"
