// The SQLite implementation of Store.
//
// One connection per store, in WAL mode with `synchronous=FULL`: a commit returns only after
// its WAL frames are fsync'ed, which is what the Store durability contract promises. Every
// Commit() is one `BEGIN IMMEDIATE` transaction (it takes the write lock up front, so it
// cannot fail half-way with SQLITE_BUSY on lock upgrade). The statements are prepared once,
// as persistent statements, and reset after every use so no read transaction stays open.
//
// Schema: numbered migrations in kMigrations, applied in order, each in its own transaction,
// recorded in `schema_migrations`. Append new migrations; never edit an applied one.
//
// Times are INTEGER milliseconds; kTimeMax ("not set") is stored as NULL so that the column
// reads as unset in SQL too, not as a magic far-future number.
#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::store {
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

constexpr const char* kInsertTenant =
    "INSERT INTO tenants(id, name, created_ms) VALUES(?1, ?2, ?3)";
constexpr const char* kInsertKey =
    "INSERT INTO api_keys(id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, revoked_ms) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr const char* kRevokeKey = "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1";
constexpr const char* kUpsertLease =
    "INSERT INTO leases(id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, "
    "created_ms, started_ms, noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, "
    "placement) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
    "ON CONFLICT(id) DO UPDATE SET tenant_id = excluded.tenant_id, kind = excluded.kind, "
    "state = excluded.state, pool = excluded.pool, gpus = excluded.gpus, "
    "price_micros = excluded.price_micros, max_price_micros = excluded.max_price_micros, "
    "created_ms = excluded.created_ms, started_ms = excluded.started_ms, "
    "noticed_at_ms = excluded.noticed_at_ms, reclaim_at_ms = excluded.reclaim_at_ms, "
    "term_end_ms = excluded.term_end_ms, ended_ms = excluded.ended_ms, "
    "end_reason = excluded.end_reason, placement = excluded.placement";
constexpr const char* kInsertEvent =
    "INSERT INTO lease_events(lease_id, tenant_id, type, at_ms, data) "
    "VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr const char* kUpsertJob =
    "INSERT INTO internal_jobs(id, pool, gpus, start_ms, end_ms) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(id) DO UPDATE SET pool = excluded.pool, gpus = excluded.gpus, "
    "start_ms = excluded.start_ms, end_ms = excluded.end_ms";
constexpr const char* kUpsertSetting =
    "INSERT INTO settings(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";

constexpr const char* kSelectTenants = "SELECT id, name, created_ms FROM tenants ORDER BY id";
constexpr const char* kSelectKeys =
    "SELECT id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, revoked_ms FROM api_keys "
    "ORDER BY id";
constexpr const char* kSelectLeases =
    "SELECT id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, created_ms, "
    "started_ms, noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, placement "
    "FROM leases ORDER BY id";
constexpr const char* kSelectEvents =
    "SELECT seq, lease_id, tenant_id, type, at_ms, data FROM lease_events "
    "WHERE lease_id = ?1 AND seq > ?2 ORDER BY seq";
constexpr const char* kSelectJobs =
    "SELECT id, pool, gpus, start_ms, end_ms FROM internal_jobs ORDER BY id";
constexpr const char* kSelectSetting = "SELECT value FROM settings WHERE key = ?1";
constexpr const char* kSelectLastSeq = "SELECT COALESCE(MAX(seq), 0) FROM lease_events";
constexpr const char* kUpsertLeasePrice =
    "INSERT INTO lease_prices(lease_id, at_ms, price_micros) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(lease_id, at_ms) DO UPDATE SET price_micros = excluded.price_micros";
constexpr const char* kUpsertSpotPrice =
    "INSERT INTO spot_prices(at_ms, price_micros) VALUES(?1, ?2) "
    "ON CONFLICT(at_ms) DO UPDATE SET price_micros = excluded.price_micros";
constexpr const char* kInsertUsage =
    "INSERT INTO usage_events(key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, "
    "unit_price_micros, amount_micros) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
    "ON CONFLICT(key) DO NOTHING";
constexpr const char* kSelectLeasePrices =
    "SELECT lease_id, at_ms, price_micros FROM lease_prices ORDER BY lease_id, at_ms";
constexpr const char* kSelectSpotPrices =
    "SELECT at_ms, price_micros FROM spot_prices WHERE at_ms >= (SELECT COALESCE(MAX(at_ms), ?1) FROM spot_prices "
    "WHERE at_ms <= ?1) AND at_ms < ?2 ORDER BY at_ms";
constexpr const char* kSelectUsage =
    "SELECT key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, unit_price_micros, "
    "amount_micros FROM usage_events WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR period = ?2) "
    "ORDER BY start_ms, key";
constexpr const char* kUpsertBalance =
    "INSERT INTO balances(tenant_id, credited_micros, charged_micros) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(tenant_id) DO UPDATE SET credited_micros = excluded.credited_micros, "
    "charged_micros = excluded.charged_micros";
constexpr const char* kUpsertHold =
    "INSERT INTO holds(id, tenant_id, amount_micros, charged_micros, created_ms) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(id) DO UPDATE SET charged_micros = excluded.charged_micros";
constexpr const char* kSelectBalances = "SELECT tenant_id, credited_micros, charged_micros FROM balances ORDER BY tenant_id";
constexpr const char* kSelectOpenHolds =
    "SELECT id, tenant_id, amount_micros, COALESCE(charged_micros, -1), created_ms FROM holds "
    "WHERE charged_micros IS NULL ORDER BY id";
constexpr const char* kSelectHold =
    "SELECT id, tenant_id, amount_micros, COALESCE(charged_micros, -1), created_ms FROM holds WHERE id = ?1";
constexpr const char* kSelectUsagePage =
    "SELECT key, tenant_id, source, ref, kind, period, start_ms, end_ms, quantity, unit, unit_price_micros, "
    "amount_micros FROM usage_events WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR period = ?2) "
    "AND (start_ms, key) > (?3, ?4) ORDER BY start_ms, key LIMIT ?5";
constexpr const char* kSelectInvoiceLines =
    "SELECT ref, kind, unit, unit_price_micros, SUM(quantity), SUM(amount_micros) FROM usage_events "
    "WHERE tenant_id = ?1 AND period = ?2 GROUP BY ref, kind, unit, unit_price_micros "
    "ORDER BY ref, kind, unit, unit_price_micros";
constexpr const char* kSelectUsageTotals =
    "SELECT kind, SUM(quantity), SUM(amount_micros) FROM usage_events WHERE ?1 = '' OR period = ?1 "
    "GROUP BY kind ORDER BY kind";
constexpr const char* kSelectUsagePeriods =
    "SELECT period, SUM(amount_micros) FROM usage_events WHERE tenant_id = ?1 GROUP BY period ORDER BY period DESC";

struct DbCloser {
  void operator()(sqlite3* db) const {
    // Fails only while statements are unfinalized, which the member order rules out.
    LL_CHECK(sqlite3_close(db) == SQLITE_OK);
  }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const {
    // finalize's result repeats the statement's last step error, already reported then.
    (void)sqlite3_finalize(stmt);
  }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a cached statement and drops its bindings when a use of it ends, on every path: a
// statement left mid-result would hold its read transaction (and the WAL) open.
class ScopedReset {
 public:
  explicit ScopedReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;
  ~ScopedReset() {
    // reset's result repeats the last step's error, which the caller has already turned
    // into a Status; clear_bindings always returns SQLITE_OK.
    (void)sqlite3_reset(stmt_);
    (void)sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

// Binds parameters ?1, ?2, … in order and keeps the first failure. Text is bound without a
// copy: the caller's strings outlive the step, and ScopedReset clears the bindings.
class Binder {
 public:
  explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

  Binder& Text(std::string_view v) {
    if (rc_ == SQLITE_OK) {
      // A null pointer would bind NULL, not the empty string a default string_view means.
      const char* p = v.data() != nullptr ? v.data() : "";
      rc_ = sqlite3_bind_text64(stmt_, next_, p, v.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    ++next_;
    return *this;
  }
  // Empty binds NULL: for optional references such as the admin key's tenant.
  Binder& TextOrNull(std::string_view v) {
    if (!v.empty()) return Text(v);
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, next_);
    ++next_;
    return *this;
  }
  Binder& Int(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, next_, v);
    ++next_;
    return *this;
  }
  Binder& At(Time t) { return Int(t.ms); }
  Binder& AtOrNull(Time t) {
    if (t != kTimeMax) return Int(t.ms);
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, next_);
    ++next_;
    return *this;
  }

  // SQLITE_OK when every parameter was bound.
  int Done() const {
    LL_CHECK(next_ - 1 == sqlite3_bind_parameter_count(stmt_));
    return rc_;
  }

 private:
  sqlite3_stmt* stmt_;
  int next_ = 1;
  int rc_ = SQLITE_OK;
};

// Reads the columns of the current row in order.
class Row {
 public:
  explicit Row(sqlite3_stmt* stmt) : stmt_(stmt) {}

  // NULL reads as "" (the admin key's tenant).
  std::string Text() {
    const unsigned char* p = sqlite3_column_text(stmt_, col_);
    int n = sqlite3_column_bytes(stmt_, col_);
    ++col_;
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
  }
  int64_t Int() { return sqlite3_column_int64(stmt_, col_++); }
  Time At() { return Time{Int()}; }
  Time AtOrMax() {
    if (sqlite3_column_type(stmt_, col_) == SQLITE_NULL) {
      ++col_;
      return kTimeMax;
    }
    return At();
  }

 private:
  sqlite3_stmt* stmt_;
  int col_ = 0;
};

StatusCode CodeFor(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      return StatusCode::kConflict;
    default:
      break;
  }
  // Other constraints (foreign key, NOT NULL, CHECK) mean the caller passed a bad record.
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return StatusCode::kInvalidArgument;
  return StatusCode::kIoError;
}

// A few words ahead of SQLite's own message, which names the table and column but not what
// went wrong in the caller's terms.
std::string_view Explain(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return "id already exists: ";
    case SQLITE_CONSTRAINT_UNIQUE:
      return "a unique field is already taken: ";
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return "refers to a record that does not exist: ";
    default:
      return "";
  }
}

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& path);

  Status Commit(Batch& batch) override;
  Result<std::vector<TenantRecord>> Tenants() override;
  Result<std::vector<KeyRecord>> Keys() override;
  Result<std::vector<LeaseRecord>> Leases() override;
  Result<std::vector<LeaseEventRecord>> LeaseEvents(const std::string& lease_id,
                                                    int64_t after) override;
  Result<std::vector<InternalJobRecord>> InternalJobs() override;
  Result<std::optional<std::string>> Setting(const std::string& key) override;
  Result<std::vector<LeasePriceRecord>> LeasePrices() override;
  Result<std::vector<SpotPriceRecord>> SpotPrices(Time from, Time to) override;
  Result<std::vector<UsageRecord>> Usage(const std::string& tenant_id, const std::string& period) override;
  Result<std::vector<std::pair<std::string, int64_t>>> UsagePeriods(const std::string& tenant_id) override;
  Result<std::vector<BalanceRecord>> Balances() override;
  Result<std::vector<UsageRecord>> UsagePage(const std::string& tenant_id, const std::string& period,
                                             int64_t after_start_ms, const std::string& after_key, int limit) override;
  Result<std::vector<UsageRecord>> InvoiceLines(const std::string& tenant_id, const std::string& period) override;
  Result<std::vector<UsageRecord>> UsageTotals(const std::string& period) override;
  Result<std::vector<HoldRecord>> OpenHolds() override;
  Result<std::optional<HoldRecord>> Hold(const std::string& id) override;
  Result<int64_t> LastEventSeq() override;

 private:
  SqliteStore(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}

  // A Status for a failed SQLite call: names the file and what was being done.
  Status Fail(int rc, std::string_view what) const {
    return Status(CodeFor(rc), fmt::format("store `{}`: {}: {}{}", path_, what, Explain(rc),
                                           sqlite3_errmsg(db_.get())));
  }

  Status Exec(const char* sql, std::string_view what);
  Status Prepare(const char* sql, StmtPtr* out);
  Status Configure();
  Status Migrate();
  Status ApplyMigration(int64_t version);
  Status PrepareStatements();

  // Runs a cached statement that returns no rows.
  Status StepDone(sqlite3_stmt* stmt, std::string_view what);
  // Binds with `bind`, then runs a statement that returns no rows.
  template <typename BindFn>
  Status Write(const StmtPtr& stmt, std::string_view what, BindFn bind);
  // Binds with `bind`, then reads every row with `read`.
  template <typename T, typename BindFn, typename ReadFn>
  Result<std::vector<T>> Query(const StmtPtr& stmt, std::string_view what, BindFn bind,
                               ReadFn read);

  Status WriteBatch(const Batch& batch, std::vector<int64_t>* seqs, int64_t* usage_inserted);
  // Ends the open transaction, if SQLite has not already rolled it back itself.
  Status Rollback(std::string_view what);

  const std::string path_;
  // Declared before the statements so that it is closed after they are finalized.
  DbPtr db_;

  StmtPtr begin_, commit_, rollback_;
  StmtPtr insert_tenant_, insert_key_, revoke_key_, upsert_lease_, insert_event_, upsert_job_, upsert_setting_;
  StmtPtr select_tenants_, select_keys_, select_leases_, select_events_, select_jobs_,
      select_setting_, select_last_seq_;
  StmtPtr upsert_lease_price_, upsert_spot_price_, insert_usage_, select_lease_prices_, select_spot_prices_,
      select_usage_, select_usage_periods_;
  StmtPtr upsert_balance_, upsert_hold_, select_balances_, select_open_holds_, select_hold_;
  StmtPtr select_usage_page_, select_invoice_lines_, select_usage_totals_;
};

Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  // NOMUTEX: one thread at a time by contract. EXRESCODE: extended codes tell a duplicate id
  // (Conflict) from a dangling reference (InvalidArgument).
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  DbPtr db(raw);  // closed on every path, also when the open failed
  if (rc != SQLITE_OK) {
    const char* msg = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    return Status::Io(fmt::format("store `{}`: {}", path, msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, std::move(db)));
  LL_RETURN_IF_ERROR(store->Configure());
  LL_RETURN_IF_ERROR(store->Migrate());
  LL_RETURN_IF_ERROR(store->PrepareStatements());
  return std::unique_ptr<Store>(std::move(store));
}

Status SqliteStore::Exec(const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, what);
  return Status::Ok();
}

Status SqliteStore::Prepare(const char* sql, StmtPtr* out) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  out->reset(raw);
  if (rc != SQLITE_OK) return Fail(rc, fmt::format("prepare `{}`", sql));
  LL_CHECK(raw != nullptr);  // only empty SQL prepares to nothing
  return Status::Ok();
}

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

Status SqliteStore::PrepareStatements() {
  // One statement per line reads better than clang-format's columns.
  // clang-format off
  const std::pair<const char*, StmtPtr*> all[] = {
      {"BEGIN IMMEDIATE", &begin_},
      {"COMMIT", &commit_},
      {"ROLLBACK", &rollback_},
      {kInsertTenant, &insert_tenant_},
      {kInsertKey, &insert_key_},
      {kRevokeKey, &revoke_key_},
      {kUpsertLease, &upsert_lease_},
      {kInsertEvent, &insert_event_},
      {kUpsertJob, &upsert_job_},
      {kUpsertSetting, &upsert_setting_},
      {kSelectTenants, &select_tenants_},
      {kSelectKeys, &select_keys_},
      {kSelectLeases, &select_leases_},
      {kSelectEvents, &select_events_},
      {kSelectJobs, &select_jobs_},
      {kSelectSetting, &select_setting_},
      {kSelectLastSeq, &select_last_seq_},
      {kUpsertLeasePrice, &upsert_lease_price_},
      {kUpsertSpotPrice, &upsert_spot_price_},
      {kInsertUsage, &insert_usage_},
      {kSelectLeasePrices, &select_lease_prices_},
      {kSelectSpotPrices, &select_spot_prices_},
      {kSelectUsage, &select_usage_},
      {kSelectUsagePeriods, &select_usage_periods_},
      {kUpsertBalance, &upsert_balance_},
      {kUpsertHold, &upsert_hold_},
      {kSelectBalances, &select_balances_},
      {kSelectOpenHolds, &select_open_holds_},
      {kSelectHold, &select_hold_},
      {kSelectUsagePage, &select_usage_page_},
      {kSelectInvoiceLines, &select_invoice_lines_},
      {kSelectUsageTotals, &select_usage_totals_},
  };
  // clang-format on
  for (const auto& [sql, stmt] : all) LL_RETURN_IF_ERROR(Prepare(sql, stmt));
  return Status::Ok();
}

Status SqliteStore::StepDone(sqlite3_stmt* stmt, std::string_view what) {
  ScopedReset reset(stmt);
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) return Fail(rc, what);
  return Status::Ok();
}

template <typename BindFn>
Status SqliteStore::Write(const StmtPtr& stmt, std::string_view what, BindFn bind) {
  ScopedReset reset(stmt.get());
  Binder binder(stmt.get());
  bind(binder);
  int rc = binder.Done();
  if (rc != SQLITE_OK) return Fail(rc, what);
  rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_DONE) return Fail(rc, what);
  return Status::Ok();
}

template <typename T, typename BindFn, typename ReadFn>
Result<std::vector<T>> SqliteStore::Query(const StmtPtr& stmt, std::string_view what, BindFn bind,
                                          ReadFn read) {
  ScopedReset reset(stmt.get());
  Binder binder(stmt.get());
  bind(binder);
  int rc = binder.Done();
  if (rc != SQLITE_OK) return Fail(rc, what);
  std::vector<T> out;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    Row row(stmt.get());
    out.push_back(read(row));
  }
  if (rc != SQLITE_DONE) return Fail(rc, what);
  return out;
}

Status SqliteStore::Rollback(std::string_view what) {
  // After some errors (disk full, I/O, out of memory) SQLite has already rolled back, and
  // a ROLLBACK would fail with "no transaction is active".
  if (sqlite3_get_autocommit(db_.get())) return Status::Ok();
  const std::string rolling_back = fmt::format("{}: roll back", what);
  // Migrations run before the cached statements are prepared.
  if (rollback_ == nullptr) return Exec("ROLLBACK", rolling_back);
  return StepDone(rollback_.get(), rolling_back);
}

Status SqliteStore::Commit(Batch& batch) {
  if (batch.empty()) return Status::Ok();
  // The seqs go into the batch only once the commit succeeded: a failed batch is unchanged.
  std::vector<int64_t> seqs;
  seqs.reserve(batch.events.size());
  LL_RETURN_IF_ERROR(StepDone(begin_.get(), "commit: begin"));
  int64_t inserted = 0;
  Status st = WriteBatch(batch, &seqs, &inserted);
  if (st.ok()) st = StepDone(commit_.get(), "commit");
  if (!st.ok()) {
    Status rb = Rollback("commit");
    if (!rb.ok()) return Status(st.code(), st.message() + "; then " + rb.message());
    return st;
  }
  for (size_t i = 0; i < seqs.size(); ++i) batch.events[i].seq = seqs[i];
  batch.usage_inserted = inserted;
  return Status::Ok();
}

Status SqliteStore::WriteBatch(const Batch& batch, std::vector<int64_t>* seqs, int64_t* usage_inserted) {
  // Parents before children, for the foreign keys: tenants, keys, leases, then events.
  for (const TenantRecord& t : batch.tenants) {
    LL_RETURN_IF_ERROR(Write(insert_tenant_, fmt::format("tenant `{}`", t.id),
                             [&](Binder& b) { b.Text(t.id).Text(t.name).At(t.created); }));
  }
  for (const KeyRecord& k : batch.keys) {
    LL_RETURN_IF_ERROR(Write(insert_key_, fmt::format("key `{}` (tenant `{}`)", k.id, k.tenant_id),
                             [&](Binder& b) {
                               b.Text(k.id).TextOrNull(k.tenant_id).Text(k.hash);
                               b.Int(k.admin ? 1 : 0).At(k.created).Int(k.rpm).Int(k.tpm);
                               b.Text(k.name).Text(k.prefix).AtOrNull(k.expires).AtOrNull(k.revoked);
                             }));
  }
  for (const KeyRevocation& r : batch.key_revocations) {
    LL_RETURN_IF_ERROR(Write(revoke_key_, fmt::format("revocation of key `{}`", r.key_id),
                             [&](Binder& b) { b.Text(r.key_id).At(r.at); }));
  }
  for (const LeaseRecord& l : batch.leases) {
    LL_RETURN_IF_ERROR(Write(
        upsert_lease_, fmt::format("lease `{}` (tenant `{}`)", l.id, l.tenant_id), [&](Binder& b) {
          b.Text(l.id).Text(l.tenant_id).Text(l.kind).Text(l.state);
          b.Int(l.pool).Int(l.gpus).Int(l.price_micros);
          b.Int(l.max_price_micros);
          b.AtOrNull(l.created).AtOrNull(l.started);
          b.AtOrNull(l.noticed_at).AtOrNull(l.reclaim_at);
          b.AtOrNull(l.term_end).AtOrNull(l.ended);
          b.Text(l.end_reason).Text(l.placement);
        }));
  }
  for (const LeaseEventRecord& e : batch.events) {
    LL_RETURN_IF_ERROR(Write(
        insert_event_, fmt::format("event `{}` of lease `{}`", e.type, e.lease_id), [&](Binder& b) {
          b.Text(e.lease_id).Text(e.tenant_id).Text(e.type);
          b.At(e.at).Text(e.data);
        }));
    seqs->push_back(sqlite3_last_insert_rowid(db_.get()));
  }
  for (const InternalJobRecord& j : batch.internal_jobs) {
    LL_RETURN_IF_ERROR(Write(upsert_job_, fmt::format("internal job `{}`", j.id), [&](Binder& b) {
      b.Text(j.id).Int(j.pool).Int(j.gpus).At(j.start).AtOrNull(j.end);
    }));
  }
  for (const auto& setting : batch.settings) {
    LL_RETURN_IF_ERROR(Write(upsert_setting_, fmt::format("setting `{}`", setting.first),
                             [&](Binder& b) { b.Text(setting.first).Text(setting.second); }));
  }
  for (const LeasePriceRecord& p : batch.lease_prices) {
    LL_RETURN_IF_ERROR(Write(upsert_lease_price_, fmt::format("price of lease `{}`", p.lease_id),
                             [&](Binder& b) { b.Text(p.lease_id).At(p.at).Int(p.price_micros); }));
  }
  for (const SpotPriceRecord& p : batch.spot_prices) {
    LL_RETURN_IF_ERROR(Write(upsert_spot_price_, "spot price", [&](Binder& b) { b.At(p.at).Int(p.price_micros); }));
  }
  for (const UsageRecord& u : batch.usage) {
    LL_RETURN_IF_ERROR(Write(insert_usage_, fmt::format("usage `{}` (tenant `{}`)", u.key, u.tenant_id), [&](Binder& b) {
      b.Text(u.key).Text(u.tenant_id).Text(u.source).Text(u.ref).Text(u.kind).Text(u.period);
      b.At(u.start).At(u.end).Int(u.quantity).Text(u.unit).Int(u.unit_price_micros).Int(u.amount_micros);
    }));
    *usage_inserted += sqlite3_changes(db_.get());
  }
  for (const BalanceRecord& b : batch.balances) {
    LL_RETURN_IF_ERROR(Write(upsert_balance_, fmt::format("balance of tenant `{}`", b.tenant_id), [&](Binder& bd) {
      bd.Text(b.tenant_id).Int(b.credited_micros).Int(b.charged_micros);
    }));
  }
  for (const HoldRecord& h : batch.holds) {
    LL_RETURN_IF_ERROR(Write(upsert_hold_, fmt::format("hold `{}` (tenant `{}`)", h.id, h.tenant_id), [&](Binder& b) {
      b.Text(h.id).Text(h.tenant_id).Int(h.amount_micros);
      if (h.charged_micros < 0) {
        b.AtOrNull(kTimeMax);  // NULL: open
      } else {
        b.Int(h.charged_micros);
      }
      b.At(h.created);
    }));
  }
  return Status::Ok();
}

void BindNothing(Binder&) {}

Result<std::vector<TenantRecord>> SqliteStore::Tenants() {
  return Query<TenantRecord>(select_tenants_, "read tenants", BindNothing, [](Row& r) {
    TenantRecord t;
    t.id = r.Text();
    t.name = r.Text();
    t.created = r.At();
    return t;
  });
}

Result<std::vector<KeyRecord>> SqliteStore::Keys() {
  return Query<KeyRecord>(select_keys_, "read keys", BindNothing, [](Row& r) {
    KeyRecord k;
    k.id = r.Text();
    k.tenant_id = r.Text();
    k.hash = r.Text();
    k.admin = r.Int() != 0;
    k.created = r.At();
    k.rpm = r.Int();
    k.tpm = r.Int();
    k.name = r.Text();
    k.prefix = r.Text();
    k.expires = r.AtOrMax();
    k.revoked = r.AtOrMax();
    return k;
  });
}

Result<std::vector<LeaseRecord>> SqliteStore::Leases() {
  return Query<LeaseRecord>(select_leases_, "read leases", BindNothing, [](Row& r) {
    LeaseRecord l;
    l.id = r.Text();
    l.tenant_id = r.Text();
    l.kind = r.Text();
    l.state = r.Text();
    l.pool = static_cast<int>(r.Int());
    l.gpus = static_cast<int>(r.Int());
    l.price_micros = r.Int();
    l.max_price_micros = r.Int();
    l.created = r.AtOrMax();
    l.started = r.AtOrMax();
    l.noticed_at = r.AtOrMax();
    l.reclaim_at = r.AtOrMax();
    l.term_end = r.AtOrMax();
    l.ended = r.AtOrMax();
    l.end_reason = r.Text();
    l.placement = r.Text();
    return l;
  });
}

Result<std::vector<LeaseEventRecord>> SqliteStore::LeaseEvents(const std::string& lease_id,
                                                               int64_t after) {
  return Query<LeaseEventRecord>(
      select_events_, fmt::format("read events of lease `{}`", lease_id),
      [&](Binder& b) { b.Text(lease_id).Int(after); },
      [](Row& r) {
        LeaseEventRecord e;
        e.seq = r.Int();
        e.lease_id = r.Text();
        e.tenant_id = r.Text();
        e.type = r.Text();
        e.at = r.At();
        e.data = r.Text();
        return e;
      });
}

Result<std::vector<InternalJobRecord>> SqliteStore::InternalJobs() {
  return Query<InternalJobRecord>(select_jobs_, "read internal jobs", BindNothing, [](Row& r) {
    InternalJobRecord j;
    j.id = r.Text();
    j.pool = static_cast<int>(r.Int());
    j.gpus = static_cast<int>(r.Int());
    j.start = r.At();
    j.end = r.AtOrMax();
    return j;
  });
}

Result<std::optional<std::string>> SqliteStore::Setting(const std::string& key) {
  LL_ASSIGN_OR_RETURN(std::vector<std::string> values,
                      Query<std::string>(
                          select_setting_, fmt::format("read setting `{}`", key),
                          [&](Binder& b) { b.Text(key); }, [](Row& r) { return r.Text(); }));
  if (values.empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(values.front()));
}

Result<int64_t> SqliteStore::LastEventSeq() {
  LL_ASSIGN_OR_RETURN(std::vector<int64_t> seqs,
                      Query<int64_t>(select_last_seq_, "read the last event seq", BindNothing,
                                     [](Row& r) { return r.Int(); }));
  LL_CHECK(seqs.size() == 1);  // an aggregate without GROUP BY yields exactly one row
  return seqs.front();
}

Result<std::vector<LeasePriceRecord>> SqliteStore::LeasePrices() {
  return Query<LeasePriceRecord>(select_lease_prices_, "read lease prices", BindNothing, [](Row& r) {
    LeasePriceRecord p;
    p.lease_id = r.Text();
    p.at = r.At();
    p.price_micros = r.Int();
    return p;
  });
}

Result<std::vector<SpotPriceRecord>> SqliteStore::SpotPrices(Time from, Time to) {
  return Query<SpotPriceRecord>(
      select_spot_prices_, "read spot prices", [&](Binder& b) { b.At(from).At(to); },
      [](Row& r) {
        SpotPriceRecord p;
        p.at = r.At();
        p.price_micros = r.Int();
        return p;
      });
}

UsageRecord ReadUsage(Row& r) {
  UsageRecord u;
  u.key = r.Text();
  u.tenant_id = r.Text();
  u.source = r.Text();
  u.ref = r.Text();
  u.kind = r.Text();
  u.period = r.Text();
  u.start = r.At();
  u.end = r.At();
  u.quantity = r.Int();
  u.unit = r.Text();
  u.unit_price_micros = r.Int();
  u.amount_micros = r.Int();
  return u;
}

Result<std::vector<UsageRecord>> SqliteStore::Usage(const std::string& tenant_id, const std::string& period) {
  return Query<UsageRecord>(
      select_usage_, fmt::format("read usage of `{}`", tenant_id), [&](Binder& b) { b.Text(tenant_id).Text(period); },
      ReadUsage);
}

Result<std::vector<UsageRecord>> SqliteStore::UsagePage(const std::string& tenant_id, const std::string& period,
                                                        int64_t after_start_ms, const std::string& after_key,
                                                        int limit) {
  return Query<UsageRecord>(
      select_usage_page_, fmt::format("read usage of `{}`", tenant_id),
      [&](Binder& b) { b.Text(tenant_id).Text(period).Int(after_start_ms).Text(after_key).Int(limit); }, ReadUsage);
}

Result<std::vector<UsageRecord>> SqliteStore::UsageTotals(const std::string& period) {
  return Query<UsageRecord>(
      select_usage_totals_, "read usage totals", [&](Binder& b) { b.Text(period); },
      [&](Row& r) {
        UsageRecord u;
        u.period = period;
        u.kind = r.Text();
        u.quantity = r.Int();
        u.amount_micros = r.Int();
        return u;
      });
}

Result<std::vector<UsageRecord>> SqliteStore::InvoiceLines(const std::string& tenant_id, const std::string& period) {
  return Query<UsageRecord>(
      select_invoice_lines_, fmt::format("read the invoice of `{}` for {}", tenant_id, period),
      [&](Binder& b) { b.Text(tenant_id).Text(period); },
      [&](Row& r) {
        UsageRecord u;
        u.tenant_id = tenant_id;
        u.period = period;
        u.ref = r.Text();
        u.kind = r.Text();
        u.unit = r.Text();
        u.unit_price_micros = r.Int();
        u.quantity = r.Int();
        u.amount_micros = r.Int();
        return u;
      });
}

Result<std::vector<std::pair<std::string, int64_t>>> SqliteStore::UsagePeriods(const std::string& tenant_id) {
  return Query<std::pair<std::string, int64_t>>(
      select_usage_periods_, fmt::format("read invoice periods of `{}`", tenant_id),
      [&](Binder& b) { b.Text(tenant_id); },
      [](Row& r) {
        std::string period = r.Text();
        int64_t total = r.Int();
        return std::make_pair(std::move(period), total);
      });
}

Result<std::vector<BalanceRecord>> SqliteStore::Balances() {
  return Query<BalanceRecord>(select_balances_, "read balances", BindNothing, [](Row& r) {
    BalanceRecord b;
    b.tenant_id = r.Text();
    b.credited_micros = r.Int();
    b.charged_micros = r.Int();
    return b;
  });
}

HoldRecord ReadHold(Row& r) {
  HoldRecord h;
  h.id = r.Text();
  h.tenant_id = r.Text();
  h.amount_micros = r.Int();
  h.charged_micros = r.Int();
  h.created = r.At();
  return h;
}

Result<std::vector<HoldRecord>> SqliteStore::OpenHolds() {
  return Query<HoldRecord>(select_open_holds_, "read open holds", BindNothing, ReadHold);
}

Result<std::optional<HoldRecord>> SqliteStore::Hold(const std::string& id) {
  LL_ASSIGN_OR_RETURN(auto holds, Query<HoldRecord>(select_hold_, fmt::format("read hold `{}`", id),
                                                    [&](Binder& b) { b.Text(id); }, ReadHold));
  if (holds.empty()) return std::optional<HoldRecord>();
  return std::optional<HoldRecord>(std::move(holds.front()));
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return SqliteStore::Open(path);
}

}  // namespace ll::store
