// What the GPUs sold right now harvested, by the one definition `landlord sim`, `/metrics` and
// the dashboard share (docs/sim.md, "Harvest"): a sold GPU counts as harvest only where the owner
// alone (the `baseline` policy) would have left it idle; the GPUs sold in a pool while the owner's
// demand there waited are reported on their own. So harvest over the owner-alone idle GPU-hours
// is at most 1 by construction.
#pragma once

#include <vector>

#include "alloc/allocator.h"
#include "core/gpu.h"

namespace ll::alloc {

struct SoldSplit {
  Gpus idle_alone = 0;          // GPUs the owner alone would leave idle, over the pools
  Gpus harvested = 0;           // sold GPUs within that, per pool
  Gpus while_owner_waited = 0;  // sold GPUs in pools whose owner demand waits, up to what waits
};

// `idle_alone` (by pool) is what the owner alone leaves idle, as a baseline run recorded it; when
// null it is each pool's capacity less the owner's demand (what the owner alone would hold).
SoldSplit SplitSold(const Allocator& alloc, const std::vector<Gpus>* idle_alone);

}  // namespace ll::alloc
