#!/usr/bin/env bash
# Acceptance of the Debian package (issue 21), run by ctest (labels e2e;package):
#
#   LL_BUILD_DIR=build/release bash tests/package/run.sh
#
# Builds the .deb from the build tree (cpack, as `make package` does), then: lintian reports no
# errors; `dpkg -x` unpacks it into a temporary root, and the installed binary, run from `/`,
# starts `serve` on its default data (loopback, port 0, a temporary state dir) and answers
# /healthz with its version and commit, serves /metrics that `promtool check metrics` accepts,
# starts on the packaged config, and runs `sim` on the installed default trace; `systemd-analyze
# verify` accepts the unit. Needs lintian, help2man, prometheus (promtool), curl: scripts/deps.sh
# test installs them. Exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LL_RUNNER=tests/package
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

BUILD="$(cd "${LL_BUILD_DIR:-$ROOT/build/release}" && pwd)"
[ -f "$BUILD/CPackConfig.cmake" ] || fail "no CPackConfig.cmake in $BUILD (configure the build first)"
for tool in cpack lintian dpkg-deb systemd-analyze promtool curl; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (scripts/deps.sh test installs it)"
done

WORK="$(mktemp -d /tmp/ll_package_test_XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "tests/package: cpack in $BUILD"
cpack --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
DEB="$(ls "$WORK"/out/landlord_*.deb)"
echo "tests/package: built $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB)"
dpkg-deb -f "$DEB" Depends | grep -q "libsqlite3" || fail "Depends has no shared-library dependencies (shlibdeps)"
dpkg-deb --info "$DEB" conffiles | grep -qx "/etc/landlord/landlord.toml" ||
  fail "/etc/landlord/landlord.toml is not a conffile"

# The maintainer scripts parse (lintian reads them; dpkg runs them as root at install).
mkdir -p "$WORK/control"
dpkg-deb --control "$DEB" "$WORK/control"
for script in postinst prerm postrm; do
  sh -n "$WORK/control/$script" || fail "$script does not parse"
done

# lintian: no errors (warnings are printed for the record).
lintian_args=(--no-cfg --fail-on error)
[ "$(id -u)" -eq 0 ] && lintian_args+=(--allow-root)
lintian "${lintian_args[@]}" "$DEB" || fail "lintian reports errors"
echo "tests/package: lintian: no errors"

R="$WORK/root"
dpkg -x "$DEB" "$R"
BIN="$R/usr/bin/landlord"
[ -x "$BIN" ] || fail "no usr/bin/landlord in the package"
[ -f "$R/usr/share/man/man1/landlord.1.gz" ] || fail "no man page in the package"
[ -f "$R/usr/share/landlord/README.md" ] || fail "no trace attribution in usr/share/landlord"
version="$(cd / && "$BIN" --version)"
echo "tests/package: $version"
[[ "$version" =~ ^landlord\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [0-9a-z-]+\)$ ]] || fail "--version: $version"

# Starts the installed `serve` from / with ARGS; sets URL once it listens (its first line).
start_serve() {
  local log="$WORK/serve.$#.log"
  (cd / && exec "$BIN" serve --listen 127.0.0.1:0 "$@") >"$log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  URL=""
  while [ -z "$URL" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "serve $* exited before listening"; }
    URL="$(sed -n 's|^landlord serve: listening on \(http://[0-9.:]*\).*|\1|p' "$log")"
    [ -n "$URL" ] || sleep 0.1
  done
  SERVE_PID=$pid
}
stop_serve() {
  kill -TERM "$SERVE_PID"
  wait "$SERVE_PID" || fail "serve exited with $? on SIGTERM"
}

# 1. The defaults: the default trace from usr/share/landlord, state in a temporary dir.
start_serve --data-dir "$WORK/state"
health="$(curl -fsS "$URL/healthz")"
echo "tests/package: /healthz $health"
grep -q '"status":"ok"' <<<"$health" || fail "/healthz: $health"
grep -q '"version":"[0-9.]*"' <<<"$health" || fail "/healthz has no version: $health"
grep -q '"commit":"[0-9a-z-]*"' <<<"$health" || fail "/healthz has no commit: $health"
curl -fsS "$URL/metrics" >"$WORK/metrics.txt"
promtool check metrics <"$WORK/metrics.txt" || fail "promtool check metrics rejects /metrics (above)"
echo "tests/package: promtool accepts /metrics ($(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
stop_serve

# 2. The packaged config (its paths moved into the temporary root) parses and starts.
sed -e "s|/usr/share/landlord|$R/usr/share/landlord|" -e "s|/var/lib/landlord|$WORK/state2|" \
  "$R/etc/landlord/landlord.toml" >"$WORK/landlord.toml"
start_serve --config "$WORK/landlord.toml"
curl -fsS "$URL/healthz" >/dev/null || fail "serve on the packaged config does not answer /healthz"
stop_serve
echo "tests/package: serve starts from / on the defaults and on the packaged config"

# 3. `sim` on the installed default trace, from /.
(cd / && "$BIN" sim --policies baseline,landlord) >"$WORK/sim.txt" 2>&1 || { cat "$WORK/sim.txt" >&2; fail "sim failed"; }
grep -q "helios:data/helios_earth_2020_05" "$WORK/sim.txt" || fail "sim did not run the default trace"
grep -q "^revenue_usd" "$WORK/sim.txt" || { cat "$WORK/sim.txt" >&2; fail "sim printed no table"; }
echo "tests/package: sim runs from / on the installed default trace"

# 4. systemd-analyze verify: the unit as installed, its ExecStart pointed into the temporary
# root (verify checks that the binary exists); any complaint fails, as verify exits 0 on some.
mkdir -p "$WORK/unit"
sed "s|/usr/bin/landlord|$BIN|" "$R/lib/systemd/system/landlord.service" >"$WORK/unit/landlord.service"
out="$(systemd-analyze verify --man=no "$WORK/unit/landlord.service" 2>&1)" || { echo "$out" >&2; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify complains about the unit"; }
echo "tests/package: systemd-analyze verify accepts the unit"
echo "tests/package: ok"
