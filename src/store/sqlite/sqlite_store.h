// The SQLite implementation of Store, kept apart by job: this class and its commit
// (sqlite_store.cc), the schema and its migrations (sqlite_schema.cc), the reads
// (sqlite_reads.cc), and the helpers over SQLite's C API (statement.h).
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
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "store/sqlite/statement.h"
#include "store/store.h"

namespace ll::store::sqlite {

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
  Status Fail(int rc, std::string_view what) const;

  Status Exec(const char* sql, std::string_view what);
  Status Prepare(const char* sql, StmtPtr* out);
  // Prepares each (SQL, statement) pair in order; stops at the first failure.
  Status PrepareEach(std::initializer_list<std::pair<const char*, StmtPtr*>> statements);
  Status Configure();
  Status Migrate();
  Status ApplyMigration(int64_t version);
  Status PrepareStatements();
  // The cached statements of Commit() (sqlite_store.cc) and of the reads (sqlite_reads.cc).
  Status PrepareWrites();
  Status PrepareReads();

  // Runs a cached statement that returns no rows.
  Status StepDone(sqlite3_stmt* stmt, std::string_view what);
  // Binds with `bind`, then runs a statement that returns no rows.
  // `what` names the row in an error: text, or a function that makes it (only on an error: the
  // hot rows, usage and balances, then cost no formatting).
  template <typename What, typename BindFn>
  Status Write(const StmtPtr& stmt, const What& what, BindFn bind);
  // Binds with `bind`, then reads every row with `read`.
  template <typename T, typename BindFn, typename ReadFn>
  Result<std::vector<T>> Query(const StmtPtr& stmt, std::string_view what, BindFn bind,
                               ReadFn read);

  Status WriteBatch(const Batch& batch, std::vector<int64_t>* seqs, int64_t* usage_inserted);
  // The parts of WriteBatch, in its order: tenants, keys and revocations; leases, their events
  // (their seqs into `seqs`), internal jobs and settings; prices, usage, balances and holds.
  Status WriteAccounts(const Batch& batch);
  Status WriteLeases(const Batch& batch, std::vector<int64_t>* seqs);
  Status WriteLedger(const Batch& batch, int64_t* usage_inserted);
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

template <typename What, typename BindFn>
Status SqliteStore::Write(const StmtPtr& stmt, const What& what, BindFn bind) {
  ScopedReset reset(stmt.get());
  Binder binder(stmt.get());
  bind(binder);
  int rc = binder.Done();
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return Status::Ok();
  }
  if constexpr (std::is_invocable_v<const What&>) {
    return Fail(rc, what());
  } else {
    return Fail(rc, std::string_view(what));
  }
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

}  // namespace ll::store::sqlite
