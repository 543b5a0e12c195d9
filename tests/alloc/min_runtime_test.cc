// The owner's minimum runtime for spot leases: a lease inside it is not noticed for a policy
// limit (the limit waits for it), and for the owner's own demand only after every lease past
// it, however the leases rank otherwise.
#include <gtest/gtest.h>

#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"

namespace ll::alloc {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z
const Money kFloor = Money::Micros(225'600);

struct Noticed final : Listener {
  std::vector<HolderId> ids;
  void OnNotice(const Holder& h, Time, NoticeReason) override { ids.push_back(h.id); }
};

// A sell limit the test sets.
class SetLimit final : public Policy {
 public:
  explicit SetLimit(const Gpus* limit) : limit_(limit) {}
  const std::string& name() const override {
    static const std::string kName = "set-limit";
    return kName;
  }
  Gpus SellLimit(const PoolView&, Time) override { return *limit_; }

 private:
  const Gpus* limit_;
};

// Three 8-GPU nodes, a minimum runtime of 10 minutes.
class MinRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    FleetSpec f;
    f.pools = {"p"};
    for (int i = 0; i < 3; ++i) f.nodes.push_back({"n" + std::to_string(i), PoolId{0}, RackId{0}, 8});
    AllocatorOptions o;
    o.floor = kFloor;
    o.min_runtime = Duration::Minutes(10);
    a_ = std::make_unique<Allocator>(f, o, std::make_unique<SetLimit>(&limit_), &n_);
  }
  HolderId Spot(Money price, Time t) {
    auto id = a_->PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, price, price, 0, t);
    EXPECT_TRUE(id.ok());
    return *id;
  }
  Gpus limit_ = 24;
  Noticed n_;
  std::unique_ptr<Allocator> a_;
};

TEST_F(MinRuntime, OwnerDemandTakesTheLeasesPastItFirstThenTheOthers) {
  const Time t0{kMonday};
  const Time t1 = t0 + Duration::Minutes(8);
  HolderId cheap_young = Spot(kFloor, t1);  // ranks first by price, but is inside its 10 minutes
  HolderId old = Spot(Money::Micros(kFloor.micros * 2), t0);
  HolderId young = Spot(Money::Micros(kFloor.micros * 3), t1);
  const Time t = t0 + Duration::Minutes(11);  // `old` is past its minimum runtime, the others not
  a_->SetInternalDemand(PoolId{0}, 8, t);
  ASSERT_EQ(n_.ids, std::vector<HolderId>{old});
  // More than the leases past it: the young ones go too, cheapest first.
  a_->SetInternalDemand(PoolId{0}, 24, t);
  EXPECT_EQ(n_.ids, (std::vector<HolderId>{old, cheap_young, young}));
  a_->CheckInvariants(t);
}

TEST_F(MinRuntime, APolicyLimitWaitsForIt) {
  const Time t0{kMonday};
  HolderId a = Spot(kFloor, t0);
  HolderId b = Spot(kFloor, t0 + Duration::Minutes(5));
  limit_ = 8;  // 8 GPUs over it
  a_->Rebalance(t0 + Duration::Minutes(6));
  EXPECT_TRUE(n_.ids.empty()) << "both inside their minimum runtime";
  a_->Rebalance(t0 + Duration::Minutes(10));
  ASSERT_EQ(n_.ids, std::vector<HolderId>{a});  // past it now; `b` keeps the rest of the limit
  a_->AdvanceTo(t0 + Duration::Minutes(16));  // `a` left at its reclaim_at
  a_->Rebalance(t0 + Duration::Minutes(16));
  EXPECT_EQ(n_.ids.size(), 1u);
  EXPECT_EQ(a_->holder(a).state, HolderState::kEnded);
  EXPECT_EQ(a_->holder(b).state, HolderState::kActive);
  a_->CheckInvariants(t0 + Duration::Minutes(16));
}

}  // namespace
}  // namespace ll::alloc
