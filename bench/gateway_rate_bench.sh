#!/usr/bin/env bash
# The model API gateway at a fixed rate (open loop), side by side in one run against ONE fixture
# upstream (`landlord fake-model`, answering at once, 16 tokens, streamed):
#
#   direct   loadgen -> upstream
#   gateway  loadgen -> `landlord serve`'s gateway (auth, rpm/tpm limits, budget holds and
#            metering on; usage group-committed to SQLite on the commit thread) -> upstream
#
# Method: first the gateway's max req/s (wrk, closed loop, BENCH_CONNS connections); then
# `landlord_loadgen` (bench/loadgen.cc) sends requests at half that rate to each path, in
# interleaved rounds (direct, gateway, direct, ...), each request due at its time whatever
# happened before (latency counted from when it was due: no coordinated omission). Per request:
# the time to the first byte (a stream's head and first token) and to the last byte (`[DONE]`,
# which the gateway sends only once the request's usage is durable). Alongside, the loadgen's
# probe writes 4 KiB and fdatasync()s it every 10 ms in the server's data dir: the disk's own
# sync latency in the same run. Targets (issue 20): added p99 to the first byte <= 1 ms over
# direct; added p99 to the last byte <= 1 ms + the disk's fsync p99.
# Pinning as bench/gateway_bench.sh: loadgen, wrk and the upstream on CPU 0, landlord serve (all
# of its threads) on CPU 1, when there are 2+ CPUs.
#
# With --allocs, instead: heap allocations per request of the gateway (landlord serve, all of
# its threads, under bench/malloc_count.c preloaded), over BENCH_ALLOC_REQUESTS (20000) streamed
# requests at 1000 req/s after 2000 of warm-up; idle allocations (the ticks) over as long are
# subtracted.
#
# Usage: bench/gateway_rate_bench.sh [--json FILE] [--allocs]
# Env:   LANDLORD_BIN (default build/bench/landlord, else build/release/landlord), LOADGEN_BIN
#        (default landlord_loadgen beside it or in its bench/, else compiled from bench/loadgen.cc),
#        BENCH_RATE_SECONDS (10 per run), BENCH_RATE_ROUNDS (2), BENCH_RATE (req/s; default half
#        the measured max), BENCH_STREAM (1; 0: whole answers, not streamed), BENCH_CONNS ("32 128": the max over them), BENCH_PIN (1; 0: no taskset).
# Exit:  0 when every run was error-free (targets met or not); 1 on a setup failure; 3 on errors.
set -euo pipefail

JSON_OUT=""
ALLOCS=0
while (($#)); do
  case $1 in
    --json) [[ $# -ge 2 ]] || { echo "--json needs a FILE" >&2; exit 2; }; JSON_OUT=$2; shift 2 ;;
    --allocs) ALLOCS=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gateway_rate_bench: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gateway_rate_bench: $*" >&2; exit 1; }
log() { echo "  $*" >&2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/gateway_lib.sh
source "$ROOT/bench/gateway_lib.sh"
SECS=${BENCH_RATE_SECONDS:-10}
ROUNDS=${BENCH_RATE_ROUNDS:-2}
CONNS=${BENCH_CONNS:-32 128}

BIN=${LANDLORD_BIN:-}
if [[ -z $BIN ]]; then
  for c in build/bench/landlord build/release/landlord; do [[ -x $ROOT/$c ]] && { BIN=$ROOT/$c; break; }; done
fi
[[ -n $BIN && -x $BIN ]] || die "no landlord binary: build it, or set LANDLORD_BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v wrk >/dev/null || die "wrk is required (Debian package wrk)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gateway_rate_bench.XXXXXX")
PIDS=()
cleanup() {
  set +e
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOADGEN=${LOADGEN_BIN:-}
if [[ -z $LOADGEN ]]; then
  for c in "$(dirname "$BIN")/landlord_loadgen" "$(dirname "$BIN")/bench/landlord_loadgen"; do
    [[ -x $c ]] && { LOADGEN=$c; break; }
  done
fi
if [[ -z $LOADGEN ]]; then
  log "compiling bench/loadgen.cc (no landlord_loadgen beside $BIN)"
  c++ -std=c++20 -O2 -o "$TMP/landlord_loadgen" "$ROOT/bench/loadgen.cc" -lfmt -lpthread || die "cannot compile bench/loadgen.cc"
  LOADGEN=$TMP/landlord_loadgen
fi

PIN_LOAD=() PIN_PROXY=() PINNING="none"
if [[ ${BENCH_PIN:-1} != 0 && $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  PIN_LOAD=(taskset -c 0) PIN_PROXY=(taskset -c 1)
  PINNING="loadgen, wrk and the upstream on CPU 0; landlord serve (all threads) on CPU 1"
fi
CPU_MODEL=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ {print $2; exit}')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

wait_port() {  # NAME PID OUT: the port from "...listening on http://HOST:PORT"
  local port
  for _ in $(seq 150); do
    port=$(sed -n 's|.*listening on http://[^:]*:\([0-9][0-9]*\).*|\1|p' "$3" 2>/dev/null | head -1)
    [[ -n $port ]] && { echo "$port"; return; }
    kill -0 "$2" 2>/dev/null || die "$1 exited: $(tail -5 "$3" "$3.err" 2>/dev/null)"
    sleep 0.1
  done
  die "$1 did not report its port"
}

"${PIN_LOAD[@]}" "$BIN" fake-model --listen 127.0.0.1:0 --model m --tokens-per-s 0 --output-tokens 16 \
  >"$TMP/fake.out" 2>"$TMP/fake.out.err" &
PIDS+=($!)
UP_PORT=$(wait_port "landlord fake-model" "${PIDS[-1]}" "$TMP/fake.out")

bench_serve_config "$TMP/serve" "$UP_PORT"
ADMIN_KEY="ll_bench_admin_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PRELOAD=()
if ((ALLOCS)); then
  cc -O2 -shared -fPIC -o "$TMP/malloc_count.so" "$ROOT/bench/malloc_count.c" || die "cannot compile bench/malloc_count.c"
  PRELOAD=(env LD_PRELOAD="$TMP/malloc_count.so")
fi
LANDLORD_ADMIN_KEY=$ADMIN_KEY "${PIN_PROXY[@]}" "${PRELOAD[@]}" "$BIN" serve --config "$TMP/serve/serve.toml" \
  >"$TMP/serve.out" 2>"$TMP/serve.out.err" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_PORT=$(wait_port "landlord serve" "$GW_PID" "$TMP/serve.out")
GW=http://127.0.0.1:$GW_PORT
KEY=$(bench_tenant_key "$GW" "$ADMIN_KEY")

BODY='{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}'
if [[ ${BENCH_STREAM:-1} == 0 ]]; then BODY='{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'; fi
declare -A URL=([direct]="http://127.0.0.1:$UP_PORT/v1/chat/completions" [gateway]="$GW/v1/chat/completions")
for p in direct gateway; do
  out=$(curl -sS -X POST "${URL[$p]}" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$BODY")
  grep -q 'data: \[DONE\]\|"completion_tokens":16' <<<"$out" || die "$p: not a whole answer: $out"
done

if ((ALLOCS)); then
  N=${BENCH_ALLOC_REQUESTS:-20000}
  allocs() {  # the preloaded counter's total now
    local before
    before=$(grep -c '^malloc_count:' "$TMP/serve.out.err" || true)
    kill -USR2 "$GW_PID"
    for _ in $(seq 100); do
      (($(grep -c '^malloc_count:' "$TMP/serve.out.err" || true) > before)) && break
      sleep 0.05
    done
    grep '^malloc_count:' "$TMP/serve.out.err" | tail -1 | awk '{print $2}'
  }
  run() {  # RATE SECONDS
    "${PIN_LOAD[@]}" "$LOADGEN" --url "${URL[gateway]}" --rate "$1" --seconds "$2" --warmup 0 --connections 64 \
      --body "$BODY" --header "Content-Type: application/json" --header "Authorization: Bearer $KEY" >/dev/null
  }
  run 1000 2
  SECS_N=$(awk -v n="$N" 'BEGIN {print n / 1000}')
  a0=$(allocs)
  sleep "$SECS_N"
  a1=$(allocs)
  run 1000 "$SECS_N"
  a2=$(allocs)
  PER=$(awk -v i=$((a1 - a0)) -v r=$((a2 - a1)) -v n="$N" 'BEGIN {printf "%.1f", (r - i) / n}')
  echo "gateway heap allocations per request: $PER (requests: $N, stream=${BENCH_STREAM:-1}; $((a2 - a1)) during them, $((a1 - a0)) idle over as long)"
  [[ -z $JSON_OUT ]] || printf '{"allocs_per_request": %s, "requests": %s, "during": %s, "idle": %s}\n' \
    "$PER" "$N" $((a2 - a1)) $((a1 - a0)) >"$JSON_OUT"
  exit 0
fi

# The gateway's max req/s, closed loop.
cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
EOF
read -r -a CONN_LIST <<<"$CONNS"
log "max req/s: wrk at ${CONN_LIST[*]} connections, 6 s each (after 2 s of warm-up)"
"${PIN_LOAD[@]}" wrk -t1 -c"${CONN_LIST[0]}" -d2s -s "$TMP/post.lua" "${URL[gateway]}" >/dev/null 2>&1 || true
MAX=0
for c in "${CONN_LIST[@]}"; do
  rps=$("${PIN_LOAD[@]}" wrk -t1 -c"$c" -d6s -s "$TMP/post.lua" "${URL[gateway]}" 2>&1 | awk '/^Requests\/sec/ {printf "%.0f", $2}')
  log "wrk -c$c: ${rps:-?} req/s"
  [[ -n $rps && $rps -gt $MAX ]] && MAX=$rps
done
((MAX > 0)) || die "no max req/s from wrk"
RATE=${BENCH_RATE:-$((MAX / 2))}
log "open loop at $RATE req/s (max $MAX): $ROUNDS rounds x ${SECS} s per path"

declare -A RUNS
for r in $(seq "$ROUNDS"); do
  for p in direct gateway; do
    RUNS[$p|$r]=$("${PIN_LOAD[@]}" "$LOADGEN" --url "${URL[$p]}" --rate "$RATE" --seconds "$SECS" --warmup 2 \
      --connections 256 --body "$BODY" --header "Content-Type: application/json" \
      --header "Authorization: Bearer $KEY" --fsync-dir "$TMP/serve/data") || die "loadgen failed on $p"
    log "$p round $r: ${RUNS[$p|$r]}"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# jget JSON PATH (dot-separated): a number.
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
declare -A M
ERRORS=0
for p in direct gateway; do
  for m in ttfb_ms.p50 ttfb_ms.p99 ttfb_ms.p999 ttlb_ms.p50 ttlb_ms.p99 ttlb_ms.p999 fsync_ms.p50 fsync_ms.p99 rate_achieved errors; do
    vals=()
    for r in $(seq "$ROUNDS"); do vals+=("$(jget "${RUNS[$p|$r]}" "$m")"); done
    M[$p|$m]=$(median "${vals[@]}")
  done
  ERRORS=$(awk -v a="$ERRORS" -v b="${M[$p|errors]}" 'BEGIN {print a + b}')
done
calc() { awk "BEGIN {printf \"%.3f\", $1}"; }
ADD_TTFB=$(calc "${M[gateway|ttfb_ms.p99]} - ${M[direct|ttfb_ms.p99]}")
ADD_TTLB=$(calc "${M[gateway|ttlb_ms.p99]} - ${M[direct|ttlb_ms.p99]}")
FSYNC99=${M[gateway|fsync_ms.p99]}
TTLB_BOUND=$(calc "1 + $FSYNC99")
OK_TTFB=$(awk -v a="$ADD_TTFB" 'BEGIN {print (a <= 1) ? "PASS" : "MISS"}')
OK_TTLB=$(awk -v a="$ADD_TTLB" -v b="$TTLB_BOUND" 'BEGIN {print (a <= b) ? "PASS" : "MISS"}')

echo
echo "## Model API gateway at a fixed rate (open loop, loopback, one fixture upstream)"
echo
echo "- machine: ${CPU_MODEL:-unknown CPU}, $(nproc) CPUs ($(uname -r)); load average before $LOAD_BEFORE, after $LOAD_AFTER"
echo "- pinning: $PINNING"
echo "- request: POST /v1/chat/completions, streamed, 16 tokens, usage chunk; gateway: \`landlord serve\` (auth, rpm/tpm, budget hold, metering to SQLite)"
echo "- max: wrk closed loop at $CONNS connections: $MAX req/s; open loop at $RATE req/s, median of $ROUNDS interleaved rounds × ${SECS} s per path"
echo
echo "| path | achieved req/s | first byte p50 | p99 | p99.9 | last byte p50 | p99 | p99.9 | disk fsync p50 | p99 | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in direct gateway; do
  echo "| $p | ${M[$p|rate_achieved]} | ${M[$p|ttfb_ms.p50]} | ${M[$p|ttfb_ms.p99]} | ${M[$p|ttfb_ms.p999]} | ${M[$p|ttlb_ms.p50]} | ${M[$p|ttlb_ms.p99]} | ${M[$p|ttlb_ms.p999]} | ${M[$p|fsync_ms.p50]} | ${M[$p|fsync_ms.p99]} | ${M[$p|errors]} |"
done
echo
echo "| figure (ms) | value | target | result |"
echo "|---|---:|---:|---|"
echo "| added p99 to the first byte | $ADD_TTFB | ≤ 1 | $OK_TTFB |"
echo "| added p99 to the last byte | $ADD_TTLB | ≤ 1 + fsync p99 ($FSYNC99) = $TTLB_BOUND | $OK_TTLB |"

if [[ -n $JSON_OUT ]]; then
  {
    printf '{"machine": {"cpu": "%s", "nproc": %s, "load_before": "%s", "load_after": "%s"},\n' "$CPU_MODEL" "$(nproc)" "$LOAD_BEFORE" "$LOAD_AFTER"
    printf ' "max_rps": %s, "rate": %s, "seconds": %s, "rounds": %s,\n' "$MAX" "$RATE" "$SECS" "$ROUNDS"
    printf ' "added_ttfb_p99_ms": %s, "added_ttlb_p99_ms": %s, "fsync_p99_ms": %s, "ttfb": "%s", "ttlb": "%s",\n' \
      "$ADD_TTFB" "$ADD_TTLB" "$FSYNC99" "$OK_TTFB" "$OK_TTLB"
    printf ' "runs": {'
    first=1
    for p in direct gateway; do
      for r in $(seq "$ROUNDS"); do
        ((first)) || printf ', '
        first=0
        printf '"%s_%s": %s' "$p" "$r" "${RUNS[$p|$r]}"
      done
    done
    printf '}}\n'
  } >"$JSON_OUT"
  echo
  echo "JSON: $JSON_OUT"
fi
[[ $ERRORS == 0 ]] || exit 3
