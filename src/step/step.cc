#include "step/step.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

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
    bids.push_back({h.key, a.gpus, StandardBid(a)});
    supply += a.gpus;
  }
  std::unordered_set<uint64_t> waiting_keys;
  for (const market::Bid& b : waiting) waiting_keys.insert(b.key);
  bids.insert(bids.end(), waiting.begin(), waiting.end());
  market::Clearing c = market::ClearSpot(std::move(bids), supply, floor_);
  price_ = c.price;
  auto is_waiting = [&](uint64_t key) { return waiting_keys.contains(key); };
  // Keys are unique across holders and requests (the driver's ids); holders are found by key.
  std::unordered_map<uint64_t, HolderId> by_key;
  by_key.reserve(holders.size());
  for (const Holder& h : holders) by_key.emplace(h.key, h.id);
  auto holder_of = [&](uint64_t key) { return by_key.at(key); };
  for (uint64_t key : c.losers) {
    if (!is_waiting(key)) alloc.Notice(holder_of(key), alloc::NoticeReason::kPriceAboveMax, now);
  }
  for (uint64_t key : c.winners) {
    if (is_waiting(key)) {
      out.winners.push_back(key);
      continue;
    }
    HolderId id = holder_of(key);
    const Money old = alloc.holder(id).price;
    const Money now_price = PriceFor(alloc.holder(id));
    if (old == now_price) continue;
    alloc.SetPrice(id, now_price);
    repriced(key, id, old);
  }
  return out;
}

Money SpotMarket::StandardBid(const alloc::Holder& h) const {
  if (h.notice.ms <= 0 || flash_discount_permille_ <= 0) return h.max_price;
  const __int128 v = static_cast<__int128>(h.max_price.micros) * 1000 / (1000 - flash_discount_permille_);
  return Money::Micros(static_cast<int64_t>(std::min<__int128>(v, INT64_MAX)));
}

std::vector<int> CandidatePools(int pool_count, int pool) {
  std::vector<int> pools;
  for (int p = 0; p < pool_count; ++p) {
    if (pool < 0 || p == pool) pools.push_back(p);
  }
  return pools;
}

Result<HolderId> PlaceSpot(alloc::Allocator& alloc, std::vector<int> pools, Gpus gpus, Money price, Money max_price,
                           uint64_t tag, Time now, int* placed_pool, Duration notice) {
  const bool flash = notice.ms > 0 && notice < alloc.options().notice;
  auto sellable = [&](int p) { return alloc.Sellable(PoolId{static_cast<uint32_t>(p)}, now, flash); };
  std::stable_sort(pools.begin(), pools.end(), [&](int a, int b) { return sellable(a) > sellable(b); });
  Status last = Status::Exhausted("no sellable GPUs");
  for (int p : pools) {
    *placed_pool = p;
    auto id = alloc.PlaceOutside(alloc::HolderClass::kSpot, PoolId{static_cast<uint32_t>(p)}, gpus, price, max_price,
                                 tag, now, notice);
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
