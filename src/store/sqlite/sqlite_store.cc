// The SQLite store: opening a file, the cached statements, and Commit() (see sqlite_store.h).
#include "store/sqlite/sqlite_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status.h"
#include "core/time.h"
#include "store/sqlite/statement.h"
#include "store/store.h"

namespace ll::store {
namespace sqlite {
namespace {

constexpr const char* kInsertTenant =
    "INSERT INTO tenants(id, name, created_ms) VALUES(?1, ?2, ?3)";
constexpr const char* kInsertKey =
    "INSERT INTO api_keys(id, tenant_id, hash, admin, created_ms, rpm, tpm, name, prefix, expires_ms, revoked_ms) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr const char* kRevokeKey = "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1";
constexpr const char* kUpsertLease =
    "INSERT INTO leases(id, tenant_id, kind, state, pool, gpus, price_micros, max_price_micros, "
    "created_ms, started_ms, noticed_at_ms, reclaim_at_ms, term_end_ms, ended_ms, end_reason, "
    "placement, workload, notice_tier) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
    "?17, ?18) "
    "ON CONFLICT(id) DO UPDATE SET tenant_id = excluded.tenant_id, kind = excluded.kind, "
    "state = excluded.state, pool = excluded.pool, gpus = excluded.gpus, "
    "price_micros = excluded.price_micros, max_price_micros = excluded.max_price_micros, "
    "created_ms = excluded.created_ms, started_ms = excluded.started_ms, "
    "noticed_at_ms = excluded.noticed_at_ms, reclaim_at_ms = excluded.reclaim_at_ms, "
    "term_end_ms = excluded.term_end_ms, ended_ms = excluded.ended_ms, "
    "end_reason = excluded.end_reason, placement = excluded.placement, workload = excluded.workload, "
    "notice_tier = excluded.notice_tier";
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
constexpr const char* kUpsertBalance =
    "INSERT INTO balances(tenant_id, credited_micros, charged_micros) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(tenant_id) DO UPDATE SET credited_micros = excluded.credited_micros, "
    "charged_micros = excluded.charged_micros";
constexpr const char* kUpsertHold =
    "INSERT INTO holds(id, tenant_id, amount_micros, charged_micros, created_ms, key_id, requests, tokens, "
    "spent_micros, seq, expires_ms, expired) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
    "ON CONFLICT(id) DO UPDATE SET amount_micros = excluded.amount_micros, charged_micros = excluded.charged_micros, "
    "requests = excluded.requests, tokens = excluded.tokens, spent_micros = excluded.spent_micros, seq = excluded.seq, "
    "expires_ms = excluded.expires_ms, expired = excluded.expired";

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

}  // namespace

Status SqliteStore::Fail(int rc, std::string_view what) const {
  return Status(CodeFor(rc), fmt::format("store `{}`: {}: {}{}", path_, what, Explain(rc),
                                         sqlite3_errmsg(db_.get())));
}

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

Status SqliteStore::PrepareEach(std::initializer_list<std::pair<const char*, StmtPtr*>> statements) {
  for (const auto& [sql, stmt] : statements) LL_RETURN_IF_ERROR(Prepare(sql, stmt));
  return Status::Ok();
}

Status SqliteStore::PrepareStatements() {
  LL_RETURN_IF_ERROR(PrepareWrites());
  return PrepareReads();
}

Status SqliteStore::PrepareWrites() {
  // One statement per line reads better than clang-format's columns.
  // clang-format off
  return PrepareEach({
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
      {kUpsertLeasePrice, &upsert_lease_price_},
      {kUpsertSpotPrice, &upsert_spot_price_},
      {kInsertUsage, &insert_usage_},
      {kUpsertBalance, &upsert_balance_},
      {kUpsertHold, &upsert_hold_},
  });
  // clang-format on
}

Status SqliteStore::StepDone(sqlite3_stmt* stmt, std::string_view what) {
  ScopedReset reset(stmt);
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) return Fail(rc, what);
  return Status::Ok();
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
  LL_RETURN_IF_ERROR(WriteAccounts(batch));
  LL_RETURN_IF_ERROR(WriteLeases(batch, seqs));
  return WriteLedger(batch, usage_inserted);
}

Status SqliteStore::WriteAccounts(const Batch& batch) {
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
  return Status::Ok();
}

Status SqliteStore::WriteLeases(const Batch& batch, std::vector<int64_t>* seqs) {
  for (const LeaseRecord& l : batch.leases) {
    LL_RETURN_IF_ERROR(Write(
        upsert_lease_, fmt::format("lease `{}` (tenant `{}`)", l.id, l.tenant_id), [&](Binder& b) {
          b.Text(l.id).Text(l.tenant_id).Text(Name(l.kind)).Text(Name(l.state));
          b.Int(l.pool).Int(l.gpus).Int(l.price_micros);
          b.Int(l.max_price_micros);
          b.AtOrNull(l.created).AtOrNull(l.started);
          b.AtOrNull(l.noticed_at).AtOrNull(l.reclaim_at);
          b.AtOrNull(l.term_end).AtOrNull(l.ended);
          b.Text(Name(l.end_reason)).Text(l.placement).Text(l.workload).Text(Name(l.notice_tier));
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
  return Status::Ok();
}

Status SqliteStore::WriteLedger(const Batch& batch, int64_t* usage_inserted) {
  for (const LeasePriceRecord& p : batch.lease_prices) {
    LL_RETURN_IF_ERROR(Write(upsert_lease_price_, fmt::format("price of lease `{}`", p.lease_id),
                             [&](Binder& b) { b.Text(p.lease_id).At(p.at).Int(p.price_micros); }));
  }
  for (const SpotPriceRecord& p : batch.spot_prices) {
    LL_RETURN_IF_ERROR(Write(upsert_spot_price_, "spot price", [&](Binder& b) { b.At(p.at).Int(p.price_micros); }));
  }
  for (const UsageRecord& u : batch.usage) {
    auto what = [&] { return fmt::format("usage `{}` (tenant `{}`)", u.key, u.tenant_id); };
    LL_RETURN_IF_ERROR(Write(insert_usage_, what, [&](Binder& b) {
      b.Text(u.key).Text(u.tenant_id).Text(u.source).Text(u.ref).Text(u.kind).Text(u.period);
      b.At(u.start).At(u.end).Int(u.quantity).Text(u.unit).Int(u.unit_price_micros).Int(u.amount_micros);
    }));
    *usage_inserted += sqlite3_changes(db_.get());
  }
  for (const BalanceRecord& b : batch.balances) {
    auto what = [&] { return fmt::format("balance of tenant `{}`", b.tenant_id); };
    LL_RETURN_IF_ERROR(Write(upsert_balance_, what, [&](Binder& bd) {
      bd.Text(b.tenant_id).Int(b.credited_micros).Int(b.charged_micros);
    }));
  }
  for (const HoldRecord& h : batch.holds) {
    auto what = [&] { return fmt::format("hold `{}` (tenant `{}`)", h.id, h.tenant_id); };
    LL_RETURN_IF_ERROR(Write(upsert_hold_, what, [&](Binder& b) {
      b.Text(h.id).Text(h.tenant_id).Int(h.amount_micros);
      if (h.charged_micros < 0) {
        b.AtOrNull(kTimeMax);  // NULL: open
      } else {
        b.Int(h.charged_micros);
      }
      b.At(h.created).Text(h.key_id).Int(h.requests).Int(h.tokens).Int(h.spent_micros).Int(h.seq).At(h.expires);
      b.Int(h.expired ? 1 : 0);
    }));
  }
  return Status::Ok();
}

}  // namespace sqlite

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return sqlite::SqliteStore::Open(path);
}

}  // namespace ll::store
