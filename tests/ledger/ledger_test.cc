// The ledger's arithmetic: exactness under random lease and price histories (checked against an
// independent evaluation written here), month splits, carried rounding, idempotent keys,
// invoices, CSV, prepaid balances.
#include "ledger/ledger.h"

#include <random>
#include <set>

#include <gtest/gtest.h>

namespace ll::ledger {
namespace {

Time At(const char* utc) {
  auto t = ParseUtc(utc);
  EXPECT_TRUE(t.ok()) << utc;
  return *t;
}

// C(t) the slow, obvious way: for every price interval, its overlap with [start, min(t, end))
// times GPUs times price; the sum floored to the micro-dollar once.
Money Owed(const LeaseUsage& u, Time t) {
  const Time stop = std::min(t, u.end);
  __int128 num = 0;
  for (size_t i = 0; i < u.prices.size(); ++i) {
    const Time lo = std::max(u.start, u.prices[i].at);
    const Time hi = i + 1 < u.prices.size() ? std::min(stop, u.prices[i + 1].at) : stop;
    if (lo < hi) num += static_cast<__int128>(hi.ms - lo.ms) * u.gpus * u.prices[i].per_gpu_hour.micros;
  }
  return Money::Micros(static_cast<int64_t>(num / 3'600'000));
}

LeaseUsage RandomLease(std::mt19937_64& rng, int n) {
  LeaseUsage u;
  u.tenant_id = "ten_" + std::to_string(rng() % 3);
  u.lease_id = "lease_" + std::to_string(n);
  u.kind = rng() % 2 ? "spot" : "reserved";
  u.gpus = 1 + static_cast<int>(rng() % 64);
  const int64_t year = At("2024-01-01T00:00:00Z").ms;
  u.start = Time{year + static_cast<int64_t>(rng() % (365LL * 86'400'000))};
  const int64_t len = 1 + static_cast<int64_t>(rng() % (rng() % 2 ? 3'600'000 : 90LL * 86'400'000));
  u.end = rng() % 5 == 0 ? kTimeMax : u.start + Duration::Millis(len);
  Time t = u.start - Duration::Millis(static_cast<int64_t>(rng() % 1000));
  const int changes = static_cast<int>(rng() % 12);
  for (int i = 0; i <= changes; ++i) {
    u.prices.push_back({t, Money::Micros(static_cast<int64_t>(rng() % 50'000'001))});  // up to $50, odd µ$
    t += Duration::Millis(1 + static_cast<int64_t>(rng() % (10LL * 86'400'000)));
  }
  return u;
}

TEST(LedgerTest, RandomHistoriesAddUpExactlyToTheMicroDollar) {
  std::mt19937_64 rng(20261122);
  std::vector<UsageEvent> all;
  std::map<std::string, Money> owed_by_tenant;
  for (int n = 0; n < 3000; ++n) {
    LeaseUsage u = RandomLease(rng, n);
    const Time until = u.start + Duration::Millis(static_cast<int64_t>(rng() % (120LL * 86'400'000)));
    auto events = CompletedEvents(u, until);
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    Money sum;
    Time last = u.start;
    std::set<std::string> keys;
    for (const auto& e : *events) {
      ASSERT_EQ(e.start, last) << "events tile the lease without gaps";
      ASSERT_LT(e.start, e.end);
      ASSERT_LE(e.end, until);
      ASSERT_EQ(MonthStartUtc(e.start), MonthStartUtc(e.end - Duration::Millis(1))) << "one month per event";
      ASSERT_EQ(e.period, MonthUtc(e.start));
      for (const auto& p : u.prices) ASSERT_FALSE(e.start < p.at && p.at < e.end) << "one price per event";
      ASSERT_EQ(e.gpu_ms, static_cast<int64_t>(u.gpus) * (e.end - e.start).ms);
      ASSERT_EQ(e.amount, Owed(u, e.end) - Owed(u, e.start)) << e.key;
      ASSERT_TRUE(keys.insert(e.key).second);
      sum += e.amount;
      last = e.end;
    }
    ASSERT_EQ(sum, Owed(u, last)) << u.lease_id;
    if (u.end <= until) {
      ASSERT_EQ(last, u.end) << "an ended lease is billed to its end";
    }
    ASSERT_EQ(*AccruedUntil(u, until), Owed(u, until));
    // Derived later, the events only grow: the earlier ones are a prefix, keys and amounts.
    auto later = CompletedEvents(u, until + Duration::Hours(24 * 40));
    ASSERT_TRUE(later.ok());
    ASSERT_GE(later->size(), events->size());
    for (size_t i = 0; i < events->size(); ++i) {
      ASSERT_EQ((*later)[i].key, (*events)[i].key);
      ASSERT_EQ((*later)[i].amount, (*events)[i].amount);
    }
    owed_by_tenant[u.tenant_id] += sum;
    all.insert(all.end(), events->begin(), events->end());
  }
  // Invoices: items add up to totals; the months of a tenant add up to all it owes.
  std::set<std::pair<std::string, std::string>> periods;
  for (const auto& e : all) periods.insert({e.tenant_id, e.period});
  std::map<std::string, Money> invoiced;
  for (const auto& [tenant, period] : periods) {
    Invoice inv = BuildInvoice(tenant, period, all);
    Money items;
    int64_t gpu_ms = 0;
    for (const auto& li : inv.items) {
      items += li.amount;
      gpu_ms += li.gpu_ms;
    }
    ASSERT_EQ(items, inv.total);
    ASSERT_EQ(gpu_ms, inv.gpu_ms);
    invoiced[tenant] += inv.total;
  }
  EXPECT_EQ(invoiced, owed_by_tenant);
}

TEST(LedgerTest, ACreditPastTheMostABalanceHoldsIsRefusedAndChangesNothing) {
  ledger::Balance b;
  ASSERT_TRUE(b.Credit(kMaxBalance).ok());
  Status st = b.Credit(Money::Micros(1));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b.available(), kMaxBalance);
  ledger::Balance c;
  ASSERT_TRUE(c.Credit(Money::Micros(1)).ok());
  EXPECT_FALSE(c.Credit(Money::Micros(INT64_MAX)).ok()) << "an overflowing sum is refused, not wrapped";
  EXPECT_EQ(c.available(), Money::Micros(1));
}

TEST(LedgerTest, ALeaseAcrossAMonthBoundaryIsSplitThere) {
  LeaseUsage u{"ten_a", "lease_1", "spot", 8, At("2024-01-31T23:00:00Z"), At("2024-02-01T01:00:00Z"),
               {{At("2024-01-01T00:00:00Z"), Money::Dollars(2)}}};
  auto e = CompletedEvents(u, At("2024-03-01T00:00:00Z"));
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].period, "2024-01");
  EXPECT_EQ((*e)[0].end, At("2024-02-01T00:00:00Z"));
  EXPECT_EQ((*e)[0].amount, Money::Dollars(16));
  EXPECT_EQ((*e)[1].period, "2024-02");
  EXPECT_EQ((*e)[1].amount, Money::Dollars(16));
  EXPECT_EQ((*e)[0].key, "lease_1/1706742000000-1706745600000");
  // December rolls into the next year.
  u.start = At("2024-12-31T23:30:00Z");
  u.end = At("2025-01-01T00:30:00Z");
  e = CompletedEvents(u, kTimeMax - Duration::Hours(1));
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[1].period, "2025-01");
}

TEST(LedgerTest, RoundingIsCarriedNotDroppedPerPiece) {
  // 1 GPU at 1 µ$/GPU-h, cut every 30 minutes by (unchanged) price points: each piece alone
  // is worth 0.5 µ$; floored one by one they would bill nothing.
  LeaseUsage u{"ten_a", "lease_1", "spot", 1, At("2024-01-01T00:00:00Z"), At("2024-01-01T03:00:00Z"), {}};
  for (int i = 0; i < 6; ++i) u.prices.push_back({u.start + Duration::Minutes(30 * i), Money::Micros(1)});
  auto e = CompletedEvents(u, u.end);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->size(), 6u);
  std::vector<int64_t> amounts;
  for (const auto& x : *e) amounts.push_back(x.amount.micros);
  EXPECT_EQ(amounts, (std::vector<int64_t>{0, 1, 0, 1, 0, 1}));
}

TEST(LedgerTest, ALiveLeaseBillsOnlyCompletedPieces) {
  LeaseUsage u{"ten_a", "lease_1", "spot", 2, At("2024-01-10T00:00:00Z"), kTimeMax,
               {{At("2024-01-10T00:00:00Z"), Money::Dollars(1)}, {At("2024-01-10T06:00:00Z"), Money::Dollars(3)}}};
  auto e = CompletedEvents(u, At("2024-01-10T08:00:00Z"));
  ASSERT_EQ(e->size(), 1u) << "[06:00, 08:00) is still open";
  EXPECT_EQ((*e)[0].amount, Money::Dollars(12));
  EXPECT_EQ(*AccruedUntil(u, At("2024-01-10T08:00:00Z")), Money::Dollars(24));
  EXPECT_TRUE(CompletedEvents(u, At("2024-01-09T00:00:00Z"))->empty());
}

TEST(LedgerTest, BadUsageIsRefusedWithTheLeaseNamed) {
  LeaseUsage u{"ten_a", "lease_9", "spot", 0, At("2024-01-10T00:00:00Z"), kTimeMax,
               {{At("2024-01-10T00:00:00Z"), Money::Dollars(1)}}};
  auto e = CompletedEvents(u, kTimeMax);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("lease_9"), std::string::npos);
  u.gpus = 1;
  u.prices = {{At("2024-01-11T00:00:00Z"), Money::Dollars(1)}};
  EXPECT_NE(Validate(u).message().find("no price at its start"), std::string::npos);
  u.prices = {{At("2024-01-09T00:00:00Z"), Money::Dollars(1)}, {At("2024-01-09T00:00:00Z"), Money::Dollars(2)}};
  EXPECT_NE(Validate(u).message().find("increasing"), std::string::npos);
  u.prices = {{At("2024-01-09T00:00:00Z"), Money::Micros(-1)}};
  EXPECT_FALSE(Validate(u).ok());
  u.prices = {{At("2024-01-09T00:00:00Z"), Money::Dollars(1)}};
  u.end = u.start;
  EXPECT_FALSE(Validate(u).ok());
}

TEST(LedgerTest, InvoiceGroupsByLeaseAndPriceAndWritesCsv) {
  std::vector<UsageEvent> events;
  for (auto* lease : {"lease_2", "lease_1"}) {
    LeaseUsage u{"ten_a", lease, "spot", 4, At("2024-01-10T00:00:00Z"), At("2024-01-10T03:00:00Z"),
                 {{At("2024-01-10T00:00:00Z"), Money::Micros(1'500'000)}, {At("2024-01-10T01:00:00Z"), Money::Dollars(2)}}};
    auto e = CompletedEvents(u, kTimeMax - Duration::Hours(1));
    events.insert(events.end(), e->begin(), e->end());
  }
  LeaseUsage other{"ten_b", "lease_3", "reserved", 8, At("2024-01-10T00:00:00Z"), At("2024-01-10T01:00:00Z"),
                   {{At("2024-01-10T00:00:00Z"), Money::Dollars(1)}}};
  auto e = CompletedEvents(other, kTimeMax - Duration::Hours(1));
  events.insert(events.end(), e->begin(), e->end());
  Invoice inv = BuildInvoice("ten_a", "2024-01", events);
  ASSERT_EQ(inv.items.size(), 4u);
  EXPECT_EQ(inv.items[0].lease_id, "lease_1");
  EXPECT_EQ(inv.items[0].amount, Money::Dollars(6));
  EXPECT_EQ(inv.items[1].amount, Money::Dollars(16));
  EXPECT_EQ(inv.total, Money::Dollars(44));
  EXPECT_EQ(InvoiceCsv(inv),
            "tenant_id,period,item,kind,unit_price_usd,gpu_seconds,tokens,amount_usd\n"
            "ten_a,2024-01,lease_1,spot,1.50,14400.000,0,6.00\n"
            "ten_a,2024-01,lease_1,spot,2.00,28800.000,0,16.00\n"
            "ten_a,2024-01,lease_2,spot,1.50,14400.000,0,6.00\n"
            "ten_a,2024-01,lease_2,spot,2.00,28800.000,0,16.00\n"
            "ten_a,2024-01,total,,,86400.000,0,44.00\n");
  EXPECT_TRUE(BuildInvoice("ten_a", "2024-02", events).items.empty());
}

TEST(LedgerTest, TokenCostIsFlooredPerRequestAndBalancesRestore) {
  EXPECT_EQ(TokenCost(1'000'000, Money::Micros(200'000)), Money::Micros(200'000));
  EXPECT_EQ(TokenCost(7, Money::Micros(200'000)), Money::Micros(1));  // 1.4 µ$
  EXPECT_EQ(TokenCost(0, Money::Dollars(5)), Money{});
  auto b = Balance::Restore(Money::Dollars(10), Money::Dollars(3), {{"h1", Money::Dollars(2)}});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->available(), Money::Dollars(5));
  EXPECT_EQ(*b->Settle("h1", Money::Dollars(1)), Money::Dollars(1));
  EXPECT_FALSE(Balance::Restore(Money::Dollars(1), Money::Dollars(1), {{"h", Money::Micros(1)}}).ok());
}

TEST(LedgerTest, MonthHelpers) {
  EXPECT_EQ(MonthStartUtc(At("2024-02-29T23:59:59Z")), At("2024-02-01T00:00:00Z"));
  EXPECT_EQ(NextMonthStartUtc(At("2024-02-29T23:59:59Z")), At("2024-03-01T00:00:00Z"));
  EXPECT_EQ(NextMonthStartUtc(At("2023-12-01T00:00:00Z")), At("2024-01-01T00:00:00Z"));
  EXPECT_EQ(MonthUtc(At("2024-11-30T12:00:00Z")), "2024-11");
  EXPECT_EQ(*ParseMonthUtc("2024-11"), At("2024-11-01T00:00:00Z"));
  for (const char* bad : {"2024-13", "2024-1", "24-11", "2024/11", "2024-00", "-024-11"}) {
    EXPECT_FALSE(ParseMonthUtc(bad).ok()) << bad;
  }
  EXPECT_EQ(MonthStartUtc(Time{-1}), At("1969-12-01T00:00:00Z"));
}

TEST(LedgerTest, BalanceIsNeverOverspent) {
  Balance b(Money::Dollars(10));
  EXPECT_TRUE(b.Reserve("r1", Money::Dollars(6)).ok());
  EXPECT_EQ(b.Reserve("r2", Money::Dollars(5)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(b.Reserve("r1", Money::Dollars(1)).code(), StatusCode::kConflict);
  EXPECT_EQ(*b.Settle("r1", Money::Dollars(2)), Money::Dollars(2));
  EXPECT_EQ(b.Settle("r1", Money::Dollars(2)).status().code(), StatusCode::kNotFound) << "settled once";
  EXPECT_EQ(b.available(), Money::Dollars(8));
  EXPECT_TRUE(b.Reserve("r3", Money::Dollars(1)).ok());
  EXPECT_EQ(*b.Settle("r3", Money::Dollars(5)), Money::Dollars(1)) << "never more than was held";
  // Random reserve/settle/credit: the balance never goes below zero.
  std::mt19937_64 rng(7);
  Balance r(Money::Dollars(100));
  Money credited = Money::Dollars(100);
  std::vector<std::string> open;
  for (int i = 0; i < 100'000; ++i) {
    int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      std::string id = "h" + std::to_string(i);
      if (r.Reserve(id, Money::Micros(static_cast<int64_t>(rng() % 20'000'000))).ok()) open.push_back(id);
    } else if (op < 9 && !open.empty()) {
      size_t k = rng() % open.size();
      ASSERT_TRUE(r.Settle(open[k], Money::Micros(static_cast<int64_t>(rng() % 30'000'000))).ok());
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(k));
    } else if (op == 9 && rng() % 100 == 0) {
      ASSERT_TRUE(r.Credit(Money::Dollars(10)).ok());
      credited += Money::Dollars(10);
    }
    ASSERT_GE(r.available().micros, 0);
    ASSERT_LE((r.charged() + r.held()).micros, credited.micros);
  }
}

}  // namespace
}  // namespace ll::ledger
