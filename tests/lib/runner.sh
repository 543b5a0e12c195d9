# Sourced by the end-to-end runners (tests/{node,web,slurm,scale}/run.sh) after they set ROOT
# (the repository) and LL_RUNNER (their name, e.g. "tests/scale"): `fail MESSAGE` exits 1 with
# the message after the runner's name, and `ll_landlord_bin` exports LANDLORD_BIN (default
# build/release/landlord, made absolute) once it is an executable.

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
