// The SQLite store's connection settings and schema: numbered migrations, each applied once in
// its own transaction and recorded in `schema_migrations`.
#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <iterator>
#include <set>
#include <string>

#include "core/status.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/statement.h"

namespace ll::store::sqlite {
namespace {


// Migration N is kMigrations[N - 1].
constexpr const char* kMigrations[] = {
    // 1: the initial schema. Foreign keys guard the references the control plane relies on
    // (a key's tenant, a lease's tenant, an event's lease); Commit() writes parents first.
    R"sql(
CREATE TABLE tenants (
  id         TEXT PRIMARY KEY NOT NULL,
  name       TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT REFERENCES tenants(id),  -- NULL for the admin key
  hash       TEXT NOT NULL UNIQUE,
  admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
  created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id);

CREATE TABLE leases (
  id               TEXT PRIMARY KEY NOT NULL,
  tenant_id        TEXT NOT NULL REFERENCES tenants(id),
  kind             TEXT NOT NULL,
  state            TEXT NOT NULL,
  pool             INTEGER NOT NULL,
  gpus             INTEGER NOT NULL,
  price_micros     INTEGER NOT NULL,
  max_price_micros INTEGER NOT NULL,
  created_ms       INTEGER,  -- times: NULL = not (yet) set
  started_ms       INTEGER,
  noticed_at_ms    INTEGER,
  reclaim_at_ms    INTEGER,
  term_end_ms      INTEGER,
  ended_ms         INTEGER,
  end_reason       TEXT NOT NULL,
  placement        TEXT NOT NULL
) STRICT;
CREATE INDEX leases_by_tenant ON leases(tenant_id);

-- AUTOINCREMENT: a seq is never reused, so SSE clients resuming from Last-Event-ID never
-- see a different event under a seq they already have.
CREATE TABLE lease_events (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  lease_id  TEXT NOT NULL REFERENCES leases(id),
  tenant_id TEXT NOT NULL,
  type      TEXT NOT NULL,
  at_ms     INTEGER NOT NULL,
  data      TEXT NOT NULL
) STRICT;
CREATE INDEX lease_events_by_lease ON lease_events(lease_id, seq);

CREATE TABLE internal_jobs (
  id       TEXT PRIMARY KEY NOT NULL,
  pool     INTEGER NOT NULL,
  gpus     INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms   INTEGER  -- NULL = open-ended
) STRICT;

CREATE TABLE settings (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;
)sql",
    // 2: the ledger. Prices are points in time ("from here on"); usage is keyed by its
    // idempotency key, so a second insert of the same usage is ignored.
    R"sql(
CREATE TABLE lease_prices (
  lease_id     TEXT NOT NULL REFERENCES leases(id),
  at_ms        INTEGER NOT NULL,
  price_micros INTEGER NOT NULL CHECK (price_micros >= 0),
  PRIMARY KEY (lease_id, at_ms)
) STRICT;

CREATE TABLE spot_prices (
  at_ms        INTEGER PRIMARY KEY NOT NULL,
  price_micros INTEGER NOT NULL CHECK (price_micros >= 0)
) STRICT;

CREATE TABLE usage_events (
  key               TEXT PRIMARY KEY NOT NULL,
  tenant_id         TEXT NOT NULL REFERENCES tenants(id),
  source            TEXT NOT NULL,
  ref               TEXT NOT NULL,
  kind              TEXT NOT NULL,
  period            TEXT NOT NULL,
  start_ms          INTEGER NOT NULL,
  end_ms            INTEGER NOT NULL CHECK (end_ms >= start_ms),
  quantity          INTEGER NOT NULL CHECK (quantity >= 0),
  unit              TEXT NOT NULL,
  unit_price_micros INTEGER NOT NULL CHECK (unit_price_micros >= 0),
  amount_micros     INTEGER NOT NULL CHECK (amount_micros >= 0)
) STRICT;
CREATE INDEX usage_by_tenant_period ON usage_events(tenant_id, period, start_ms);
)sql",
    // 3: prepaid balances. The CHECKs are the last line against overspending.
    R"sql(
CREATE TABLE balances (
  tenant_id       TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id),
  credited_micros INTEGER NOT NULL CHECK (credited_micros >= 0),
  charged_micros  INTEGER NOT NULL CHECK (charged_micros >= 0 AND charged_micros <= credited_micros)
) STRICT;

CREATE TABLE holds (
  id             TEXT PRIMARY KEY NOT NULL,
  tenant_id      TEXT NOT NULL REFERENCES tenants(id),
  amount_micros  INTEGER NOT NULL CHECK (amount_micros >= 0),
  charged_micros INTEGER CHECK (charged_micros IS NULL OR (charged_micros >= 0 AND charged_micros <= amount_micros)),
  created_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX holds_open ON holds(tenant_id) WHERE charged_micros IS NULL;
)sql",
    // 4: per-key limits of the model API (0: the gateway's defaults).
    R"sql(
ALTER TABLE api_keys ADD COLUMN rpm INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0);
ALTER TABLE api_keys ADD COLUMN tpm INTEGER NOT NULL DEFAULT 0 CHECK (tpm >= 0);
)sql",
    // 5: key management: a label, the key's first characters, expiry and revocation (NULL:
    // never). Keys stored before keep working: no name, no prefix, no expiry.
    R"sql(
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_ms INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_ms INTEGER;
)sql",
    // 6: a lease's workload: {"spec", "status"} as JSON text ('': none).
    "ALTER TABLE leases ADD COLUMN workload TEXT NOT NULL DEFAULT '';",
    // 7: a spot lease's notice tier (leases from before it were all `standard`).
    R"sql(
ALTER TABLE leases ADD COLUMN notice_tier TEXT NOT NULL DEFAULT 'standard'
  CHECK (notice_tier IN ('standard', 'flash'));
)sql",
    // 8: a gateway's slice of a balance and of a key's rate limits is a hold with a key, the
    // units it holds, what it spent, the last report applied and its lease's expiry.
    R"sql(
ALTER TABLE holds ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN requests INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0);
ALTER TABLE holds ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0 CHECK (tokens >= 0);
ALTER TABLE holds ADD COLUMN spent_micros INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0);
ALTER TABLE holds ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN expired INTEGER NOT NULL DEFAULT 0 CHECK (expired IN (0, 1));
)sql",
};
constexpr int64_t kSchemaVersion = std::size(kMigrations);

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)";
// The time comes from SQLite rather than a Clock: it is bookkeeping for humans reading the
// file, not a value the control plane ever acts on.
constexpr const char* kRecordMigration =
    "INSERT INTO schema_migrations(version, applied_at_ms) "
    "VALUES(?1, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))";

}  // namespace

Status SqliteStore::Configure() {
  // busy_timeout first: switching to WAL needs a lock another process may hold.
  LL_RETURN_IF_ERROR(Exec("PRAGMA busy_timeout = 5000", "set busy_timeout"));
  LL_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys = ON", "enable foreign_keys"));
  // journal_mode answers the mode it ended up in instead of failing, e.g. `memory` for an
  // in-memory database, which could not keep the durability contract.
  StmtPtr wal;
  LL_RETURN_IF_ERROR(Prepare("PRAGMA journal_mode = WAL", &wal));
  int rc = sqlite3_step(wal.get());
  if (rc != SQLITE_ROW) return Fail(rc, "set journal_mode");
  std::string mode = Row(wal.get()).Text();
  if (mode != "wal") {
    return Status::Io(fmt::format(
        "store `{}`: journal_mode is `{}`, not `wal`; use a file on a local disk", path_, mode));
  }
  rc = sqlite3_step(wal.get());
  if (rc != SQLITE_DONE) return Fail(rc, "set journal_mode");
  // FULL also fsyncs the WAL on every commit; NORMAL (the usual WAL pairing) would lose the
  // last commits on power loss.
  return Exec("PRAGMA synchronous = FULL", "set synchronous");
}

Status SqliteStore::Migrate() {
  LL_RETURN_IF_ERROR(Exec(kCreateMigrationsTable, "create `schema_migrations`"));
  std::set<int64_t> applied;
  {
    StmtPtr select;
    LL_RETURN_IF_ERROR(Prepare("SELECT version FROM schema_migrations ORDER BY version", &select));
    int rc;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
      applied.insert(sqlite3_column_int64(select.get(), 0));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "read `schema_migrations`");
  }
  if (!applied.empty() && *applied.rbegin() > kSchemaVersion) {
    return Status::Invalid(fmt::format(
        "store `{}`: schema version {} is newer than this build of landlord knows (up to {}); "
        "run a newer landlord on it",
        path_, *applied.rbegin(), kSchemaVersion));
  }
  for (int64_t version = 1; version <= kSchemaVersion; ++version) {
    if (applied.count(version) == 0) LL_RETURN_IF_ERROR(ApplyMigration(version));
  }
  return Status::Ok();
}

Status SqliteStore::ApplyMigration(int64_t version) {
  const std::string what = fmt::format("migration {}", version);
  LL_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE", what));
  Status st = [&]() -> Status {
    // Another process may have applied it between our read and our write lock.
    StmtPtr check;
    LL_RETURN_IF_ERROR(Prepare("SELECT 1 FROM schema_migrations WHERE version = ?1", &check));
    ScopedReset reset(check.get());
    int rc = Binder(check.get()).Int(version).Done();
    if (rc != SQLITE_OK) return Fail(rc, what);
    rc = sqlite3_step(check.get());
    if (rc == SQLITE_ROW) return Status::Ok();
    if (rc != SQLITE_DONE) return Fail(rc, what);

    LL_RETURN_IF_ERROR(Exec(kMigrations[version - 1], what));
    StmtPtr record;
    LL_RETURN_IF_ERROR(Prepare(kRecordMigration, &record));
    ScopedReset reset_record(record.get());
    rc = Binder(record.get()).Int(version).Done();
    if (rc != SQLITE_OK) return Fail(rc, what);
    rc = sqlite3_step(record.get());
    if (rc != SQLITE_DONE) return Fail(rc, what);
    return Status::Ok();
  }();
  if (st.ok()) st = Exec("COMMIT", what);
  if (!st.ok()) {
    Status rb = Rollback(what);
    if (!rb.ok()) return Status(st.code(), st.message() + "; then " + rb.message());
  }
  return st;
}

}  // namespace ll::store::sqlite
