// FaultStore over a real SQLite file in a fresh temporary directory: what an injected fault
// does to the caller (the Status, its batch) and to the file (read back by a second store).
#include "store/fault_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "store/store.h"

namespace ll::store {
namespace {

constexpr int64_t kT0 = 1'588'550'400'000;  // 2020-05-04T00:00:00Z

// One tenant with one lease and one event of it: three tables, and a seq to fill in.
Batch TenantWithLease(const std::string& n) {
  Batch b;
  b.tenants = {{.id = "ten_" + n, .name = n, .created = Time{kT0}}};
  LeaseRecord l;
  l.id = "lease_" + n;
  l.tenant_id = "ten_" + n;
  l.kind = LeaseKind::kSpot;
  l.state = LeaseState::kActive;
  l.gpus = 8;
  l.created = Time{kT0};
  b.leases = {l};
  b.events = {{.lease_id = l.id,
               .tenant_id = l.tenant_id,
               .type = "created",
               .at = Time{kT0},
               .data = "{}"}};
  return b;
}

class FaultStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ll_fault_store_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
    auto sqlite = OpenSqliteStore(Path());
    ASSERT_TRUE(sqlite.ok()) << sqlite.status().ToString();
    store_ = std::make_unique<FaultStore>(std::move(*sqlite));
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Path() const { return dir_ + "/landlord.db"; }

  // The tenant ids in the file, as a second store opened on it reads them.
  std::vector<std::string> TenantsOnDisk() {
    auto other = OpenSqliteStore(Path());
    EXPECT_TRUE(other.ok()) << other.status().ToString();
    std::vector<std::string> ids;
    if (!other.ok()) return ids;
    auto tenants = (*other)->Tenants();
    EXPECT_TRUE(tenants.ok()) << tenants.status().ToString();
    if (tenants.ok()) {
      for (const TenantRecord& t : *tenants) ids.push_back(t.id);
    }
    return ids;
  }

  std::string dir_;
  std::unique_ptr<FaultStore> store_;
};

using Ids = std::vector<std::string>;

TEST_F(FaultStoreTest, WithoutAFaultEveryCallReachesTheWrappedStore) {
  Batch a = TenantWithLease("a");
  a.settings = {{"k", "v"}};
  ASSERT_TRUE(store_->Commit(a).ok());
  EXPECT_EQ(a.events[0].seq, 1) << "the wrapped store's seq reaches the caller's batch";
  EXPECT_EQ(store_->Tenants()->size(), 1u);
  EXPECT_EQ(store_->Leases()->size(), 1u);
  EXPECT_EQ(store_->LeaseEvents("lease_a", 0)->size(), 1u);
  EXPECT_EQ(*store_->Setting("k"), std::optional<std::string>("v"));
  EXPECT_EQ(*store_->LastEventSeq(), 1);
  EXPECT_EQ(*store_->TryLead(), true);
  EXPECT_EQ(store_->commits(), 1);
  EXPECT_EQ(store_->failed_commits(), 0);
  EXPECT_EQ(TenantsOnDisk(), Ids{"ten_a"});
}

TEST_F(FaultStoreTest, TheNthCommitFailsWithTheStoresErrorAndWritesNothing) {
  store_->Inject({.kind = CommitFault::Kind::kCommit, .nth = 3});
  Batch a = TenantWithLease("a"), b = TenantWithLease("b"), c = TenantWithLease("c");
  ASSERT_TRUE(store_->Commit(a).ok());
  ASSERT_TRUE(store_->Commit(b).ok());
  Status st = store_->Commit(c);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_EQ(st.message(), "store: commit: disk I/O error (injected)");
  EXPECT_EQ(c.events[0].seq, 0) << "a failed batch is left as it was";
  EXPECT_EQ(TenantsOnDisk(), (Ids{"ten_a", "ten_b"}));
  EXPECT_FALSE(store_->armed()) << "one commit only";

  ASSERT_TRUE(store_->Commit(c).ok()) << "the same batch goes through once the fault is spent";
  EXPECT_EQ(c.events[0].seq, 3);
  EXPECT_EQ(TenantsOnDisk(), (Ids{"ten_a", "ten_b", "ten_c"}));
  EXPECT_EQ(store_->commits(), 4);
  EXPECT_EQ(store_->failed_commits(), 1);
  EXPECT_EQ(store_->injected_failures(), 1);
}

TEST_F(FaultStoreTest, TheNthCountsFromWhenTheFaultIsArmed) {
  Batch a = TenantWithLease("a"), b = TenantWithLease("b");
  ASSERT_TRUE(store_->Commit(a).ok());
  store_->Inject({.nth = 1});
  EXPECT_FALSE(store_->Commit(b).ok());
  EXPECT_EQ(TenantsOnDisk(), Ids{"ten_a"});
}

TEST_F(FaultStoreTest, AStickyFaultFailsEveryCommitUntilCleared) {
  store_->Inject(
      {.nth = 2, .sticky = true, .error = Status::Io("store `x`: database or disk is full")});
  Batch a = TenantWithLease("a"), b = TenantWithLease("b"), c = TenantWithLease("c");
  ASSERT_TRUE(store_->Commit(a).ok());
  for (int i = 0; i < 3; ++i) {
    Status st = store_->Commit(b);
    EXPECT_EQ(st.ToString(), Status::Io("store `x`: database or disk is full").ToString());
  }
  EXPECT_TRUE(store_->armed());
  store_->Clear();
  ASSERT_TRUE(store_->Commit(c).ok());
  EXPECT_EQ(TenantsOnDisk(), (Ids{"ten_a", "ten_c"}));
  EXPECT_EQ(store_->commits(), 5);
  EXPECT_EQ(store_->injected_failures(), 3);
}

// The case a caller easily gets wrong: told the commit failed, it is on disk all the same.
TEST_F(FaultStoreTest, AFailedSyncReportsFailureButTheBatchIsWritten) {
  store_->Inject({.kind = CommitFault::Kind::kSync, .nth = 2});
  Batch a = TenantWithLease("a"), b = TenantWithLease("b"), c = TenantWithLease("c");
  ASSERT_TRUE(store_->Commit(a).ok());
  Status st = store_->Commit(b);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_EQ(b.events[0].seq, 0) << "the caller's batch is left as a failed commit leaves it";
  EXPECT_EQ(TenantsOnDisk(), (Ids{"ten_a", "ten_b"})) << "all of the batch, durable";
  EXPECT_EQ(store_->LeaseEvents("lease_b", 0)->size(), 1u);
  ASSERT_TRUE(store_->Commit(c).ok());
  EXPECT_EQ(c.events[0].seq, 3) << "the written batch took seq 2";
  EXPECT_EQ(store_->failed_commits(), 1);
}

TEST_F(FaultStoreTest, TheWrappedStoresOwnFailuresPassThroughAndAreCounted) {
  Batch a = TenantWithLease("a"), again = TenantWithLease("a");
  ASSERT_TRUE(store_->Commit(a).ok());
  Status st = store_->Commit(again);
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  EXPECT_EQ(store_->commits(), 2);
  EXPECT_EQ(store_->failed_commits(), 1);
  EXPECT_EQ(store_->injected_failures(), 0);
}

TEST_F(FaultStoreTest, EmptyBatchesNeitherCountNorFail) {
  store_->Inject({.nth = 1});
  Batch empty;
  EXPECT_TRUE(store_->Commit(empty).ok());
  EXPECT_EQ(store_->commits(), 0);
  EXPECT_TRUE(store_->armed()) << "the fault waits for a commit that writes something";
  Batch a = TenantWithLease("a");
  EXPECT_FALSE(store_->Commit(a).ok());
}

TEST_F(FaultStoreTest, ArmingAgainReplacesTheArmedFault) {
  store_->Inject({.nth = 1});
  store_->Inject({.nth = 2});
  Batch a = TenantWithLease("a"), b = TenantWithLease("b");
  EXPECT_TRUE(store_->Commit(a).ok());
  EXPECT_FALSE(store_->Commit(b).ok());
  EXPECT_EQ(TenantsOnDisk(), Ids{"ten_a"});
}

}  // namespace
}  // namespace ll::store
