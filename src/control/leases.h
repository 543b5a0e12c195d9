// Leases: the tenants' leases from request to bill — create (spot now, reserved now, reserved
// booked for later), release, the allocator's starts, notices and ends of their holders, the
// bookings that start, the spot market's repricing, holders the fleet lost or preempts, the
// workload that runs on a lease, and the usage each lease has completed.
//
// A component of the control plane (docs/architecture.md): no HTTP, and JSON only where the
// store keeps it (an event's payload, a lease's workload). Every change goes into the
// caller's store::Batch — the lease records that changed (Flush), their events, price points
// and usage — which the control plane's unit of work commits once; refusals are domain errors
// (Status with a reason such as `price_below_market` and the field it names) and change nothing.
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocator.h"
#include "control/fleet_stats.h"
#include "control/lease_book.h"
#include "control/overrides.h"
#include "control/workloads.h"
#include "core/lease.h"
#include "core/status.h"
#include "fleet/backend.h"
#include "market/price_book.h"
#include "step/decisions.h"
#include "step/step.h"
#include "store/store.h"
#include "workload/spec.h"

namespace ll::control {

// POST /v1/leases as the domain takes it (the transport has validated each field).
struct LeaseRequest {
  LeaseKind kind = LeaseKind::kSpot;
  Gpus gpus = 0;
  int pool = -1;                           // -1: any pool
  Money max_price;                         // spot
  NoticeTier notice_tier = NoticeTier::kStandard;  // spot
  int64_t duration_s = 0;                  // reserved
  std::optional<Time> start_at;            // reserved: booked to start then
  std::optional<workload::Spec> workload;  // the tenant's command, run while the lease is active
};

// What a reserved request refused as `forecast_conflict` could have had instead.
struct ReservedOffer {
  Gpus gpus = 0;                         // the most GPUs accepted now for the term asked
  int64_t duration_s = 0;                // that term
  std::optional<int64_t> longest_term_s;  // the longest offered term the GPUs asked would fit
};

// What the store keeps of a lease's workload: {"spec", "status"} (null: none).
nlohmann::json StoredWorkload(const store::LeaseRecord& r);

class Leases {
 public:
  // What the component works on. Every pointer must outlive the object; `fleet` may be
  // replaced (UseFleet), the others are the control plane's for its whole life.
  struct Context {
    alloc::Allocator* alloc = nullptr;
    fleet::Backend* fleet = nullptr;
    step::SpotMarket* market = nullptr;
    Overrides* overrides = nullptr;  // the bookings
    FleetStats* stats = nullptr;     // the counters of starts, reclaims and missed bookings
    const market::PriceBook* prices = nullptr;  // the reserved terms
    const Money* floor = nullptr;
  };

  // REQUIRES: Bind before any other call but book().
  void Bind(const Context& c) { c_ = c; }
  void UseFleet(fleet::Backend* fleet) { c_.fleet = fleet; }
  // From now on a lease with a workload runs it in `w` (null: leases with one are refused).
  void UseWorkloads(Workloads* w) { workloads_ = w; }
  Workloads* workloads() const { return workloads_; }
  // From now on the decisions about leases go to `log` too (null: no more).
  void SetDecisionLog(step::DecisionLog* log) { decisions_ = log; }

  LeaseBook& book() { return book_; }
  const LeaseBook& book() const { return book_; }

  // ---- creating and releasing ----
  // Leases are created with a tenant key (`tenant_only` for the owner's).
  static Status MayCreate(const Principal& who);
  // `workloads_unavailable` when the request has a workload and this server runs none; a field
  // this fleet cannot run (Workloads::Accepts) is refused naming it.
  Status CanRun(const LeaseRequest& req) const;
  // Places the lease now (or books it) and returns its index. REQUIRES: MayCreate and CanRun
  // said yes, the core is at `now`. A refusal takes nothing (the lease number is given back),
  // but for a lease the fleet refused to hold: it is kept, ended at once, and the answer is
  // `fleet_unavailable`. `offer` gets the alternative of a `forecast_conflict`, if not null.
  Result<size_t> Create(const Principal& who, LeaseRequest req, Time now, store::Batch& batch,
                        ReservedOffer* offer = nullptr);
  // The caller's lease released now: a booking is cancelled, a live lease's holder released
  // (it ends `released` when the allocator says so); a final one is left as it is.
  Result<size_t> Release(const Principal& who, const std::string& id, Time now, store::Batch& batch);

  // ---- what the step and the fleet report ----
  // The allocator's word on a lease's holder (tags below Replicas::kTag).
  void OnStart(const alloc::Holder& h, Time now, store::Batch& batch);
  void OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason, store::Batch& batch);
  void OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason, store::Batch& batch);
  // Booked leases whose start has come are placed (or end as a forecast miss).
  void StartBookings(Time now, store::Batch& batch);
  // The spot market's uniform-price clearing over the live spot leases, when due: each lease
  // repriced gets a price point and an event. Whether it ran.
  bool ClearMarket(Time now, store::Batch& batch);
  // The fleet lost the lease's holder at `at` (slurm): it ends `holder_lost`, billed until then.
  void Lost(const std::string& id, const std::string& why, Time at, Time now);
  // The fleet preempts the lease's holder: a live spot lease gets its reclaim notice now. Whether it did.
  bool Preempted(const std::string& id, Time now);
  // A lease's workload changed state (the sandbox's report), or the server restarted under it.
  void RecordWorkload(size_t index, const workload::WorkloadStatus& s, Time now, store::Batch& batch);
  void EndWorkloadAtLoad(size_t index, Time now, store::Batch& batch);

  // ---- persistence and the read side ----
  // At start: the stored leases and their price points; the live ones go back on exactly the
  // GPUs they held, the booked ones back into the bookings.
  Status Restore(std::vector<store::LeaseRecord> records, const std::vector<store::LeasePriceRecord>& prices,
                 Time now, store::Batch& batch);
  // Every live lease is written again (a new month closes its usage of the last one).
  void MarkLiveDirty();
  // Writes the leases changed since the last Flush and their newly completed usage.
  void Flush(Time now, store::Batch& batch);
  // The lease's usage as the ledger reads it (false for one that never started).
  static bool UsageOf(const Lease& l, ledger::LeaseUsage* u);
  // Σ price × GPUs over the live leases (µ$ per hour).
  __int128 Rate();
  // The price per GPU-hour of a reserved term.
  Money ReservedPriceFor(Duration d) const;

 private:
  class Slot;
  void Emit(Lease& l, std::string type, Time at, store::Batch& batch, nlohmann::json extra = {});
  void Changed();  // on every lease start, notice and end
  Status PlaceSpot(const LeaseRequest& req, Slot& slot, Time now);
  Status PlaceReserved(const LeaseRequest& req, Slot& slot, Time now, store::Batch& batch, ReservedOffer* offer);
  Status ForecastConflict(const LeaseRequest& req, Time start, Time now, ReservedOffer* offer) const;
  void StartWorkload(Lease& l, const alloc::Holder& h, Time now, store::Batch& batch);
  void StopWorkload(Lease& l, alloc::EndReason reason, Time now, store::Batch& batch);
  void Bill(Lease& l, Time now, store::Batch& batch);
  const fleet::Topology& topology() const { return c_.fleet->topology(); }

  Context c_;
  LeaseBook book_;
  Workloads* workloads_ = nullptr;
  step::DecisionLog* decisions_ = nullptr;
  std::vector<size_t> dirty_;  // leases to write at the next Flush
  __int128 rate_ = 0;          // Rate(), when !rate_dirty_
  bool rate_dirty_ = true;
};

}  // namespace ll::control
