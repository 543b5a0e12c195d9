// The spot market's flash tier: a flash lease pays the clearing price less the flash discount
// (never below the floor), and bids in the uniform auction as the standard price its max
// price matches, so that the discount does not make it lose to a lower standard bid.
#include <gtest/gtest.h>

#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "step/step.h"

namespace ll::step {
namespace {

using alloc::HolderClass;

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z
const Money kFloor = Money::Micros(225'600);

std::unique_ptr<alloc::Allocator> TwoNodes() {
  alloc::FleetSpec f;
  f.pools = {"p"};
  for (int i = 0; i < 2; ++i) f.nodes.push_back({"n" + std::to_string(i), PoolId{0}, RackId{0}, 8});
  alloc::AllocatorOptions o;
  o.floor = kFloor;
  auto policy = alloc::MakePolicy("spot-all", {});
  EXPECT_TRUE(policy.ok());
  return std::make_unique<alloc::Allocator>(f, o, std::move(*policy), nullptr);
}

TEST(FlashMarket, FlashPaysTheDiscountAndBidsAsTheStandardPriceItMatches) {
  auto a = TwoNodes();
  const Time t{kMonday};
  SpotMarket m(kFloor);
  m.set_flash_discount(300);
  auto standard = a->PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, kFloor, Money::Micros(4'000'000), 0, t);
  // $2.10 on the flash tier matches $3.00 on the standard one.
  int placed = -1;
  auto flash = PlaceSpot(*a, {0}, 8, kFloor, Money::Micros(2'100'000), 0, t, &placed, Duration::Seconds(30));
  ASSERT_TRUE(standard.ok() && flash.ok());
  ASSERT_TRUE(m.Due(*a, t, /*requests_waiting=*/true));
  std::vector<SpotMarket::Holder> holders = {{1, *standard}, {2, *flash}};
  std::vector<HolderId> repriced;
  auto out = m.Clear(*a, t, holders, {{100, 8, Money::Micros(2'500'000)}},
                     [&](uint64_t, HolderId id, Money) { repriced.push_back(id); });
  EXPECT_TRUE(out.winners.empty()) << "the $2.50 request loses to the flash lease's $3.00";
  EXPECT_EQ(m.price(), Money::Micros(2'500'000));  // the highest losing bid
  EXPECT_EQ(a->holder(*standard).price, Money::Micros(2'500'000));
  EXPECT_EQ(a->holder(*flash).price, Money::Micros(1'750'000));  // 30% off
  EXPECT_EQ(m.flash_price(), Money::Micros(1'750'000));
  EXPECT_EQ(a->holder(*flash).state, alloc::HolderState::kActive);
  EXPECT_EQ(repriced.size(), 2u);
}

TEST(FlashMarket, NeverBelowTheFloor) {
  SpotMarket m(kFloor);
  m.set_flash_discount(300);
  EXPECT_EQ(m.price(), kFloor);
  EXPECT_EQ(m.flash_price(), kFloor);  // 30% off the floor would be below it
  m.set_floor(Money::Micros(100'000));
  EXPECT_EQ(market::Discounted(Money::Micros(1'000'000), 300, Money::Micros(100'000)), Money::Micros(700'000));
}

}  // namespace
}  // namespace ll::step
