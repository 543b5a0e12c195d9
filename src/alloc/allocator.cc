#include "alloc/allocator.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "alloc/allocator_internal.h"
#include "core/check.h"

namespace ll::alloc {

const char* HolderClassName(HolderClass c) {
  switch (c) {
    case HolderClass::kInternal: return "internal";
    case HolderClass::kReserved: return "reserved";
    case HolderClass::kSpot: return "spot";
    case HolderClass::kInference: return "inference";
  }
  return "?";
}

const char* HolderStateName(HolderState s) {
  switch (s) {
    case HolderState::kQueued: return "queued";
    case HolderState::kActive: return "active";
    case HolderState::kNoticed: return "noticed";
    case HolderState::kEnded: return "ended";
  }
  return "?";
}

const char* NoticeReasonName(NoticeReason r) {
  switch (r) {
    case NoticeReason::kInternalDemand: return "internal_demand";
    case NoticeReason::kPolicyLimit: return "policy_limit";
    case NoticeReason::kPriceAboveMax: return "price_above_max";
  }
  return "?";
}

Allocator::Allocator(const FleetSpec& spec, AllocatorOptions options, std::unique_ptr<Policy> policy,
                     Listener* listener)
    : fleet_(*Fleet::Create(spec)), options_(options), policy_(std::move(policy)), listener_(listener) {
  shortest_notice_ = options_.notice;
  static Listener kNoListener;
  if (listener_ == nullptr) listener_ = &kNoListener;
  const size_t np = fleet_.pools().size();
  pools_.resize(np);
  bucket_.resize(np);
  victims_.resize(np);
  job_queue_.resize(np);
  waiting_by_pool_.assign(np, 0);
  miss_open_.assign(np, false);
  pool_max_node_.assign(np, 0);
  pool_nodes_.resize(np);
  for (size_t p = 0; p < np; ++p) bucket_[p].resize(fleet_.max_node_gpus() + 1);
  nodes_.resize(fleet_.nodes().size());
  claim_cost_.resize(nodes_.size() * (fleet_.max_node_gpus() + 1));
  cost_dirty_.assign(nodes_.size(), 1);
  pool_racks_.resize(np);
  std::vector<std::map<uint32_t, std::vector<NodeId>>> racks(np);
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& ns = fleet_.nodes()[i];
    NodeState& n = nodes_[i];
    n.pool = ns.pool;
    n.gpus = ns.gpus;
    n.free = ns.gpus;
    auto& b = bucket_[ns.pool.v][ns.gpus];
    n.bucket_pos = static_cast<uint32_t>(b.size());
    b.push_back(NodeId{i});
    PoolCounters& pc = pools_[ns.pool.v];
    pc.capacity += ns.gpus;
    pc.free += ns.gpus;
    pc.free_unclaimed += ns.gpus;
    pool_max_node_[ns.pool.v] = std::max(pool_max_node_[ns.pool.v], ns.gpus);
    pool_nodes_[ns.pool.v].push_back(NodeId{i});
    racks[ns.pool.v][ns.rack.v].push_back(NodeId{i});
  }
  for (size_t p = 0; p < np; ++p) {
    for (auto& [rack, ids] : racks[p]) pool_racks_[p].push_back(std::move(ids));
  }
  if (options_.occupancy) {
    for (uint32_t p = 0; p < np; ++p) {
      Holder& h = NewHolder(HolderClass::kInternal, PoolId{p}, 0, Time{}, p);
      h.state = HolderState::kActive;
      pool_internal_.push_back(h.id);
    }
  }
}

Allocator::~Allocator() = default;

// ---------------------------------------------------------------- bookkeeping

// Reclaim order: inference replicas (drained) first, then spot by notice tier (the shortest
// first; the standard notice, stored as zero, last) and ascending price.
Allocator::VictimKey Allocator::VictimOf(const Holder& h) {
  return {h.cls == HolderClass::kInference ? 0 : 1, h.notice.ms > 0 ? h.notice.ms : INT64_MAX, h.price.micros, h.id.v};
}

Gpus Allocator::StandardActive(PoolId pool) const {
  const auto& v = victims_[pool.v];
  Gpus g = 0;
  for (auto it = v.lower_bound({1, INT64_MAX, INT64_MIN, 0}); it != v.end(); ++it) g += holders_[it->id].gpus;
  return g;
}

Holder& Allocator::NewHolder(HolderClass cls, PoolId pool, Gpus want, Time now, uint64_t tag) {
  Holder h;
  h.id = HolderId{static_cast<uint32_t>(holders_.size())};
  h.cls = cls;
  h.pool = pool;
  h.want = want;
  h.created = now;
  h.tag = tag;
  holders_.push_back(std::move(h));
  return holders_.back();
}

void Allocator::LeaveBucket(NodeId id) {
  NodeState& n = nodes_[id.v];
  auto& from = bucket_[n.pool.v][n.free];
  NodeId moved = from.back();
  from[n.bucket_pos] = moved;
  nodes_[moved.v].bucket_pos = n.bucket_pos;
  from.pop_back();
}

void Allocator::SetFree(NodeId id, Gpus free) {
  NodeState& n = nodes_[id.v];
  PoolCounters& pc = pools_[n.pool.v];
  pc.free += free - n.free;
  if (!n.claim.valid()) {
    pc.free_unclaimed += free - n.free;
    LeaveBucket(id);
    auto& to = bucket_[n.pool.v][free];
    n.bucket_pos = static_cast<uint32_t>(to.size());
    to.push_back(id);
  }
  n.free = free;
}

void Allocator::CountClass(const Holder& h, Gpus d) {
  PoolCounters& pc = pools_[h.pool.v];
  switch (h.cls) {
    case HolderClass::kInternal: pc.internal_held += d; total_internal_ += d; break;
    case HolderClass::kReserved: pc.reserved += d; total_reserved_ += d; break;
    case HolderClass::kSpot: pc.spot += d; total_spot_ += d; break;
    case HolderClass::kInference: pc.inference += d; total_inference_ += d; break;
  }
  if (h.state == HolderState::kNoticed) pc.noticed += d;
}

void Allocator::Take(Holder& h, NodeId node, Gpus g) {
  NodeState& n = nodes_[node.v];
  LL_CHECK(g > 0 && g <= n.free);
  cost_dirty_[node.v] = 1;
  SetFree(node, n.free - g);
  (h.outside() ? n.outside : n.internal) += g;
  auto it = std::find_if(n.shares.begin(), n.shares.end(), [&](auto& s) { return s.first == h.id; });
  if (it != n.shares.end()) {
    it->second += g;
  } else {
    n.shares.emplace_back(h.id, g);
  }
  auto hs = std::find_if(h.shares.begin(), h.shares.end(), [&](auto& s) { return s.node == node; });
  if (hs != h.shares.end()) {
    hs->gpus += g;
  } else {
    h.shares.push_back({node, g});
  }
  h.gpus += g;
  CountClass(h, g);
}

void Allocator::Give(Holder& h, NodeId node, Gpus g) {
  NodeState& n = nodes_[node.v];
  cost_dirty_[node.v] = 1;
  auto it = std::find_if(n.shares.begin(), n.shares.end(), [&](auto& s) { return s.first == h.id; });
  LL_CHECK(it != n.shares.end() && it->second >= g);
  if ((it->second -= g) == 0) {
    *it = n.shares.back();
    n.shares.pop_back();
  }
  auto hs = std::find_if(h.shares.begin(), h.shares.end(), [&](auto& s) { return s.node == node; });
  LL_CHECK(hs != h.shares.end() && hs->gpus >= g);
  if ((hs->gpus -= g) == 0) {
    *hs = h.shares.back();
    h.shares.pop_back();
  }
  (h.outside() ? n.outside : n.internal) -= g;
  h.gpus -= g;
  CountClass(h, -g);
  SetFree(node, n.free + g);
}

void Allocator::ReleaseAll(Holder& h) {
  while (!h.shares.empty()) {
    Share s = h.shares.back();
    Give(h, s.node, s.gpus);
  }
}

void Allocator::End(Holder& h, Time now, EndReason reason) {
  LL_CHECK(h.state != HolderState::kEnded);
  if (reason == EndReason::kReclaimed) {
    LL_CHECK(h.state == HolderState::kNoticed && now >= h.reclaim_at);  // notice honoured
    if (h.cls == HolderClass::kReserved) ++reserved_violations_;
  }
  if (h.outside() && h.state == HolderState::kActive) {
    victims_[h.pool.v].erase(VictimOf(h));
  }
  ReleaseAll(h);  // CountClass keeps `noticed` exact while the state is still kNoticed
  h.state = HolderState::kEnded;
  listener_->OnEnd(h, now, reason);
}

Gpus Allocator::OutsideActive(PoolId pool) const {
  const PoolCounters& pc = pools_[pool.v];
  return pc.spot + pc.inference - pc.noticed;
}

PoolView Allocator::View(PoolId pool) const {
  const PoolCounters& pc = pools_[pool.v];
  PoolView v;
  v.pool = pool;
  v.capacity = pc.capacity;
  v.internal_want = pc.internal_want;
  v.internal_held = pc.internal_held;
  v.reserved = pc.reserved;
  v.outside_active = OutsideActive(pool);
  v.noticed = pc.noticed;
  v.free = pc.free;
  return v;
}

void Allocator::UpdateWaiting(PoolId pool) {
  const PoolCounters& pc = pools_[pool.v];
  Gpus w = std::max<Gpus>(0, pc.internal_want - pc.internal_held);
  internal_waiting_ += w - waiting_by_pool_[pool.v];
  waiting_by_pool_[pool.v] = w;
  // The owner wants GPUs that only reserved leases hold: the forecast promised them away.
  bool miss = w > 0 && pc.internal_want > pc.capacity - pc.reserved;
  if (miss && !miss_open_[pool.v]) ++forecast_misses_;
  miss_open_[pool.v] = miss;
}

// ---------------------------------------------------------------- placement

Gpus Allocator::RoundToNodes(PoolId pool, Gpus g) const {
  Gpus n = pool_max_node_[pool.v];
  return g <= n ? g : (g + n - 1) / n * n;
}

// Whole, unclaimed nodes for `gpus` GPUs, packed into as few racks as possible. With
// `allow_outside`, nodes held (only) by outsiders count too; those with fewer outside GPUs
// come first. Empty if the pool cannot supply them.
std::vector<NodeId> Allocator::PickWholeNodes(PoolId pool, Gpus gpus, bool allow_outside) {
  scratch_racks_.clear();
  scratch_nodes_.clear();
  const auto& racks = pool_racks_[pool.v];
  for (uint32_t r = 0; r < racks.size(); ++r) {
    RackPick pick;
    pick.order = r;
    pick.begin = static_cast<uint32_t>(scratch_nodes_.size());
    for (NodeId id : racks[r]) {
      const NodeState& n = nodes_[id.v];
      if (n.claim.valid() || n.internal > 0) continue;
      if (!allow_outside && n.free != n.gpus) continue;
      scratch_nodes_.emplace_back(n.outside, id);
      pick.gpus += n.gpus;
    }
    pick.end = static_cast<uint32_t>(scratch_nodes_.size());
    if (pick.end == pick.begin) continue;
    // Fewest outside GPUs first; node order breaks ties (pairs compare the node id second).
    std::sort(scratch_nodes_.begin() + pick.begin, scratch_nodes_.begin() + pick.end);
    scratch_racks_.push_back(pick);
  }
  // Fullest racks first, so the request spans few racks; rack order breaks ties.
  std::sort(scratch_racks_.begin(), scratch_racks_.end(), [](const RackPick& a, const RackPick& b) {
    return a.gpus != b.gpus ? a.gpus > b.gpus : a.order < b.order;
  });
  std::vector<NodeId> out;
  Gpus got = 0;
  for (const RackPick& r : scratch_racks_) {
    for (uint32_t i = r.begin; i < r.end && got < gpus; ++i) {
      NodeId id = scratch_nodes_[i].second;
      out.push_back(id);
      got += nodes_[id.v].gpus;
    }
    if (got >= gpus) break;
  }
  if (got < gpus) out.clear();
  return out;
}

// Topology-aware placement on free, unclaimed GPUs: ≤ N GPUs on one node (best fit, so whole
// nodes stay free), larger requests on whole nodes.
bool Allocator::PlaceOnNodes(Holder& h, Gpus gpus, PoolId pool) {
  const auto& buckets = bucket_[pool.v];
  if (gpus <= pool_max_node_[pool.v]) {
    for (size_t k = gpus; k < buckets.size(); ++k) {
      if (!buckets[k].empty()) {
        Take(h, buckets[k].back(), gpus);
        return true;
      }
    }
    return false;
  }
  std::vector<NodeId> nodes = PickWholeNodes(pool, gpus, false);
  if (nodes.empty()) return false;
  // Exactly `gpus`: on mixed node sizes the last node may be taken in part.
  Gpus need = gpus;
  for (NodeId id : nodes) {
    Gpus g = std::min(need, nodes_[id.v].gpus);
    if (g > 0) Take(h, id, g);
    need -= g;
  }
  return true;
}

// ---------------------------------------------------------------- tenants

Result<HolderId> Allocator::PlaceOutside(HolderClass cls, PoolId pool, Gpus gpus, Money price,
                                         Money max_price, uint64_t tag, Time now, Duration notice) {
  LL_CHECK(cls == HolderClass::kSpot || cls == HolderClass::kInference);
  if (!pool.valid() || pool.v >= pools_.size()) return Status::Invalid("lease: unknown pool");
  if (gpus < 1) return Status::Invalid(fmt::format("lease: `gpus` must be ≥ 1, got {}", gpus));
  if (price < options_.floor) {
    return Status::Invalid(fmt::format("lease: price {} is below the floor {}", FormatMoney(price),
                                       FormatMoney(options_.floor)));
  }
  if (cls == HolderClass::kSpot && max_price < price) {
    return Status::Invalid("lease: `max_price_per_gpu_hour` is below the price");
  }
  gpus = RoundToNodes(pool, gpus);
  const bool flash = notice.ms > 0 && notice < options_.notice;
  if (gpus > Sellable(pool, now, flash)) return Status::Exhausted("lease: not enough sellable GPUs");
  Holder& h = NewHolder(cls, pool, gpus, now, tag);
  if (flash) h.notice = notice;
  if (!PlaceOnNodes(h, gpus, pool)) {
    h.state = HolderState::kEnded;
    listener_->OnEnd(h, now, EndReason::kRejected);
    return Status::Exhausted("lease: no placement for the requested GPUs (fragmented)");
  }
  h.price = price;
  h.max_price = max_price;
  h.state = HolderState::kActive;
  h.started = now;
  victims_[pool.v].insert(VictimOf(h));
  listener_->OnStart(h, now);
  return h.id;
}

Result<HolderId> Allocator::PlaceReserved(PoolId pool, Gpus gpus, Time end, Money price, uint64_t tag,
                                          Time now, bool booked) {
  if (!pool.valid() || pool.v >= pools_.size()) return Status::Invalid("lease: unknown pool");
  if (gpus < 1) return Status::Invalid(fmt::format("lease: `gpus` must be ≥ 1, got {}", gpus));
  if (end <= now) return Status::Invalid("lease: `duration_s` must be > 0");
  if (!booked && price < options_.floor) return Status::Invalid("lease: reserved price is below the floor");
  gpus = RoundToNodes(pool, gpus);
  Gpus room = booked ? pools_[pool.v].free_unclaimed : ReservedRoom(pool, end, now);
  if (gpus > room) {
    return Status::Conflict(fmt::format(
        "reserved: the forecast cannot guarantee {} GPUs until {}; the largest accepted now is {}",
        gpus, FormatUtc(end), room));
  }
  Holder& h = NewHolder(HolderClass::kReserved, pool, gpus, now, tag);
  if (!PlaceOnNodes(h, gpus, pool)) {
    h.state = HolderState::kEnded;
    listener_->OnEnd(h, now, EndReason::kRejected);
    return Status::Conflict("reserved: no placement for the requested GPUs now");
  }
  h.price = price;
  h.state = HolderState::kActive;
  h.started = now;
  h.term_end = end;
  deadlines_.emplace(end.ms, h.id.v);
  listener_->OnStart(h, now);
  return h.id;
}

Result<HolderId> Allocator::Restore(const RestoreSpec& r) {
  if (r.cls == HolderClass::kInternal) return Status::Invalid("restore: only outside holders");
  if (!r.pool.valid() || r.pool.v >= pools_.size()) return Status::Invalid("restore: unknown pool");
  if (r.state != HolderState::kActive && r.state != HolderState::kNoticed) {
    return Status::Invalid("restore: state must be active or noticed");
  }
  if (r.state == HolderState::kNoticed && (r.cls == HolderClass::kReserved || r.reclaim_at == kTimeMax)) {
    return Status::Invalid("restore: a noticed holder needs reclaim_at (and is never reserved)");
  }
  if (r.cls == HolderClass::kReserved && r.term_end == kTimeMax) return Status::Invalid("restore: reserved needs term_end");
  if (r.shares.empty()) return Status::Invalid("restore: no GPUs");
  // Check every share first so that a bad record changes nothing.
  std::vector<Gpus> want(nodes_.size(), 0);
  for (const Share& s : r.shares) {
    if (!s.node.valid() || s.node.v >= nodes_.size() || s.gpus < 1) return Status::Invalid("restore: bad share");
    if (nodes_[s.node.v].pool != r.pool) return Status::Invalid("restore: a share is outside the pool");
    if (nodes_[s.node.v].claim.valid()) return Status::Conflict("restore: a node is claimed");
    want[s.node.v] += s.gpus;
    if (want[s.node.v] > nodes_[s.node.v].free) return Status::Conflict("restore: GPUs already held");
  }
  Gpus total = 0;
  for (const Share& s : r.shares) total += s.gpus;
  Holder& h = NewHolder(r.cls, r.pool, total, r.created, r.tag);
  h.state = r.state;  // before Take, so `noticed` is counted
  h.price = r.price;
  h.max_price = r.max_price;
  h.started = r.started;
  h.noticed_at = r.noticed_at;
  h.reclaim_at = r.reclaim_at;
  h.term_end = r.term_end;
  if (r.cls == HolderClass::kSpot && r.notice.ms > 0 && r.notice < options_.notice) h.notice = r.notice;
  for (const Share& s : r.shares) Take(h, s.node, s.gpus);
  if (r.state == HolderState::kNoticed) deadlines_.emplace(h.reclaim_at.ms, h.id.v);
  if (r.cls == HolderClass::kReserved) deadlines_.emplace(h.term_end.ms, h.id.v);
  if (r.state == HolderState::kActive && r.cls != HolderClass::kReserved) victims_[r.pool.v].insert(VictimOf(h));
  return h.id;
}

Status Allocator::RestoreInternal(PoolId pool, const std::vector<Share>& shares) {
  LL_CHECK(options_.occupancy);
  if (!pool.valid() || pool.v >= pools_.size()) return Status::Invalid("restore: unknown pool");
  Holder& ih = holders_[pool_internal_[pool.v].v];
  if (ih.gpus != 0) return Status::Invalid("restore: the pool's internal GPUs are already placed");
  std::vector<Gpus> want(nodes_.size(), 0);
  for (const Share& s : shares) {
    if (!s.node.valid() || s.node.v >= nodes_.size() || s.gpus < 1) return Status::Invalid("restore: bad share");
    if (nodes_[s.node.v].pool != pool) return Status::Invalid("restore: a share is outside the pool");
    want[s.node.v] += s.gpus;
    if (want[s.node.v] > nodes_[s.node.v].free) return Status::Conflict("restore: GPUs already held");
  }
  for (const Share& s : shares) Take(ih, s.node, s.gpus);
  PoolCounters& pc = pools_[pool.v];
  pc.internal_want = std::max(pc.internal_want, ih.gpus);
  UpdateWaiting(pool);
  return Status::Ok();
}

void Allocator::PlaceInternal(PoolId pool, const std::vector<Share>& shares, Time now) {
  LL_CHECK(options_.occupancy);
  Holder& ih = holders_[pool_internal_[pool.v].v];
  ReleaseAll(ih);
  for (const Share& s : shares) {
    if (!s.node.valid() || s.node.v >= nodes_.size() || nodes_[s.node.v].pool != pool) continue;
    const Gpus g = std::min(s.gpus, nodes_[s.node.v].free);
    if (g > 0) Take(ih, s.node, g);
  }
  PoolCounters& pc = pools_[pool.v];
  pc.internal_want = ih.gpus;
  UpdateWaiting(pool);
  policy_->OnDemand(View(pool), now);
  EnforceLimit(pool, now);
}

void Allocator::Release(HolderId id, Time now) {
  Holder& h = holders_[id.v];
  LL_CHECK(h.outside() && h.state != HolderState::kEnded);
  PoolId pool = h.pool;
  End(h, now, EndReason::kFinished);
  AfterCapacityChange(pool, now);
}

void Allocator::Notice(HolderId id, NoticeReason reason, Time now) {
  Holder& h = holders_[id.v];
  LL_CHECK(h.cls == HolderClass::kSpot || h.cls == HolderClass::kInference);  // never reserved
  if (h.state != HolderState::kActive) return;
  victims_[h.pool.v].erase(VictimOf(h));
  MarkCostsDirty(h);
  h.state = HolderState::kNoticed;
  pools_[h.pool.v].noticed += h.gpus;
  Duration d = h.cls == HolderClass::kInference ? std::min(options_.inference_drain, options_.notice)
                                                 : options_.notice;
  if (h.notice.ms > 0) d = std::min(d, h.notice);
  h.noticed_at = now;
  h.reclaim_at = now + d;
  if (h.demand_seen == kTimeMax) h.demand_seen = now;
  deadlines_.emplace(h.reclaim_at.ms, h.id.v);
  if (reason == NoticeReason::kInternalDemand && h.cls == HolderClass::kSpot) {
    policy_->OnOwnerReclaim(View(h.pool), h.gpus, d, now);
  }
  listener_->OnNotice(h, now, reason);
}

void Allocator::SetPrice(HolderId id, Money price) {
  Holder& h = holders_[id.v];
  LL_CHECK(h.cls == HolderClass::kSpot && price >= options_.floor);
  if (h.state == HolderState::kActive) {
    victims_[h.pool.v].erase(VictimOf(h));
    MarkCostsDirty(h);
    h.price = price;
    victims_[h.pool.v].insert(VictimOf(h));
  }
  h.price = price;
}

void Allocator::SetNotice(Duration notice) {
  LL_CHECK(notice.ms > 0);
  notice_changed_ = notice_changed_ || notice != options_.notice;
  options_.notice = notice;
  shortest_notice_ = std::min(shortest_notice_, notice);
}

void Allocator::NoticeCheapestSpot(PoolId pool, Gpus gpus, Time now) {
  auto& v = victims_[pool.v];
  for (auto it = v.lower_bound({1, INT64_MIN, INT64_MIN, 0}); gpus > 0 && it != v.end();) {
    HolderId id{it->id};
    ++it;
    gpus -= holders_[id.v].gpus;
    Notice(id, NoticeReason::kPolicyLimit, now);
  }
}

void Allocator::ReclaimFor(PoolId pool, Gpus gpus, NoticeReason reason, Time now, Time demand_seen) {
  auto& v = victims_[pool.v];
  auto take = [&](HolderId id) {
    Holder& h = holders_[id.v];
    gpus -= h.gpus;
    h.demand_seen = demand_seen;
    Notice(id, reason, now);
  };
  if (options_.min_runtime.ms <= 0) {
    while (gpus > 0 && !v.empty()) take(HolderId{v.begin()->id});
    return;
  }
  // With a minimum runtime: the holders past it first; those inside it only for the owner's
  // own demand (which would otherwise wait until it ends, longer than the notice).
  for (bool inside : {false, true}) {
    if (inside && reason != NoticeReason::kInternalDemand) return;
    for (auto it = v.begin(); gpus > 0 && it != v.end();) {
      HolderId id{it->id};
      ++it;
      if (Protected(holders_[id.v], now) == inside) take(id);
    }
  }
}

void Allocator::EnforceLimit(PoolId pool, Time now) {
  // Nothing reclaimable in the pool: no limit can take anything (the policies' limits are pure
  // functions of the pool and the time, so not asking changes no later answer).
  if (victims_[pool.v].empty()) return;
  Gpus limit = policy_->SellLimit(View(pool), now);
  Gpus excess = OutsideActive(pool) - limit;
  if (excess > 0) ReclaimFor(pool, excess, NoticeReason::kPolicyLimit, now, now);
  // Past the standard limit, standard leases go (flash ones may stay on the rest).
  const Gpus standard_limit = std::min(limit, policy_->StandardLimit(View(pool), now));
  // The standard leases are some of the active outside GPUs: within the limit, no need to count them.
  if (OutsideActive(pool) <= standard_limit) return;
  Gpus standard_excess = StandardActive(pool) - standard_limit;
  auto& v = victims_[pool.v];
  for (auto it = v.lower_bound({1, INT64_MAX, INT64_MIN, 0}); standard_excess > 0 && it != v.end();) {
    HolderId id{it->id};
    ++it;
    if (Protected(holders_[id.v], now)) continue;  // the limit waits for its minimum runtime
    standard_excess -= holders_[id.v].gpus;
    holders_[id.v].demand_seen = now;
    Notice(id, NoticeReason::kPolicyLimit, now);
  }
}

void Allocator::AfterCapacityChange(PoolId pool, Time now) {
  if (options_.occupancy) {
    GrowInternal(pool, now);
  } else {
    ScheduleJobs(pool, now);
  }
  EnforceLimit(pool, now);
}

// ---------------------------------------------------------------- time

void Allocator::AdvanceTo(Time now) {
  std::vector<uint32_t> dirty;
  while (!deadlines_.empty() && deadlines_.top().first <= now.ms) {
    auto [t, id] = deadlines_.top();
    deadlines_.pop();
    Holder& h = holders_[id];
    if (h.state == HolderState::kNoticed && h.reclaim_at.ms == t) {
      End(h, Time{t}, EndReason::kReclaimed);
    } else if (h.cls == HolderClass::kReserved && h.state == HolderState::kActive && h.term_end.ms == t) {
      End(h, Time{t}, EndReason::kFinished);
    } else {
      continue;  // stale: released earlier
    }
    dirty.push_back(h.pool.v);
  }
  std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  for (uint32_t p : dirty) AfterCapacityChange(PoolId{p}, now);
}

Time Allocator::NextDeadline() const {
  return deadlines_.empty() ? kTimeMax : Time{deadlines_.top().first};
}

void Allocator::Rebalance(Time now) {
  for (uint32_t p = 0; p < pools_.size(); ++p) EnforceLimit(PoolId{p}, now);
}

Gpus Allocator::Sellable(PoolId pool, Time now, bool flash) {
  Gpus limit = policy_->SellLimit(View(pool), now);
  Gpus room = std::min(limit - OutsideActive(pool), pools_[pool.v].free_unclaimed);
  if (!flash && room > 0) {
    // Standard leases are some of the active outside GPUs: counted only when they may bind.
    const Gpus standard_limit = policy_->StandardLimit(View(pool), now);
    if (standard_limit - OutsideActive(pool) < room) room = std::min(room, standard_limit - StandardActive(pool));
  }
  return std::max<Gpus>(0, room);
}

Gpus Allocator::ReservedRoom(PoolId pool, Time end, Time now) {
  return std::min(BookableRoom(pool, end, now), pools_[pool.v].free_unclaimed);
}

Gpus Allocator::BookableRoom(PoolId pool, Time end, Time now) {
  return std::max<Gpus>(0, policy_->ReservedRoom(View(pool), now, end));
}

std::vector<std::pair<NodeId, Gpus>> Allocator::FreeNodes(PoolId pool) const {
  std::vector<std::pair<NodeId, Gpus>> out;
  const auto& buckets = bucket_[pool.v];
  for (size_t k = 1; k < buckets.size(); ++k) {
    for (NodeId id : buckets[k]) out.emplace_back(id, static_cast<Gpus>(k));
  }
  return out;
}

Gpus Allocator::LargestFreeNode(PoolId pool) const {
  const auto& buckets = bucket_[pool.v];
  for (size_t k = buckets.size(); k-- > 1;) {
    if (!buckets[k].empty()) return static_cast<Gpus>(k);
  }
  return 0;
}


}  // namespace ll::alloc