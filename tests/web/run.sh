#!/usr/bin/env bash
# The dashboard's browser end-to-end test: Debian's Chromium driven by playwright-core (from
# web/package-lock.json) against a real `landlord serve`.
#
#   LANDLORD_BIN=build/dev/landlord bash tests/web/run.sh
#
# LANDLORD_BIN defaults to build/release/landlord; screenshots go to LL_TEST_OUT (default
# $TMPDIR/landlord-dashboard-e2e). Installs the npm packages (npm ci) when web/node_modules is
# missing or stale. Exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WEB="$ROOT/web"

LL_RUNNER=tests/web
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

command -v node >/dev/null 2>&1 || fail "node is not installed (Debian: apt-get install nodejs npm; scripts/deps.sh installs them)"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] ||
  fail "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (Debian: apt-get install chromium; scripts/deps.sh installs it)"
ll_landlord_bin

stamp="$WEB/node_modules/.package-lock.json"
if [ ! -d "$WEB/node_modules" ] || [ ! -f "$stamp" ] || [ "$WEB/package-lock.json" -nt "$stamp" ]; then
  echo "tests/web: npm ci"
  (cd "$WEB" && npm ci --no-audit --no-fund) || fail "npm ci failed"
fi
export LL_TEST_OUT="${LL_TEST_OUT:-${TMPDIR:-/tmp}/landlord-dashboard-e2e}"
echo "tests/web: $(node --version), playwright-core $(node -p "require('$WEB/node_modules/playwright-core/package.json').version"), $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null || echo chromium), screenshots in $LL_TEST_OUT"
exec node --test "$HERE"/*.test.mjs
