#!/usr/bin/env bash
# The store under load: PostgreSQL against SQLite, side by side in one run on loopback.
#
# For each store (SQLite in a temp dir, the embedded default; a throwaway PostgreSQL server
# from scripts/pg_throwaway.sh on a unix socket, synchronous_commit on), against ONE fixture
# upstream (`landlord fake-model`, answering at once, 16 output tokens):
#
#   gateway in serve   wrk -> `landlord serve` (its own model API: auth, limits, budget holds in
#                      memory, usage group-committed every meter_flush_ms) -> upstream
#   gateway, slices    wrk -> `landlord gateway` (--control-plane for SQLite, --store for
#                      PostgreSQL) -> upstream; requests admitted and settled against the
#                      gateway's slices of the key's balance, usage reported in batches
#                      (docs/scale-out.md); an answer ends once its usage is durable
#   gateway, per request  the same with `[gateway] slices = false`: each request's hold and
#                      settlement are durable on the control plane (two commits per request)
#   ledger ingestion   wrk -> POST /admin/usage, batches of 100 token-usage events (200 rows),
#                      each batch one durable commit; events/s
#
# wrk 4.1 (Debian) closed loop, -t1, BENCH_CONNS connections (32), BENCH_SECONDS (6) per run
# after a 1 s warm-up. The ratio column is PostgreSQL / SQLite. CPU per request: the user +
# system time (/proc/PID/stat) each process spent during the timed run, over the requests it
# served; for the slices run, of the gateway and of the control plane (`serve`) behind it.
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
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run_wrk SCRIPT URL [PID...] -> "req_per_s p50_ms p99_ms [cpu_us_per_request of each PID...]"
run_wrk() {
  local script=$1 url=$2 line p
  shift 2
  wrk -t1 -c"$CONNS" -d1s -s "$script" "$url" >/dev/null 2>&1 || true
  local before=() after=()
  for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
  line=$(wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$script" "$url" | grep '^RESULT') || die "wrk against $url failed"
  for p in "$@"; do after+=("$(cpu_ticks "$p")"); done
  read -r _ reqs dur_us errs non2xx p50 p99 <<<"$line"
  if ((errs + non2xx > 0)); then
    log "!! $errs socket errors, $non2xx non-2xx answers against $url"
    ERRORS=1
  fi
  python3 - "$reqs" "$dur_us" "$p50" "$p99" "$CLK_TCK" "${before[*]:-}" "${after[*]:-}" <<'PY'
import sys
reqs, dur_us, p50, p99, tck = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
before, after = sys.argv[6].split(), sys.argv[7].split()
cpu = [f"{(int(a) - int(b)) / tck * 1e6 / max(reqs, 1):.1f}" for b, a in zip(before, after)]
print(" ".join([f"{reqs / (dur_us / 1e6):.1f}", p50, p99] + cpu))
PY
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
  sed 's/^\[gateway\]$/[gateway]\nslices = false/' "$TMP/$store/landlord.toml" >"$TMP/$store/per-request.toml"
  args=(serve --config "$TMP/$store/landlord.toml")
  gw_args=(gateway --config "$TMP/$store/landlord.toml")
  pr_args=(gateway --config "$TMP/$store/per-request.toml")
  if [[ $store == postgres ]]; then args+=(--store "$PG_URL"); fi
  start "serve-$store" "${args[@]}"
  SERVE=$URL SERVE_PID=$PID
  if [[ $store == postgres ]]; then
    gw_args+=(--store "$PG_URL") pr_args+=(--store "$PG_URL")
  else
    gw_args+=(--control-plane "$SERVE") pr_args+=(--control-plane "$SERVE")
  fi
  start "gateway-$store" "${gw_args[@]}"
  GW=$URL GW_PID=$PID
  start "per-request-$store" "${pr_args[@]}"
  PR=$URL PR_PID=$PID
  TENANT=$(api POST "$SERVE/admin/tenants" '{"name":"bench"}' | json_field id)
  KEY=$(api POST "$SERVE/admin/keys" "{\"tenant_id\":\"$TENANT\"}" | json_field key)
  api POST "$SERVE/admin/credits" "{\"tenant_id\":\"$TENANT\",\"amount\":\"1000000.00\"}" >/dev/null
  log "$store: serve at $SERVE, gateway with slices at $GW, per request at $PR"
  for u in "$SERVE" "$GW" "$PR"; do  # one request by hand first: a setup error is not a benchmark figure
    code=$(curl -sS -o "$TMP/probe.out" -w '%{http_code}' -X POST -H "authorization: Bearer $KEY" \
      -H 'content-type: application/json' --data "$CHAT_BODY" "$u/v1/chat/completions") || die "curl $u failed"
    [[ $code == 200 ]] || die "POST $u/v1/chat/completions: HTTP $code $(cat "$TMP/probe.out")"
  done
  export BENCH_KEY=$KEY BENCH_TENANT=$TENANT BENCH_PREFIX="b$store$RANDOM" BENCH_ADMIN=$ADMIN_KEY
  log "$store: gateway in serve"
  R[$store.serve]=$(run_wrk "$TMP/chat.lua" "$SERVE/v1/chat/completions" "$SERVE_PID")
  log "$store: gateway with slices"
  R[$store.slices]=$(run_wrk "$TMP/chat.lua" "$GW/v1/chat/completions" "$GW_PID" "$SERVE_PID")
  log "$store: gateway, per request"
  R[$store.gateway]=$(run_wrk "$TMP/chat.lua" "$PR/v1/chat/completions" "$PR_PID" "$SERVE_PID")
  log "$store: ledger ingestion"
  R[$store.ingest]=$(run_wrk "$TMP/ingest.lua" "$SERVE")
  kill "$GW_PID" "$PR_PID" "$SERVE_PID" 2>/dev/null || true
  wait "$GW_PID" "$PR_PID" "$SERVE_PID" 2>/dev/null || true
done

printf '\nthe store under load: SQLite vs PostgreSQL %s (wrk -t1 -c%s -d%ss, loopback)\n' "$PG_VERSION" "$CONNS" "$SECS"
python3 - "$JSON_OUT" "$PG_VERSION" "$CONNS" "$SECS" "${R[sqlite.serve]}" "${R[postgres.serve]}" \
  "${R[sqlite.slices]}" "${R[postgres.slices]}" "${R[sqlite.gateway]}" "${R[postgres.gateway]}" \
  "${R[sqlite.ingest]}" "${R[postgres.ingest]}" <<'PY'
import json, sys
out, pg, conns, secs = sys.argv[1:5]
names = ["gateway_in_serve", "gateway_slices", "gateway_per_request", "ingest_events"]
labels = ["gateway in serve (req/s)", "gateway, slices (req/s)", "gateway, per request (req/s)",
          "ledger ingestion (events/s)"]
def parse(t, f):
    v = t.split()
    r = {"per_s": float(v[0]) * f, "p50_ms": float(v[1]), "p99_ms": float(v[2])}
    if len(v) > 3: r["cpu_us_per_request"] = float(v[3])
    if len(v) > 4: r["control_plane_cpu_us_per_request"] = float(v[4])
    return r
j = {"postgresql": pg, "connections": int(conns), "seconds": int(secs)}
print(f"{'run':<30} {'SQLite':>10} {'PostgreSQL':>11} {'ratio':>6} {'p50/p99 SQLite':>17} {'p50/p99 PG':>17}")
for i, n in enumerate(names):
    f = 100 if n == "ingest_events" else 1
    s, p = parse(sys.argv[5 + 2 * i], f), parse(sys.argv[6 + 2 * i], f)
    j[n] = {"sqlite": s, "postgres": p, "ratio": p["per_s"] / s["per_s"]}
    print(f"{labels[i]:<30} {s['per_s']:>10,.0f} {p['per_s']:>11,.0f} {p['per_s'] / s['per_s']:>6.2f} "
          f"{str(s['p50_ms']) + '/' + str(s['p99_ms']) + ' ms':>17} {str(p['p50_ms']) + '/' + str(p['p99_ms']) + ' ms':>17}")
print("\nCPU per request (µs, user + system) and the slices' targets")
print(f"{'':<44} {'SQLite':>10} {'PostgreSQL':>11}")
rows = [("serve, its own gateway", "gateway_in_serve", "cpu_us_per_request"),
        ("gateway with slices", "gateway_slices", "cpu_us_per_request"),
        ("  its control plane (serve)", "gateway_slices", "control_plane_cpu_us_per_request"),
        ("gateway per request", "gateway_per_request", "cpu_us_per_request"),
        ("  its control plane (serve)", "gateway_per_request", "control_plane_cpu_us_per_request")]
for label, n, k in rows:
    print(f"{label:<44} {j[n]['sqlite'][k]:>10.1f} {j[n]['postgres'][k]:>11.1f}")
for store in ("sqlite", "postgres"):
    sl, sv = j["gateway_slices"][store], j["gateway_in_serve"][store]
    j[f"targets_{store}"] = {
        "slices_vs_serve_req_per_s": sl["per_s"] / sv["per_s"],
        "control_plane_cpu_vs_gateway_cpu": sl["control_plane_cpu_us_per_request"] / sl["cpu_us_per_request"]}
print(f"{'slices req/s / serve req/s (target >= 0.8)':<44} {j['targets_sqlite']['slices_vs_serve_req_per_s']:>10.2f} "
      f"{j['targets_postgres']['slices_vs_serve_req_per_s']:>11.2f}")
print(f"{'control plane CPU / gateway CPU (<= 0.10)':<44} "
      f"{j['targets_sqlite']['control_plane_cpu_vs_gateway_cpu']:>10.2f} "
      f"{j['targets_postgres']['control_plane_cpu_vs_gateway_cpu']:>11.2f}")
if out:
    open(out, "w").write(json.dumps(j, indent=2) + "\n")
PY
exit $((ERRORS ? 3 : 0))
