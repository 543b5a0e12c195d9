// The control plane of `landlord serve`: tenants, keys, leases and the owner's settings, on
// top of the same allocator, forecast and market as `landlord sim` (one core, two drivers).
//
// Transport-independent: every API call takes the parsed request and returns a Reply (status
// and JSON), so the HTTP server, the fuzz target and tests drive the same code. Time comes
// from an injected clock; Advance() brings the fleet to the clock's now (deadlines, the
// owner's demand, sell limits, the spot market) and every call does so first.
//
// Durability: each call collects the lease transitions the allocator reports and commits them
// to the store in one batch before it returns; events reach watchers only after that. If the
// store fails mid-call the process stops (LL_CHECK): memory may be ahead of the disk, and a
// restart rebuilds everything from the store, which holds exactly what was acknowledged.
//
// Thread-safety: none; the server calls it from its one I/O thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocator.h"
#include "api/config.h"
#include "control/accounts.h"
#include "control/event_log.h"
#include "control/fleet_stats.h"
#include "control/lease_book.h"
#include "control/leases.h"
#include "control/overrides.h"
#include "control/replicas.h"
#include "control/tenants.h"
#include "control/workloads.h"
#include "core/clock.h"
#include "fleet/backend.h"
#include "forecast/forecast.h"
#include "gateway/gateway.h"
#include "sim/trace.h"
#include "ledger/ledger.h"
#include "step/decisions.h"
#include "step/step.h"
#include "store/store.h"

namespace ll::api {

struct Reply {
  int status = 200;
  nlohmann::json body;
  // Set with a string body: sent as is with this content type (CSV, Prometheus text).
  std::string content_type;
};

// The one mapping of a domain error (StatusCode) to an HTTP status.
int StatusToHttp(StatusCode code);
// A domain error as the API answers it, OpenAI-style: {"error": {"message", "type", "code" (the
// `reason`, e.g. `lease_not_found`), "param" (the field it names)}}, with StatusToHttp(code).
Reply ErrorReply(StatusCode code, std::string_view reason, std::string message, std::string_view param = "");
// A component's error: its code, reason (StatusCodeName(code) when it gave none), message, param.
Reply ErrorReply(const Status& st);
// The same body with an HTTP status the transport chose (405, 413): not for domain code.
Reply HttpErrorReply(int status, std::string_view code, std::string message, std::string_view param = "");

using control::Principal;
using control::LeaseEvent;


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

class ControlPlane final : public alloc::Listener, private step::Phases {
 public:
  // The owner's headroom, sellable pools and the booked reserved leases, shared with the
  // policy wrapper that applies them (load.cc).
  using Overrides = control::Overrides;

  // Rebuilds the state from `store` (creating the admin key on first start: see
  // admin_key_once()) and brings it to the clock's now. `wall` must outlive the object.
  static Result<std::unique_ptr<ControlPlane>> Open(const ServeConfig& config, const sim::Trace& trace,
                                                    store::Store* store, const Clock* wall,
                                                    const std::string& admin_key_env);
  ~ControlPlane() override;

  // The admin key if it was created by this start (print it once), else empty.
  const std::string& admin_key_once() const { return admin_key_once_; }
  Time Now() const { return clock_->Now(); }
  double clock_speed() const { return clock_->speed(); }

  std::optional<Principal> Authenticate(std::string_view key) const;

  // ---- tenant API ----
  Reply CreateLease(const Principal& who, const nlohmann::json& body);
  // Newest first: at most `limit` leases created before the lease `after` (all if empty).
  Reply ListLeases(const Principal& who, int limit = 100, const std::string& after = "");
  Reply GetLease(const Principal& who, const std::string& id);
  Reply ReleaseLease(const Principal& who, const std::string& id);
  Reply Quote(const Principal& who, std::optional<int64_t> gpus);
  // Current prices; with `from` or `to` set also the spot price history over [from, to).
  Reply Prices(std::optional<Time> from = std::nullopt, std::optional<Time> to = std::nullopt);
  // ---- billing (billing.cc) ----
  // Billed usage of the caller (the owner: of `tenant_id`, or everyone's) in `period`
  // ("YYYY-MM"; empty: the current month), and what live leases have accrued since.
  // Pages of at most `limit` records; `after` is the `next` of the previous page.
  Reply Usage(const Principal& who, const std::string& period, const std::string& tenant_id, int limit = 1000,
              const std::string& after = "");
  // The caller's invoice periods, newest first, with totals.
  Reply Invoices(const Principal& who, const std::string& tenant_id);
  // One invoice: line items and total; `csv` gives text/csv.
  Reply Invoice(const Principal& who, const std::string& period, const std::string& tenant_id, bool csv);
  // Prepaid balances (the model API's budgets): the owner credits, the gateway reserves the
  // worst case of a request and settles it to what was used, with its token usage.
  Reply GetBalance(const Principal& who, const std::string& tenant_id);
  Reply Credit(const nlohmann::json& body);
  Reply Reserve(const nlohmann::json& body);
  Reply Settle(const std::string& hold_id, const nlohmann::json& body);
  // Token usage reported by a gateway: {"events": [{"key", "tenant_id", "model",
  // "input_tokens", "output_tokens", "at"?}]}, each counted once by its key.
  Reply IngestUsage(const nlohmann::json& body);
  // Standalone gateways' slices (slices.cc, docs/scale-out.md): a gateway's report on slice
  // `id` (its usage, the units it used or gives back, what it asks for), answered with what the
  // slice holds now and its lease's expiry; and the open slices (of `tenant_id`, or all).
  Reply ReportSlice(const std::string& id, const nlohmann::json& body);
  Reply ListSlices(const std::string& tenant_id);
  // ---- the model API's side of the ledger (gateway::Accounts, see GatewayAccounts) ----
  // {"key"} → the tenant and key id of a tenant's key, or 404 (a standalone gateway asks).
  Reply VerifyKey(const nlohmann::json& body);
  // The tenant and key id of a tenant's API key (the admin key is not one).
  std::optional<gateway::Accounts::Key> TenantKey(std::string_view key) const;
  // The in-process gateway's limits and budget filters (GatewayAccounts). TakeLimits reserves
  // the request and its tokens on the key's rate limits (SettleLimits returns them: all of the
  // tokens but `used`, and the request too with `request_back`); GatewayHold holds `a.amount`
  // of the tenant's balance in memory only (a crash drops the hold with nothing charged, as
  // the request it covered is gone too).
  gateway::RateLimits::Decision TakeLimits(const gateway::Accounts::Admission& a) { return accounts_.TakeLimits(a); }
  void SettleLimits(const std::string& hold_id, int64_t used, bool request_back) {
    accounts_.SettleLimits(hold_id, used, request_back);
  }
  Status GatewayHold(const gateway::Accounts::Admission& a);
  // Charges the usage's cost (never more than the hold; the records are cut to what was
  // charged) and queues it with its usage records. Durable at the next Flush: group commit.
  void GatewaySettle(const std::string& hold_id, const gateway::Accounts::Usage& usage) {
    accounts_.GatewaySettle(hold_id, usage, Now(), pending_);
  }
  // Commits whatever is queued (the gateway's usage): durable when it returns.
  void FlushPending() { Flush(); }
  // Group commit of the hold API (standalone gateways admit and settle every request with it):
  // while deferred, the writes a request makes stay queued; the server then commits once for
  // all the requests that arrived together (FlushPending) and answers each after that.
  void DeferCommits(bool on) { defer_commits_ = on; }
  bool HasPendingWrites() const { return !pending_.empty(); }
  // The owner's report: billed revenue by class for `period` (default: this month) and, since
  // the server started, GPU-hours and utilization by class, revenue per GPU-hour and the cost
  // per million tokens served.
  Reply Report(const std::string& period);
  // The same figures as Prometheus lines (part of Metrics()).
  std::string ReportMetrics();
  // Past events of the lease after `after` (all of them for 0), or a 404 reply.
  Result<std::vector<LeaseEvent>> LeaseEvents(const Principal& who, const std::string& id, int64_t after);
  // Live events of the lease (`*`: of every lease, for the owner); the callback returns false
  // to unsubscribe.
  uint64_t Subscribe(const std::string& lease_id, std::function<bool(const LeaseEvent&)> fn);
  void Unsubscribe(uint64_t token);

  // ---- owner API ----
  Reply CreateTenant(const nlohmann::json& body);
  // ---- API keys (keys.cc) ----
  // {"tenant_id", "rpm"?, "tpm"?, "name"?, "expires_at"? | "expires_in_s"?} → 201 with the key
  // (shown only here).
  Reply CreateKey(const nlohmann::json& body);
  // Keys in id order (of `tenant_id` only, when set), without secrets: at most `limit` after
  // the key `after`.
  Reply ListKeys(const std::string& tenant_id, int limit = 100, const std::string& after = "");
  // Revokes a tenant key from now on (again: unchanged); 404 for an unknown id, 409 for an
  // admin key.
  Reply RevokeKey(const std::string& id);
  Reply Fleet();
  Reply GetPolicy();
  Reply PutPolicy(const nlohmann::json& body);
  Reply AddInternalJob(const nlohmann::json& body);
  Reply Timeseries();
  Reply Health();
  // ---- the owner's dashboard (dashboard.cc) ----
  // Everything the dashboard shows but the fleet map: GPUs by class now and over time (with
  // the owner's demand against its forecast), spot price, revenue, cost per token, leases,
  // recent reclaims, tenants with their usage. Series are thinned to at most `max_points`.
  Reply Dashboard(size_t max_points = 1500);
  // The fleet map, compact enough for 100,000 GPUs: each node's holders as indices into one
  // table of holders (class, lease or replica, tenant, state).
  Reply FleetMap();
  // DESIGN.md metrics and fleet gauges, Prometheus text format.
  std::string Metrics();

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
  void UseWorkloads(control::Workloads* w);
  control::Workloads* workloads() { return leases_.workloads(); }
  // The server clock (the leases' time), for the sandboxes' timers.
  const Clock& clock() const { return *clock_; }
  // The metadata service (`/metadata/{token}/…`, no API key: the token opens its lease only).
  // `spot/instance-action`: AWS's shape once noticed, else 404; `*lease_id` is set when the
  // token is known (a long poll waits on that lease's events).
  Reply MetadataInstanceAction(std::string_view token, std::string* lease_id = nullptr);
  Reply MetadataLease(std::string_view token);
  // The workload's logs of the caller's lease: its ring, or the 404 reply.
  workload::LogRing* WorkloadLogs(const Principal& who, const std::string& id, Reply* error);
  Reply LeaseLogs(const Principal& who, const std::string& id);

  // ---- the fleet backend (fleet/backend.h) ----
  // Open runs on a sim backend of its trace. From now on the fleet is `backend` (e.g. slurm:
  // the owner's GPUs are where Slurm runs other jobs, each lease is a holder job, and Slurm's
  // preemption notices and lost holders end leases). REQUIRES: the trace given to Open has the
  // backend's topology (fleet::SlurmTrace). Leases live at the call are handed to it (Attach).
  // `backend` must outlive the object.
  void UseBackend(fleet::Backend* backend);
  // A holder job's notice (`POST /slurm/notice` {"lease", "token", "node"}): Slurm is
  // preempting the lease; it gets its reclaim notice now, reclaim_at = now + the notice
  // (the partition's GraceTime).
  Reply SlurmNotice(const nlohmann::json& body);
  // A replica job's registration (`POST /slurm/replica` {"replica", "token", "url"}): its model
  // server answers at `url`; the gateway routes to it from now on.
  Reply SlurmReplicaUp(const nlohmann::json& body);

 private:
  using Lease = control::Lease;
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
  // The body of `POST /v1/leases` as the domain takes it (leases.cc); errors name the field.
  std::optional<control::LeaseRequest> ParseLeaseRequest(const nlohmann::json& body, Reply* error) const;
  // Workloads (lease_workloads.cc).
  void OnWorkload(const std::string& lease_id, const workload::WorkloadStatus& s);
  nlohmann::json WorkloadJson(const store::LeaseRecord& r) const;
  // The parts of the dashboard (dashboard.cc).
  nlohmann::json DashboardSeries(size_t max_points) const;
  void DashboardLeases(nlohmann::json* leases, nlohmann::json* reclaims) const;
  nlohmann::json DashboardTenants() const;
  // Validates token usage events (errors name `events[i].field`) into usage records.
  Result<std::vector<store::UsageRecord>> TokenUsage(const nlohmann::json& events, Reply* error);
  nlohmann::json BalanceJson(const std::string& tenant_id) const;
  nlohmann::json SliceJson(const store::HoldRecord& h) const;
  std::optional<std::vector<store::UsageRecord>> SliceUsage(const nlohmann::json& usage, const std::string& tenant,
                                                            Reply* error) const;
  // Resolves whose billing a caller may see: a tenant its own; the owner `tenant_id` or all.
  std::optional<std::string> BillingTenant(const Principal& who, const std::string& tenant_id, Reply* error) const;
  ControlPlane(const ServeConfig& config, const sim::Trace& trace, store::Store* store, const Clock* wall);
  Status Load(const Clock* wall, const std::string& admin_key_env);
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
  Lease* Find(const Principal& who, const std::string& id);
  nlohmann::json LeaseJson(const store::LeaseRecord& r) const;
  // The spot tiers on offer, each with its notice and price now (quotes and prices).
  nlohmann::json SpotTiers() const;
  std::string PolicySettingsJson() const;
  int PoolIndex(std::string_view name) const;
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
  int pool_count() const { return static_cast<int>(fleet_->topology().pools.size()); }
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

  control::Tenants tenants_;  // and their keys
  nlohmann::json KeyJson(const store::KeyRecord& k) const;
  control::Leases leases_;  // their lifecycle, over the book of them
  control::LeaseBook& book() { return leases_.book(); }
  const control::LeaseBook& book() const { return leases_.book(); }
  std::vector<store::InternalJobRecord> jobs_;
  size_t job_count_ = 0;
  std::vector<Gpus> demand_;  // what the allocator was last told, per pool
  std::vector<std::string> internal_placement_;  // per pool, as last committed
  Time billed_month_ = kTimeMax;  // the month of the last step: live leases are billed at its end
  Money recorded_spot_ = Money::Micros(-1);  // the last spot price put in the history
  // Balances, holds and the keys' rate limits (shared by every gateway in front of this
  // control plane, on the wall clock; in memory: a new leader or a restart starts them full).
  control::Accounts accounts_;
  const Clock* wall_;  // the wall clock (the scaled clock's, and the rate limits')
  bool defer_commits_ = false;
  int64_t last_usage_inserted_ = 0;  // usage records new in the last commit

  store::Batch pending_;
  control::EventLog events_;  // the lease events' watchers, published to after each commit

  Time now_;  // how far Advance got
  control::FleetStats stats_;  // the read model: totals, counters and samples since start
  control::Replicas replicas_;  // the model API's inference holders
  // A fleet that places the owner's GPUs itself (fleet_events.cc).
  std::vector<std::pair<std::string, Gpus>> fleet_owner_;  // the owner's GPUs as last placed
  std::unordered_map<std::string, uint32_t> node_index_;   // node name → index into the fleet
  void ApplyPoll(const fleet::PollResult& poll, Time now);
  void Preempted(const std::string& id, const std::string& why);
};

}  // namespace ll::api
