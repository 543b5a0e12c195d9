// The flash tier: spot leases on a shorter notice, reclaimed before standard ones whatever
// their price, given their own (shorter) notice, and the only ones sold past the policy's
// standard limit (landlord sells what its cooldown holds back as flash).
#include <gtest/gtest.h>

#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"

namespace ll::alloc {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z
const Money kFloor = Money::Micros(225'600);

struct Notices final : Listener {
  std::vector<std::pair<HolderId, Time>> noticed;  // (holder, reclaim_at)
  void OnNotice(const Holder& h, Time, NoticeReason) override { noticed.emplace_back(h.id, h.reclaim_at); }
};

FleetSpec OnePool(int nodes) {
  FleetSpec f;
  f.pools = {"p"};
  for (int i = 0; i < nodes; ++i) f.nodes.push_back({"n" + std::to_string(i), PoolId{0}, RackId{0}, 8});
  return f;
}

std::unique_ptr<Policy> Make(const std::string& name, PolicyContext ctx = {}) {
  auto p = MakePolicy(name, ctx);
  EXPECT_TRUE(p.ok());
  return std::move(*p);
}

AllocatorOptions AtTheFloor() {
  AllocatorOptions o;
  o.floor = kFloor;
  return o;
}

// Two nodes sold by `spot-all`, and what the owner's wanting 8 of them does.
struct TwoNodes {
  Notices n;
  Allocator a{OnePool(2), AtTheFloor(), Make("spot-all"), &n};
  // The owner wants 8 GPUs at `t`: `flash` alone is noticed, to leave after its 30 s.
  void OwnerTakesOnly(HolderId flash, Time t) {
    a.SetInternalDemand(PoolId{0}, 8, t);
    ASSERT_EQ(n.noticed.size(), 1u);
    EXPECT_EQ(n.noticed[0].first, flash);
    EXPECT_EQ(n.noticed[0].second, t + Duration::Seconds(30));
    a.CheckInvariants(t);
  }
};

TEST(FlashTier, ReclaimedFirstWithItsOwnNotice) {
  TwoNodes f;
  Allocator& a = f.a;
  const Time t{kMonday};
  const Money cheap = kFloor, dear = Money::Micros(kFloor.micros * 2);
  auto standard = a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, cheap, cheap, 0, t);
  auto flash = a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, dear, dear, 0, t, Duration::Seconds(30));
  ASSERT_TRUE(standard.ok() && flash.ok());
  EXPECT_EQ(a.holder(*flash).notice, Duration::Seconds(30));
  EXPECT_EQ(a.holder(*standard).notice, Duration{});  // the allocator's notice
  // The owner wants 8: the flash lease goes, though it pays more, and after 30 s.
  f.OwnerTakesOnly(*flash, t);
  a.AdvanceTo(t + Duration::Seconds(30));
  EXPECT_EQ(a.pool(PoolId{0}).internal_held, 8);
  EXPECT_EQ(a.holder(*standard).state, HolderState::kActive);
  a.CheckInvariants(t + Duration::Seconds(30));
}

// A server restart puts a flash lease back on its tier: reclaimed first, with its own notice.
TEST(FlashTier, RestoredWithItsNotice) {
  TwoNodes f;
  Allocator& a = f.a;
  const Time t{kMonday};
  Allocator::RestoreSpec flash;
  flash.pool = PoolId{0};
  flash.shares = {{NodeId{0}, 8}};
  flash.price = flash.max_price = Money::Micros(kFloor.micros * 3);
  flash.created = flash.started = t;
  flash.notice = Duration::Seconds(30);
  Allocator::RestoreSpec standard = flash;
  standard.shares = {{NodeId{1}, 8}};
  standard.price = standard.max_price = kFloor;
  standard.notice = Duration{};
  auto restored = a.Restore(flash);
  ASSERT_TRUE(restored.ok() && a.Restore(standard).ok());
  EXPECT_EQ(a.holder(*restored).notice, Duration::Seconds(30));
  f.OwnerTakesOnly(*restored, t);
}

TEST(FlashTier, LandlordSellsItsCooldownHoldAsFlashOnly) {
  PolicyContext ctx;
  ctx.warmup = Duration{};
  ctx.flash_notice = Duration::Seconds(30);
  ctx.delay_budget = 1;  // no headroom: the holds alone decide
  AllocatorOptions o;
  o.floor = kFloor;
  Notices n;
  Allocator a(OnePool(4), o, Make("landlord", ctx), &n);
  Time t{kMonday};
  a.SetInternalDemand(PoolId{0}, 24, t);
  t = t + Duration::Minutes(10);
  a.SetInternalDemand(PoolId{0}, 8, t);  // gave 16 back: the 30-minute cooldown holds them
  t = t + Duration::Minutes(6);           // past the flash tier's 5-minute cooldown
  a.Rebalance(t);
  EXPECT_EQ(a.Sellable(PoolId{0}, t), 8);                // standard: only what was never wanted
  EXPECT_EQ(a.Sellable(PoolId{0}, t, /*flash=*/true), 24);  // flash: all the owner does not want
  EXPECT_FALSE(a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 16, kFloor, kFloor, 0, t).ok());
  ASSERT_TRUE(a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, kFloor, kFloor, 0, t).ok());
  ASSERT_TRUE(a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 16, kFloor, kFloor, 0, t, Duration::Seconds(30)).ok());
  EXPECT_EQ(a.Sellable(PoolId{0}, t, true), 0);
  a.CheckInvariants(t);
}

// The hour-of-week hazards: where the owner took flash leases back, each time waiting their
// notice, often for the GPU-hours it left unwanted, the pool sells the standard tier alone
// (with `flash_max_delay` below that learned delay); above it, flash too.
TEST(FlashTier, LandlordSellsNoFlashWhereTheOwnerTookItBack) {
  for (double max_delay : {0.01, 0.1}) {
    PolicyContext ctx;
    ctx.warmup = Duration{};
    ctx.flash_notice = Duration::Seconds(30);
    ctx.delay_budget = 1;  // no headroom: the holds and the hazards alone decide
    ctx.flash_max_delay = max_delay;
    Notices n;
    Allocator a(OnePool(4), AtTheFloor(), Make("landlord", ctx), &n);
    const Time t{kMonday};
    const Duration flash = Duration::Seconds(30);
    a.SetInternalDemand(PoolId{0}, 8, t);
    Time now = t + Duration::Minutes(6);
    a.SetInternalDemand(PoolId{0}, 8, now);  // re-reported: the headroom's budget counts these 6 minutes
    a.Rebalance(now);
    ASSERT_EQ(a.Sellable(PoolId{0}, now, /*flash=*/true), 24);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, kFloor, kFloor, 0, now, flash).ok());
    // The owner wants 16 more: two flash leases go. It left 24 GPUs unwanted for 8 minutes and
    // 8 for the next 2: 16 GPUs taken back over 3.47 GPU-hours, × 30 s = 0.038.
    now = t + Duration::Minutes(8);
    a.SetInternalDemand(PoolId{0}, 24, now);
    ASSERT_EQ(n.noticed.size(), 2u);
    now = t + Duration::Minutes(10);
    a.AdvanceTo(now);
    a.SetInternalDemand(PoolId{0}, 8, now);
    now = t + Duration::Minutes(16);  // past the flash tier's 5-minute cooldown
    a.Rebalance(now);
    // The third flash lease still holds 8; the standard tier's 30-minute cooldown holds 24.
    EXPECT_EQ(a.Sellable(PoolId{0}, now, /*flash=*/true), max_delay < 0.038 ? 0 : 16) << max_delay;
    a.CheckInvariants(now);
  }
}

}  // namespace
}  // namespace ll::alloc
