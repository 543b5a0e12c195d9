#!/usr/bin/env bash
# Builds the dashboard (web/) into OUTDIR: type-checks the TypeScript (tsc), bundles it with
# esbuild into app.js and app.css (minified, uPlot included: nothing is fetched from a CDN),
# and copies index.html. Installs the npm packages from web/package-lock.json (npm ci) when
# web/node_modules is missing or older than the lockfile. CMake runs this and embeds OUTDIR
# in the binary (cmake/embed_web.cmake).
#
#   scripts/web.sh OUTDIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
OUT="${1:?usage: scripts/web.sh OUTDIR}"

fail() {
  echo "scripts/web.sh: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed (Debian: apt-get install nodejs npm; scripts/deps.sh installs them)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (Debian: apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old: the dashboard build needs Node 18 or later"

stamp="$WEB/node_modules/.package-lock.json"
if [ ! -d "$WEB/node_modules" ] || [ ! -f "$stamp" ] || [ "$WEB/package-lock.json" -nt "$stamp" ]; then
  echo "scripts/web.sh: npm ci (web/package-lock.json)"
  (cd "$WEB" && npm ci --no-audit --no-fund) || fail "npm ci failed in web/"
fi

(cd "$WEB" && ./node_modules/.bin/tsc --noEmit -p .) || fail "TypeScript errors in web/src"
mkdir -p "$OUT"
(cd "$WEB" && ./node_modules/.bin/esbuild src/main.ts --bundle --minify --format=iife --target=es2020 \
  --log-level=warning --outfile="$OUT/app.js") || fail "esbuild failed"
cp "$WEB/src/index.html" "$OUT/index.html"
echo "scripts/web.sh: $(wc -c <"$OUT/app.js") bytes app.js, $(wc -c <"$OUT/app.css") bytes app.css -> $OUT"
