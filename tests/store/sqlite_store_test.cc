// The store's contract against SQLite (a real database file in a fresh temporary directory)
// and PostgreSQL (a throwaway server on a unix socket in a temp dir, no TCP, started once for
// the suite: StoreContract/postgres), and the SQLite store's own file-level behaviour.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::store {
namespace {

constexpr int64_t kT0 = 1'588'550'400'000;  // 2020-05-04T00:00:00Z

TenantRecord Tenant(const std::string& id, int64_t created_ms = kT0) {
  return {.id = id, .name = "name of " + id, .created = Time{created_ms}};
}

KeyRecord Key(const std::string& id, const std::string& tenant_id, bool admin = false) {
  return {.id = id,
          .tenant_id = tenant_id,
          .hash = "hash-" + id,
          .admin = admin,
          .created = Time{kT0 + 1}};
}

// A spot lease with every time set.
LeaseRecord FullLease(const std::string& id, const std::string& tenant_id) {
  LeaseRecord l;
  l.id = id;
  l.tenant_id = tenant_id;
  l.kind = LeaseKind::kSpot;
  l.state = LeaseState::kReclaimed;
  l.pool = 3;
  l.gpus = 16;
  l.price_micros = 225'600;
  l.max_price_micros = 2'000'000;
  l.created = Time{kT0 + 10};
  l.started = Time{kT0 + 11};
  l.noticed_at = Time{kT0 + 12};
  l.reclaim_at = Time{kT0 + 13};
  l.term_end = Time{kT0 + 14};
  l.ended = Time{kT0 + 15};
  l.end_reason = LeaseEnd::kReclaimed;
  l.placement = "0:8,5:8";
  l.workload = R"({"spec":{"command":["python","train.py"]},"status":{"state":"exited","exit_code":0}})";
  l.notice_tier = NoticeTier::kFlash;
  return l;
}

// A reserved lease with every time but `created` unset (kTimeMax).
LeaseRecord FreshLease(const std::string& id, const std::string& tenant_id) {
  LeaseRecord l;
  l.id = id;
  l.tenant_id = tenant_id;
  l.kind = LeaseKind::kReserved;
  l.state = LeaseState::kActive;
  l.gpus = 8;
  l.price_micros = 1'000'000;
  l.created = Time{kT0 + 20};
  return l;
}

LeaseEventRecord Event(const std::string& lease_id, const std::string& tenant_id,
                       const std::string& type, int64_t at_ms) {
  return {.seq = 0,
          .lease_id = lease_id,
          .tenant_id = tenant_id,
          .type = type,
          .at = Time{at_ms},
          .data = R"({"type":")" + type + R"("})"};
}

void ExpectSameLease(const LeaseRecord& got, const LeaseRecord& want) {
  SCOPED_TRACE("lease " + want.id);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.tenant_id, want.tenant_id);
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.state, want.state);
  EXPECT_EQ(got.pool, want.pool);
  EXPECT_EQ(got.gpus, want.gpus);
  EXPECT_EQ(got.price_micros, want.price_micros);
  EXPECT_EQ(got.max_price_micros, want.max_price_micros);
  EXPECT_EQ(got.created.ms, want.created.ms);
  EXPECT_EQ(got.started.ms, want.started.ms);
  EXPECT_EQ(got.noticed_at.ms, want.noticed_at.ms);
  EXPECT_EQ(got.reclaim_at.ms, want.reclaim_at.ms);
  EXPECT_EQ(got.term_end.ms, want.term_end.ms);
  EXPECT_EQ(got.ended.ms, want.ended.ms);
  EXPECT_EQ(got.end_reason, want.end_reason);
  EXPECT_EQ(got.placement, want.placement);
  EXPECT_EQ(got.workload, want.workload);
  EXPECT_EQ(got.notice_tier, want.notice_tier);
}

void ExpectSameEvent(const LeaseEventRecord& got, const LeaseEventRecord& want) {
  SCOPED_TRACE("event " + want.type);
  EXPECT_EQ(got.seq, want.seq);
  EXPECT_EQ(got.lease_id, want.lease_id);
  EXPECT_EQ(got.tenant_id, want.tenant_id);
  EXPECT_EQ(got.type, want.type);
  EXPECT_EQ(got.at.ms, want.at.ms);
  EXPECT_EQ(got.data, want.data);
}

// A throwaway PostgreSQL server for the whole test binary: initdb and pg_ctl (as user
// `postgres` when run as root: initdb refuses root) in a temp dir, listening only on a unix
// socket there. Stopped at exit. Each test gets a fresh database.
class PostgresServer {
 public:
  static PostgresServer& Get() {
    static PostgresServer s;
    return s;
  }
  // A URL of a new, empty database; "" (with the reason in error()) when there is no server.
  std::string NewDatabase() {
    if (!error_.empty()) return "";
    const std::string db = "t" + std::to_string(++n_);
    if (!Run(bin_ + "/createdb -h " + dir_ + " -p 5432 -U postgres " + db)) {
      error_ = "createdb failed";
      return "";
    }
    return "postgresql:///" + db + "?host=" + dir_ + "&port=5432&user=postgres";
  }
  const std::string& error() const { return error_; }
  ~PostgresServer() {
    if (started_) Run(bin_ + "/pg_ctl -D " + dir_ + "/data -m immediate stop >/dev/null 2>&1");
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

 private:
  PostgresServer() {
    for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec_)) {
      if (std::filesystem::exists(e.path() / "bin/initdb")) bin_ = (e.path() / "bin").string();
    }
    if (bin_.empty()) {
      error_ = "PostgreSQL is not installed (Debian: postgresql; scripts/deps.sh test installs it)";
      return;
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "ll_pg_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    as_ = geteuid() == 0 ? "runuser -u postgres -- " : "";
    if (geteuid() == 0 && std::system(("chown postgres " + dir_).c_str()) != 0) {
      error_ = "chown postgres failed";
      return;
    }
    if (!Run(bin_ + "/initdb -D " + dir_ + "/data -A trust -U postgres >" + dir_ + "/initdb.log 2>&1") ||
        !Run(bin_ + "/pg_ctl -D " + dir_ + "/data -o \"-p 5432 -k " + dir_ + " -c listen_addresses=''\" -l " + dir_ +
             "/server.log -w start >/dev/null")) {
      error_ = "the throwaway PostgreSQL server did not start (see " + dir_ + ")";
      return;
    }
    started_ = true;
  }
  bool Run(const std::string& cmd) { return std::system((as_ + cmd).c_str()) == 0; }

  std::error_code ec_;
  std::string bin_, dir_, as_, error_;
  bool started_ = false;
  int n_ = 0;
};

class SqliteStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ll_store_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
    path_ = dir_ + "/landlord.db";
    where_ = path_;
    if (Backend() == "postgres") {
      where_ = PostgresServer::Get().NewDatabase();
      ASSERT_FALSE(where_.empty()) << PostgresServer::Get().error();
    }
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  virtual std::string Backend() const { return "sqlite"; }

  std::unique_ptr<Store> Open() {
    Result<std::unique_ptr<Store>> store = Backend() == "postgres" ? OpenPostgresStore(where_) : OpenSqliteStore(path_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Runs `sql` on the file behind the store's back and returns the first column of the first
  // row as an integer (or -1).
  int64_t RawQuery(const std::string& sql) {
    sqlite3* db = nullptr;
    int64_t result = -1;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      result = sqlite3_column_int64(stmt, 0);
    } else {
      EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
    }
    EXPECT_EQ(sqlite3_finalize(stmt), SQLITE_OK);
    EXPECT_EQ(sqlite3_close(db), SQLITE_OK);
    return result;
  }

  std::string dir_;
  std::string path_;
  std::string where_;  // what error messages name: the file, or the database URL
};

// The contract every Store implementation keeps, run on each.
class StoreContract : public SqliteStoreTest, public testing::WithParamInterface<const char*> {
 protected:
  std::string Backend() const override { return GetParam(); }
};

TEST_P(StoreContract, FreshStoreIsEmpty) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Tenants()->empty());
  EXPECT_TRUE(store->Keys()->empty());
  EXPECT_TRUE(store->Leases()->empty());
  EXPECT_TRUE(store->LeaseEvents("lease_1", 0)->empty());
  EXPECT_TRUE(store->InternalJobs()->empty());
  EXPECT_EQ(*store->Setting("anything"), std::nullopt);
  EXPECT_EQ(*store->LastEventSeq(), 0);
  Batch empty;
  EXPECT_TRUE(store->Commit(empty).ok());
}

TEST_P(StoreContract, RoundTripsEveryRecordType) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_b"), Tenant("ten_a", kT0 + 5)};
  b.keys = {Key("key_2", "ten_a"), Key("key_1", "", /*admin=*/true)};
  b.keys[0].rpm = 60;
  b.keys[0].tpm = 90'000;
  b.leases = {FullLease("lease_2", "ten_a"), FreshLease("lease_1", "ten_b")};
  b.events = {Event("lease_1", "ten_b", "active", kT0 + 30)};
  b.internal_jobs = {
      {.id = "job_2", .pool = 1, .gpus = 64, .start = Time{kT0}, .end = kTimeMax},
      {.id = "job_1", .pool = 0, .gpus = 8, .start = Time{kT0 - 7}, .end = Time{kT0 + 99}}};
  b.settings = {{"price.list", "2.50"}, {"empty", ""}};
  Status st = store->Commit(b);
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto tenants = store->Tenants();
  ASSERT_TRUE(tenants.ok()) << tenants.status().ToString();
  ASSERT_EQ(tenants->size(), 2u);  // in id order
  EXPECT_EQ((*tenants)[0].id, "ten_a");
  EXPECT_EQ((*tenants)[0].name, "name of ten_a");
  EXPECT_EQ((*tenants)[0].created.ms, kT0 + 5);
  EXPECT_EQ((*tenants)[1].id, "ten_b");

  auto keys = store->Keys();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, "key_1");
  EXPECT_EQ((*keys)[0].tenant_id, "");  // the admin key
  EXPECT_TRUE((*keys)[0].admin);
  EXPECT_EQ((*keys)[0].hash, "hash-key_1");
  EXPECT_EQ((*keys)[0].created.ms, kT0 + 1);
  EXPECT_EQ((*keys)[1].id, "key_2");
  EXPECT_EQ((*keys)[1].tenant_id, "ten_a");
  EXPECT_FALSE((*keys)[1].admin);
  EXPECT_EQ((*keys)[1].rpm, 60);
  EXPECT_EQ((*keys)[1].tpm, 90'000);
  EXPECT_EQ((*keys)[0].rpm, 0);

  auto leases = store->Leases();
  ASSERT_TRUE(leases.ok()) << leases.status().ToString();
  ASSERT_EQ(leases->size(), 2u);
  ExpectSameLease((*leases)[0], FreshLease("lease_1", "ten_b"));
  EXPECT_EQ((*leases)[0].started.ms, kTimeMax.ms);
  ExpectSameLease((*leases)[1], FullLease("lease_2", "ten_a"));

  ASSERT_EQ(b.events[0].seq, 1);
  auto events = store->LeaseEvents("lease_1", 0);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  ExpectSameEvent((*events)[0], b.events[0]);

  auto jobs = store->InternalJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "job_1");
  EXPECT_EQ((*jobs)[0].pool, 0);
  EXPECT_EQ((*jobs)[0].gpus, 8);
  EXPECT_EQ((*jobs)[0].start.ms, kT0 - 7);
  EXPECT_EQ((*jobs)[0].end.ms, kT0 + 99);
  EXPECT_EQ((*jobs)[1].id, "job_2");
  EXPECT_EQ((*jobs)[1].pool, 1);
  EXPECT_EQ((*jobs)[1].gpus, 64);
  EXPECT_EQ((*jobs)[1].end.ms, kTimeMax.ms);

  EXPECT_EQ(*store->Setting("price.list"), std::optional<std::string>("2.50"));
  EXPECT_EQ(*store->Setting("empty"), std::optional<std::string>(""));
  EXPECT_EQ(*store->Setting("missing"), std::nullopt);
  EXPECT_EQ(*store->LastEventSeq(), 1);
}

TEST_F(SqliteStoreTest, KTimeMaxIsStoredAsNull) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.leases = {FreshLease("lease_1", "ten_a")};
  ASSERT_TRUE(store->Commit(b).ok());
  store.reset();
  EXPECT_EQ(RawQuery("SELECT COUNT(*) FROM leases WHERE started_ms IS NULL AND ended_ms IS NULL "
                     "AND created_ms = " +
                     std::to_string(kT0 + 20)),
            1);
}

TEST_P(StoreContract, UpsertReplacesLeaseSettingAndJob) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch first;
  first.tenants = {Tenant("ten_a")};
  first.leases = {FreshLease("lease_1", "ten_a")};
  first.internal_jobs = {
      {.id = "job_1", .pool = 0, .gpus = 8, .start = Time{kT0}, .end = kTimeMax}};
  first.settings = {{"k", "v1"}};
  ASSERT_TRUE(store->Commit(first).ok());

  LeaseRecord ended = FreshLease("lease_1", "ten_a");
  ended.state = LeaseState::kReleased;
  ended.started = Time{kT0 + 21};
  ended.ended = Time{kT0 + 40};
  ended.end_reason = LeaseEnd::kReleased;
  ended.placement = "2:8";
  Batch second;
  second.leases = {ended};
  second.internal_jobs = {
      {.id = "job_1", .pool = 2, .gpus = 16, .start = Time{kT0 + 1}, .end = Time{kT0 + 2}}};
  second.settings = {{"k", "v2"}};
  Status st = store->Commit(second);
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto leases = store->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  ExpectSameLease((*leases)[0], ended);
  auto jobs = store->InternalJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].pool, 2);
  EXPECT_EQ((*jobs)[0].gpus, 16);
  EXPECT_EQ((*jobs)[0].end.ms, kT0 + 2);
  EXPECT_EQ(*store->Setting("k"), std::optional<std::string>("v2"));
}

TEST_P(StoreContract, EventsGetIncreasingSeqAndAfterFilters) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.leases = {FreshLease("lease_1", "ten_a"), FreshLease("lease_2", "ten_a")};
  b.events = {Event("lease_1", "ten_a", "active", kT0), Event("lease_2", "ten_a", "active", kT0),
              Event("lease_1", "ten_a", "reclaim_notice", kT0 + 1)};
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(b.events[0].seq, 1);
  EXPECT_EQ(b.events[1].seq, 2);
  EXPECT_EQ(b.events[2].seq, 3);

  Batch more;
  more.events = {Event("lease_1", "ten_a", "reclaimed", kT0 + 2)};
  ASSERT_TRUE(store->Commit(more).ok());
  EXPECT_EQ(more.events[0].seq, 4);
  EXPECT_EQ(*store->LastEventSeq(), 4);

  auto all = store->LeaseEvents("lease_1", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  ExpectSameEvent((*all)[0], b.events[0]);
  ExpectSameEvent((*all)[1], b.events[2]);
  ExpectSameEvent((*all)[2], more.events[0]);

  auto after = store->LeaseEvents("lease_1", 1);  // resume after seq 1: skips it
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].seq, 3);
  EXPECT_EQ((*after)[1].seq, 4);
  EXPECT_TRUE(store->LeaseEvents("lease_1", 4)->empty());
  auto other = store->LeaseEvents("lease_2", 0);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].seq, 2);
}

// Everything a failed batch would have written, besides the record that fails it.
Batch DoomedBatch() {
  Batch b;
  b.tenants = {Tenant("ten_new")};
  b.keys = {Key("key_new", "ten_new")};
  b.leases = {FreshLease("lease_new", "ten_new")};
  b.events = {Event("lease_new", "ten_new", "active", kT0)};
  b.internal_jobs = {{.id = "job_new", .pool = 0, .gpus = 8, .start = Time{kT0}, .end = kTimeMax}};
  b.settings = {{"new", "x"}};
  return b;
}

void ExpectOnlyTheFirstBatch(Store& store) {
  auto tenants = store.Tenants();
  ASSERT_TRUE(tenants.ok());
  ASSERT_EQ(tenants->size(), 1u);
  EXPECT_EQ((*tenants)[0].id, "ten_a");
  EXPECT_EQ((*tenants)[0].name, "name of ten_a");
  EXPECT_TRUE(store.Keys()->empty());
  EXPECT_TRUE(store.Leases()->empty());
  EXPECT_TRUE(store.LeaseEvents("lease_new", 0)->empty());
  EXPECT_TRUE(store.InternalJobs()->empty());
  EXPECT_EQ(*store.Setting("new"), std::nullopt);
  EXPECT_EQ(*store.LastEventSeq(), 0);
}

TEST_P(StoreContract, DuplicateTenantFailsTheWholeBatch) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch first;
  first.tenants = {Tenant("ten_a")};
  ASSERT_TRUE(store->Commit(first).ok());

  Batch b = DoomedBatch();
  TenantRecord again = Tenant("ten_a");
  again.name = "impostor";
  b.tenants.push_back(again);
  Status st = store->Commit(b);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_NE(st.message().find("`ten_a`"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(Backend() == "postgres" ? "postgresql://" : path_), std::string::npos) << st.message();
  EXPECT_EQ(b.events[0].seq, 0);  // a failed batch is left as it was
  ExpectOnlyTheFirstBatch(*store);

  // The store is still usable, and the failed batch's seq was not consumed.
  Batch next = DoomedBatch();
  ASSERT_TRUE(store->Commit(next).ok());
  EXPECT_EQ(next.events[0].seq, 1);
}

TEST_P(StoreContract, DuplicateWithinOneBatchFailsIt) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch first;
  first.tenants = {Tenant("ten_a")};
  ASSERT_TRUE(store->Commit(first).ok());
  Batch b = DoomedBatch();
  b.keys.push_back(Key("key_new", "ten_new"));
  Status st = store->Commit(b);
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_NE(st.message().find("`key_new`"), std::string::npos) << st.message();
  ExpectOnlyTheFirstBatch(*store);
}

TEST_P(StoreContract, DuplicateKeyHashIsAConflict) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.keys = {Key("key_1", "ten_a"), Key("key_2", "ten_a")};
  b.keys[1].hash = b.keys[0].hash;
  Status st = store->Commit(b);
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_NE(st.message().find("`key_2`"), std::string::npos) << st.message();
  EXPECT_TRUE(store->Tenants()->empty());
}

TEST_P(StoreContract, DanglingReferencesAreRejected) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch first;
  first.tenants = {Tenant("ten_a")};
  ASSERT_TRUE(store->Commit(first).ok());

  Batch lease = DoomedBatch();
  lease.leases.push_back(FreshLease("lease_x", "ten_nobody"));
  Status st = store->Commit(lease);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("`lease_x`"), std::string::npos) << st.message();
  ExpectOnlyTheFirstBatch(*store);

  Batch event = DoomedBatch();
  event.events.push_back(Event("lease_nowhere", "ten_a", "active", kT0));
  st = store->Commit(event);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("`lease_nowhere`"), std::string::npos) << st.message();
  ExpectOnlyTheFirstBatch(*store);

  Batch key = DoomedBatch();
  key.keys.push_back(Key("key_x", "ten_nobody"));
  st = store->Commit(key);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("`key_x`"), std::string::npos) << st.message();
  ExpectOnlyTheFirstBatch(*store);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndDoesNotReapplyMigrations) {
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.keys = {Key("key_1", "ten_a")};
  b.leases = {FullLease("lease_1", "ten_a")};
  b.events = {Event("lease_1", "ten_a", "active", kT0)};
  b.internal_jobs = {{.id = "job_1", .pool = 0, .gpus = 8, .start = Time{kT0}, .end = kTimeMax}};
  b.settings = {{"k", "v"}};
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(b).ok());
  }
  const int64_t migrations = RawQuery("SELECT COUNT(*) FROM schema_migrations");
  EXPECT_GE(migrations, 1);
  const int64_t applied_at = RawQuery("SELECT MAX(applied_at_ms) FROM schema_migrations");
  EXPECT_GT(applied_at, kT0);  // a real wall-clock time, in milliseconds

  for (int round = 0; round < 2; ++round) {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Tenants()->size(), 1u);
    EXPECT_EQ(store->Keys()->size(), 1u);
    auto leases = store->Leases();
    ASSERT_TRUE(leases.ok());
    ASSERT_EQ(leases->size(), 1u);
    ExpectSameLease((*leases)[0], FullLease("lease_1", "ten_a"));
    auto events = store->LeaseEvents("lease_1", 0);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 1u);
    ExpectSameEvent((*events)[0], b.events[0]);
    EXPECT_EQ(store->InternalJobs()->size(), 1u);
    EXPECT_EQ(*store->Setting("k"), std::optional<std::string>("v"));
    EXPECT_EQ(*store->LastEventSeq(), 1);
  }
  EXPECT_EQ(RawQuery("SELECT COUNT(*) FROM schema_migrations"), migrations);
  EXPECT_EQ(RawQuery("SELECT MAX(applied_at_ms) FROM schema_migrations"), applied_at);
}

TEST_F(SqliteStoreTest, RefusesAFutureSchemaVersion) {
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(RawQuery("INSERT INTO schema_migrations(version, applied_at_ms) VALUES(999, 0)"), -1);
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  const std::string& msg = store.status().message();
  EXPECT_NE(msg.find("999"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path_), std::string::npos) << msg;
  EXPECT_NE(msg.find("newer"), std::string::npos) << msg;
}

TEST_F(SqliteStoreTest, OpenInMissingDirectoryNamesThePath) {
  const std::string path = dir_ + "/no/such/dir/landlord.db";
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError);
  EXPECT_NE(store.status().message().find("`" + path + "`"), std::string::npos)
      << store.status().message();
}

TEST_F(SqliteStoreTest, OpenNonDatabaseFileNamesThePath) {
  {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not an SQLite database, but it is long enough to look at its header\n", f);
    ASSERT_EQ(std::fclose(f), 0);
  }
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("`" + path_ + "`"), std::string::npos)
      << store.status().message();
}

// An in-memory database has no WAL and could not keep the durability contract.
TEST_F(SqliteStoreTest, RefusesAnInMemoryDatabase) {
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(":memory:");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("`wal`"), std::string::npos) << store.status().message();
}

// A process that dies right after Commit() returned (no close, no checkpoint: the data is
// only in the WAL) loses nothing. This covers the process crash; power loss additionally
// relies on `synchronous=FULL`, which a test cannot observe.
TEST_F(SqliteStoreTest, CommitSurvivesAProcessDeathRightAfterIt) {
  const pid_t pid = fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    // The child: no gtest assertions; the exit code tells the parent what went wrong.
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
    if (!store.ok()) _exit(2);
    Batch b;
    b.tenants = {Tenant("ten_a")};
    b.leases = {FullLease("lease_1", "ten_a")};
    b.events = {Event("lease_1", "ten_a", "active", kT0)};
    if (!(*store)->Commit(b).ok()) _exit(3);
    _exit(0);  // skips the store's destructor: nothing is closed or checkpointed
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  // The commit is only in the WAL, so reopening exercises WAL recovery.
  EXPECT_GT(std::filesystem::file_size(path_ + "-wal"), 0u);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto leases = store->Leases();
  ASSERT_TRUE(leases.ok()) << leases.status().ToString();
  ASSERT_EQ(leases->size(), 1u);
  ExpectSameLease((*leases)[0], FullLease("lease_1", "ten_a"));
  EXPECT_EQ(store->Tenants()->size(), 1u);
  EXPECT_EQ(*store->LastEventSeq(), 1);
}

}  // namespace
}  // namespace ll::store

namespace ll::store {
namespace {

UsageRecord Usage(const std::string& key, const std::string& tenant, const std::string& period, int64_t start_ms,
                  int64_t amount) {
  return {.key = key,
          .tenant_id = tenant,
          .source = "lease",
          .ref = "lease_1",
          .kind = "spot",
          .period = period,
          .start = Time{start_ms},
          .end = Time{start_ms + 1000},
          .quantity = 8000,
          .unit = "gpu_ms",
          .unit_price_micros = 2'000'000,
          .amount_micros = amount};
}

TEST_P(StoreContract, UsageIsIngestedExactlyOnceByKey) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a"), Tenant("ten_b")};
  b.usage = {Usage("k1", "ten_a", "2020-05", kT0, 10), Usage("k2", "ten_a", "2020-06", kT0 + 5, 20),
             Usage("k3", "ten_b", "2020-05", kT0 + 1, 40)};
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(b.usage_inserted, 3);
  // A retry of the same usage (and one new record) counts only the new one.
  Batch again;
  again.usage = {Usage("k1", "ten_a", "2020-05", kT0, 10), Usage("k4", "ten_a", "2020-05", kT0 + 2, 5)};
  ASSERT_TRUE(store->Commit(again).ok());
  EXPECT_EQ(again.usage_inserted, 1);
  auto a = store->Usage("ten_a", "2020-05");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].key, "k1");
  EXPECT_EQ((*a)[1].key, "k4");
  EXPECT_EQ((*a)[1].amount_micros, 5);
  EXPECT_EQ(store->Usage("", "")->size(), 4u);
  EXPECT_EQ(store->Usage("ten_b", "")->size(), 1u);
  auto periods = store->UsagePeriods("ten_a");
  ASSERT_TRUE(periods.ok());
  EXPECT_EQ(*periods, (std::vector<std::pair<std::string, int64_t>>{{"2020-06", 20}, {"2020-05", 15}}));
  // Usage of an unknown tenant is refused, with nothing of its batch written.
  Batch bad;
  bad.usage = {Usage("k5", "ten_a", "2020-05", kT0, 1), Usage("k6", "ten_nobody", "2020-05", kT0, 1)};
  Status st = store->Commit(bad);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("ten_nobody"), std::string::npos) << st.ToString();
  EXPECT_EQ(store->Usage("", "")->size(), 4u);
}

TEST_P(StoreContract, PriceHistoriesRoundTrip) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.leases = {FullLease("lease_1", "ten_a")};
  b.lease_prices = {{"lease_1", Time{kT0 + 11}, 100}, {"lease_1", Time{kT0 + 50}, 300}};
  b.spot_prices = {{Time{kT0}, 100}, {Time{kT0 + 50}, 300}, {Time{kT0 + 90}, 200}};
  ASSERT_TRUE(store->Commit(b).ok());
  auto lp = store->LeasePrices();
  ASSERT_TRUE(lp.ok());
  ASSERT_EQ(lp->size(), 2u);
  EXPECT_EQ((*lp)[1].price_micros, 300);
  // [from, to) with the point in effect at `from` first.
  auto sp = store->SpotPrices(Time{kT0 + 60}, Time{kT0 + 1000});
  ASSERT_TRUE(sp.ok());
  ASSERT_EQ(sp->size(), 2u);
  EXPECT_EQ((*sp)[0].at, Time{kT0 + 50});
  EXPECT_EQ((*sp)[1].price_micros, 200);
  EXPECT_EQ(store->SpotPrices(Time{kT0 - 10}, Time{kT0 + 50})->size(), 1u);
  EXPECT_TRUE(store->SpotPrices(Time{kT0 - 10}, Time{kT0 - 5})->empty());
  Batch bad;
  bad.lease_prices = {{"lease_nobody", Time{kT0}, 1}};
  EXPECT_FALSE(store->Commit(bad).ok());
}

// One request's hold of tenant `ten_a` (-1 charged: open).
HoldRecord RequestHold(const char* id, int64_t amount, int64_t charged) {
  return {.id = id, .tenant_id = "ten_a", .amount_micros = amount, .charged_micros = charged, .created = Time{kT0},
          .key_id = {}, .requests = 0, .tokens = 0, .spent_micros = 0, .seq = 0, .expires = Time{}, .expired = false};
}

// A slice (docs/scale-out.md) is a hold with a key, units, spend, report number and expiry: it
// round-trips, and is updated in place by each report.
TEST_P(StoreContract, SlicesRoundTripAsHoldsAndUpdateInPlace) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.balances.push_back({"ten_a", 10'000'000, 0});
  HoldRecord s = RequestHold("sl_1", 2'000'000, -1);
  s.key_id = "key_1";
  s.requests = 5;
  s.tokens = 700;
  s.seq = 1;
  s.expires = Time{kT0 + 10'000};
  b.holds.push_back(s);
  ASSERT_TRUE(store->Commit(b).ok());
  Batch next;
  s.amount_micros = 1'500'000;
  s.spent_micros = 400'000;
  s.seq = 2;
  s.expires = Time{kT0 + 12'000};
  next.holds.push_back(s);
  ASSERT_TRUE(store->Commit(next).ok());
  auto open = store->OpenHolds();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  const HoldRecord& got = open->front();
  EXPECT_EQ(got.key_id, "key_1");
  EXPECT_EQ(got.amount_micros, 1'500'000);
  EXPECT_EQ(got.requests, 5);
  EXPECT_EQ(got.tokens, 700);
  EXPECT_EQ(got.spent_micros, 400'000);
  EXPECT_EQ(got.seq, 2);
  EXPECT_EQ(got.expires.ms, kT0 + 12'000);
  EXPECT_FALSE(got.expired);
  Batch closed;  // expired: what it spent is what it charged
  s.amount_micros = s.charged_micros = s.spent_micros;
  s.expired = true;
  closed.holds.push_back(s);
  ASSERT_TRUE(store->Commit(closed).ok());
  EXPECT_TRUE(store->OpenHolds()->empty());
  auto one = store->Hold("sl_1");
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_TRUE((*one)->expired);
  EXPECT_EQ((*one)->charged_micros, 400'000);
}

TEST_P(StoreContract, BalancesAndHoldsRoundTripAndTheDatabaseRefusesOverspending) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.balances = {{"ten_a", 10'000'000, 2'000'000}};
  b.holds = {RequestHold("h1", 3'000'000, -1), RequestHold("h2", 1'000'000, 500'000)};
  ASSERT_TRUE(store->Commit(b).ok());
  auto balances = store->Balances();
  ASSERT_TRUE(balances.ok());
  ASSERT_EQ(balances->size(), 1u);
  EXPECT_EQ((*balances)[0].charged_micros, 2'000'000);
  auto open = store->OpenHolds();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, "h1");
  EXPECT_EQ((*open)[0].charged_micros, -1);
  EXPECT_EQ((*store->Hold("h2"))->charged_micros, 500'000);
  EXPECT_EQ(*store->Hold("h9"), std::nullopt);
  // Settling h1 closes it.
  Batch settle;
  settle.holds = {RequestHold("h1", 3'000'000, 3'000'000)};
  settle.balances = {{"ten_a", 10'000'000, 5'000'000}};
  ASSERT_TRUE(store->Commit(settle).ok());
  EXPECT_TRUE(store->OpenHolds()->empty());
  // The schema itself refuses a charge above the credit, or above a hold.
  Batch over;
  over.balances = {{"ten_a", 10'000'000, 10'000'001}};
  EXPECT_FALSE(store->Commit(over).ok());
  Batch over_hold;
  over_hold.holds = {RequestHold("h3", 1, 2)};
  EXPECT_FALSE(store->Commit(over_hold).ok());
  EXPECT_EQ((*store->Balances())[0].charged_micros, 5'000'000);
}

TEST_P(StoreContract, OneLeaderAtATimeAndTheLockGoesWithItsConnection) {
  // Ok(true) / Ok(false), or the error's text.
  auto lead = [](Store& s) -> std::string {
    auto r = s.TryLead();
    return r.ok() ? (*r ? "leads" : "stands by") : r.status().ToString();
  };
  auto first = Open();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(lead(*first), "leads");
  EXPECT_EQ(lead(*first), "leads") << "asking again while leading keeps it";
  if (Backend() == "sqlite") return;  // one server per file: nothing to share
  auto second = Open();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(lead(*second), "stands by") << "two leaders at once";
  EXPECT_EQ(lead(*first), "leads");
  first.reset();  // the leader's connection goes (as when its process dies): so does the lock
  EXPECT_EQ(lead(*second), "leads");
  auto third = Open();
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(lead(*third), "stands by");
}

// Key management (issue 15): a key's name, prefix and expiry round-trip; a revocation keeps
// its first time, and one for an id never stored changes nothing.
TEST_P(StoreContract, KeysKeepNameExpiryAndTheirFirstRevocation) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.tenants = {Tenant("ten_a")};
  b.keys = {Key("key_1", "ten_a"), Key("key_2", "ten_a")};
  b.keys[0].name = "ci runner \xC3\xA9";
  b.keys[0].prefix = "ll_1a2b3c4d";
  b.keys[0].expires = Time{kT0 + 3'600'000};
  ASSERT_TRUE(store->Commit(b).ok());

  Batch revoke;
  revoke.key_revocations = {{"key_1", Time{kT0 + 50}}, {"key_nowhere", Time{kT0 + 50}}};
  Status st = store->Commit(revoke);
  ASSERT_TRUE(st.ok()) << st.ToString();
  Batch again;
  again.key_revocations = {{"key_1", Time{kT0 + 99}}};
  ASSERT_TRUE(store->Commit(again).ok());

  auto keys = store->Keys();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2u);
  const KeyRecord& k1 = (*keys)[0];
  EXPECT_EQ(k1.name, "ci runner \xC3\xA9");
  EXPECT_EQ(k1.prefix, "ll_1a2b3c4d");
  EXPECT_EQ(k1.expires.ms, kT0 + 3'600'000);
  EXPECT_EQ(k1.revoked.ms, kT0 + 50);
  const KeyRecord& k2 = (*keys)[1];
  EXPECT_EQ(k2.name, "");
  EXPECT_EQ(k2.prefix, "");
  EXPECT_EQ(k2.expires, kTimeMax);
  EXPECT_EQ(k2.revoked, kTimeMax);
}

// A database from before migration 5 (no key names, expiry or revocation): its keys load
// with none of them, and can then be revoked.
TEST_F(SqliteStoreTest, KeysStoredBeforeKeyManagementMigrateWithoutExpiryOrRevocation) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
  }
  // Back to schema 4, as an older server left it, with a key in it.
  for (const char* sql : {"ALTER TABLE api_keys DROP COLUMN name", "ALTER TABLE api_keys DROP COLUMN prefix",
                          "ALTER TABLE api_keys DROP COLUMN expires_ms", "ALTER TABLE api_keys DROP COLUMN revoked_ms",
                          "ALTER TABLE leases DROP COLUMN workload", "ALTER TABLE leases DROP COLUMN notice_tier",
                          "DELETE FROM schema_migrations WHERE version >= 5",
                          "INSERT INTO tenants(id, name, created_ms) VALUES('ten_a', 'a', 1)",
                          "INSERT INTO api_keys(id, tenant_id, hash, admin, created_ms, rpm, tpm) "
                          "VALUES('key_1', 'ten_a', 'h1', 0, 2, 60, 0)"}) {
    EXPECT_EQ(RawQuery(sql), -1) << sql;
  }
  ASSERT_EQ(RawQuery("SELECT MAX(version) FROM schema_migrations"), 4);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_GE(RawQuery("SELECT MAX(version) FROM schema_migrations"), 5);
  auto keys = store->Keys();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].hash, "h1");
  EXPECT_EQ((*keys)[0].rpm, 60);
  EXPECT_EQ((*keys)[0].name, "");
  EXPECT_EQ((*keys)[0].expires, kTimeMax);
  EXPECT_EQ((*keys)[0].revoked, kTimeMax);
  Batch revoke;
  revoke.key_revocations = {{"key_1", Time{kT0}}};
  ASSERT_TRUE(store->Commit(revoke).ok());
  EXPECT_EQ((*store->Keys())[0].revoked.ms, kT0);
}

// A database from before migration 7 (no notice tiers): its leases load as `standard`.
TEST_F(SqliteStoreTest, LeasesStoredBeforeNoticeTiersAreStandard) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Batch b;
    b.tenants = {Tenant("ten_a")};
    b.leases = {FullLease("lease_1", "ten_a")};
    ASSERT_TRUE(store->Commit(b).ok());
  }
  EXPECT_EQ(RawQuery("ALTER TABLE leases DROP COLUMN notice_tier"), -1);
  EXPECT_EQ(RawQuery("DELETE FROM schema_migrations WHERE version >= 7"), -1);
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_GE(RawQuery("SELECT MAX(version) FROM schema_migrations"), 7);
    auto leases = store->Leases();
    ASSERT_TRUE(leases.ok()) << leases.status().ToString();
    ASSERT_EQ(leases->size(), 1u);
    EXPECT_EQ((*leases)[0].notice_tier, NoticeTier::kStandard);
  }
}

TEST(PostgresUrlTest, PasswordsAreRedactedWhereverTheyAre) {
  EXPECT_EQ(RedactedUrl("postgresql://u:secret@db:5432/landlord"), "postgresql://u:***@db:5432/landlord");
  EXPECT_EQ(RedactedUrl("postgresql://u@db/landlord?password=secret&sslmode=require"),
            "postgresql://u@db/landlord?password=***&sslmode=require");
  EXPECT_EQ(RedactedUrl("postgresql:///landlord?host=/tmp/x&password=s"), "postgresql:///landlord?host=/tmp/x&password=***");
  EXPECT_EQ(RedactedUrl("postgresql:///landlord?host=/tmp/x"), "postgresql:///landlord?host=/tmp/x");
  EXPECT_TRUE(IsPostgresUrl("postgres://db/x"));
  EXPECT_TRUE(IsPostgresUrl("postgresql://db/x"));
  EXPECT_FALSE(IsPostgresUrl("sqlite:/tmp/x.db"));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, testing::Values("sqlite", "postgres"),
                         [](const testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

}  // namespace
}  // namespace ll::store
