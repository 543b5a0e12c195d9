#!/usr/bin/env bash
# End-to-end tests of the model API gateway with the official `openai` npm client.
#
#   LANDLORD_BIN=build/dev/landlord bash tests/node/run.sh
#
# Installs the client from package-lock.json (npm ci) when node_modules is missing or older
# than the lockfile, then runs every tests/node/*.test.mjs with Node's test runner.
# LANDLORD_BIN defaults to build/release/landlord. Exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

LL_RUNNER=tests/node
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

command -v node >/dev/null 2>&1 ||
  fail "node is not installed (Debian: apt-get install nodejs npm; scripts/deps.sh installs them)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old: the tests need Node 18 or later"

ll_landlord_bin

ll_npm_ci "$HERE"

shopt -s nullglob
files=("$HERE"/*.test.mjs)
[ "${#files[@]}" -gt 0 ] || fail "no tests in $HERE"
echo "tests/node: $(node --version), openai $(node -p "require('$HERE/node_modules/openai/package.json').version"), LANDLORD_BIN=$LANDLORD_BIN"
# Explicit files rather than a directory: Node 22+ reads --test arguments as globs.
exec node --test "${files[@]}"
