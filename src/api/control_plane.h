// The control plane's API without the transport: each method takes a parsed request body (JSON)
// or query, decodes it into the domain request of control::ControlPlane (errors name the
// field), calls into it and renders the answer or its Status as a Reply (status and JSON), so
// the HTTP server, the fuzz target and tests drive the same code. The state, the unit of work,
// the step and the commits are control::ControlPlane's (control/control_plane.h).
//
// Thread-safety: none; the server calls it from its one I/O thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/config.h"
#include "control/control_plane.h"

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


using control::ScaledClock;
using control::TimeJson;

class ControlPlane final : public control::ControlPlane {
 public:
  // The owner's headroom, sellable pools and the booked reserved leases.
  using Overrides = control::Overrides;

  // Rebuilds the state from `store` (creating the admin key on first start: see
  // admin_key_once()) and brings it to the clock's now. `wall` must outlive the object.
  static Result<std::unique_ptr<ControlPlane>> Open(const ServeConfig& config, const sim::Trace& trace,
                                                    store::Store* store, const Clock* wall,
                                                    const std::string& admin_key_env);

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
  // The in-process gateway's budget filter (GatewayAccounts): holds `a.amount` of the tenant's
  // balance in memory only (a crash drops the hold with nothing charged, as the request it
  // covered is gone too).
  Status GatewayHold(const gateway::Accounts::Admission& a);
  // The owner's report: billed revenue by class for `period` (default: this month) and, since
  // the server started, GPU-hours and utilization by class, revenue per GPU-hour and the cost
  // per million tokens served.
  Reply Report(const std::string& period);
  // The same figures as Prometheus lines (part of Metrics()).
  std::string ReportMetrics();

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


  // ---- tenants' workloads (lease_workloads.cc, docs/workloads.md) ----
  // The metadata service (`/metadata/{token}/…`, no API key: the token opens its lease only).
  // `spot/instance-action`: AWS's shape once noticed, else 404; `*lease_id` is set when the
  // token is known (a long poll waits on that lease's events).
  Reply MetadataInstanceAction(std::string_view token, std::string* lease_id = nullptr);
  Reply MetadataLease(std::string_view token);
  // The workload's logs of the caller's lease: its ring, or the 404 reply.
  workload::LogRing* WorkloadLogs(const Principal& who, const std::string& id, Reply* error);
  Reply LeaseLogs(const Principal& who, const std::string& id);

  // ---- the fleet backend (fleet_events.cc) ----
  // A holder job's notice (`POST /slurm/notice` {"lease", "token", "node"}): Slurm is
  // preempting the lease; it gets its reclaim notice now, reclaim_at = now + the notice
  // (the partition's GraceTime).
  Reply SlurmNotice(const nlohmann::json& body);
  // A replica job's registration (`POST /slurm/replica` {"replica", "token", "url"}): its model
  // server answers at `url`; the gateway routes to it from now on.
  Reply SlurmReplicaUp(const nlohmann::json& body);

 private:
  using Lease = control::Lease;
  ControlPlane(const ServeConfig& config, const sim::Trace& trace, store::Store* store, const Clock* wall)
      : control::ControlPlane(config, trace, store, wall) {}
  // The operational log's line of each lease event, once it is durable (api/ops_log.h).
  void OnPublished(const std::vector<store::LeaseEventRecord>& events) override;
  // The body of `POST /v1/leases` as the domain takes it (leases.cc); errors name the field.
  std::optional<control::LeaseRequest> ParseLeaseRequest(const nlohmann::json& body, Reply* error) const;
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
  nlohmann::json KeyJson(const store::KeyRecord& k) const;
  // control::ControlPlane::BillingTenant, its error as the reply (balances.cc).
  std::optional<std::string> BillingTenant(const Principal& who, const std::string& tenant_id, Reply* error) const;
};

}  // namespace ll::api
