// The owner's demand on the allocator: occupancy levels per pool, or a queue of jobs placed by
// topology, which keep nodes (claims) and reclaim the outsiders there when they do not fit.
#include <algorithm>

#include <fmt/format.h>

#include "alloc/allocator.h"
#include "alloc/allocator_internal.h"
#include "core/check.h"

namespace ll::alloc {

using internal::FillClaimCosts;

void Allocator::SetInternalDemand(PoolId pool, Gpus level, Time now) {
  LL_CHECK(options_.occupancy);
  PoolCounters& pc = pools_[pool.v];
  pc.internal_want = std::clamp(level, 0, pc.capacity);
  Holder& ih = holders_[pool_internal_[pool.v].v];
  if (ih.gpus > pc.internal_want) ShrinkInternal(pool, ih.gpus - pc.internal_want);
  GrowInternal(pool, now);
  policy_->OnDemand(View(pool), now);
  EnforceLimit(pool, now);
}

void Allocator::GrowInternal(PoolId pool, Time now) {
  PoolCounters& pc = pools_[pool.v];
  Holder& ih = holders_[pool_internal_[pool.v].v];
  Gpus need = pc.internal_want - ih.gpus;
  // Fill partly used nodes first so whole nodes stay free for sale.
  auto& buckets = bucket_[pool.v];
  for (size_t k = 1; k < buckets.size() && need > 0; ++k) {
    while (!buckets[k].empty() && need > 0) {
      Gpus g = std::min<Gpus>(static_cast<Gpus>(k), need);
      Take(ih, buckets[k].back(), g);
      need -= g;
    }
  }
  UpdateWaiting(pool);
  // What free GPUs and running notices do not cover must be reclaimed now.
  Gpus uncovered = need - pc.noticed;
  if (uncovered > 0) ReclaimFor(pool, uncovered, NoticeReason::kInternalDemand, now, now);
}

void Allocator::ShrinkInternal(PoolId pool, Gpus by) {
  Holder& ih = holders_[pool_internal_[pool.v].v];
  // Give back from the nodes it uses least, so whole nodes become free.
  std::vector<Share> shares = ih.shares;
  std::sort(shares.begin(), shares.end(), [](const Share& a, const Share& b) {
    return a.gpus != b.gpus ? a.gpus < b.gpus : a.node < b.node;
  });
  for (const Share& s : shares) {
    if (by == 0) break;
    Gpus g = std::min(by, s.gpus);
    Give(ih, s.node, g);
    by -= g;
  }
  UpdateWaiting(pool);
}

Result<HolderId> Allocator::SubmitJob(PoolId pool, Gpus gpus, int priority, uint64_t tag, Time now) {
  LL_CHECK(!options_.occupancy);
  if (!pool.valid() || pool.v >= pools_.size()) return Status::Invalid("job: unknown pool");
  Gpus want = RoundToNodes(pool, gpus);
  if (gpus < 1 || want > pools_[pool.v].capacity) {
    return Status::Invalid(fmt::format("job: `gpus` must be 1..{} in pool `{}`, got {}",
                                       pools_[pool.v].capacity, fleet_.pools()[pool.v], gpus));
  }
  Holder& job = NewHolder(HolderClass::kInternal, pool, want, now, tag);
  job.priority = priority;
  HolderId id = job.id;
  auto& q = job_queue_[pool.v];
  // Higher priority first; FIFO within a priority.
  auto pos = std::find_if(q.begin(), q.end(), [&](HolderId o) { return holders_[o.v].priority < priority; });
  q.insert(pos, id);
  PoolCounters& pc = pools_[pool.v];
  pc.internal_want = std::min(pc.capacity, pc.internal_want + want);
  ScheduleJobs(pool, now);
  policy_->OnDemand(View(pool), now);
  EnforceLimit(pool, now);
  return id;
}

void Allocator::RemoveFromQueue(Holder& job) {
  auto& q = job_queue_[job.pool.v];
  q.erase(std::find(q.begin(), q.end(), job.id));
}

void Allocator::FinishJob(HolderId id, Time now) {
  Holder& job = holders_[id.v];
  LL_CHECK(job.cls == HolderClass::kInternal && job.state != HolderState::kEnded);
  PoolId pool = job.pool;
  if (job.state == HolderState::kQueued) {
    RemoveFromQueue(job);
    Unclaim(job);
  }
  End(job, now, EndReason::kFinished);
  // internal_want is Σ want of live jobs, capped at capacity: recompute exactly.
  PoolCounters& pc = pools_[pool.v];
  int64_t sum = pc.internal_held;
  for (HolderId q : job_queue_[pool.v]) sum += holders_[q.v].want;
  pc.internal_want = static_cast<Gpus>(std::min<int64_t>(sum, pc.capacity));
  AfterCapacityChange(pool, now);
  policy_->OnDemand(View(pool), now);
}

void Allocator::Claim(Holder& job, NodeId id) {
  NodeState& n = nodes_[id.v];
  LL_CHECK(!n.claim.valid());
  LeaveBucket(id);  // no one else may be placed here
  pools_[n.pool.v].free_unclaimed -= n.free;
  n.claim = job.id;
  job.claimed.push_back(id);
}

void Allocator::Unclaim(Holder& job) {
  for (NodeId id : job.claimed) {
    NodeState& n = nodes_[id.v];
    LL_CHECK(n.claim == job.id);
    n.claim = HolderId{};
    auto& to = bucket_[n.pool.v][n.free];
    n.bucket_pos = static_cast<uint32_t>(to.size());
    to.push_back(id);
    pools_[n.pool.v].free_unclaimed += n.free;
  }
  job.claimed.clear();
}

bool Allocator::TryStartJob(Holder& job, Time now) {
  if (!job.claimed.empty()) {
    Gpus free = 0;
    for (NodeId id : job.claimed) free += nodes_[id.v].free;
    if (free < job.want) return false;
    std::vector<NodeId> claimed = job.claimed;
    Unclaim(job);
    Gpus need = job.want;
    for (NodeId id : claimed) {
      Gpus g = std::min(need, nodes_[id.v].free);
      if (g > 0) Take(job, id, g);
      need -= g;
    }
    LL_CHECK(need == 0);
  } else if (!PlaceOnNodes(job, job.want, job.pool)) {
    return false;
  }
  job.state = HolderState::kActive;
  job.started = now;
  listener_->OnStart(job, now);
  return true;
}

Gpus Allocator::ActiveOutsiders(NodeId id, std::vector<std::tuple<int64_t, Gpus, HolderId>>& out) const {
  const NodeState& n = nodes_[id.v];
  out.clear();
  Gpus coming = n.free;
  for (auto& [hid, g] : n.shares) {
    const Holder& o = holders_[hid.v];
    if (!o.outside()) continue;
    if (o.state == HolderState::kNoticed) {
      coming += g;
    } else if (o.cls != HolderClass::kReserved) {
      out.emplace_back(o.price.micros, g, hid);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) < std::get<0>(b)
                                            : std::get<2>(a) < std::get<2>(b);
  });
  return coming;
}

// The node's claim cost for every job size k, recomputed only after the node changed (a
// placement, a release, a notice or a price change of a holder on it).
const Allocator::ClaimCost* Allocator::ClaimCosts(NodeId id) {
  const size_t stride = static_cast<size_t>(fleet_.max_node_gpus()) + 1;
  ClaimCost* costs = &claim_cost_[id.v * stride];
  if (cost_dirty_[id.v]) {
    cost_dirty_[id.v] = 0;
    FillClaimCosts(ActiveOutsiders(id, scratch_outsiders_), scratch_outsiders_, costs, stride);
  }
  return costs;
}

void Allocator::MarkCostsDirty(const Holder& h) {
  for (const Share& s : h.shares) cost_dirty_[s.node.v] = 1;
}

// A job that does not fit keeps a node (or whole nodes) for itself and reclaims the
// outsiders there: the node that needs the fewest, cheapest victims.
void Allocator::ClaimForJob(Holder& job, Time now) {
  PoolId pool = job.pool;
  if (pools_[pool.v].spot + pools_[pool.v].inference == 0) return;  // nothing to reclaim
  std::vector<NodeId> picked;
  if (job.want <= pool_max_node_[pool.v]) {
    NodeId best;
    ClaimCost best_cost;
    for (NodeId id : pool_nodes_[pool.v]) {
      const NodeState& n = nodes_[id.v];
      if (n.claim.valid() || n.outside == 0 || n.gpus - n.internal < job.want) continue;
      const ClaimCost& cost = ClaimCosts(id)[job.want];
      if (cost < best_cost) {
        best_cost = cost;
        best = id;
        if (cost.victims == 0) break;  // nothing beats a node that frees itself
      }
    }
    if (!best.valid()) return;
    picked.push_back(best);
  } else {
    picked = PickWholeNodes(pool, job.want, true);
    // Reserved holders cannot be moved: such nodes do not qualify.
    for (NodeId id : picked) {
      for (auto& [hid, g] : nodes_[id.v].shares) {
        if (holders_[hid.v].cls == HolderClass::kReserved) return;
      }
    }
    if (picked.empty()) return;
  }
  for (NodeId id : picked) {
    Claim(job, id);
    // Notice the node's active outsiders, cheapest first, until the job fits.
    Gpus coming = ActiveOutsiders(id, scratch_outsiders_);
    Gpus node_need = job.want <= pool_max_node_[pool.v] ? job.want : nodes_[id.v].gpus;
    for (auto& [price, g, hid] : scratch_outsiders_) {
      if (coming >= node_need) break;
      Holder& o = holders_[hid.v];
      coming += o.gpus;  // a victim leaves whole, from every node it holds
      o.demand_seen = job.created;
      Notice(hid, NoticeReason::kInternalDemand, now);
    }
  }
}

void Allocator::ScheduleJobs(PoolId pool, Time now) {
  auto& q = job_queue_[pool.v];
  for (size_t i = 0; i < q.size();) {
    Holder& job = holders_[q[i].v];
    if (TryStartJob(job, now)) {
      q.erase(q.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    if (job.claimed.empty()) ClaimForJob(job, now);
    ++i;
  }
  UpdateWaiting(pool);
}

}  // namespace ll::alloc
