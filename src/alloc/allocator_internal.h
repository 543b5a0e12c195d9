// Private to the allocator's own files (allocator.cc, owner_demand.cc, invariants.cc): the
// per-node state and the claim-cost fill that both the job scheduler and the invariant check
// use. Not for use outside src/alloc.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "alloc/allocator.h"

namespace ll::alloc {

struct Allocator::NodeState {
  PoolId pool;
  Gpus gpus = 0;
  Gpus free = 0;
  Gpus internal = 0;
  Gpus outside = 0;
  HolderId claim;  // a waiting internal job keeps this node
  uint32_t bucket_pos = 0;
  std::vector<std::pair<HolderId, Gpus>> shares;
};

namespace internal {

// costs[k] for k in 1..stride-1: notice `outsiders` (cheapest first) until k GPUs come back.
template <typename Cost, typename Outsiders>
inline void FillClaimCosts(Gpus coming, const Outsiders& outsiders, Cost* costs, size_t stride) {
  Cost c{0, 0};
  size_t next = 0;
  for (Gpus k = 1; k < static_cast<Gpus>(stride); ++k) {
    while (coming < k && next < outsiders.size()) {
      auto [price, g, hid] = outsiders[next++];
      coming += g;
      ++c.victims;
      c.revenue += price * g;
    }
    costs[k] = coming >= k ? c : Cost{};
  }
}

}  // namespace internal

}  // namespace ll::alloc
