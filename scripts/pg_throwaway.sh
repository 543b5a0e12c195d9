# A throwaway PostgreSQL server for tests and benchmarks, sourced by tests/scale/run.sh and
# bench/store_bench.sh:
#
#   source scripts/pg_throwaway.sh
#   pg_throwaway_start || exit 1   # sets PG_DIR and PG_URL (database `landlord`)
#   ...
#   pg_throwaway_stop              # also safe to call from an EXIT trap
#
# Debian's postgresql package: initdb and pg_ctl in a temp dir (as user `postgres` when run as
# root: initdb refuses root), listening on a unix socket in that dir only. No TCP port, so
# nothing outside can reach it and nothing else on the machine is touched. PG_EXTRA_OPTS adds
# server options (diagnosis: "-c synchronous_commit=off" shows what the WAL flushes cost).

pg_throwaway_start() {
  local d
  PG_BIN=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && PG_BIN="$d"
  done
  if [ -z "$PG_BIN" ]; then
    echo "PostgreSQL is not installed (Debian: postgresql; scripts/deps.sh test installs it)" >&2
    return 1
  fi
  PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/landlord-pg.XXXXXX")"
  PG_AS=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_DIR"
    PG_AS=(runuser -u postgres --)
  fi
  if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1; then
    cat "$PG_DIR/initdb.log" >&2
    echo "initdb failed" >&2
    return 1
  fi
  if ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -o "-p 5432 -k $PG_DIR -c listen_addresses='' ${PG_EXTRA_OPTS:-}" \
    -l "$PG_DIR/server.log" -w start >/dev/null; then
    cat "$PG_DIR/server.log" >&2
    echo "the throwaway PostgreSQL server did not start" >&2
    return 1
  fi
  "${PG_AS[@]}" "$PG_BIN/createdb" -h "$PG_DIR" -p 5432 -U postgres landlord || {
    echo "createdb failed" >&2
    return 1
  }
  PG_URL="postgresql:///landlord?host=$PG_DIR&port=5432&user=postgres"
  PG_VERSION="$("$PG_BIN/postgres" --version | awk '{print $3}')"
}

# The server's log, last lines (for a failure report).
pg_throwaway_log_tail() {
  [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/server.log" ] && tail -n "${1:-20}" "$PG_DIR/server.log" >&2
  return 0
}

pg_throwaway_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}
