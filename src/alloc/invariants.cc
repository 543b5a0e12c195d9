// Allocator::CheckInvariants: every rule of DESIGN.md recomputed from the nodes and holders,
// apart from the allocator's decision code (for tests and `landlord sim --check-invariants`).
#include <algorithm>
#include <tuple>
#include <vector>

#include "alloc/allocator.h"
#include "alloc/allocator_internal.h"
#include "core/check.h"

namespace ll::alloc {

using internal::FillClaimCosts;

void Allocator::CheckInvariants(Time now) const {
  std::vector<PoolCounters> pc(pools_.size());
  for (size_t p = 0; p < pools_.size(); ++p) {
    pc[p].capacity = pools_[p].capacity;
    pc[p].internal_want = pools_[p].internal_want;
  }
  std::vector<Gpus> held(holders_.size(), 0);
  const size_t stride = static_cast<size_t>(fleet_.max_node_gpus()) + 1;
  std::vector<std::tuple<int64_t, Gpus, HolderId>> outsiders;
  std::vector<ClaimCost> fresh(stride);
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    const NodeState& n = nodes_[i];
    Gpus sum = 0, in = 0, out = 0;
    for (auto& [hid, g] : n.shares) {
      LL_CHECK(g > 0);
      const Holder& h = holders_[hid.v];
      LL_CHECK(h.state == HolderState::kActive || h.state == HolderState::kNoticed);
      sum += g;
      (h.outside() ? out : in) += g;
      held[hid.v] += g;
    }
    // No GPU held twice; holdings never exceed capacity.
    LL_CHECK(sum + n.free == n.gpus && n.free >= 0 && n.free <= n.gpus);
    LL_CHECK(in == n.internal && out == n.outside);
    if (!cost_dirty_[i]) {  // the cached claim costs are those of the node as it is now
      FillClaimCosts(ActiveOutsiders(NodeId{i}, outsiders), outsiders, fresh.data(), stride);
      for (size_t k = 1; k < stride; ++k) LL_CHECK(fresh[k] == claim_cost_[i * stride + k]);
    }
    PoolCounters& c = pc[n.pool.v];
    c.free += n.free;
    if (!n.claim.valid()) {
      c.free_unclaimed += n.free;
      const auto& b = bucket_[n.pool.v][n.free];
      LL_CHECK(n.bucket_pos < b.size() && b[n.bucket_pos].v == i);
    } else {
      const Holder& j = holders_[n.claim.v];
      LL_CHECK(j.state == HolderState::kQueued);
    }
  }
  for (const Holder& h : holders_) {
    LL_CHECK(held[h.id.v] == h.gpus);
    if (h.state == HolderState::kEnded || h.state == HolderState::kQueued) {
      LL_CHECK(h.gpus == 0);
      continue;
    }
    PoolCounters& c = pc[h.pool.v];
    switch (h.cls) {
      case HolderClass::kInternal: c.internal_held += h.gpus; break;
      case HolderClass::kReserved: c.reserved += h.gpus; break;
      case HolderClass::kSpot: c.spot += h.gpus; break;
      case HolderClass::kInference: c.inference += h.gpus; break;
    }
    if (h.state == HolderState::kNoticed) {
      c.noticed += h.gpus;
      LL_CHECK(h.cls != HolderClass::kReserved);  // reserved never preempted
      LL_CHECK(h.reclaim_at > now);               // notice honoured: still holding until reclaim_at
      // The full notice, never less (exactly the notice, unless the owner changed it since).
      Duration d = h.cls == HolderClass::kInference
                       ? std::min(options_.inference_drain, shortest_notice_) : shortest_notice_;
      if (h.notice.ms > 0) d = std::min(d, h.notice);  // its tier's notice (flash)
      if (!notice_changed_) {
        LL_CHECK(h.reclaim_at - h.noticed_at == d);
      } else {
        LL_CHECK(h.reclaim_at - h.noticed_at >= d);
      }
    }
    // Nothing sold below the floor (a noticed holder keeps the price it had).
    if (h.outside() && h.state == HolderState::kActive) LL_CHECK(h.price >= options_.floor);
    if (h.cls == HolderClass::kReserved) LL_CHECK(h.term_end > now);
  }
  for (size_t p = 0; p < pools_.size(); ++p) {
    const PoolCounters& a = pools_[p];
    const PoolCounters& b = pc[p];
    LL_CHECK(a.free == b.free && a.free_unclaimed == b.free_unclaimed);
    LL_CHECK(a.internal_held == b.internal_held && a.reserved == b.reserved);
    LL_CHECK(a.spot == b.spot && a.inference == b.inference && a.noticed == b.noticed);
    LL_CHECK(a.free + a.internal_held + a.reserved + a.spot + a.inference == a.capacity);
  }
  LL_CHECK(deadlines_.empty() || deadlines_.top().first > now.ms);
}

}  // namespace ll::alloc
