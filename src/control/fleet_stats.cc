#include "control/fleet_stats.h"

#include "alloc/harvest.h"

namespace ll::control {

void FleetStats::Integrate(const alloc::Allocator& alloc, __int128 rate, int64_t ms) {
  totals_.capacity_ms += static_cast<__int128>(alloc.TotalCapacity()) * ms;
  totals_.internal_ms += static_cast<__int128>(alloc.TotalInternal()) * ms;
  totals_.reserved_ms += static_cast<__int128>(alloc.TotalReserved()) * ms;
  totals_.spot_ms += static_cast<__int128>(alloc.TotalSpot()) * ms;
  totals_.inference_ms += static_cast<__int128>(alloc.TotalInference()) * ms;
  totals_.waiting_ms += static_cast<__int128>(alloc.InternalWaiting()) * ms;
  totals_.revenue_rate_ms += rate * ms;
  const alloc::SoldSplit split = alloc::SplitSold(alloc, nullptr);
  totals_.idle_alone_ms += static_cast<__int128>(split.idle_alone) * ms;
  totals_.harvested_ms += static_cast<__int128>(split.harvested) * ms;
  totals_.sold_while_owner_waited_ms += static_cast<__int128>(split.while_owner_waited) * ms;
}

FleetStats::Sample FleetStats::Occupancy(const alloc::Allocator& alloc, Time now) const {
  Sample s;
  s.t = now;
  s.internal = alloc.TotalInternal();
  s.reserved = alloc.TotalReserved();
  s.spot = alloc.TotalSpot();
  s.inference = alloc.TotalInference();
  s.free = alloc.TotalCapacity() - s.internal - s.reserved - s.spot - s.inference;
  s.revenue_micros = totals_.revenue_micros();
  return s;
}

void FleetStats::Add(const Sample& s) {
  samples_.push_back(s);
  if (samples_.size() > 10'000) samples_.erase(samples_.begin(), samples_.begin() + 1'000);
  last_sample_ = s.t;
}

}  // namespace ll::control
