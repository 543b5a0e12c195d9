#include "step/step.h"

#include <algorithm>

namespace ll::step {

void Step(alloc::Allocator& alloc, Phases& phases, Time now) {
  phases.Integrate(now);
  alloc.AdvanceTo(now);
  phases.StartBookings(now);
  phases.SetDemand(now);
  alloc.Rebalance(now);
  phases.Market(now);
}

bool SpotMarket::Due(alloc::Allocator& alloc, Time now, bool requests_waiting) {
  Gpus sellable = 0;
  for (int p = 0; p < alloc.pool_count(); ++p) sellable += alloc.Sellable(PoolId{static_cast<uint32_t>(p)}, now);
  if (!requests_waiting && version_ == cleared_.version && sellable == cleared_.sellable && floor_ == cleared_.floor) {
    return false;
  }
  cleared_ = {version_, sellable, floor_};
  return true;
}

SpotMarket::Result SpotMarket::Clear(alloc::Allocator& alloc, Time now, std::span<const Holder> holders,
                                     std::vector<market::Bid> waiting,
                                     const std::function<void(uint64_t, HolderId, Money)>& repriced) {
  Result out;
  const Gpus sellable = cleared_.sellable;
  std::vector<market::Bid> bids;
  Gpus supply = sellable;
  for (const Holder& h : holders) {
    const alloc::Holder& a = alloc.holder(h.id);
    if (a.state != alloc::HolderState::kActive) continue;
    bids.push_back({h.key, a.gpus, a.max_price});
    supply += a.gpus;
  }
  std::vector<uint64_t> waiting_keys;
  for (const market::Bid& b : waiting) waiting_keys.push_back(b.key);
  bids.insert(bids.end(), waiting.begin(), waiting.end());
  market::Clearing c = market::ClearSpot(std::move(bids), supply, floor_);
  price_ = c.price;
  auto is_waiting = [&](uint64_t key) { return std::find(waiting_keys.begin(), waiting_keys.end(), key) != waiting_keys.end(); };
  // Keys are unique across holders and requests (the driver's ids); holders are found by key.
  auto holder_of = [&](uint64_t key) {
    for (const Holder& h : holders) {
      if (h.key == key) return h.id;
    }
    return HolderId{};
  };
  for (uint64_t key : c.losers) {
    if (!is_waiting(key)) alloc.Notice(holder_of(key), alloc::NoticeReason::kPriceAboveMax, now);
  }
  for (uint64_t key : c.winners) {
    if (is_waiting(key)) {
      out.winners.push_back(key);
      continue;
    }
    HolderId id = holder_of(key);
    Money old = alloc.holder(id).price;
    if (old == price_) continue;
    alloc.SetPrice(id, price_);
    repriced(key, id, old);
  }
  return out;
}

std::vector<int> CandidatePools(int pool_count, int pool) {
  std::vector<int> pools;
  for (int p = 0; p < pool_count; ++p) {
    if (pool < 0 || p == pool) pools.push_back(p);
  }
  return pools;
}

Result<HolderId> PlaceSpot(alloc::Allocator& alloc, std::vector<int> pools, Gpus gpus, Money price, Money max_price,
                           uint64_t tag, Time now, int* placed_pool) {
  std::stable_sort(pools.begin(), pools.end(), [&](int a, int b) {
    return alloc.Sellable(PoolId{static_cast<uint32_t>(a)}, now) > alloc.Sellable(PoolId{static_cast<uint32_t>(b)}, now);
  });
  Status last = Status::Exhausted("no sellable GPUs");
  for (int p : pools) {
    *placed_pool = p;
    auto id = alloc.PlaceOutside(alloc::HolderClass::kSpot, PoolId{static_cast<uint32_t>(p)}, gpus, price, max_price, tag, now);
    if (id.ok()) return id;
    last = id.status();
  }
  return last;
}

Result<HolderId> PlaceReserved(alloc::Allocator& alloc, std::vector<int> pools, Gpus gpus, Time end, Money price,
                               uint64_t tag, Time now, int* placed_pool) {
  auto room = [&](int p) { return alloc.ReservedRoom(PoolId{static_cast<uint32_t>(p)}, end, now); };
  std::stable_sort(pools.begin(), pools.end(), [&](int a, int b) { return room(a) > room(b); });
  Status last = Status::Exhausted("no pool can hold the term");
  for (int p : pools) {
    *placed_pool = p;
    auto id = alloc.PlaceReserved(PoolId{static_cast<uint32_t>(p)}, gpus, end, price, tag, now);
    if (id.ok()) return id;
    last = id.status();
  }
  return last;
}

Money ReservedPrice(const market::PriceBook& prices, Duration term, Money floor) {
  const market::ReservedTerm* best = nullptr;
  for (const auto& t : prices.reserved_terms) {
    if (t.term <= term && (best == nullptr || t.term > best->term)) best = &t;
  }
  market::ReservedTerm none{term, 0};
  return std::max(floor, prices.ReservedPrice(best != nullptr ? *best : none));
}

}  // namespace ll::step
