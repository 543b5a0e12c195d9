#!/usr/bin/env bash
# The store under load: PostgreSQL against SQLite, side by side in one run on loopback.
#
# For each store (SQLite in a temp dir, the embedded default; a throwaway PostgreSQL server
# from scripts/pg_throwaway.sh on a unix socket, synchronous_commit on), against ONE fixture
# upstream (`landlord fake-model`, answering at once, 16 output tokens):
#
#   gateway in serve   wrk -> `landlord serve` (its own model API: auth, limits, budget holds in
#                      memory, usage group-committed every meter_flush_ms) -> upstream
#   gateway, scale-out wrk -> `landlord gateway` (--control-plane for SQLite, --store for
#                      PostgreSQL) -> upstream; each request's hold and settlement are durable
#                      on the control plane (two commits per request, over HTTP)
#   ledger ingestion   wrk -> POST /admin/usage, batches of 100 token-usage events (200 rows),
#                      each batch one durable commit; events/s
#
# wrk 4.1 (Debian) closed loop, -t1, BENCH_CONNS connections (32), BENCH_SECONDS (6) per run
# after a 1 s warm-up. The ratio column is PostgreSQL / SQLite.
#
# Usage: bench/store_bench.sh [--json FILE]
# Env:   LANDLORD_BIN (default build/bench/landlord, else build/release/landlord),
#        BENCH_SECONDS, BENCH_CONNS.
# Exit:  0 when every run was error-free; 1 on a setup failure; 3 when a run saw errors.
set -euo pipefail

JSON_OUT=""
while (($#)); do
  case $1 in
    --json) [[ $# -ge 2 ]] || { echo "--json needs a FILE" >&2; exit 2; }; JSON_OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "store_bench: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "store_bench: $*" >&2; exit 1; }
log() { echo "  $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-32}
ADMIN_KEY=ll_store_bench_admin_key_0123456789

BIN=${LANDLORD_BIN:-}
if [[ -z $BIN ]]; then
  for c in build/bench/landlord build/release/landlord; do
    if [[ -x $ROOT/$c ]]; then BIN=$ROOT/$c; break; fi
  done
fi
[[ -n $BIN && -x $BIN ]] || die "no landlord binary: build it (make bench), or set LANDLORD_BIN"
command -v wrk >/dev/null || die "wrk is missing (Debian: apt-get install wrk; scripts/deps.sh bench installs it)"
command -v curl >/dev/null || die "curl is missing (Debian: apt-get install curl)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/landlord-store-bench.XXXXXX")
PIDS=()
# shellcheck source=../scripts/pg_throwaway.sh
source "$ROOT/scripts/pg_throwaway.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_throwaway_stop
  [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT

# Starts `landlord ARGS...` in the background (not in a subshell: its pid is kept); sets URL to
# the address of its first stdout line and PID to its pid.
start() {
  local name=$1; shift
  LANDLORD_ADMIN_KEY=$ADMIN_KEY "$BIN" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 300); do
    if grep -qm1 'listening on http://' "$TMP/$name.out" 2>/dev/null; then
      URL=$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$TMP/$name.out" | head -1)
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/$name.err" >&2; die "$name exited before listening"; }
    sleep 0.1
  done
  die "$name did not listen within 30 s"
}

api() {  # METHOD URL BODY -> the body; dies on a non-2xx answer
  local out code
  out=$(curl -sS -o "$TMP/api.out" -w '%{http_code}' -X "$1" -H "authorization: Bearer $ADMIN_KEY" \
    -H 'content-type: application/json' --data "$3" "$2") || die "curl $1 $2 failed"
  code=$out
  [[ $code == 2* ]] || die "$1 $2: HTTP $code $(cat "$TMP/api.out")"
  cat "$TMP/api.out"
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

CHAT_BODY='{"model":"m","messages":[{"role":"user","content":"Say something about GPUs."}],"max_tokens":16}'
cat >"$TMP/chat.lua" <<LUA
local key = os.getenv("BENCH_KEY")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = '$CHAT_BODY'
LUA
cat >"$TMP/ingest.lua" <<'LUA'
local tenant = os.getenv("BENCH_TENANT")
local prefix = os.getenv("BENCH_PREFIX")
local admin = os.getenv("BENCH_ADMIN")
local n = 0
function request()
  local parts = {}
  for i = 1, 100 do
    n = n + 1
    parts[i] = string.format('{"key":"%s-%d","tenant_id":"%s","model":"m","input_tokens":10,"output_tokens":20}',
      prefix, n, tenant)
  end
  return wrk.format("POST", "/admin/usage",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. admin },
    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
LUA
cat >"$TMP/done.lua" <<'LUA'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT %d %d %d %d %.3f %.3f\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
cat "$TMP/done.lua" >>"$TMP/chat.lua"
cat "$TMP/done.lua" >>"$TMP/ingest.lua"

ERRORS=0
# run_wrk SCRIPT URL -> "req_per_s p50_ms p99_ms"
run_wrk() {
  wrk -t1 -c"$CONNS" -d1s -s "$1" "$2" >/dev/null 2>&1 || true
  local line
  line=$(wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$1" "$2" | grep '^RESULT') || die "wrk against $2 failed"
  read -r _ reqs dur_us errs non2xx p50 p99 <<<"$line"
  if ((errs + non2xx > 0)); then
    log "!! $errs socket errors, $non2xx non-2xx answers against $2"
    ERRORS=1
  fi
  python3 -c "print(f'{$reqs / ($dur_us / 1e6):.1f} $p50 $p99')"
}

echo "store_bench: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $BIN" >&2
pg_throwaway_start || die "no PostgreSQL server"
log "PostgreSQL $PG_VERSION at $PG_DIR"
start upstream fake-model --listen 127.0.0.1:0 --model m --tokens-per-s 0 --output-tokens 16
UP=$URL
log "fixture upstream at $UP"
printf 'submit_s,gpus,duration_s\n0,8,3024000\n' >"$TMP/owner.csv"

declare -A R
for store in sqlite postgres; do
  mkdir -p "$TMP/$store"
  cat >"$TMP/$store/landlord.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$TMP/$store/data"
max_connections = 4096
[fleet]
trace = "csv:$TMP/owner.csv"
nodes = 4
gpus_per_node = 8
history_h = 360
[gateway]
rpm = 0
tpm = 0
[[gateway.upstreams]]
model = "m"
url = "$UP"
EOF
  args=(serve --config "$TMP/$store/landlord.toml")
  gw_args=(gateway --config "$TMP/$store/landlord.toml")
  if [[ $store == postgres ]]; then args+=(--store "$PG_URL"); fi
  start "serve-$store" "${args[@]}"
  SERVE=$URL SERVE_PID=$PID
  if [[ $store == postgres ]]; then gw_args+=(--store "$PG_URL"); else gw_args+=(--control-plane "$SERVE"); fi
  start "gateway-$store" "${gw_args[@]}"
  GW=$URL GW_PID=$PID
  TENANT=$(api POST "$SERVE/admin/tenants" '{"name":"bench"}' | json_field id)
  KEY=$(api POST "$SERVE/admin/keys" "{\"tenant_id\":\"$TENANT\"}" | json_field key)
  api POST "$SERVE/admin/credits" "{\"tenant_id\":\"$TENANT\",\"amount\":\"1000000.00\"}" >/dev/null
  log "$store: serve at $SERVE, gateway at $GW"
  for u in "$SERVE" "$GW"; do  # one request by hand first: a setup error is not a benchmark figure
    code=$(curl -sS -o "$TMP/probe.out" -w '%{http_code}' -X POST -H "authorization: Bearer $KEY" \
      -H 'content-type: application/json' --data "$CHAT_BODY" "$u/v1/chat/completions") || die "curl $u failed"
    [[ $code == 200 ]] || die "POST $u/v1/chat/completions: HTTP $code $(cat "$TMP/probe.out")"
  done
  log "$store: gateway in serve"
  export BENCH_KEY=$KEY BENCH_TENANT=$TENANT BENCH_PREFIX="b$store$RANDOM" BENCH_ADMIN=$ADMIN_KEY
  R[$store.serve]=$(run_wrk "$TMP/chat.lua" "$SERVE/v1/chat/completions")
  log "$store: gateway, scale-out"
  R[$store.gateway]=$(run_wrk "$TMP/chat.lua" "$GW/v1/chat/completions")
  log "$store: ledger ingestion"
  R[$store.ingest]=$(run_wrk "$TMP/ingest.lua" "$SERVE")
  kill "$GW_PID" "$SERVE_PID" 2>/dev/null || true
  wait "$GW_PID" "$SERVE_PID" 2>/dev/null || true
done

printf '\nthe store under load: SQLite vs PostgreSQL %s (wrk -t1 -c%s -d%ss, loopback)\n' "$PG_VERSION" "$CONNS" "$SECS"
printf '%-34s %12s %12s %8s %16s %16s\n' "run" "SQLite" "PostgreSQL" "ratio" "p50/p99 SQLite" "p50/p99 PG"
row() {  # NAME KEY FACTOR (events per request)
  read -r s_rps s_p50 s_p99 <<<"${R[sqlite.$2]}"
  read -r p_rps p_p50 p_p99 <<<"${R[postgres.$2]}"
  python3 - "$1" "$s_rps" "$p_rps" "$3" "$s_p50" "$s_p99" "$p_p50" "$p_p99" <<'PY'
import sys
name, s, p, f, sp50, sp99, pp50, pp99 = sys.argv[1:]
s, p, f = float(s) * float(f), float(p) * float(f), float(f)
print(f"{name:<34} {s:>12,.0f} {p:>12,.0f} {p / s:>8.2f} {sp50 + '/' + sp99 + ' ms':>16} {pp50 + '/' + pp99 + ' ms':>16}")
PY
}
row "gateway in serve (req/s)" serve 1
row "gateway, scale-out (req/s)" gateway 1
row "ledger ingestion (events/s)" ingest 100

if [[ -n $JSON_OUT ]]; then
  python3 - "$JSON_OUT" "$PG_VERSION" "$CONNS" "$SECS" "${R[sqlite.serve]}" "${R[postgres.serve]}" \
    "${R[sqlite.gateway]}" "${R[postgres.gateway]}" "${R[sqlite.ingest]}" "${R[postgres.ingest]}" <<'PY'
import json, sys
out, pg, conns, secs = sys.argv[1:5]
def parse(t, f=1):
    rps, p50, p99 = t.split()
    return {"per_s": float(rps) * f, "p50_ms": float(p50), "p99_ms": float(p99)}
names = ["gateway_in_serve", "gateway_scale_out", "ingest_events"]
vals = sys.argv[5:]
j = {"postgresql": pg, "connections": int(conns), "seconds": int(secs)}
for i, n in enumerate(names):
    f = 100 if n == "ingest_events" else 1
    s, p = parse(vals[2 * i], f), parse(vals[2 * i + 1], f)
    j[n] = {"sqlite": s, "postgres": p, "ratio": p["per_s"] / s["per_s"]}
open(out, "w").write(json.dumps(j, indent=2) + "\n")
PY
fi
exit $((ERRORS ? 3 : 0))
