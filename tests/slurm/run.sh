#!/usr/bin/env bash
# The slurm fleet backend end to end, against real Slurm daemons from Debian (slurm-wlm 22.05,
# munge, slurmdbd with a private MariaDB for sacct) that this script starts on loopback: one
# slurmctld and four `slurmd -N nX` of 8 fake GPUs each (tests/slurm/cluster.sh), then
# tests/slurm/slurm.test.mjs, then everything is stopped again.
#
#   LANDLORD_BIN=build/dev/landlord bash tests/slurm/run.sh
#
# Needs root (slurmd runs jobs as their users) and the Debian packages (scripts/deps.sh test
# installs them). LANDLORD_BIN defaults to build/release/landlord.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

LL_RUNNER=tests/slurm
# shellcheck source=../lib/runner.sh
source "$ROOT/tests/lib/runner.sh"

[ "$(id -u)" -eq 0 ] || fail "must run as root: slurmd starts jobs as their users (CI runs as root)"
for b in munged slurmctld slurmd sbatch slurmdbd mariadbd curl node podman runc busybox; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || fail "\`$b\` is missing: scripts/deps.sh test installs the Debian packages"
done
ll_landlord_bin

export SLURM_CI_DIR
SLURM_CI_DIR="$(mktemp -d /tmp/landlord-slurm.XXXXXX)"
export SLURM_CI_DBD=1 SLURM_CI_GRACE=20
export SLURM_CONF="$SLURM_CI_DIR/etc/slurm.conf"
cleanup() {
  local rc=$?
  # A failure shows what slurmctld did (preemptions, kills, slow RPCs).
  if [ "$rc" -ne 0 ] && [ -f "$SLURM_CI_DIR/log/slurmctld.log" ]; then
    echo "tests/slurm: the end of slurmctld.log:"
    grep -v -e pmix -e 'Could not open' -e 'NOTE:' "$SLURM_CI_DIR/log/slurmctld.log" | tail -n 60
  fi
  bash "$HERE/cluster.sh" stop --purge >/dev/null 2>&1 || true
  rm -rf "$SLURM_CI_DIR"
}
trap cleanup EXIT
echo "tests/slurm: starting the cluster in $SLURM_CI_DIR"
bash "$HERE/cluster.sh" start >/dev/null
echo "tests/slurm: $(sinfo --version), nodes: $(sinfo -h -N -p landlord -o '%N:%G' | tr '\n' ' ')"
node --test "$HERE"/*.test.mjs
