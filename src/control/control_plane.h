// The control plane of `landlord serve` as one facade: tenants, keys, leases, balances and the
// owner's settings, on top of the same allocator, forecast and market as `landlord sim` (one
// core, two drivers), over the components of this package (docs/architecture.md).
//
// Transport-independent: it knows no HTTP and no request bodies. Its operations take domain
// requests and answer domain values or a Status (StatusCode, reason, param); api/ parses JSON
// into those requests, renders the answers and maps a Status to HTTP (api::StatusToHttp). Time
// comes from an injected clock; Advance() brings the fleet to the clock's now (deadlines, the
// owner's demand, sell limits, the spot market) and every call does so first.
//
// The unit of work (Work): each call brings the fleet to now when it opens, and collects the
// lease transitions the allocator reports and commits them to the store in one batch when it
// closes, on every path out of it; events reach watchers only after that commit. If the store
// fails mid-call the process stops (LL_CHECK): memory may be ahead of the disk, and a restart
// rebuilds everything from the store, which holds exactly what was acknowledged.
//
// Thread-safety: none; the server calls it from its one I/O thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocator.h"
#include "control/accounts.h"
#include "control/billing_views.h"
#include "control/event_log.h"
#include "control/fleet_stats.h"
#include "control/lease_book.h"
#include "control/leases.h"
#include "control/overrides.h"
#include "control/replicas.h"
#include "control/serve_config.h"
#include "control/tenants.h"
#include "control/workloads.h"
#include "core/clock.h"
#include "fleet/backend.h"
#include "forecast/forecast.h"
#include "gateway/gateway.h"
#include "ledger/ledger.h"
#include "sim/trace.h"
#include "step/decisions.h"
#include "step/step.h"
#include "store/commit_thread.h"
#include "store/store.h"

namespace ll::control {

// The server clock: `speed` times the wall clock, from an origin kept in the store so that a
// restart continues the same timeline.
class ScaledClock final : public Clock {
 public:
  ScaledClock(const Clock* wall, Time origin_wall, Time origin, double speed)
      : wall_(wall), origin_wall_(origin_wall), origin_(origin), speed_(speed) {}
  Time Now() const override;
  double speed() const { return speed_; }

 private:
  const Clock* wall_;
  Time origin_wall_, origin_;
  double speed_;
};

// RFC 3339, or null for kTimeMax.
nlohmann::json TimeJson(Time t);
// The setting that keeps where the owner's GPUs of `pool` sit.
std::string InternalPlacementKey(int pool);

// One spot tier on offer: its notice and its price now (flash: the clearing price less the flash
// discount, never below the floor), and in a quote the most GPUs one pool can sell it.
struct SpotTierOffer {
  NoticeTier tier = NoticeTier::kStandard;
  Duration notice;
  Money price;
  double discount = 0;  // the flash tier's, off the clearing price
  Gpus room = 0;        // quotes only
};

// One reserved term on offer: its price (the list price less its discount) and in a quote the
// most GPUs one pool can reserve for it from now.
struct ReservedTermOffer {
  Duration term;
  double discount = 0;
  Money price;
  Gpus room = 0;  // quotes only
};

// What can be bought now (GET /v1/quote).
struct Quote {
  Time now;
  Money spot_price;
  Gpus spot_room = 0;  // the most GPUs one pool can sell as spot (standard tier)
  std::vector<SpotTierOffer> tiers;
  std::vector<ReservedTermOffer> reserved;
};

// The prices now (GET /v1/prices) and, when asked, the spot price's history: each point in
// force from `at` (the first one from the start of the range asked).
struct PriceList {
  Time now;
  Money floor, spot_price, list_price;
  std::vector<SpotTierOffer> tiers;
  std::vector<ReservedTermOffer> reserved;
  std::optional<std::vector<std::pair<Time, Money>>> history;
};

// The owner's selling settings (GET /admin/policy).
struct PolicyView {
  std::string policy;  // the selling policy's name (chosen in the config)
  Duration notice;
  Money floor;
  int headroom_gpus = 0;
  std::vector<std::string> sellable_pools;
};

// A change to them (PUT /admin/policy): what is set changes, the rest stays.
struct PolicyChange {
  std::optional<Duration> notice;
  std::optional<Money> floor;
  std::optional<int> headroom_gpus;
  std::optional<std::vector<bool>> sellable;  // per pool
};

// A page of the caller's leases, newest first.
struct LeasePage {
  std::vector<const store::LeaseRecord*> leases;
  bool has_more = false;
};

class ControlPlane : public alloc::Listener, private step::Phases {
 public:
  ~ControlPlane() override;

  // The admin key if it was created by this start (print it once), else empty.
  const std::string& admin_key_once() const { return admin_key_once_; }
  Time Now() const { return clock_->Now(); }
  double clock_speed() const { return clock_->speed(); }
  // The server clock (the leases' time), for the sandboxes' timers.
  const Clock& clock() const { return *clock_; }

  std::optional<Principal> Authenticate(std::string_view key) const;
  // The index of the pool named `name`, or -1 (the codecs resolve names with it).
  int PoolIndex(std::string_view name) const;

  // ---- leases and prices (lease_ops.cc) ----
  // A lease (spot, reserved now, or reserved booked ahead), in one unit of work that commits
  // refusals too: its record, or the refusal (`forecast_conflict`: `*offer` says what could
  // be accepted instead).
  Result<const store::LeaseRecord*> CreateLease(const Principal& who, LeaseRequest req, ReservedOffer* offer);
  // Newest first: at most `limit` leases created before the lease `after` (all if empty).
  Result<LeasePage> ListLeases(const Principal& who, int limit, const std::string& after);
  Result<const store::LeaseRecord*> GetLease(const Principal& who, const std::string& id);
  Result<const store::LeaseRecord*> ReleaseLease(const Principal& who, const std::string& id);
  // What can be bought now (`gpus` is the transport's to compare against).
  Quote GetQuote();
  // The prices now; with `from` or `to` set also the spot price's history over [from, to).
  Result<PriceList> Prices(std::optional<Time> from, std::optional<Time> to);

  // Past events of the lease after `after` (all of them for 0), or kNotFound.
  Result<std::vector<LeaseEvent>> LeaseEvents(const Principal& who, const std::string& id, int64_t after);
  // Live events of the lease (`*`: of every lease, for the owner); the callback returns false
  // to unsubscribe.
  uint64_t Subscribe(const std::string& lease_id, std::function<bool(const LeaseEvent&)> fn);
  void Unsubscribe(uint64_t token);
  // The lease as its events carry it (their stored payload) and the API shows it.
  nlohmann::json LeaseJson(const store::LeaseRecord& r) const;

  // ---- the owner's tenants, keys and settings (owner_ops.cc) ----
  Result<store::TenantRecord> CreateTenant(std::string name);
  // A tenant's key: its record and the secret, shown only once.
  Result<Tenants::NewKey> CreateKey(const Tenants::KeySpec& spec);
  // Keys in id order (of `tenant_id` only, when set): at most `limit` after the key `after`.
  Result<Tenants::KeyPage> ListKeys(const std::string& tenant_id, int limit, const std::string& after) const {
    return tenants_.ListKeys(tenant_id, limit, after);
  }
  // Revokes a tenant key from now on (again: unchanged); `key_not_found`, or a conflict for
  // an admin key.
  Result<Tenants::Revocation> RevokeKey(const std::string& id);
  PolicyView GetPolicy();
  // Applies at once: limits (notices for what is now over them) and the market at the new floor.
  Status PutPolicy(const PolicyChange& change);
  // Whether the fleet takes the owner's jobs from the API (a Slurm fleet runs its own).
  Status AcceptsOwnerJobs() const;
  // The owner's job of `gpus` on `pool` from now for `duration`: the owner's demand grows.
  Result<store::InternalJobRecord> AddInternalJob(int pool, Gpus gpus, Duration duration);
  const std::string& policy_name() const { return alloc_->policy().name(); }
  const std::string& PoolName(int pool) const { return topology().pools[pool].name; }
  int pool_count() const { return static_cast<int>(fleet_->topology().pools.size()); }

  // ---- billing (billing_ops.cc) ----
  // Whose billing a caller may see: a tenant its own (another's is `tenant_not_found`, as a
  // missing one); the owner `tenant_id`, or "" for everyone's.
  Result<std::string> BillingTenant(const Principal& who, const std::string& tenant_id) const;
  // Billed usage of the caller (the owner: of `tenant_id`, or everyone's) in `period`
  // ("YYYY-MM"; empty: the current month), and what live leases have accrued since.
  // Pages of at most `limit` records; `after` is the cursor of the previous page's last record.
  Result<UsagePage> Usage(const Principal& who, const std::string& period, const std::string& tenant_id, int limit,
                          const std::string& after);
  // The caller's invoice periods, newest first, with totals.
  Result<InvoiceList> Invoices(const Principal& who, const std::string& tenant_id);
  // One invoice: its line items and total.
  Result<InvoiceView> Invoice(const Principal& who, const std::string& period, const std::string& tenant_id);
  // The owner's report for `period` (default: this month) after advancing to now; ReportOf
  // reads it as it is ("": every period).
  Result<OwnerReport> Report(const std::string& period);
  OwnerReport ReportOf(const std::string& period) const;

  // ---- the model API's side of the ledger (gateway::Accounts, see api::GatewayAccounts) ----
  // The in-process gateway's limits and budget filters. TakeLimits reserves the request and
  // its tokens on the key's rate limits (SettleLimits returns them: all of the tokens but
  // `used`, and the request too with `request_back`).
  gateway::RateLimits::Decision TakeLimits(const gateway::Accounts::Admission& a) { return accounts_.TakeLimits(a); }
  void SettleLimits(const std::string& hold_id, int64_t used, bool request_back) {
    accounts_.SettleLimits(hold_id, used, request_back);
  }
  // Charges the usage's cost (never more than the hold; the records are cut to what was
  // charged) and queues it with its usage records. Durable at the next Flush: group commit.
  void GatewaySettle(const std::string& hold_id, const gateway::Accounts::Usage& usage) {
    accounts_.GatewaySettle(hold_id, usage, Now(), pending_);
  }

  // ---- commits ----
  // Commits whatever is queued (the gateway's usage) and waits until everything handed to the
  // commit thread is durable too, running the callbacks that waited for it: durable when it
  // returns (shutdown, tests).
  void FlushPending();
  // Commits on `commits`' thread from now on (issue 20: no fsync on the event loop): FlushAsync
  // hands the queued writes over and goes on; `post` runs a function on this control plane's
  // thread (its io_context). `commits->store()` must be the store this control plane was opened
  // on. Set once, before serving; `commits` outlives this object.
  void UseCommitThread(store::CommitThread* commits, std::function<void(std::function<void()>)> post);
  // Hands whatever is queued to the commit thread and runs `durable` on this thread once it is
  // durable, after every commit before it (the lease events it holds are published then);
  // without a commit thread, commits now and runs `durable` before returning.
  void FlushAsync(std::function<void()> durable);
  // Group commit of the hold API (standalone gateways admit and settle every request with it):
  // while deferred, the writes a request makes stay queued; the server then commits once for
  // all the requests that arrived together (FlushPending) and answers each after that.
  void DeferCommits(bool on) { defer_commits_ = on; }
  bool HasPendingWrites() const { return !pending_.empty(); }

  // Brings the fleet to the clock's now and commits what changed.
  void Advance();
  // From now on writes what the core decides about leases to `log` (a lease's number is its
  // index: 0 for lease_1); null: no more. Tests compare it with the simulator's.
  void SetDecisionLog(step::DecisionLog* log) {
    decisions_ = log;
    leases_.SetDecisionLog(log);
    if (log != nullptr) log->Price(now_, market_.price());  // where the log starts from
  }

  // ---- model replicas on the fleet (the gateway's inference capacity) ----
  // From now on keeps `models[i].replicas` replicas of each model with gpus_per_replica > 0
  // placed on the fleet as inference holders (reclaimed first when the owner needs GPUs): a
  // notice drains the replica, its end stops it, and free GPUs start it again. Replicas are
  // not persisted: after a restart they are placed anew. `host` must outlive the object.
  void SetReplicaHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models);

  // ---- tenants' workloads on the sim fleet (lease_workloads.cc, docs/workloads.md) ----
  // From now on a lease with a `workload` runs it in `w` while it is active (null: leases with
  // a workload are refused). `w` must outlive its use here.
  void UseWorkloads(Workloads* w);
  Workloads* workloads() { return leases_.workloads(); }
  // The lease a workload's metadata token opens (`/metadata/{token}/…`), or `not_found`.
  Result<const store::LeaseRecord*> LeaseOfToken(std::string_view token);
  // The workload's logs of the caller's lease (kept in memory while the server runs), or why
  // there are none (`lease_not_found`, `workload_not_found`, `logs_not_found`).
  Result<workload::LogRing*> WorkloadLogs(const Principal& who, const std::string& id);

  // ---- the fleet backend (fleet/backend.h) ----
  // Open runs on a sim backend of its trace. From now on the fleet is `backend` (e.g. slurm:
  // the owner's GPUs are where Slurm runs other jobs, each lease is a holder job, and Slurm's
  // preemption notices and lost holders end leases). REQUIRES: the trace given to Open has the
  // backend's topology (fleet::SlurmTrace). Leases live at the call are handed to it (Attach).
  // `backend` must outlive the object.
  void UseBackend(fleet::Backend* backend);
  // Whether the fleet posts notices and replicas' registrations (Slurm's holder jobs do):
  // `not_found` unless it does (and for replicas, unless the gateway places replicas).
  Status TakesNotices() const;
  Status TakesReplicas() const;
  // A holder job's notice (fleet_events.cc): Slurm is preempting the job `id` (a lease's, or
  // a replica's) on `node`; a lease gets its reclaim notice now, reclaim_at = now + the notice
  // (the partition's GraceTime), once. `lease` is null for a replica's job (drained).
  struct NoticeTaken {
    const store::LeaseRecord* lease = nullptr;
  };
  Result<NoticeTaken> SlurmNotice(const std::string& id, const std::string& token, const std::string& node);
  // A replica job's registration: its model server answers at `url`; the gateway routes to it
  // from now on.
  Result<Replicas::Slot> SlurmReplicaUp(const std::string& id, const std::string& token, const std::string& url);

 protected:
  // The unit of work of one call: the fleet brought to the clock's now when it opens, what the
  // call changed committed once when it closes, on every path out of the call (events reach
  // watchers only after that commit; the reply is sent after it).
  class Work {
   public:
    explicit Work(ControlPlane* cp) : cp_(cp) { cp_->AdvanceTo(cp_->clock_->Now()); }
    ~Work() { cp_->Flush(); }
    Work(const Work&) = delete;
    Work& operator=(const Work&) = delete;

   private:
    ControlPlane* cp_;
  };

  ControlPlane(const ServeConfig& config, const sim::Trace& trace, store::Store* store, const Clock* wall);
  // Rebuilds the state from the store (creating the admin key on first start: see
  // admin_key_once()) and brings it to the clock's now. `wall` must outlive the object.
  Status Load(const Clock* wall, const std::string& admin_key_env);
  // Called with each batch of lease events once they are durable, before the watchers get them.
  virtual void OnPublished(const std::vector<store::LeaseEventRecord>& events) { (void)events; }

  // Workloads (lease_workloads.cc).
  void OnWorkload(const std::string& lease_id, const workload::WorkloadStatus& s);
  nlohmann::json WorkloadJson(const store::LeaseRecord& r) const;
  // Billing's parts (billing_ops.cc).
  Money InProgress(const std::string& tenant) const;
  Billed BilledIn(const std::string& period) const;
  // The parts of Load (load.cc).
  Status BuildCore();
  Status LoadKeys(const std::string& admin_key_env);
  Status LoadLeases();
  Status LoadBalances();
  Status RestoreInternalPlacement();
  Status InitClock(const Clock* wall);
  void WarmUp(Time until);
  // The owner's demand on `pool` at t: the trace's level plus the injected jobs, clamped to
  // the pool's capacity (as the allocator takes it).
  Gpus DemandAt(int pool, Time t) const;
  // Every time in (t0, t1] at which the owner's demand changes or a booking needs a step (its
  // start, and the notice before it), in order.
  std::vector<Time> DemandChanges(Time t0, Time t1) const;
  void AdvanceTo(Time now);
  void Step(Time now);
  // step::Phases: the step itself is step::Step, shared with `landlord sim`.
  void Integrate(Time now) override;
  void StartBookings(Time now) override;
  void SetDemand(Time now) override;
  void Market(Time now) override;
  void ClearMarket(Time now);
  void Flush();
  // Flush's part before the commit: the leases' writes, the events' payloads, the owner's
  // placement, one balance per tenant. False when nothing is queued.
  bool PrepareCommit();
  // The committed events to the log and the watchers.
  void Publish(std::vector<store::LeaseEventRecord> events);
  // What the commit thread finished, in commit order: the events published (before any later
  // commit's), and with `run_durable` the FlushAsync callbacks run.
  void DeliverCommitted(bool run_durable);
  Lease* Find(const Principal& who, const std::string& id);
  std::string PolicySettingsJson() const;
  // The spot tiers on offer now, without their room.
  std::vector<SpotTierOffer> SpotTiers() const;
  Money ReservedPriceFor(Duration d) const { return leases_.ReservedPriceFor(d); }

  // alloc::Listener
  void OnStart(const alloc::Holder& h, Time now) override;
  void OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason) override;
  void OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason) override;

  ServeConfig config_;
  std::unique_ptr<fleet::Backend> own_fleet_;  // the trace's, until UseBackend
  fleet::Backend* fleet_;
  Time history_begin_;  // where the trace given to Open begins: the clock's origin, the warm-up
  const fleet::Topology& topology() const { return fleet_->topology(); }
  store::Store* store_;
  std::unique_ptr<ScaledClock> clock_;
  std::unique_ptr<forecast::DemandForecast> forecast_;
  std::unique_ptr<alloc::Allocator> alloc_;
  std::shared_ptr<Overrides> overrides_;  // the owner's headroom and sellable pools
  market::PriceBook prices_;
  Money floor_;
  step::SpotMarket market_{Money{}};  // the spot price and when to clear again
  step::DecisionLog* decisions_ = nullptr;
  std::string admin_key_once_;

  Tenants tenants_;  // and their keys
  Leases leases_;  // their lifecycle, over the book of them
  LeaseBook& book() { return leases_.book(); }
  const LeaseBook& book() const { return leases_.book(); }
  std::vector<store::InternalJobRecord> jobs_;
  size_t job_count_ = 0;
  std::vector<Gpus> demand_;  // what the allocator was last told, per pool
  std::vector<std::string> internal_placement_;  // per pool, as last committed
  Time billed_month_ = kTimeMax;  // the month of the last step: live leases are billed at its end
  Money recorded_spot_ = Money::Micros(-1);  // the last spot price put in the history
  // Balances, holds and the keys' rate limits (shared by every gateway in front of this
  // control plane, on the wall clock; in memory: a new leader or a restart starts them full).
  Accounts accounts_;
  const Clock* wall_;  // the wall clock (the scaled clock's, and the rate limits')
  bool defer_commits_ = false;
  int64_t last_usage_inserted_ = 0;  // usage records new in the last commit

  store::Batch pending_;
  // The commit thread (UseCommitThread) and what it finished that this thread has not seen yet.
  store::CommitThread* commits_ = nullptr;
  std::function<void(std::function<void()>)> post_;
  struct Committed {
    std::vector<store::LeaseEventRecord> events;  // published by whichever delivery comes first
    std::function<void()> durable;
  };
  std::mutex committed_mu_;
  std::deque<Committed> committed_;     // guarded by committed_mu_
  std::vector<std::function<void()>> ready_;  // delivered, their `durable` not run yet
  EventLog events_;  // the lease events' watchers, published to after each commit

  Time now_;  // how far Advance got
  FleetStats stats_;  // the read model: totals, counters and samples since start
  Replicas replicas_;  // the model API's inference holders
  // A fleet that places the owner's GPUs itself (fleet_events.cc).
  std::vector<std::pair<std::string, Gpus>> fleet_owner_;  // the owner's GPUs as last placed
  std::unordered_map<std::string, uint32_t> node_index_;   // node name → index into the fleet
  void ApplyPoll(const fleet::PollResult& poll, Time now);
  void Preempted(const std::string& id, const std::string& why);
};

}  // namespace ll::control
