#!/usr/bin/env bash
# Scale-out, end to end: 2 `landlord serve` (one leads, one stands by) and 3 `landlord gateway`
# against one throwaway PostgreSQL server.
#
#   LANDLORD_BIN=build/dev/landlord bash tests/scale/run.sh
#
# Starts PostgreSQL (scripts/pg_throwaway.sh: Debian's postgresql in a temp dir, on a unix
# socket there only), runs tests/scale/*.test.mjs with Node's test runner and stops the server
# however they end. LANDLORD_BIN defaults to build/release/landlord. Exits non-zero on any
# failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

LL_RUNNER=tests/scale
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

command -v node >/dev/null 2>&1 ||
  fail "node is not installed (Debian: apt-get install nodejs; scripts/deps.sh installs it)"
ll_landlord_bin

# shellcheck source=../../scripts/pg_throwaway.sh
source "$ROOT/scripts/pg_throwaway.sh"
trap pg_throwaway_stop EXIT
pg_throwaway_start || fail "no PostgreSQL server"
export LL_PG_URL="$PG_URL" LL_PG_BIN="$PG_BIN"

echo "tests/scale: $(node --version), PostgreSQL $PG_VERSION at $PG_DIR, LANDLORD_BIN=$LANDLORD_BIN"
status=0
node --test "$HERE"/*.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "tests/scale: the last lines of PostgreSQL's log:" >&2
  pg_throwaway_log_tail 20
fi
exit "$status"
