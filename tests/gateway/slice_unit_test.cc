// Slices (docs/scale-out.md): the control plane's grant rule, the buckets' lending, and a
// gateway's slice arithmetic — sizing from the key's recent rate, shrinking near exhaustion.
#include "gateway/slice.h"

#include <gtest/gtest.h>

#include "gateway/limits.h"

namespace ll::gateway {
namespace {

constexpr Time kT0{1'800'000'000'000};

TEST(GrantSlice, AQuarterOfWhatIsThereAtMostAndNothingBelowOneRequest) {
  EXPECT_EQ(GrantSlice(100, 10, 1'000'000), 100);  // plenty: what was asked
  EXPECT_EQ(GrantSlice(1'000, 10, 1'000), 250);    // a quarter of what is there
  EXPECT_EQ(GrantSlice(1'000, 10, 39), 0);         // a quarter is below one request: per request
  EXPECT_EQ(GrantSlice(1'000, 10, 40), 10);
  EXPECT_EQ(GrantSlice(0, 0, 1'000), 0);
  EXPECT_EQ(GrantSlice(5, 0, 3), 0);  // never more than there is
}

// However many gateways ask, in whatever order, the slices of one balance never add up to more
// than it, and they shrink geometrically until only per-request admission is left.
TEST(GrantSlice, SlicesShrinkGeometricallyAndNeverPassWhatIsAvailable) {
  int64_t available = 1'000'000;  // $1.00
  int64_t sliced = 0;
  std::vector<int64_t> grants;
  for (int round = 0; round < 40; ++round) {
    const int64_t g = GrantSlice(/*want=*/500'000, /*min=*/100'000, available);
    available -= g;
    sliced += g;
    grants.push_back(g);
    ASSERT_GE(available, 0);
    ASSERT_EQ(sliced + available, 1'000'000);
  }
  EXPECT_EQ(grants[0], 250'000);
  EXPECT_EQ(grants[1], 187'500);
  EXPECT_EQ(grants.back(), 0);  // what is left (< 4 requests' worth) goes per request, exactly
  EXPECT_LT(available, 400'000);
  EXPECT_GE(available, 300'000);
}

TEST(TokenBucketLending, LentUnitsCountAsTakenUntilRepaidOrConsumed) {
  TokenBucket b(600, kT0);  // 10 per second
  ASSERT_TRUE(b.Lend(400, kT0));
  EXPECT_EQ(b.Remaining(kT0), 200);
  EXPECT_FALSE(b.Lend(201, kT0));
  // A minute later the bucket is full again, less what is still lent.
  EXPECT_EQ(b.Remaining(kT0 + Duration::Seconds(60)), 200);
  b.Consume(100);  // used by the slice: gone, and the bucket may refill to 300
  EXPECT_EQ(b.Remaining(kT0 + Duration::Seconds(60)), 200);
  EXPECT_EQ(b.Remaining(kT0 + Duration::Seconds(70)), 300);
  b.Repay(300, kT0 + Duration::Seconds(70));  // unused: back at once
  EXPECT_EQ(b.lent(), 0);
  EXPECT_EQ(b.Remaining(kT0 + Duration::Seconds(70)), 600);
}

// A slice and the bucket together never admit more than the bucket alone: the units lent plus
// what is left never pass the limit, however the lending and refilling interleave.
TEST(RateLimitsLending, SlicesOfAKeyAndItsBucketNeverPassTheLimit) {
  RateLimits limits;
  const int64_t tpm = 2'000;
  int64_t lent = 0;
  Time t = kT0;
  for (int i = 0; i < 30; ++i) {
    RateLimits::Units u = limits.Lend("key", 0, tpm, {.requests = 0, .tokens = 1'000}, {.requests = 0, .tokens = 101}, t);
    lent += u.tokens;
    RateLimits::Decision d = limits.Take("key", 0, tpm, 0, t);
    ASSERT_LE(lent + d.remaining_tokens, tpm) << i;
    t += Duration::Millis(100);
  }
  EXPECT_GT(lent, 0);
  limits.Report("key", {.requests = 0, .tokens = lent}, {}, 0, 0, t);  // all used
  EXPECT_EQ(limits.Take("key", 0, tpm, 0, t + Duration::Seconds(60)).remaining_tokens, tpm);
}

TEST(SliceRate, TargetIsAboutTheHorizonsWorthAndAtLeastTheLargestRequest) {
  SliceRate rate(Duration::Seconds(2));
  Time t = kT0;
  for (int i = 0; i < 2000; ++i) {  // 100 requests per second for 20 s
    rate.Observe(t, {.micros = 1'000, .requests = 1, .tokens = 50});
    t += Duration::Millis(10);
  }
  const SliceUnits target = rate.Target(t);
  EXPECT_NEAR(target.requests, 200, 10);  // 2 s at 100/s
  EXPECT_NEAR(target.tokens, 10'000, 500);
  EXPECT_NEAR(target.micros, 200'000, 10'000);
  // Idle: the target decays to one request.
  EXPECT_EQ(rate.Target(t + Duration::Seconds(60)).requests, 1);
}

// The gateway's side: admitted and settled in memory, reported, and reconciled with the control
// plane's absolute answer, whatever happened while the report was on its way.
TEST(Slice, AdmitsWithinWhatItHoldsAndReconcilesWithTheAnswer) {
  Slice s("sl_1", /*rpm=*/100, /*tpm=*/10'000, Duration::Seconds(2));
  const SliceUnits one{.micros = 100, .requests = 1, .tokens = 50};
  EXPECT_FALSE(s.Admit(kT0, one));  // nothing held yet: per request
  ASSERT_TRUE(s.WantsReport(kT0));
  SliceReport first = s.MakeReport(kT0, false);
  EXPECT_EQ(first.seq, 1);
  EXPECT_EQ(first.want, (SliceUnits{.micros = 200, .requests = 2, .tokens = 100}));
  EXPECT_EQ(first.min, (SliceUnits{.micros = 100, .requests = 1, .tokens = 50}));
  s.Acknowledge(first, kT0, {.micros = 300, .requests = 3, .tokens = 150}, Duration::Seconds(10));
  EXPECT_EQ(s.free(), (SliceUnits{.micros = 300, .requests = 3, .tokens = 150}));

  ASSERT_TRUE(s.Admit(kT0, one));
  ASSERT_TRUE(s.Admit(kT0, one));
  s.Settle(one, /*cost=*/40, /*tokens=*/30);  // 60 micros come back, 20 tokens go back to the bucket
  EXPECT_EQ(s.free().micros, 300 - 200 + 60);
  ASSERT_TRUE(s.WantsReport(kT0));  // usage to make durable
  SliceReport second = s.MakeReport(kT0, false);
  EXPECT_EQ(second.spent_micros, 40);
  EXPECT_EQ(second.used, (SliceUnits{.micros = 0, .requests = 2, .tokens = 100}));
  EXPECT_EQ(second.tokens_back, 20);
  // While it is on its way, one more request is admitted and settled.
  ASSERT_TRUE(s.Admit(kT0, one));
  s.Settle(one, 40, 50);
  // The control plane charged 40 and took the 2 requests and 100 tokens: it holds 260, 1, 50.
  s.Acknowledge(second, kT0, {.micros = 260, .requests = 1, .tokens = 50}, Duration::Seconds(10));
  // Free: 260 less the second request's reservation (still in flight) and the third's cost
  // (settled, not yet reported); the third's request and tokens are not yet reported either.
  EXPECT_EQ(s.free(), (SliceUnits{.micros = 120, .requests = 0, .tokens = 0}));
  EXPECT_EQ(s.in_flight(), 1);
}

TEST(Slice, NearExhaustionAndNearItsLeasesEndItAdmitsNothing) {
  Slice s("sl_1", 0, 0, Duration::Seconds(2));
  const SliceUnits one{.micros = 100, .requests = 1, .tokens = 50};
  (void)s.Admit(kT0, one);
  SliceReport r = s.MakeReport(kT0, false);
  s.Acknowledge(r, kT0, {.micros = 150, .requests = 0, .tokens = 0}, Duration::Seconds(8));
  ASSERT_TRUE(s.Admit(kT0, one));   // limits off: money only
  EXPECT_FALSE(s.Admit(kT0, one));  // 50 left: less than a request's worst case
  s.Settle(one, 40, 60);  // 60 of its 100 come back: 110 free
  // The lease (8 s from the report) is renewed before a third of it is left, and nothing is
  // admitted in its last quarter.
  EXPECT_TRUE(s.Admit(kT0 + Duration::Seconds(5), one));
  s.GiveBack(one);
  EXPECT_FALSE(s.Admit(kT0 + Duration::Seconds(7), one));
  // Closing gives back everything free.
  ASSERT_FALSE(s.reporting());
  SliceReport last = s.MakeReport(kT0 + Duration::Seconds(7), /*close=*/true);
  EXPECT_TRUE(last.close);
  EXPECT_EQ(last.give_back.micros, 110);
  EXPECT_EQ(s.free().micros, 0);
}

}  // namespace
}  // namespace ll::gateway
