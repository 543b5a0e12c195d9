// The allocator: who holds which GPUs, and the rules of DESIGN.md that keep the owner first.
//
// Event-driven and deterministic. The driver (simulator or server) calls it with events and
// the current time; it never reads a clock. Decisions come back through a Listener (Mesos
// allocator style): a holder started, got a reclaim notice, or ended.
//
// Capacity classes: internal (the owner), reserved, spot, inference. Rules enforced here:
// - a GPU is held by at most one holder; holdings never exceed capacity;
// - reserved holders are never reclaimed;
// - a reclaim notice is honoured: a noticed holder keeps its GPUs until reclaim_at;
// - internal demand first takes free GPUs, then reclaims outsiders (inference first, then spot
//   in ascending price), and waits at most the notice;
// - the policy decides how much may be sold (its sell limit); the excess is reclaimed.
//
// Internal demand comes in one of two forms per allocator: occupancy levels per pool (the
// internal holder of a pool is resized; its GPUs may be spread over nodes), or jobs (each a
// holder placed by topology: ≤ N GPUs on one node, larger jobs on whole nodes, FIFO with
// greedy backfill).
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "core/gpu.h"
#include "core/ids.h"
#include "core/money.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::alloc {

enum class HolderState : uint8_t { kQueued, kActive, kNoticed, kEnded };

enum class EndReason : uint8_t {
  kFinished,   // internal job done, tenant released, term over
  kReclaimed,  // reclaim notice ran out
  kRejected,   // never started (no room)
};

enum class NoticeReason : uint8_t { kInternalDemand, kPolicyLimit, kPriceAboveMax };

const char* HolderClassName(HolderClass c);
const char* HolderStateName(HolderState s);
const char* NoticeReasonName(NoticeReason r);

struct Share {
  NodeId node;
  Gpus gpus = 0;
};

struct Holder {
  HolderId id;
  HolderClass cls = HolderClass::kInternal;
  HolderState state = HolderState::kQueued;
  PoolId pool;
  Gpus want = 0;  // GPUs asked for
  Gpus gpus = 0;  // GPUs held now
  Money price;      // paid per GPU-hour now (spot: the clearing price)
  Money max_price;  // spot: the tenant's maximum
  Time created;
  Time started;
  Time noticed_at = kTimeMax;
  Time reclaim_at = kTimeMax;  // when noticed
  Time term_end = kTimeMax;    // reserved
  Time demand_seen = kTimeMax;  // for reclaim latency: when the demand that caused it appeared
  Duration notice;              // spot: a shorter notice tier (flash); zero: the allocator's notice
  uint64_t tag = 0;             // the driver's key
  int priority = 0;             // internal jobs: higher first
  std::vector<Share> shares;
  std::vector<NodeId> claimed;  // a waiting job: nodes kept for it while outsiders leave
  bool outside() const { return cls != HolderClass::kInternal; }
};

class Listener {
 public:
  virtual ~Listener() = default;
  virtual void OnStart(const Holder&, Time) {}
  virtual void OnNotice(const Holder&, Time /*now*/, NoticeReason) {}
  virtual void OnEnd(const Holder&, Time, EndReason) {}
};

struct AllocatorOptions {
  Duration notice = Duration::Seconds(120);
  Duration inference_drain = Duration::Seconds(30);  // capped at the notice
  bool occupancy = true;  // internal demand as levels (true) or as jobs (false)
  Money floor;            // nothing is sold below it
};

// Per-pool counters, kept exact on every change.
struct PoolCounters {
  Gpus capacity = 0;
  Gpus free = 0;            // unheld (claimed-but-free included)
  Gpus free_unclaimed = 0;  // unheld on nodes no waiting job has claimed
  Gpus internal_held = 0;
  Gpus internal_want = 0;   // capped at capacity
  Gpus reserved = 0;
  Gpus spot = 0;
  Gpus inference = 0;
  Gpus noticed = 0;         // outside GPUs under notice (subset of spot + inference)
};

class Allocator {
 public:
  Allocator(const FleetSpec& fleet, AllocatorOptions options, std::unique_ptr<Policy> policy,
            Listener* listener);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // ---- owner demand ----
  // Occupancy mode: the owner wants `level` GPUs in `pool` from now on.
  void SetInternalDemand(PoolId pool, Gpus level, Time now);
  // Job mode: queue a job; it starts (OnStart) as soon as it fits. Returns its holder id.
  Result<HolderId> SubmitJob(PoolId pool, Gpus gpus, int priority, uint64_t tag, Time now);
  // Job mode: the job finished (or was cancelled while queued).
  void FinishJob(HolderId job, Time now);

  // ---- tenants ----
  // A spot or inference holder of `gpus` GPUs in `pool` at `price` (max_price for spot).
  // Fails with kResourceExhausted when the policy's limit or the free GPUs do not allow it.
  Result<HolderId> PlaceOutside(HolderClass cls, PoolId pool, Gpus gpus, Money price,
                                Money max_price, uint64_t tag, Time now, Duration notice = {});
  // A reserved lease for [now, end). Fails with kConflict when the forecast cannot guarantee
  // it; the message states the largest size that would be accepted. With `booked`, a term
  // promised earlier starts now: neither the forecast nor the floor is asked again, only the
  // free GPUs.
  Result<HolderId> PlaceReserved(PoolId pool, Gpus gpus, Time end, Money price, uint64_t tag,
                                 Time now, bool booked = false);
  // Server restart: recreates an outside holder exactly as persisted, on exactly `shares`.
  // `state` is kActive or kNoticed (with noticed_at/reclaim_at); reserved holders need
  // term_end. Fails (changing nothing) if a share's GPUs are not free or the record is
  // inconsistent. Ends due on the next AdvanceTo if reclaim_at or term_end has passed.
  struct RestoreSpec {
    HolderClass cls = HolderClass::kSpot;
    HolderState state = HolderState::kActive;
    PoolId pool;
    std::vector<Share> shares;
    Money price, max_price;
    Time created, started;
    Time noticed_at = kTimeMax, reclaim_at = kTimeMax, term_end = kTimeMax;
    uint64_t tag = 0;
    Duration notice;  // spot: a shorter notice tier (flash), as PlaceOutside's `notice`
  };
  Result<HolderId> Restore(const RestoreSpec& spec);
  // Occupancy mode, before the pool's first SetInternalDemand: puts the owner's GPUs back on
  // exactly `shares` (the server persists where the owner's demand sits, so a restart
  // rebuilds the same free nodes). Validated first: an error changes nothing.
  Status RestoreInternal(PoolId pool, const std::vector<Share>& shares);
  // Occupancy mode, for a backend that knows where the owner's work runs (Slurm): the owner
  // holds exactly `shares` of `pool` from now on, and wants no more than that, so nothing is
  // reclaimed for it here (the backend's scheduler does that itself). A share on GPUs an
  // outsider still holds is cut to what is free.
  void PlaceInternal(PoolId pool, const std::vector<Share>& shares, Time now);
  // Occupancy mode: where the owner's GPUs of `pool` are, by node.
  const std::vector<Share>& InternalShares(PoolId pool) const { return holders_[pool_internal_[pool.v].v].shares; }
  // The tenant gives the GPUs back (any outside holder, noticed or not).
  void Release(HolderId holder, Time now);
  // Give `holder` (spot or inference) a reclaim notice now, e.g. because the price rose.
  void Notice(HolderId holder, NoticeReason reason, Time now);
  // Notice the cheapest spot holders of `pool` for at least `gpus` GPUs (to make room for
  // something that earns more, such as inference).
  void NoticeCheapestSpot(PoolId pool, Gpus gpus, Time now);
  // Change what a spot holder pays (new clearing price).
  void SetPrice(HolderId holder, Money price);
  // The owner changes the floor or the notice (server). A new floor applies to placements and
  // prices from now on (the driver re-clears the market); a new notice to notices from now on.
  void SetFloor(Money floor) { options_.floor = floor; }
  void SetNotice(Duration notice);

  // ---- time ----
  // Ends noticed holders whose reclaim_at ≤ now and reserved terms that are over, hands the
  // GPUs to waiting internal demand, and enforces the policy's sell limits.
  void AdvanceTo(Time now);
  // The earliest time AdvanceTo has work to do (kTimeMax if none).
  Time NextDeadline() const;
  // Re-evaluates every pool's sell limit (policies whose limit moves with time).
  void Rebalance(Time now);

  // ---- queries ----
  // GPUs that may still be sold in `pool` now: min(limit - active outside, free unclaimed).
  // With the standard notice the policy's StandardLimit bounds it too; `flash` (a shorter notice,
  // reclaimed first) may use the whole sell limit.
  Gpus Sellable(PoolId pool, Time now, bool flash = false);
  // Largest reserved lease of `pool` for [now, end) the policy would accept.
  Gpus ReservedRoom(PoolId pool, Time end, Time now);
  // What the policy would promise for a term starting later and ending at `end`: as
  // ReservedRoom, without the cap at today's free GPUs (spot leases make way before it starts).
  Gpus BookableRoom(PoolId pool, Time end, Time now);
  // `gpus` as placed: more than a node's GPUs are rounded up to whole nodes.
  Gpus RoundToNodes(PoolId pool, Gpus gpus) const;
  PoolView View(PoolId pool) const;
  const PoolCounters& pool(PoolId p) const { return pools_[p.v]; }
  int pool_count() const { return static_cast<int>(pools_.size()); }
  const Holder& holder(HolderId h) const { return holders_[h.v]; }
  size_t holder_count() const { return holders_.size(); }
  const Fleet& fleet() const { return fleet_; }
  Policy& policy() { return *policy_; }
  const AllocatorOptions& options() const { return options_; }
  // Free GPUs on each node of `pool` that are not claimed by a waiting job.
  std::vector<std::pair<NodeId, Gpus>> FreeNodes(PoolId pool) const;
  // The most free GPUs on one unclaimed node of `pool` (0 if none). O(GPUs per node).
  Gpus LargestFreeNode(PoolId pool) const;
  // Totals over the fleet, by class.
  Gpus TotalInternal() const { return total_internal_; }
  Gpus TotalReserved() const { return total_reserved_; }
  Gpus TotalSpot() const { return total_spot_; }
  Gpus TotalInference() const { return total_inference_; }
  Gpus TotalCapacity() const { return fleet_.total_gpus(); }
  // Σ over pools of max(0, internal_want - internal_held): owner demand waiting for GPUs.
  Gpus InternalWaiting() const { return internal_waiting_; }
  // Of that, GPUs waiting only because reserved leases hold them (a forecast miss).
  int64_t forecast_misses() const { return forecast_misses_; }
  int64_t reserved_violations() const { return reserved_violations_; }

  // Checks every rule of DESIGN.md against the state; aborts (LL_CHECK) on a violation.
  // O(fleet + holders): for tests.
  void CheckInvariants(Time now) const;

 private:
  struct NodeState;
  // What claiming a node for a job of k GPUs costs: the active outsiders to notice there
  // (cheapest first) and the revenue they pay per hour on that node.
  struct ClaimCost {
    int victims = INT32_MAX;  // INT32_MAX: the node cannot host k GPUs even after reclaim
    int64_t revenue = INT64_MAX;
    auto operator<=>(const ClaimCost&) const = default;
  };
  struct VictimKey {
    int rank;
    int64_t notice_ms;  // shorter notices first (flash before standard)
    int64_t price;
    uint32_t id;
    auto operator<=>(const VictimKey&) const = default;
  };

  static VictimKey VictimOf(const Holder& h);
  // Active outside GPUs on the standard notice (not inference, not a shorter tier).
  Gpus StandardActive(PoolId pool) const;
  void LeaveBucket(NodeId node);
  Holder& NewHolder(HolderClass cls, PoolId pool, Gpus want, Time now, uint64_t tag);
  void Take(Holder& h, NodeId node, Gpus gpus);
  void Give(Holder& h, NodeId node, Gpus gpus);
  void ReleaseAll(Holder& h);
  void End(Holder& h, Time now, EndReason reason);
  void SetFree(NodeId node, Gpus free);
  void CountClass(const Holder& h, Gpus delta);

  void GrowInternal(PoolId pool, Time now);
  void ShrinkInternal(PoolId pool, Gpus by);
  void ScheduleJobs(PoolId pool, Time now);
  bool TryStartJob(Holder& job, Time now);
  void ClaimForJob(Holder& job, Time now);
  void MarkCostsDirty(const Holder& h);
  const ClaimCost* ClaimCosts(NodeId node);
  // Active, non-reserved outsiders on `node` as (price, gpus on node, holder), cheapest first;
  // returns the GPUs that come back without a new notice (free + already noticed).
  Gpus ActiveOutsiders(NodeId node, std::vector<std::tuple<int64_t, Gpus, HolderId>>& out) const;
  void ReclaimFor(PoolId pool, Gpus gpus, NoticeReason reason, Time now, Time demand_seen);
  void EnforceLimit(PoolId pool, Time now);
  void AfterCapacityChange(PoolId pool, Time now);
  void UpdateWaiting(PoolId pool);
  Gpus OutsideActive(PoolId pool) const;
  bool PlaceOnNodes(Holder& h, Gpus gpus, PoolId pool);
  std::vector<NodeId> PickWholeNodes(PoolId pool, Gpus gpus, bool allow_outside);
  void Claim(Holder& job, NodeId node);
  void Unclaim(Holder& job);
  void RemoveFromQueue(Holder& job);

  Fleet fleet_;
  AllocatorOptions options_;
  std::unique_ptr<Policy> policy_;
  Listener* listener_;
  std::vector<NodeState> nodes_;
  std::vector<PoolCounters> pools_;
  std::vector<Holder> holders_;
  std::vector<HolderId> pool_internal_;  // occupancy mode: the internal holder of each pool
  // Free-GPU buckets per pool: bucket_[pool][k] lists unclaimed nodes with exactly k free GPUs.
  std::vector<std::vector<std::vector<NodeId>>> bucket_;
  std::vector<std::set<VictimKey>> victims_;  // per pool: reclaimable outsiders, best victim first
  std::vector<std::vector<HolderId>> job_queue_;  // per pool, in order of arrival
  std::priority_queue<std::pair<int64_t, uint32_t>, std::vector<std::pair<int64_t, uint32_t>>,
                      std::greater<>>
      deadlines_;  // (time, holder): reclaim_at and term ends
  Gpus total_internal_ = 0, total_reserved_ = 0, total_spot_ = 0, total_inference_ = 0;
  Gpus internal_waiting_ = 0;
  std::vector<Gpus> waiting_by_pool_;
  int64_t forecast_misses_ = 0;
  int64_t reserved_violations_ = 0;
  std::vector<bool> miss_open_;  // per pool: a forecast miss is in progress
  Duration shortest_notice_;     // the shortest notice ever configured (SetNotice)
  bool notice_changed_ = false;
  std::vector<Gpus> pool_max_node_;
  std::vector<std::vector<NodeId>> pool_nodes_;
  // Per pool, its racks in ascending id order, each with its nodes in id order.
  std::vector<std::vector<std::vector<NodeId>>> pool_racks_;
  // claim_cost_[node * (max node GPUs + 1) + k], refreshed lazily when the node is dirty.
  std::vector<ClaimCost> claim_cost_;
  std::vector<uint8_t> cost_dirty_;
  // Scratch space reused across calls (no allocation on the decision path).
  std::vector<std::tuple<int64_t, Gpus, HolderId>> scratch_outsiders_;
  struct RackPick {
    Gpus gpus = 0;
    uint32_t order = 0;
    uint32_t begin = 0, end = 0;  // into scratch_nodes_
  };
  std::vector<RackPick> scratch_racks_;
  std::vector<std::pair<Gpus, NodeId>> scratch_nodes_;  // (outside GPUs, node)
};

}  // namespace ll::alloc
