#!/usr/bin/env bash
# Installs the Debian 12 packages the build needs, only those that are missing.
# Usage: scripts/deps.sh [build|test|bench]
# The dashboard is built with npm packages (web/package-lock.json: TypeScript, esbuild, uPlot),
# installed by scripts/web.sh; `test` adds Debian's Chromium for its browser test.
set -euo pipefail
pkgs=(build-essential cmake ccache pkg-config
      libcli11-dev nlohmann-json3-dev libsimdjson-dev libfmt-dev libspdlog-dev
      libtomlplusplus-dev libgtest-dev libgmock-dev libbenchmark-dev
      libboost-dev libsqlite3-dev libsodium-dev libpqxx-dev postgresql wrk
      clang libclang-rt-14-dev
      prometheus-cpp-dev help2man file dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm for the `openai` SDK tests (tests/node): checked as commands, as a machine may
# have Node from elsewhere with its own npm; Debian's are nodejs (18) and npm.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Chromium: the browser of the dashboard's end-to-end test and benchmark (driven by playwright-core).
case "${1:-}" in test | bench) [ -x /usr/bin/chromium ] || missing+=(chromium) ;; esac
# Slurm, munge, slurmdbd with MariaDB (sacct) and curl: the slurm backend's test (tests/slurm),
# which starts its own daemons on loopback. bubblewrap, dropbear-bin and openssh-client: the
# workload sandbox's tests (tests/workload: a sandboxed workload, an SSH login into it). podman
# with runc (crun refuses cgroups in hybrid mode) and busybox-static: the Slurm fleet's container
# template test, which imports an image built from busybox (nothing pulled from a registry).
# lintian, prometheus (promtool) and systemd (systemd-analyze): the package's test (tests/package).
if [ "${1:-}" = test ]; then
  for p in slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core curl \
    bubblewrap dropbear-bin openssh-client podman runc busybox-static lintian prometheus systemd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
# nginx: the baseline proxy of the gateway benchmark (`make bench`).
[ "${1:-}" = bench ] && { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx); }
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
