# Sourced by the end-to-end runners (tests/{node,web,slurm,scale}/run.sh) after they set ROOT
# (the repository) and LL_RUNNER (their name, e.g. "tests/scale"): `fail MESSAGE` exits 1 with
# the message after the runner's name, and `ll_landlord_bin` exports LANDLORD_BIN (default
# build/release/landlord, made absolute) once it is an executable; `ll_npm_ci DIR` installs
# DIR's pinned packages (npm ci) when its node_modules is missing or older than its lockfile.

fail() {
  echo "$LL_RUNNER: $*" >&2
  exit 1
}

ll_landlord_bin() {
  export LANDLORD_BIN="${LANDLORD_BIN:-$ROOT/build/release/landlord}"
  case "$LANDLORD_BIN" in
    /*) ;;
    *) LANDLORD_BIN="$PWD/$LANDLORD_BIN" ;;
  esac
  [ -x "$LANDLORD_BIN" ] || fail "no landlord binary at $LANDLORD_BIN (build it, or set LANDLORD_BIN)"
}

ll_npm_ci() {
  local dir="$1"
  command -v npm >/dev/null 2>&1 ||
    fail "npm is not installed (Debian: apt-get install npm; scripts/deps.sh installs it)"
  # npm writes node_modules/.package-lock.json on every install.
  local stamp="$dir/node_modules/.package-lock.json"
  if [ ! -d "$dir/node_modules" ] || [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    echo "$LL_RUNNER: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund) || fail "npm ci in $dir failed"
  fi
}
