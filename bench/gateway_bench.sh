#!/usr/bin/env bash
# The model API gateway's overhead on loopback, side by side in one run against ONE fixture
# upstream (`landlord fake-model`, answering instantly):
#
#   direct   wrk -> upstream
#   nginx    wrk -> nginx (Debian package, 1 worker, plain proxy_pass, upstream keepalive) -> upstream
#   gateway  wrk -> `landlord serve` (one HTTP thread; auth, rate limits, budget holds and
#            metering on, usage committed to SQLite) -> upstream
#
# The same request everywhere: POST /v1/chat/completions, 16 output tokens (the fake model
# ignores the tenant key that the gateway checks).
#
# Method (wrk 4.1 from Debian; wrk2 is not packaged, so no open-loop fixed-rate runs):
#   latency     1 connection, closed loop: one request in flight at a time, so each latency is
#               one request's round trip with no queueing. Several interleaved rounds (direct,
#               nginx, gateway, direct, ...) so that background load hits every path alike; the
#               median per path of the rounds' p50 and p99. ADDED latency = path - direct.
#   throughput  closed loop at a few connection counts; max req/s over them, with p50/p99.
#   floor       (for reading the gateway's cost) each proxy's own HTTP floor on the same
#               process: `GET /healthz` on landlord serve (no auth, no proxying) and an nginx
#               `return 200` location.
#   proxy CPU   user+system CPU of the proxy process(es) during each run (/proc), per request.
#   one CPU     the 1-connection latency again with the proxies moved onto CPU 0 beside wrk and
#               the upstream: no cross-CPU wake-ups (dear in a VM, and alike for both proxies), so
#               what is added is the proxy's own work. Informational, next to the targets.
# Equal cores: on a machine with 2+ CPUs wrk and the upstream share CPU 0 and the proxy (nginx
# master + its 1 worker, or landlord serve, all of its threads) gets CPU 1, for every path.
#
# Usage: bench/gateway_bench.sh [--json FILE]
# Env:   LANDLORD_BIN (default build/bench/landlord, else build/release/landlord),
#        BENCH_SECONDS (throughput run length, 6), BENCH_CONNS ("8 32 128"),
#        BENCH_LAT_SECONDS (4), BENCH_LAT_ROUNDS (3), BENCH_PIN (1; 0: no taskset).
# Other work on the machine (a build) shares these CPUs and shows in the tails: run it on a
# quiet machine; the load average before and after is printed. (SCHED_FIFO is no cure: a run
# that keeps a CPU busy then meets the kernel's RT throttle, a ~50 ms pause every second.)
# Exit:  0 when every run was error-free (targets missed or not); 1 on a setup failure;
#        3 when some wrk run saw errors or non-2xx answers (flagged in the tables).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

JSON_OUT=""
while (($#)); do
  case $1 in
    --json) [[ $# -ge 2 ]] || { echo "--json needs a FILE" >&2; exit 2; }; JSON_OUT=$2; shift 2 ;;
    --json=*) JSON_OUT=${1#--json=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gateway_bench: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gateway_bench: $*" >&2; exit 1; }
log() { echo "  $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/gateway_lib.sh
source "$ROOT/bench/gateway_lib.sh"
TPUT_S=${BENCH_SECONDS:-6}
LAT_S=${BENCH_LAT_SECONDS:-4}
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-3}
read -r -a CONNS <<<"${BENCH_CONNS:-8 32 128}"
WARM_S=2
FLOOR_C=32
TARGET_P50_RATIO=1.5
TARGET_RPS_RATIO=0.7

# ---------------------------------------------------------------- tools

if [[ -n ${LANDLORD_BIN:-} ]]; then
  BIN=$LANDLORD_BIN
else
  BIN=""
  for c in build/bench/landlord build/release/landlord; do
    if [[ -x $ROOT/$c ]]; then BIN=$ROOT/$c; break; fi
  done
  [[ -n $BIN ]] || die "no landlord binary in build/bench or build/release: build it, or set LANDLORD_BIN"
fi
[[ -x $BIN ]] || die "LANDLORD_BIN=$BIN is not an executable"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

apt_install() {
  local pkg=$1 sudo=""
  echo "note: \`$pkg\` is not installed: installing the Debian package \`$pkg\` (apt-get, non-interactive)"
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || die "\`$pkg\` is missing and this is not root (no sudo): apt-get install $pkg"
    sudo="sudo"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
}
for t in curl awk; do command -v "$t" >/dev/null || die "\`$t\` is required"; done
command -v wrk >/dev/null || apt_install wrk
command -v wrk >/dev/null || die "wrk is still missing"
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; } || true
if [[ -z $NGINX ]]; then
  apt_install nginx
  echo "note: the nginx system service is not used: this script runs its own nginx on a temp config"
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[[ -x $NGINX ]] || die "nginx is still missing"

NCPU=$(nproc)
PIN_LOAD=() PIN_PROXY=() PINNING="none (1 CPU, or BENCH_PIN=0)"
if [[ ${BENCH_PIN:-1} != 0 && $NCPU -ge 2 ]] && command -v taskset >/dev/null; then
  PIN_LOAD=(taskset -c 0) PIN_PROXY=(taskset -c 1)
  PINNING="wrk + upstream on CPU 0; proxy (nginx master+1 worker / landlord serve, all threads) on CPU 1"
fi
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
command -v lscpu >/dev/null && CPU_MODEL=$(lscpu | awk -F': *' '/^Model name/ {print $2; exit}')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- processes and cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gateway_bench.XXXXXX")
PIDS=()
cleanup() {
  set +e
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port NAME PID OUTFILE ERRFILE: the port from "...listening on http://HOST:PORT".
wait_port() {
  local name=$1 pid=$2 out=$3 err=$4 port
  for _ in $(seq 150); do
    port=$(sed -n 's|.*listening on http://[^:]*:\([0-9][0-9]*\).*|\1|p' "$out" 2>/dev/null | head -1)
    if [[ -n $port ]]; then echo "$port"; return; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -5 "$err" "$out" 2>/dev/null)"
    sleep 0.1
  done
  die "$name did not report its port within 15 s: $(tail -5 "$err" 2>/dev/null)"
}

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for p in $(seq 20000 7 60000); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}

# Sum of utime+stime (clock ticks) of the given pids.
cpu_ticks() {
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

BODY='{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'

echo "gateway_bench: starting the fixture upstream, nginx and landlord serve ($BIN)" >&2

# The fixture upstream.
"${PIN_LOAD[@]}" "$BIN" fake-model --listen 127.0.0.1:0 --model m --tokens-per-s 0 --output-tokens 16 \
  >"$TMP/fake.out" 2>"$TMP/fake.err" &
UP_PID=$!
PIDS+=("$UP_PID")
UP_PORT=$(wait_port "landlord fake-model" "$UP_PID" "$TMP/fake.out" "$TMP/fake.err")

# nginx: 1 worker, plain proxy_pass with upstream keepalive. Client- and upstream-side
# keepalive_requests are raised so that nginx is not charged for reconnecting every 1000
# requests (its defaults), which neither the upstream nor landlord do.
NG_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log $TMP/nginx/error.log warn;
pid $TMP/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/client_body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 1000000;
  upstream model {
    server 127.0.0.1:$UP_PORT;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NG_PORT;
    location = /healthz { default_type text/plain; return 200 "ok\n"; }
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"${PIN_PROXY[@]}" "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g 'daemon off;' \
  >"$TMP/nginx/out" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NG_PORT") 2>/dev/null && break
  kill -0 "$NG_PID" 2>/dev/null || die "nginx exited: $(cat "$TMP/nginx/out" "$TMP/nginx/error.log" 2>/dev/null)"
  sleep 0.1
done
NG_PIDS=("$NG_PID")
if command -v pgrep >/dev/null; then
  for p in $(pgrep -P "$NG_PID"); do NG_PIDS+=("$p"); done
fi
NG_VERSION=$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')

# landlord serve with the gateway on, pointed at the same upstream.
bench_serve_config "$TMP/serve" "$UP_PORT"
ADMIN_KEY="ll_bench_admin_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
LANDLORD_ADMIN_KEY=$ADMIN_KEY "${PIN_PROXY[@]}" "$BIN" serve --config "$TMP/serve/serve.toml" \
  >"$TMP/serve/out" 2>"$TMP/serve/err" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_PORT=$(wait_port "landlord serve" "$GW_PID" "$TMP/serve/out" "$TMP/serve/err")
GW=http://127.0.0.1:$GW_PORT

KEY=$(bench_tenant_key "$GW" "$ADMIN_KEY")
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

PATHS=(direct nginx gateway)
declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT/v1/chat/completions"
  [nginx]="http://127.0.0.1:$NG_PORT/v1/chat/completions"
  [gateway]="$GW/v1/chat/completions"
)

# One request on each path: a 200 with a chat completion and its usage.
for p in "${PATHS[@]}"; do
  code=$(curl -sS -o "$TMP/check.json" -w '%{http_code}' -X POST "${URL[$p]}" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d "$BODY") || die "$p: request failed"
  [[ $code == 200 ]] || die "$p: HTTP $code: $(cat "$TMP/check.json")"
  if ! grep -q '"chat.completion"' "$TMP/check.json" || ! grep -q '"completion_tokens":16' "$TMP/check.json"; then
    die "$p: not a chat completion: $(cat "$TMP/check.json")"
  fi
done
code=$(curl -sS -o /dev/null -w '%{http_code}' "$GW/healthz") || true
[[ $code == 200 ]] || die "GET /healthz on landlord serve: HTTP $code"

# ---------------------------------------------------------------- wrk

cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
EOF
cat >"$TMP/done.lua" <<'EOF'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %d %d %d %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
cat "$TMP/done.lua" >>"$TMP/post.lua"
GET_LUA=$TMP/done.lua

# Proxy processes per path (for CPU accounting).
proxy_pids() {
  case $1 in
    nginx | nginx_floor) echo "${NG_PIDS[*]}" ;;
    gateway | gateway_floor) echo "$GW_PID" ;;
    *) echo "" ;;
  esac
}

ANY_ERRORS=0
# run_wrk PATH CONNS SECONDS LUA URL: sets R_RPS R_P50 R_P90 R_P99 R_P999 R_MAX (ms), R_REQ,
# R_ERR (connect+read+write+timeout+non-2xx), R_ERRS (the breakdown), R_CPU (proxy CPU % of
# one core), R_CPUREQ (proxy CPU µs per request).
run_wrk() {
  local path=$1 c=$2 s=$3 lua=$4 url=$5 out line t0 t1 pids
  pids=$(proxy_pids "$path")
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pids)
  out=$("${PIN_LOAD[@]}" wrk -t1 -c"$c" -d"${s}s" --timeout 5s -s "$lua" "$url" 2>&1) ||
    die "wrk failed on $path (c=$c): $out"
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids)
  line=$(grep '^RESULT ' <<<"$out") || die "no result from wrk on $path (c=$c): $out"
  read -r R_REQ R_DUR R_P50 R_P90 R_P99 R_P999 R_MAX e_conn e_read e_write e_status e_timeout <<<"${line#RESULT }"
  R_RPS=$(awk -v n="$R_REQ" -v d="$R_DUR" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
  for v in R_P50 R_P90 R_P99 R_P999 R_MAX; do printf -v "$v" '%s' "$(awk -v u="${!v}" 'BEGIN {printf "%.3f", u / 1000}')"; done
  R_ERR=$((e_conn + e_read + e_write + e_status + e_timeout))
  R_ERRS="connect $e_conn, read $e_read, write $e_write, timeout $e_timeout, non-2xx $e_status"
  if [[ -n $pids ]]; then
    R_CPU=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$R_DUR" 'BEGIN {printf "%.0f", 100 * (t / hz) / (d / 1e6)}')
    R_CPUREQ=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$R_REQ" 'BEGIN {printf "%.1f", (n > 0) ? 1e6 * (t / hz) / n : 0}')
  else
    R_CPU="-" R_CPUREQ="-"
  fi
  if ((R_ERR > 0)); then
    ANY_ERRORS=1
    echo "gateway_bench: WARNING: $path c=$c: $R_ERR errors ($R_ERRS)" >&2
  fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A RES  # "path|c|metric" -> value
record() {  # record PATH C
  local k="$1|$2"
  RES[$k|rps]=$R_RPS RES[$k|p50]=$R_P50 RES[$k|p90]=$R_P90 RES[$k|p99]=$R_P99 RES[$k|p999]=$R_P999
  RES[$k|max]=$R_MAX RES[$k|err]=$R_ERR RES[$k|errs]=$R_ERRS RES[$k|cpu]=$R_CPU RES[$k|cpureq]=$R_CPUREQ
}

TOTAL_S=$((3 * WARM_S + LAT_ROUNDS * 3 * LAT_S + ${#CONNS[@]} * 3 * TPUT_S + 2 * (LAT_S + TPUT_S) + 18))
echo "gateway_bench: ~${TOTAL_S} s of wrk runs" >&2

log "warm-up: ${WARM_S} s per path at 8 connections"
for p in "${PATHS[@]}"; do
  run_wrk "$p" 8 "$WARM_S" "$TMP/post.lua" "${URL[$p]}"
  RES[$p|warm|err]=$R_ERR
done

log "latency: 1 connection, closed loop, $LAT_ROUNDS interleaved rounds x ${LAT_S} s per path"
declare -A LAT_P50 LAT_P90 LAT_P99 LAT_P999 LAT_RPS LAT_ERR LAT_CPUREQ
for _ in $(seq "$LAT_ROUNDS"); do
  for p in "${PATHS[@]}"; do
    run_wrk "$p" 1 "$LAT_S" "$TMP/post.lua" "${URL[$p]}"
    LAT_P50[$p]+="$R_P50 " LAT_P90[$p]+="$R_P90 " LAT_P99[$p]+="$R_P99 " LAT_P999[$p]+="$R_P999 "
    LAT_RPS[$p]+="$R_RPS " LAT_ERR[$p]=$((${LAT_ERR[$p]:-0} + R_ERR))
    [[ $R_CPUREQ == - ]] || LAT_CPUREQ[$p]+="$R_CPUREQ "
  done
done
for p in "${PATHS[@]}"; do
  # shellcheck disable=SC2086
  {
    RES[$p|1|p50]=$(median ${LAT_P50[$p]}) RES[$p|1|p90]=$(median ${LAT_P90[$p]})
    RES[$p|1|p99]=$(median ${LAT_P99[$p]}) RES[$p|1|p999]=$(median ${LAT_P999[$p]})
    RES[$p|1|rps]=$(median ${LAT_RPS[$p]}) RES[$p|1|err]=${LAT_ERR[$p]}
    RES[$p|1|cpureq]=$([[ -n ${LAT_CPUREQ[$p]:-} ]] && median ${LAT_CPUREQ[$p]} || echo -)
  }
done

log "throughput: closed loop at ${CONNS[*]} connections, ${TPUT_S} s per run"
for c in "${CONNS[@]}"; do
  for p in "${PATHS[@]}"; do
    run_wrk "$p" "$c" "$TPUT_S" "$TMP/post.lua" "${URL[$p]}"
    record "$p" "$c"
  done
done

log "HTTP floors: GET /healthz on landlord serve, nginx \`return 200\` (1 and $FLOOR_C connections)"
declare -A FLOOR_URL=([nginx_floor]="http://127.0.0.1:$NG_PORT/healthz" [gateway_floor]="$GW/healthz")
for p in nginx_floor gateway_floor; do
  run_wrk "$p" 1 "$LAT_S" "$GET_LUA" "${FLOOR_URL[$p]}"
  record "$p" 1
  run_wrk "$p" "$FLOOR_C" "$TPUT_S" "$GET_LUA" "${FLOOR_URL[$p]}"
  record "$p" "$FLOOR_C"
done

# The same 1-connection latency with the proxies moved onto CPU 0 too: no cross-CPU wake-ups
# (costly in a VM, and the same for both proxies), so what is added is the proxy's own work.
SAME_CPU=0
if ((${#PIN_LOAD[@]})); then
  SAME_CPU=1 SAME_S=3 SAME_ROUNDS=2
  log "latency on one CPU: proxies moved to CPU 0, $SAME_ROUNDS rounds x ${SAME_S} s per path"
  for pid in "$GW_PID" "${NG_PIDS[@]}"; do taskset -a -p -c 0 "$pid" >/dev/null; done
  declare -A SAME_P50 SAME_P99
  for _ in $(seq "$SAME_ROUNDS"); do
    for p in "${PATHS[@]}"; do
      run_wrk "$p" 1 "$SAME_S" "$TMP/post.lua" "${URL[$p]}"
      SAME_P50[$p]+="$R_P50 " SAME_P99[$p]+="$R_P99 "
      RES[$p|same|err]=$((${RES[$p|same|err]:-0} + R_ERR))
    done
  done
  for p in "${PATHS[@]}"; do
    # shellcheck disable=SC2086
    RES[$p|same|p50]=$(median ${SAME_P50[$p]}) RES[$p|same|p99]=$(median ${SAME_P99[$p]})
  done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# The gateway really metered: its usage reached the ledger.
BALANCE=$(curl -fsS "$GW/v1/balance" -H "Authorization: Bearer $KEY" 2>/dev/null || true)
CHARGED=$(field charged <<<"$BALANCE")

# ---------------------------------------------------------------- report

calc() { awk "BEGIN {printf \"%.3f\", $1}"; }
for p in "${PATHS[@]}"; do
  best=0 bestc=0
  for c in "${CONNS[@]}"; do
    if awk -v a="${RES[$p|$c|rps]}" -v b="$best" 'BEGIN {exit !(a > b)}'; then best=${RES[$p|$c|rps]} bestc=$c; fi
  done
  RES[$p|maxrps]=$best RES[$p|maxrps_c]=$bestc
done
for p in nginx gateway; do
  RES[$p|add_p50]=$(calc "${RES[$p|1|p50]} - ${RES[direct|1|p50]}")
  RES[$p|add_p99]=$(calc "${RES[$p|1|p99]} - ${RES[direct|1|p99]}")
done
if awk -v n="${RES[nginx|add_p50]}" 'BEGIN {exit !(n > 0)}'; then
  P50_RATIO=$(awk -v g="${RES[gateway|add_p50]}" -v n="${RES[nginx|add_p50]}" 'BEGIN {printf "%.2f", g / n}')
  P50_OK=$(awk -v r="$P50_RATIO" -v t=$TARGET_P50_RATIO 'BEGIN {print ((r <= t) ? "PASS" : "MISS")}')
else
  P50_RATIO="n/a" P50_OK="n/a (nginx added no measurable p50)"
fi
RPS_RATIO=$(awk -v g="${RES[gateway|maxrps]}" -v n="${RES[nginx|maxrps]}" 'BEGIN {printf "%.2f", (n > 0) ? g / n : 0}')
RPS_OK=$(awk -v r="$RPS_RATIO" -v t=$TARGET_RPS_RATIO 'BEGIN {print ((r >= t) ? "PASS" : "MISS")}')
# Capacity per core from the proxy's CPU per request at its max-req/s run: what one fully busy
# core would serve. A proxy well below 100% of its core was not the bottleneck (the load
# generator's core was), and its CPU per request is then inflated by waking up per event, so
# this flatters the busier proxy: read it as an upper bound of gateway/nginx.
for p in nginx gateway; do
  c=${RES[$p|maxrps_c]}
  RES[$p|max_cpu]=${RES[$p|$c|cpu]} RES[$p|max_cpureq]=${RES[$p|$c|cpureq]}
  RES[$p|cap]=$(awk -v u="${RES[$p|max_cpureq]}" 'BEGIN {printf "%.0f", (u > 0) ? 1e6 / u : 0}')
done
SAME_RATIO="n/a"
if ((SAME_CPU)); then
  for p in nginx gateway; do RES[$p|same|add_p50]=$(calc "${RES[$p|same|p50]} - ${RES[direct|same|p50]}"); done
  SAME_RATIO=$(awk -v g="${RES[gateway|same|add_p50]}" -v n="${RES[nginx|same|add_p50]}" 'BEGIN {if (n > 0) printf "%.2f", g / n; else print "n/a"}')
fi
CAP_RATIO=$(awk -v g="${RES[gateway|cap]}" -v n="${RES[nginx|cap]}" 'BEGIN {printf "%.2f", (n > 0) ? g / n : 0}')
FLAG() { (($1 > 0)) && echo "**$1 ERRORS**" || echo 0; }

declare -A NAMES=(
  [direct]="direct (wrk → upstream)"
  [nginx]="nginx $NG_VERSION, 1 worker"
  [gateway]="landlord gateway, 1 thread"
  [nginx_floor]="nginx \`return 200\` (no proxying)"
  [gateway_floor]="landlord \`GET /healthz\` (no auth, no proxying)"
)
name() { echo "${NAMES[$1]}"; }

echo
echo "## Model API gateway overhead (loopback, one fixture upstream)"
echo
echo "- machine: ${CPU_MODEL:-unknown CPU}, $NCPU CPUs ($(uname -r)); load average before $LOAD_BEFORE, after $LOAD_AFTER"
echo "- pinning: $PINNING"
echo "- upstream: \`landlord fake-model --tokens-per-s 0\` (answers at once, 16 tokens); request: POST /v1/chat/completions, $((${#BODY})) B body"
echo "- gateway: $BIN (auth, rpm/tpm limits, budget hold, metering to SQLite on; charged to the tenant in this run: \$${CHARGED:-?})"
echo "- wrk 4.1, 1 thread; latency: 1 connection closed loop, median of $LAT_ROUNDS interleaved rounds × ${LAT_S} s; throughput: ${TPUT_S} s per run"
if [[ $(awk -v l="${LOAD_BEFORE%% *}" 'BEGIN {print ((l > 0.5) ? 1 : 0)}') == 1 ]]; then
  echo "- **note: the machine was busy before the run (1-min load ${LOAD_BEFORE%% *}): other work shares these CPUs, so figures are noisy**"
fi
echo
echo "### Latency at 1 connection (no queueing): per-request round trip, ms"
echo
echo "| path | req/s | p50 | p90 | p99 | p99.9 | added p50 | added p99 | proxy CPU µs/req | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in "${PATHS[@]}"; do
  a50="-" a99="-"
  [[ $p == direct ]] || a50=${RES[$p|add_p50]} a99=${RES[$p|add_p99]}
  echo "| $(name "$p") | ${RES[$p|1|rps]%.*} | ${RES[$p|1|p50]} | ${RES[$p|1|p90]} | ${RES[$p|1|p99]} | ${RES[$p|1|p999]} | $a50 | $a99 | ${RES[$p|1|cpureq]} | $(FLAG "${RES[$p|1|err]}") |"
done
echo
echo "### Throughput, closed loop (latency in ms)"
echo
echo "| path | conns | req/s | p50 | p99 | p99.9 | proxy CPU % | proxy CPU µs/req | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in "${PATHS[@]}"; do
  for c in "${CONNS[@]}"; do
    echo "| $(name "$p") | $c | ${RES[$p|$c|rps]} | ${RES[$p|$c|p50]} | ${RES[$p|$c|p99]} | ${RES[$p|$c|p999]} | ${RES[$p|$c|cpu]} | ${RES[$p|$c|cpureq]} | $(FLAG "${RES[$p|$c|err]}") |"
  done
done
if ((SAME_CPU)); then
  echo
  echo "### Latency at 1 connection with everything on CPU 0 (no cross-CPU wake-ups), ms"
  echo
  echo "| path | p50 | p99 | added p50 | added p99 | errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  for p in "${PATHS[@]}"; do
    a50="-" a99="-"
    [[ $p == direct ]] || a50=${RES[$p|same|add_p50]} a99=$(calc "${RES[$p|same|p99]} - ${RES[direct|same|p99]}")
    echo "| $(name "$p") | ${RES[$p|same|p50]} | ${RES[$p|same|p99]} | $a50 | $a99 | $(FLAG "${RES[$p|same|err]}") |"
  done
fi
echo
echo "### HTTP floors of the two proxies (same processes, no upstream)"
echo
echo "| server | conns | req/s | p50 | p99 | proxy CPU µs/req | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for p in nginx_floor gateway_floor; do
  for c in 1 "$FLOOR_C"; do
    echo "| $(name "$p") | $c | ${RES[$p|$c|rps]} | ${RES[$p|$c|p50]} | ${RES[$p|$c|p99]} | ${RES[$p|$c|cpureq]} | $(FLAG "${RES[$p|$c|err]}") |"
  done
done
echo
echo "### Summary (equal cores: nginx 1 worker vs the gateway's 1 thread)"
echo
echo "| path | max req/s (conns) | proxy CPU there | p50 @1 conn | p99 @1 conn | added p50 | added p99 | proxy CPU µs/req | req/s per full core |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in "${PATHS[@]}"; do
  a50="-" a99="-" cpu="-" cpureq="-" cap="-"
  if [[ $p != direct ]]; then
    a50="${RES[$p|add_p50]} ms" a99="${RES[$p|add_p99]} ms"
    cpu="${RES[$p|max_cpu]}%" cpureq=${RES[$p|max_cpureq]} cap=${RES[$p|cap]}
  fi
  echo "| $(name "$p") | ${RES[$p|maxrps]} (${RES[$p|maxrps_c]}) | $cpu | ${RES[$p|1|p50]} ms | ${RES[$p|1|p99]} ms | $a50 | $a99 | $cpureq | $cap |"
done
echo
echo "| ratio | value | target | result |"
echo "|---|---:|---:|---|"
echo "| gateway added p50 / nginx added p50 | $P50_RATIO | ≤ $TARGET_P50_RATIO | $P50_OK |"
echo "| gateway max req/s / nginx max req/s | $RPS_RATIO | ≥ $TARGET_RPS_RATIO | $RPS_OK |"
echo "| (one CPU) gateway added p50 / nginx added p50 | $SAME_RATIO | (≤ $TARGET_P50_RATIO) | informational |"
echo "| (by CPU) gateway / nginx req/s per full core | $CAP_RATIO | (≥ $TARGET_RPS_RATIO) | informational |"
if awk -v u="${RES[nginx|max_cpu]}" 'BEGIN {exit !(u < 90)}'; then
  echo
  echo "Note: nginx used only ${RES[nginx|max_cpu]}% of its core at its best req/s: it was not CPU-bound (the"
  echo "CPU that wrk and the upstream share, or other work on the machine, held it back), so the req/s ratio"
  echo "understates nginx's capacity; the per-core figure (1e6 / proxy CPU µs per request) is the fairer"
  echo "capacity comparison, and still flatters the busier proxy (a lightly loaded one pays a wake-up per event)."
fi
echo
echo "For scale: LiteLLM's docs report 2 ms p50 / 13 ms p99 added latency at ~290 req/s per 4-CPU instance."
if ((ANY_ERRORS)); then
  echo
  echo "**WARNING: some wrk runs saw errors or non-2xx answers (see the errors columns): those figures are not clean.**"
fi

# ---------------------------------------------------------------- JSON

if [[ -n $JSON_OUT ]]; then
  jstr() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
  jnum() { [[ $1 =~ ^-?[0-9.]+$ ]] && printf '%s' "$1" || printf 'null'; }
  {
    printf '{\n  "machine": {"cpu": %s, "nproc": %s, "kernel": %s, "load_before": %s, "load_after": %s},\n' \
      "$(jstr "$CPU_MODEL")" "$NCPU" "$(jstr "$(uname -r)")" "$(jstr "$LOAD_BEFORE")" "$(jstr "$LOAD_AFTER")"
    printf '  "pinning": %s,\n  "landlord_bin": %s,\n  "nginx_version": %s,\n' \
      "$(jstr "$PINNING")" "$(jstr "$BIN")" "$(jstr "$NG_VERSION")"
    printf '  "method": {"latency": %s, "latency_rounds": %s, "latency_seconds": %s, "throughput_seconds": %s, "connections": [%s]},\n' \
      "$(jstr "wrk closed loop, 1 connection: per-request latency without queueing; median of interleaved rounds")" \
      "$LAT_ROUNDS" "$LAT_S" "$TPUT_S" "$(IFS=,; echo "${CONNS[*]}")"
    printf '  "paths": {\n'
    first=1
    for p in "${PATHS[@]}" nginx_floor gateway_floor; do
      ((first)) || printf ',\n'
      first=0
      printf '    "%s": {"name": %s, "runs": [' "$p" "$(jstr "$(name "$p")")"
      case $p in *_floor) cs=(1 "$FLOOR_C") ;; *) cs=(1 "${CONNS[@]}") ;; esac
      f2=1
      for c in "${cs[@]}"; do
        ((f2)) || printf ', '
        f2=0
        printf '{"connections": %s, "rps": %s, "p50_ms": %s, "p99_ms": %s, "p999_ms": %s, "proxy_cpu_us_per_req": %s, "errors": %s}' \
          "$c" "$(jnum "${RES[$p|$c|rps]}")" "$(jnum "${RES[$p|$c|p50]}")" "$(jnum "${RES[$p|$c|p99]}")" \
          "$(jnum "${RES[$p|$c|p999]}")" "$(jnum "${RES[$p|$c|cpureq]:-}")" "$(jnum "${RES[$p|$c|err]}")"
      done
      printf ']'
      if [[ $p != *_floor ]]; then
        printf ', "max_rps": %s, "max_rps_connections": %s' "${RES[$p|maxrps]}" "${RES[$p|maxrps_c]}"
        [[ $p == direct ]] || printf ', "added_p50_ms": %s, "added_p99_ms": %s' "${RES[$p|add_p50]}" "${RES[$p|add_p99]}"
        ((SAME_CPU == 0)) || printf ', "one_cpu": {"p50_ms": %s, "p99_ms": %s, "errors": %s}' \
          "$(jnum "${RES[$p|same|p50]}")" "$(jnum "${RES[$p|same|p99]}")" "$(jnum "${RES[$p|same|err]}")"
      fi
      printf '}'
    done
    printf '\n  },\n'
    printf '  "ratios": {"gateway_over_nginx_added_p50": %s, "target_added_p50_max": %s, "added_p50": %s,\n' \
      "$(jnum "$P50_RATIO")" "$TARGET_P50_RATIO" "$(jstr "$P50_OK")"
    printf '             "gateway_over_nginx_rps": %s, "target_rps_min": %s, "rps": %s,\n' \
      "$(jnum "$RPS_RATIO")" "$TARGET_RPS_RATIO" "$(jstr "$RPS_OK")"
    printf '             "one_cpu_gateway_over_nginx_added_p50": %s,\n' "$(jnum "$SAME_RATIO")"
    printf '             "gateway_over_nginx_rps_per_core_by_cpu": %s, "nginx_cpu_pct_at_max": %s, "gateway_cpu_pct_at_max": %s},\n' \
      "$(jnum "$CAP_RATIO")" "$(jnum "${RES[nginx|max_cpu]}")" "$(jnum "${RES[gateway|max_cpu]}")"
    printf '  "errors": %s,\n  "gateway_charged": %s\n}\n' "$([[ $ANY_ERRORS == 1 ]] && echo true || echo false)" "$(jstr "${CHARGED:-}")"
  } >"$JSON_OUT"
  echo
  echo "JSON: $JSON_OUT"
fi

((ANY_ERRORS == 0)) || exit 3
