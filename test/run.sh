#!/usr/bin/env bash
# The whole test suite, as README.md gives it: on a fresh Debian machine as
# root it installs the real registry (Debian's docker-registry) and OpenStack Swift when missing,
# builds, and runs every test, the real-registry ones included.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real registry, and OpenStack Swift + memcached as the real S3 backend (test/helpers/swift.ts).
packages=""
command -v docker-registry >/dev/null 2>&1 || packages=" docker-registry"
if ! command -v swift-proxy-server >/dev/null 2>&1 || ! command -v memcached >/dev/null 2>&1; then
  packages="$packages swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached"
fi
if [ -n "$packages" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test/run.sh: installing$packages (the real registry and S3 backend the integration tests run)" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "test/run.sh: missing and cannot be installed here (needs root and apt-get):$packages" >&2
    echo "  install with: sudo apt-get install -y$packages   (the real-registry and S3 tests will fail without them)" >&2
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
