// The control plane's components alone (src/control): what each decides and the domain error
// it answers with, without the control plane or HTTP around them. Accounts reads settled
// holds back from a real SQLite store in a temp dir; Leases commits its leases, events, price
// points and usage there and is restored from it.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "alloc/allocator.h"
#include "alloc/policy.h"
#include "control/accounts.h"
#include "control/leases.h"
#include "control/tenants.h"
#include "core/clock.h"
#include "fleet/sim/sim_backend.h"
#include "fleet/topology.h"
#include "sim/trace.h"
#include "store/store.h"

namespace ll::control {
namespace {

const Time kT0 = Time{1'600'000'000'000};

// A temp dir of the test's own (for its SQLite store), empty.
std::filesystem::path TempDir(const char* what) {
  const auto* t = ::testing::UnitTest::GetInstance();
  auto dir = std::filesystem::temp_directory_path() /
             (std::string(what) + std::to_string(t->random_seed()) + "_" + t->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("ll_accounts_");
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

// Slices (docs/scale-out.md): three gateways' slices of one balance never add up to more than
// it and shrink to nothing near exhaustion, where per-request holds take the last cents exactly.
TEST_F(AccountsTest, SlicesOfABalanceNeverPassItAndShrinkToPerRequestHolds) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  const gateway::SliceUnits want{.micros = 500'000, .requests = 0, .tokens = 0};
  const gateway::SliceUnits min{.micros = 100'000, .requests = 0, .tokens = 0};
  for (int64_t seq = 1; seq <= 6; ++seq) {
    for (const char* id : {"sl_a", "sl_b", "sl_c"}) {
      auto h = accounts_->ReportSlice(id, {.seq = seq, .tenant_id = "ten_a", .key_id = "key_1", .rpm = 0, .tpm = 0,
                                           .usage = {}, .used = {}, .give_back = {}, .want = want, .min = min,
                                           .tokens_back = 0, .requests_back = 0, .close = false},
                                      Duration::Seconds(10), batch_);
      ASSERT_TRUE(h.ok()) << h.status().ToString();
      const ledger::Balance& b = accounts_->BalanceOf("ten_a");
      ASSERT_EQ((b.available() + b.held()).micros, 1'000'000);
      ASSERT_GE(b.available().micros, 0);
    }
  }
  Commit();
  const ledger::Balance& b = accounts_->BalanceOf("ten_a");
  EXPECT_LT(b.available().micros, 400'000);  // a quarter of it is below one request: none granted
  // The rest goes per request, to the last micro-dollar.
  gateway::RateLimits::Decision d;
  const Money rest = b.available();
  ASSERT_TRUE(accounts_->Reserve("h_last", "ten_a", rest, std::nullopt, kT0, batch_, &d).ok());
  EXPECT_FALSE(accounts_->Reserve("h_more", "ten_a", Money::Micros(1), std::nullopt, kT0, batch_, &d).ok());
}

// A report is applied once (by its number), its usage charged to the slice; the slice survives a
// restart; past its lease it expires and the rest returns; a late report still bills its usage.
TEST_F(AccountsTest, SliceReportsApplyOnceSurviveARestartAndExpire) {
  ASSERT_TRUE(accounts_->Credit("ten_a", Money::Micros(1'000'000), batch_).ok());
  prices_.models["m"] = {.input_per_mtok = Money::Micros(1'000'000), .output_per_mtok = Money::Micros(10'000'000)};
  Accounts::SliceReport open{.seq = 1, .tenant_id = "ten_a", .key_id = "key_1", .rpm = 0, .tpm = 0, .usage = {},
                             .used = {}, .give_back = {}, .want = {.micros = 200'000, .requests = 0, .tokens = 0},
                             .min = {.micros = 1'000, .requests = 0, .tokens = 0}, .tokens_back = 0,
                             .requests_back = 0, .close = false};
  auto h = accounts_->ReportSlice("sl_a", open, Duration::Seconds(10), batch_);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->amount_micros, 200'000);
  Commit();
  Accounts::SliceReport usage = open;
  usage.seq = 2;
  usage.want = {};
  usage.usage = accounts_->TokenRecords("req_1:1", "ten_a", "m", 1'000, 1'000, kT0);  // $0.011
  h = accounts_->ReportSlice("sl_a", usage, Duration::Seconds(10), batch_);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->spent_micros, 11'000);
  EXPECT_EQ(h->amount_micros, 189'000);
  Commit();
  h = accounts_->ReportSlice("sl_a", usage, Duration::Seconds(10), batch_);  // a retry: nothing again
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->spent_micros, 11'000);
  EXPECT_TRUE(batch_.usage.empty());
  usage.seq = 4;
  EXPECT_EQ(accounts_->ReportSlice("sl_a", usage, Duration::Seconds(10), batch_).status().reason(), "slice_seq");
  EXPECT_EQ(accounts_->Settle("sl_a", Money{}, {}, batch_).status().reason(), "hold_is_slice");

  // A new leader (a restart) restores it from the store: held, with its lease.
  auto balances = store_->Balances();
  auto holds = store_->OpenHolds();
  ASSERT_TRUE(balances.ok() && holds.ok());
  accounts_ = std::make_unique<Accounts>(&prices_, &wall_, store_.get());
  ASSERT_TRUE(accounts_->Restore(*balances, *holds).ok());
  EXPECT_EQ(accounts_->BalanceOf("ten_a").held().micros, 189'000);
  ASSERT_EQ(accounts_->OpenSlices("ten_a").size(), 1u);

  wall_.Advance(Duration::Seconds(9));
  accounts_->ExpireSlices(batch_);
  EXPECT_EQ(accounts_->OpenSlices("").size(), 1u);  // not yet
  wall_.Advance(Duration::Seconds(1));
  accounts_->ExpireSlices(batch_);
  EXPECT_TRUE(accounts_->OpenSlices("").empty());
  EXPECT_EQ(accounts_->BalanceOf("ten_a").held().micros, 0);
  EXPECT_EQ(accounts_->BalanceOf("ten_a").available().micros, 1'000'000 - 11'000);
  Commit();
  auto stored = store_->Hold("sl_a");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_TRUE((*stored)->expired);
  EXPECT_EQ((*stored)->charged_micros, 11'000);

  // Its gateway's last usage (an answer that ended after) is still billed, once.
  usage.seq = 3;
  usage.usage = accounts_->TokenRecords("req_2:1", "ten_a", "m", 1'000, 1'000, kT0);
  h = accounts_->ReportSlice("sl_a", usage, Duration::Seconds(10), batch_);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->spent_micros, 22'000);
  EXPECT_EQ(accounts_->BalanceOf("ten_a").available().micros, 1'000'000 - 22'000);
  Commit();
  h = accounts_->ReportSlice("sl_a", usage, Duration::Seconds(10), batch_);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(accounts_->BalanceOf("ten_a").available().micros, 1'000'000 - 22'000);
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

// One pool of two 8-GPU nodes, idle: the allocator sells all of it as spot (`spot-all`) and
// guarantees no reserved term. The fixture is the allocator's listener, as the control plane is.
class LeasesTest : public ::testing::Test, public alloc::Listener {
 protected:
  void SetUp() override {
    dir_ = TempDir("ll_leases_");
    auto s = store::OpenSqliteStore((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    trace_.begin = kT0;
    trace_.end = kT0 + Duration::Hours(24 * 7);
    trace_.pools = {{.name = "a", .gpus = 16}};
    trace_.nodes = {{.name = "n0", .pool = 0, .rack = 0, .gpus = 8, .model = "H100"},
                    {.name = "n1", .pool = 0, .rack = 0, .gpus = 8, .model = "H100"}};
    trace_.levels = {{.t = kT0, .pool = 0, .gpus = 0}};
    fleet_ = std::make_unique<fleet::SimBackend>(trace_);
    Build();
    batch_.tenants.push_back({.id = "ten_a", .name = "a", .created = kT0});
    batch_.tenants.push_back({.id = "ten_b", .name = "b", .created = kT0});
    Commit();
  }
  void TearDown() override {
    leases_.reset();
    alloc_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A fresh allocator and component over the same fleet and store (a restart).
  void Build() {
    leases_.reset();
    alloc::PolicyContext ctx;
    ctx.pools = 1;
    auto policy = alloc::MakePolicy("spot-all", ctx);
    ASSERT_TRUE(policy.ok());
    alloc::AllocatorOptions ao;
    ao.floor = floor_;
    alloc_ = std::make_unique<alloc::Allocator>(fleet::FleetSpecOf(trace_.pools, trace_.nodes, &caps_), ao,
                                                 std::move(*policy), this);
    overrides_ = Overrides{.headroom = 0, .sellable = {true}, .bookings = {}, .notice = ao.notice, .flash_notice = {}};
    market_ = std::make_unique<step::SpotMarket>(floor_);
    leases_ = std::make_unique<Leases>();
    leases_->Bind({.alloc = alloc_.get(),
                   .fleet = fleet_.get(),
                   .market = market_.get(),
                   .overrides = &overrides_,
                   .stats = &stats_,
                   .prices = &prices_,
                   .floor = &floor_});
  }
  // Flushes the component into the batch and commits it, as the unit of work does.
  void Commit(Time now = kT0) {
    if (leases_) leases_->Flush(now, batch_);
    Status st = store_->Commit(batch_);
    ASSERT_TRUE(st.ok()) << st.ToString();
    batch_ = store::Batch{};
  }
  LeaseRequest Spot(Gpus gpus, Money max_price) {
    LeaseRequest r;
    r.gpus = gpus;
    r.max_price = max_price;
    return r;
  }

  void OnStart(const alloc::Holder& h, Time now) override { leases_->OnStart(h, now, batch_); }
  void OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason r) override { leases_->OnNotice(h, now, r, batch_); }
  void OnEnd(const alloc::Holder& h, Time now, alloc::EndReason r) override {
    if (r != alloc::EndReason::kRejected) leases_->OnEnd(h, now, r, batch_);
  }

  const Principal kTenantA{.admin = false, .tenant_id = "ten_a"};
  const Principal kTenantB{.admin = false, .tenant_id = "ten_b"};
  std::filesystem::path dir_;
  sim::Trace trace_;
  std::unique_ptr<fleet::SimBackend> fleet_;
  std::vector<Gpus> caps_;
  std::unique_ptr<store::Store> store_;
  market::PriceBook prices_;
  Money floor_ = Money::Micros(1'000'000);
  Overrides overrides_;
  FleetStats stats_;
  std::unique_ptr<step::SpotMarket> market_;
  std::unique_ptr<alloc::Allocator> alloc_;
  std::unique_ptr<Leases> leases_;
  store::Batch batch_;
};

TEST_F(LeasesTest, ASpotLeaseStartsIsReleasedAndItsHourIsBilledOnce) {
  auto created = leases_->Create(kTenantA, Spot(8, Money::Micros(3'000'000)), kT0, batch_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const Lease& l = leases_->book()[*created];
  EXPECT_EQ(l.rec.id, "lease_000001");
  EXPECT_EQ(l.rec.state, LeaseState::kActive);
  EXPECT_EQ(l.rec.gpus, 8);
  EXPECT_EQ(l.rec.price_micros, floor_.micros);  // the spot price: the floor on an idle fleet
  EXPECT_TRUE(leases_->book().IsLive(*created));
  ASSERT_EQ(batch_.events.size(), 1u);
  EXPECT_EQ(batch_.events[0].type, "active");
  EXPECT_EQ(batch_.lease_prices.size(), 1u);
  EXPECT_EQ(stats_.counters().leases_started, 1);
  EXPECT_EQ(leases_->Rate(), static_cast<__int128>(floor_.micros) * 8);
  Commit();

  const Time later = kT0 + Duration::Hours(1);
  auto other = leases_->Release(kTenantB, "lease_000001", later, batch_);  // another tenant's: not found
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().reason(), "lease_not_found");
  EXPECT_EQ(other.status().param(), "id");
  EXPECT_TRUE(batch_.empty());

  auto released = leases_->Release(kTenantA, "lease_000001", later, batch_);
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(leases_->book()[*released].rec.state, LeaseState::kReleased);
  EXPECT_FALSE(leases_->book().IsLive(*released));
  leases_->Flush(later, batch_);
  ASSERT_EQ(batch_.usage.size(), 1u);
  EXPECT_EQ(batch_.usage[0].quantity, 8 * 3'600'000);  // GPU-ms
  EXPECT_EQ(batch_.usage[0].amount_micros, 8 * floor_.micros);
  Commit(later);

  auto stored = store_->Leases();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].state, LeaseState::kReleased);
  auto events = store_->LeaseEvents("lease_000001", 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].type, "released");
  // Released again: unchanged, nothing billed twice.
  ASSERT_TRUE(leases_->Release(kTenantA, "lease_000001", later + Duration::Hours(1), batch_).ok());
  leases_->Flush(later + Duration::Hours(1), batch_);
  EXPECT_TRUE(batch_.usage.empty());
  EXPECT_TRUE(batch_.events.empty());
}

TEST_F(LeasesTest, RefusalsNameTheFieldAndTakeNothing) {
  EXPECT_EQ(Leases::MayCreate(Principal{.admin = true, .tenant_id = ""}).reason(), "tenant_only");
  LeaseRequest with_workload = Spot(1, Money::Micros(3'000'000));
  with_workload.workload = workload::Spec{};
  EXPECT_EQ(leases_->CanRun(with_workload).reason(), "workloads_unavailable");
  EXPECT_EQ(leases_->CanRun(with_workload).param(), "workload");

  auto low = leases_->Create(kTenantA, Spot(1, Money::Micros(500'000)), kT0, batch_);
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.status().reason(), "price_below_market");
  EXPECT_EQ(low.status().param(), "max_price_per_gpu_hour");

  auto big = leases_->Create(kTenantA, Spot(17, Money::Micros(3'000'000)), kT0, batch_);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(big.status().reason(), "insufficient_capacity");
  EXPECT_EQ(big.status().param(), "gpus");

  LeaseRequest reserved;
  reserved.kind = LeaseKind::kReserved;
  reserved.gpus = 8;
  reserved.duration_s = 4 * 3600;
  ReservedOffer offer;
  auto term = leases_->Create(kTenantA, reserved, kT0, batch_, &offer);
  ASSERT_FALSE(term.ok());
  EXPECT_EQ(term.status().reason(), "forecast_conflict");
  EXPECT_EQ(offer.gpus, 0);  // `spot-all` guarantees no term
  EXPECT_EQ(offer.duration_s, 4 * 3600);
  EXPECT_FALSE(offer.longest_term_s.has_value());

  reserved.start_at = kT0 + Duration::Seconds(1);  // inside the reclaim notice
  auto soon = leases_->Create(kTenantA, reserved, kT0, batch_);
  ASSERT_FALSE(soon.ok());
  EXPECT_EQ(soon.status().param(), "start_at");

  EXPECT_EQ(leases_->book().size(), 0u);  // every lease number given back
  leases_->Flush(kT0, batch_);
  EXPECT_TRUE(batch_.empty());
  auto next = leases_->Create(kTenantA, Spot(1, Money::Micros(3'000'000)), kT0, batch_);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(leases_->book()[*next].rec.id, "lease_000001");
}

TEST_F(LeasesTest, ARestartPutsLiveLeasesBackAndTheFleetPreemptsOrLosesThem) {
  auto a = leases_->Create(kTenantA, Spot(8, Money::Micros(3'000'000)), kT0, batch_);
  auto b = leases_->Create(kTenantB, Spot(8, Money::Micros(2'000'000)), kT0, batch_);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string placement = leases_->book()[*a].rec.placement;
  Commit();

  Build();  // the restart: a new allocator and component, from the store
  auto records = store_->Leases();
  auto prices = store_->LeasePrices();
  ASSERT_TRUE(records.ok() && prices.ok());
  ASSERT_TRUE(leases_->Restore(std::move(*records), *prices, kT0, batch_).ok());
  ASSERT_EQ(leases_->book().live().size(), 2u);
  EXPECT_EQ(leases_->book()[0].rec.placement, placement);
  EXPECT_EQ(alloc_->holder(leases_->book()[0].holder).gpus, 8);
  EXPECT_TRUE(batch_.events.empty());  // nothing happened

  // The fleet preempts one holder (a notice from now) and loses the other (billed until then).
  const Time t1 = kT0 + Duration::Minutes(30);
  EXPECT_TRUE(leases_->Preempted("lease_000002", t1));
  EXPECT_FALSE(leases_->Preempted("lease_000002", t1));  // once
  EXPECT_EQ(leases_->book()[1].rec.state, LeaseState::kNoticed);
  EXPECT_EQ(leases_->book()[1].rec.reclaim_at, t1 + alloc_->options().notice);
  leases_->Lost("lease_000001", "node n0 went down", kT0 + Duration::Minutes(15), t1);
  const store::LeaseRecord& lost = leases_->book()[0].rec;
  EXPECT_EQ(lost.state, LeaseState::kEnded);
  EXPECT_EQ(lost.end_reason, LeaseEnd::kHolderLost);
  EXPECT_EQ(lost.ended, kT0 + Duration::Minutes(15));
  leases_->Flush(t1, batch_);
  ASSERT_EQ(batch_.usage.size(), 1u);  // lease_1's quarter hour; lease_2 runs on
  EXPECT_EQ(batch_.usage[0].ref, "lease_000001");
  EXPECT_EQ(batch_.usage[0].quantity, 8 * 15 * 60'000);
  Commit(t1);
}

}  // namespace
}  // namespace ll::control
