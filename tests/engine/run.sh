#!/usr/bin/env bash
# Tests against a real llama.cpp `llama-server` (issue 18): builds it and the random-weight model
# with scripts/llama.sh (skipped when built; a cold build takes about 20 minutes on 2 cores, a
# ccache-warm one under a minute), then runs every tests/engine/*.test.mjs with Node's test runner
# (acceptance.test.mjs imports the `openai` SDK pinned in tests/node/package-lock.json).
#
#   bash tests/engine/run.sh                       # LLAMA_SERVER/LLAMA_MODEL: from scripts/llama.sh
#                                                  # LANDLORD_BIN: build/release/landlord
#   LL_RECORD_FIXTURES=1 bash tests/engine/run.sh  # also rewrites tests/gateway/fixtures/llama_server
#   bash tests/engine/run.sh COMMAND [ARGS...]     # runs COMMAND with LLAMA_SERVER/LLAMA_MODEL set
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

LL_RUNNER=tests/engine
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

command -v node >/dev/null 2>&1 || fail "node is not installed (scripts/deps.sh installs it)"
if [ -z "${LLAMA_SERVER:-}" ] || [ -z "${LLAMA_MODEL:-}" ]; then
  paths="$("$ROOT/scripts/llama.sh" all)" || fail "scripts/llama.sh all failed"
  LLAMA_SERVER="$(sed -n 's/^server=//p' <<<"$paths")"
  LLAMA_MODEL="$(sed -n 's/^model=//p' <<<"$paths")"
fi
[ -x "$LLAMA_SERVER" ] || fail "no llama-server at $LLAMA_SERVER"
[ -f "$LLAMA_MODEL" ] || fail "no model at $LLAMA_MODEL"
export LLAMA_SERVER LLAMA_MODEL

[ $# -gt 0 ] && exec "$@"
ll_landlord_bin  # the gateway in front of the engine (gateway.test.mjs, acceptance.test.mjs)
ll_npm_ci "$ROOT/tests/node"  # the official openai SDK, pinned there (acceptance.test.mjs)

shopt -s nullglob
files=("$HERE"/*.test.mjs)
[ "${#files[@]}" -gt 0 ] || fail "no tests in $HERE"
echo "tests/engine: $(node --version), $("$ROOT/scripts/llama.sh" version), model $(basename "$LLAMA_MODEL")"
exec node --test "${files[@]}"
