#!/usr/bin/env bash
# `make run-llama`: `landlord serve` on its defaults (the sim fleet replaying the Helios trace),
# with the model API served by real llama.cpp `llama-server` replicas instead of simulated ones:
# two replicas of `random-llama` (the random-weight test model: gibberish text, but real
# tokenization, prefill, decode, KV cache and streaming), each placed on 8 of the fleet's GPUs,
# drained and stopped when the owner reclaims them. Builds llama-server and the model first
# (scripts/llama.sh; about 20 minutes cold on 2 cores, under a minute from ccache).
#
#   scripts/run_llama.sh [BUILD_DIR] [SERVE FLAGS...]   # BUILD_DIR: build/release
#
# The config it runs is written to BUILD_DIR/run-llama.toml (edit `replicas`, `args`, ... and run
# `landlord serve --config` on it yourself); state in ./landlord-data-llama, each replica's
# output in BUILD_DIR/run-llama-logs/<replica>.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build/release}"
[ $# -gt 0 ] && shift
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac
[ -x "$BUILD/landlord" ] || { echo "scripts/run_llama.sh: no $BUILD/landlord (make build)" >&2; exit 1; }

paths="$("$ROOT/scripts/llama.sh" all)"
server="$(sed -n 's/^server=//p' <<<"$paths")"
model="$(sed -n 's/^model=//p' <<<"$paths")"
logs="$BUILD/run-llama-logs"
mkdir -p "$logs"
config="$BUILD/run-llama.toml"
cat >"$config" <<TOML
# Written by scripts/run_llama.sh (make run-llama): serve's defaults, real engine replicas.
[server]
data_dir = "landlord-data-llama"

[prices.models."random-llama"]
input_per_mtok = "0.10"
output_per_mtok = "0.40"

[[gateway.engines]]
model = "random-llama"
replicas = 2
gpus_per_replica = 8
engine = "llama.cpp"
server = "$server"
model_path = "$model"
args = ["-c", "4096"]
threads = 1           # one per server: two per server on 2 cores collapse to a few tokens/s
log_dir = "$logs"
TOML
echo "scripts/run_llama.sh: $config (llama-server $server, model $model)" >&2
exec "$BUILD/landlord" serve --config "$config" "$@"
