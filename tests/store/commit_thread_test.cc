// CommitThread over a real SQLite file: batches commit in the order they were handed over, on
// the commit thread; the serialized store's Commit waits for the batches before it; an empty
// batch is a barrier; reads from another thread meanwhile are safe (run it under TSan or ASan).
#include "store/commit_thread.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace ll::store {
namespace {

constexpr int64_t kT0 = 1'588'550'400'000;  // 2020-05-04T00:00:00Z

Batch Tenant(int i) {
  Batch b;
  b.tenants = {{.id = "ten_" + std::to_string(i), .name = std::to_string(i), .created = Time{kT0}}};
  b.balances = {{.tenant_id = "ten_0", .credited_micros = 1000, .charged_micros = i}};
  return b;
}

class CommitThreadTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ll_commit_thread_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
    auto sqlite = OpenSqliteStore(dir_ + "/landlord.db");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status().ToString();
    sqlite_ = std::move(*sqlite);
  }
  void TearDown() override {
    sqlite_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
  std::unique_ptr<Store> sqlite_;
};

TEST_F(CommitThreadTest, BatchesCommitInOrderOffTheCallersThreadAndACommitWaitsForThem) {
  CommitThread commits(*sqlite_);
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  constexpr int kBatches = 50;
  for (int i = 0; i < kBatches; ++i) {
    commits.Submit(Tenant(i), [&, i](Status st, Batch&) {
      ASSERT_TRUE(st.ok()) << st.ToString();
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
    });
  }
  Batch last = Tenant(kBatches);
  ASSERT_TRUE(commits.store().Commit(last).ok());  // after every batch handed over before it
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(order.size(), static_cast<size_t>(kBatches));
  for (int i = 0; i < kBatches; ++i) EXPECT_EQ(order[i], i);
  for (auto id : threads) EXPECT_NE(id, std::this_thread::get_id());
  // The last snapshot of the balance is the last one handed over.
  auto balances = commits.store().Balances();
  ASSERT_TRUE(balances.ok());
  ASSERT_EQ(balances->size(), 1u);
  EXPECT_EQ((*balances)[0].charged_micros, kBatches);
}

TEST_F(CommitThreadTest, AnEmptyBatchIsABarrierAndEventsGetTheirSeqs) {
  CommitThread commits(*sqlite_);
  Batch b = Tenant(1);
  b.balances.clear();  // no tenant ten_0 in this file
  LeaseRecord l;
  l.id = "lease_1";
  l.tenant_id = "ten_1";
  l.created = Time{kT0};
  b.leases = {l};
  b.events = {{.seq = 0, .lease_id = "lease_1", .tenant_id = "ten_1", .type = "created", .at = Time{kT0}, .data = "{}"}};
  std::promise<int64_t> seq;
  commits.Submit(std::move(b), [&](Status st, Batch& done) {
    EXPECT_TRUE(st.ok());
    seq.set_value(done.events[0].seq);
  });
  std::promise<void> barrier;
  commits.Submit(Batch{}, [&](Status st, Batch&) {
    EXPECT_TRUE(st.ok());
    barrier.set_value();
  });
  barrier.get_future().get();
  auto s = seq.get_future();
  ASSERT_EQ(s.wait_for(std::chrono::seconds(0)), std::future_status::ready);  // ran before the barrier
  EXPECT_GT(s.get(), 0);
}

TEST_F(CommitThreadTest, ReadsFromAnotherThreadDuringCommitsAreSerialized) {
  CommitThread commits(*sqlite_);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      auto t = commits.store().Tenants();
      ASSERT_TRUE(t.ok()) << t.status().ToString();
    }
  });
  for (int i = 0; i < 30; ++i) commits.Submit(Tenant(i), nullptr);
  Batch barrier;
  ASSERT_TRUE(commits.store().Commit(barrier).ok());
  done = true;
  reader.join();
  auto t = commits.store().Tenants();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), 30u);
}

TEST_F(CommitThreadTest, WhatIsHandedOverIsCommittedBeforeTheThreadEnds) {
  {
    CommitThread commits(*sqlite_);
    for (int i = 0; i < 10; ++i) commits.Submit(Tenant(i), nullptr);
  }
  auto t = sqlite_->Tenants();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), 10u);
}

}  // namespace
}  // namespace ll::store
