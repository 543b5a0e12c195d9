// The control plane's components alone (src/control): what each decides and the domain error
// it answers with, without the control plane or HTTP around them. Accounts reads settled
// holds back from a real SQLite store in a temp dir.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "control/accounts.h"
#include "control/tenants.h"
#include "core/clock.h"
#include "store/store.h"

namespace ll::control {
namespace {

const Time kT0 = Time{1'600'000'000'000};

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ll_accounts_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = store::OpenSqliteStore((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    accounts_ = std::make_unique<Accounts>(&prices_, &wall_, store_.get());
    for (const char* id : {"ten_a", "ten_b"}) batch_.tenants.push_back({.id = id, .name = id, .created = kT0});
    Commit();  // the store's balances and holds are of known tenants
  }
  void TearDown() override {
    accounts_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Commits what the component put in the batch, as the control plane's unit of work does.
  void Commit() {
    Status st = store_->Commit(batch_);
    ASSERT_TRUE(st.ok()) << st.ToString();
    batch_ = store::Batch{};
  }

  std::filesystem::path dir_;
  market::PriceBook prices_;
  ManualClock wall_{kT0};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Accounts> accounts_;
  store::Batch batch_;
};

TEST_F(AccountsTest, HoldsAreAnsweredAgainOnRetryAndConflictUnderOtherTerms) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  gateway::RateLimits::Decision d;
  auto held = accounts_->Reserve("h1", "ten_a", Money::Micros(300'000), std::nullopt, kT0, batch_, &d);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->retry);
  EXPECT_EQ(accounts_->BalanceOf("ten_a").available(), Money::Micros(700'000));
  Commit();

  auto again = accounts_->Reserve("h1", "ten_a", Money::Micros(300'000), std::nullopt, kT0, batch_, &d);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->retry);
  EXPECT_EQ(accounts_->BalanceOf("ten_a").available(), Money::Micros(700'000));  // held once

  auto other = accounts_->Reserve("h1", "ten_a", Money::Micros(1), std::nullopt, kT0, batch_, &d);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kConflict);
  EXPECT_EQ(other.status().reason(), "hold_exists");
  EXPECT_EQ(other.status().param(), "id");

  auto over = accounts_->Reserve("h2", "ten_a", Money::Micros(800'000), std::nullopt, kT0, batch_, &d);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kInsufficientFunds);
  EXPECT_EQ(over.status().param(), "amount");
  EXPECT_TRUE(batch_.holds.empty());  // a refusal writes nothing
}

TEST_F(AccountsTest, SettleChargesOnceAndARetryGetsTheChargeFromTheStore) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  gateway::RateLimits::Decision d;
  ASSERT_TRUE(accounts_->Reserve("h1", "ten_a", Money::Micros(300'000), std::nullopt, kT0, batch_, &d).ok());
  Commit();

  auto usage = accounts_->TokenRecords("req1", "ten_a", "m", 1000, 500, kT0);
  ASSERT_EQ(usage.size(), 2u);
  const int64_t cost = usage[0].amount_micros + usage[1].amount_micros;
  auto settled = accounts_->Settle("h1", std::nullopt, usage, batch_);
  ASSERT_TRUE(settled.ok());
  EXPECT_EQ(settled->tenant_id, "ten_a");
  EXPECT_EQ(settled->charged, Money::Micros(cost));
  EXPECT_EQ(batch_.usage.size(), 2u);
  Commit();
  EXPECT_EQ(accounts_->BalanceOf("ten_a").charged(), Money::Micros(cost));

  auto retry = accounts_->Settle("h1", std::nullopt, usage, batch_);  // answered from the store
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->tenant_id.empty());
  EXPECT_EQ(retry->charged, Money::Micros(cost));
  EXPECT_TRUE(batch_.usage.empty());  // billed once
  EXPECT_EQ(accounts_->BalanceOf("ten_a").charged(), Money::Micros(cost));

  auto unknown = accounts_->Settle("nope", Money::Micros(1), {}, batch_);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().reason(), "hold_not_found");
}

TEST_F(AccountsTest, UsageOfAnotherTenantCannotSettleAHold) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  gateway::RateLimits::Decision d;
  ASSERT_TRUE(accounts_->Reserve("h1", "ten_a", Money::Micros(300'000), std::nullopt, kT0, batch_, &d).ok());
  Commit();
  auto wrong = accounts_->Settle("h1", std::nullopt, accounts_->TokenRecords("r", "ten_b", "m", 1, 1, kT0), batch_);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().param(), "usage");
  EXPECT_EQ(accounts_->BalanceOf("ten_a").held(), Money::Micros(300'000));  // still open
}

TEST_F(AccountsTest, ARateLimitedHoldHoldsNothingAndSaysWhichLimit) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  gateway::Accounts::Admission a{.hold_id = "h1", .tenant_id = "ten_a", .key_id = "key_1", .rpm = 1, .tpm = 0,
                                 .tokens = 10, .amount = Money::Micros(1)};
  gateway::RateLimits::Decision d;
  ASSERT_TRUE(accounts_->Reserve("h1", "ten_a", Money::Micros(1), a, kT0, batch_, &d).ok());
  a.hold_id = "h2";
  auto second = accounts_->Reserve("h2", "ten_a", Money::Micros(1), a, kT0, batch_, &d);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kRateLimited);
  EXPECT_EQ(second.status().param(), "requests");
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(accounts_->BalanceOf("ten_a").held(), Money::Micros(1));  // only the first
}

TEST(TenantsTest, AdminKeyOnFirstStartOnly) {
  Tenants t;
  store::Batch batch;
  auto once = t.Restore({}, {}, "", kT0, batch);
  ASSERT_TRUE(once.ok());
  ASSERT_FALSE(once->empty());
  ASSERT_EQ(batch.keys.size(), 1u);
  EXPECT_TRUE(batch.keys[0].admin);
  EXPECT_NE(batch.keys[0].hash, *once);  // only the hash is stored
  ASSERT_NE(t.Find(*once, kT0), nullptr);

  Tenants restarted;
  store::Batch none;
  auto again = restarted.Restore({}, batch.keys, "", kT0, none);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  EXPECT_TRUE(none.keys.empty());

  Tenants short_env;
  auto bad = short_env.Restore({}, {}, "short", kT0, none);
  EXPECT_FALSE(bad.ok());
}

TEST(TenantsTest, KeysAreCreatedForTenantsListedInPagesAndRevokedOnce) {
  Tenants t;
  store::Batch batch;
  ASSERT_TRUE(t.Restore({}, {}, "ll_admin_key_for_tests_0123", kT0, batch).ok());
  auto missing = t.CreateKey({.tenant_id = "ten_x", .name = "", .rpm = 0, .tpm = 0, .expires = kTimeMax}, kT0, batch);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().reason(), "tenant_not_found");
  EXPECT_EQ(missing.status().param(), "tenant_id");

  const store::TenantRecord ten = t.Create("acme", kT0, batch);
  auto k1 = t.CreateKey({.tenant_id = ten.id, .name = "ci", .rpm = 5, .tpm = 0, .expires = kTimeMax}, kT0, batch);
  auto k2 = t.CreateKey({.tenant_id = ten.id, .name = "", .rpm = 0, .tpm = 0, .expires = kT0 + Duration::Seconds(60)}, kT0, batch);
  ASSERT_TRUE(k1.ok() && k2.ok());
  EXPECT_EQ(k1->record.prefix, k1->secret.substr(0, 11));
  ASSERT_NE(t.Find(k2->secret, kT0), nullptr);
  EXPECT_EQ(t.Find(k2->secret, kT0 + Duration::Seconds(60)), nullptr);  // expired

  auto page = t.ListKeys(ten.id, 1, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->keys.size(), 1u);
  EXPECT_TRUE(page->has_more);
  auto rest = t.ListKeys(ten.id, 1, page->keys[0]->id);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->keys.size(), 1u);
  EXPECT_FALSE(rest->has_more);

  auto admin = t.RevokeKey(batch.keys[0].id, kT0, batch);
  ASSERT_FALSE(admin.ok());
  EXPECT_EQ(admin.status().reason(), "admin_key");
  auto revoked = t.RevokeKey(k1->record.id, kT0, batch);
  ASSERT_TRUE(revoked.ok());
  EXPECT_TRUE(revoked->changed);
  EXPECT_EQ(t.Find(k1->secret, kT0), nullptr);
  auto twice = t.RevokeKey(k1->record.id, kT0 + Duration::Seconds(1), batch);
  ASSERT_TRUE(twice.ok());
  EXPECT_FALSE(twice->changed);
  EXPECT_EQ(twice->record.revoked, kT0);
  EXPECT_EQ(batch.key_revocations.size(), 1u);
}

}  // namespace
}  // namespace ll::control
