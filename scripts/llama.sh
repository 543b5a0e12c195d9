#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` and a small random-weight model for it, from the llama.cpp
# source that the pinned npm package node-llama-cpp carries (third_party/llama/package-lock.json:
# llama/gitRelease.bundle). Nothing is downloaded but the npm package; CMake runs with the
# options that would fetch a web UI turned off, with Debian's toolchain and ccache.
#
#   scripts/llama.sh build          llama-server -> prints its path
#   scripts/llama.sh model [SEED]   the model (default seed 1) -> prints its path
#   scripts/llama.sh all            both, then `server=PATH` and `model=PATH` lines
#   scripts/llama.sh make-model OUT SEED   the model for SEED written to OUT (for tests)
#   scripts/llama.sh version        the pinned node-llama-cpp version and llama.cpp tag
#
# Idempotent: everything lives under build/llama/<pinned version>/ (LL_LLAMA_DIR overrides),
# and a step whose output exists for that version is skipped. Progress goes to stderr, the
# paths to stdout. JOBS (default 2) compile jobs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$ROOT/third_party/llama"
JOBS="${JOBS:-2}"

say() { echo "scripts/llama.sh: $*" >&2; }
fail() {
  say "$*"
  exit 1
}

# The pinned version, read from the lockfile (the one place it is written).
pinned_version() {
  node -e 'const l=require(process.argv[1]);console.log(l.packages["node_modules/node-llama-cpp"].version)' \
    "$PKG/package-lock.json"
}

VERSION="$(pinned_version)"
DIR="${LL_LLAMA_DIR:-$ROOT/build/llama/$VERSION}"
SRC="$DIR/src"
BIN="$DIR/bin"

# One build at a time per version: ctest may start two engine tests at once on a fresh tree.
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9

# npm ci only when node_modules is missing or older than the lockfile; --ignore-scripts skips
# the package's postinstall (which would fetch or build its Node addon), --omit=optional its
# ~700 MB of prebuilt GPU binaries.
npm_install() {
  local stamp="$PKG/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$PKG/package-lock.json" -nt "$stamp" ]; then
    command -v npm >/dev/null 2>&1 || fail "npm is not installed (scripts/deps.sh installs it)"
    say "npm ci (third_party/llama/package-lock.json: node-llama-cpp $VERSION)"
    (cd "$PKG" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund >&2) || fail "npm ci failed"
  fi
}

# The llama.cpp tree, cloned from the package's git bundle into the version's directory.
source_tree() {
  [ -f "$SRC/.landlord-cloned" ] && return 0
  npm_install
  local bundle="$PKG/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  [ -f "$bundle" ] || fail "no $bundle in node-llama-cpp $VERSION"
  command -v git >/dev/null 2>&1 || fail "git is not installed (Debian: apt-get install git)"
  say "cloning llama.cpp $(tag) from the package's git bundle into $SRC"
  rm -rf "$SRC"
  mkdir -p "$DIR"
  git -c advice.detachedHead=false clone -q "$bundle" "$SRC" || fail "git clone of the bundle failed"
  touch "$SRC/.landlord-cloned"
}

tag() {
  node -p 'require(process.argv[1]).tag' "$PKG/node_modules/node-llama-cpp/llama/llama.cpp.info.json"
}

# ccache keyed on paths relative to the repository, so another clone or worktree hits the cache.
ccache_flags() {
  if command -v ccache >/dev/null 2>&1; then
    echo "-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
  fi
}

build_server() {
  if [ -x "$BIN/llama-server" ]; then
    echo "$BIN/llama-server"
    return 0
  fi
  source_tree
  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
  local out="$DIR/cmake" start=$SECONDS
  say "configuring llama.cpp $(tag) (Release, CPU only, no UI, no network) in $out"
  # shellcheck disable=SC2046
  cmake -S "$SRC" -B "$out" -DCMAKE_BUILD_TYPE=Release $(ccache_flags) \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_LLGUIDANCE=OFF >"$DIR/configure.log" 2>&1 ||
    fail "cmake configure failed; see $DIR/configure.log"
  if grep -qiE 'downloading|file\(DOWNLOAD' "$DIR/configure.log"; then
    fail "the llama.cpp configure tried to download; see $DIR/configure.log"
  fi
  say "building llama-server with $JOBS jobs (cold: about 20 minutes on 2 cores; ccache-warm: under a minute)"
  cmake --build "$out" --target llama-server -j"$JOBS" >"$DIR/build.log" 2>&1 ||
    { tail -40 "$DIR/build.log" >&2; fail "llama-server build failed; see $DIR/build.log"; }
  mkdir -p "$BIN"
  cp "$out/bin/llama-server" "$BIN/llama-server.tmp"
  mv "$BIN/llama-server.tmp" "$BIN/llama-server"
  say "llama-server built in $((SECONDS - start)) s"
  echo "$BIN/llama-server"
}

# The model generator (third_party/llama/make_model.cc) against the tree's ggml-base library.
build_generator() {
  local gen="$BIN/make_model"
  if [ -x "$gen" ] && [ "$gen" -nt "$PKG/make_model.cc" ]; then
    echo "$gen"
    return 0
  fi
  build_server >/dev/null
  say "building make_model against ggml-base"
  cmake --build "$DIR/cmake" --target ggml-base -j"$JOBS" >>"$DIR/build.log" 2>&1 || fail "ggml-base build failed"
  local lib
  lib="$(find "$DIR/cmake" -name libggml-base.a | head -1)"
  [ -n "$lib" ] || fail "no libggml-base.a under $DIR/cmake"
  ${CXX:-g++} -std=c++17 -O2 -Wall -Wextra -Werror -I"$SRC/ggml/include" "$PKG/make_model.cc" "$lib" \
    -lpthread -lm -o "$gen.tmp" || fail "make_model failed to compile"
  mv "$gen.tmp" "$gen"
  echo "$gen"
}

# The random-weight model for SEED with the phi-3 vocab (tokenizer and chat template).
build_model() {
  local seed="${1:-1}" model gen
  case "$seed" in '' | *[!0-9]*) fail "SEED must be a number, got '$seed'" ;; esac
  model="$DIR/models/random-llama-seed$seed.gguf"
  gen="$(build_generator)"
  if [ -f "$model" ] && [ "$model" -nt "$gen" ]; then
    echo "$model"
    return 0
  fi
  mkdir -p "$DIR/models"
  "$gen" "$SRC/models/ggml-vocab-phi-3.gguf" "$model" "$seed" >&2 || fail "make_model failed"
  echo "$model"
}

case "${1:-}" in
  build) build_server ;;
  model) build_model "${2:-1}" ;;
  make-model)
    [ $# -eq 3 ] || fail "usage: scripts/llama.sh make-model OUT SEED"
    "$(build_generator)" "$SRC/models/ggml-vocab-phi-3.gguf" "$2" "$3" >&2 && echo "$2"
    ;;
  all) echo "server=$(build_server)" && echo "model=$(build_model "${2:-1}")" ;;
  version) npm_install && echo "node-llama-cpp $VERSION, llama.cpp $(tag)" ;;
  *) fail "usage: scripts/llama.sh build|model [SEED]|all|make-model OUT SEED|version" ;;
esac
