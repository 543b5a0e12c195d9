#include "api/control_plane.h"

#include <algorithm>
#include <unordered_set>
#include <cmath>

#include <fmt/format.h>

#include "api/control_plane_internal.h"
#include "api/fields.h"
#include "api/ops_log.h"
#include "core/check.h"
#include "market/auction.h"

namespace ll::api {

using alloc::HolderClass;
using alloc::HolderState;
using nlohmann::json;

namespace {

const char* ErrorType(int status) {
  switch (status) {
    case 401: return "invalid_request_error";  // OpenAI's own (code `invalid_api_key`), as the model API answers
    case 402: return "insufficient_quota";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 503: return "server_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

json TimeJson(Time t) { return t == kTimeMax ? json(nullptr) : json(FormatUtc(t)); }

std::string InternalPlacementKey(int pool) { return fmt::format("internal_placement:{}", pool); }

int StatusToHttp(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kInsufficientFunds: return 402;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kConflict: return 409;
    case StatusCode::kResourceExhausted: return 409;  // no capacity now: the request conflicts with the fleet's state
    case StatusCode::kRateLimited: return 429;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kIoError:
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

Reply ErrorReply(StatusCode code, std::string_view reason, std::string message, std::string_view param) {
  return HttpErrorReply(StatusToHttp(code), reason, std::move(message), param);
}

Reply ErrorReply(const Status& st) {
  return ErrorReply(st.code(), st.reason().empty() ? StatusCodeName(st.code()) : st.reason(), st.message(), st.param());
}

Reply HttpErrorReply(int status, std::string_view code, std::string message, std::string_view param) {
  Reply r;
  r.status = status;
  r.body = {{"error",
             {{"message", std::move(message)},
              {"type", ErrorType(status)},
              {"code", std::string(code)},
              {"param", param.empty() ? json(nullptr) : json(std::string(param))}}}};
  return r;
}

Time ScaledClock::Now() const {
  double elapsed = static_cast<double>((wall_->Now() - origin_wall_).ms) * speed_;
  return origin_ + Duration::Millis(static_cast<int64_t>(elapsed));
}

// ---------------------------------------------------------------- time

void ControlPlane::Advance() {
  AdvanceTo(clock_->Now());
  replicas_.Place(*alloc_, overrides_->sellable, floor_, now_);
  accounts_.ExpireSlices(pending_);  // gateways' slices whose lease ran out: their rest returns
  Flush();
}

void ControlPlane::SetReplicaHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models) {
  replicas_.SetHost(host, std::move(models));
  Advance();
}

void ControlPlane::AdvanceTo(Time now) {
  if (now < now_) now = now_;  // the clock never runs backwards for the core
  // Each change of the owner's demand, and each of the allocator's deadlines (a reclaim, the
  // end of a term), is taken at its own time, not at the next tick: the policy then sees the
  // same history however the server ticks, a restart (WarmUp) replays it exactly, and the
  // steps are those `landlord sim` takes (tests/step/sim_predicts_serve_test.cc).
  const std::vector<Time> changes = DemandChanges(now_, now);
  for (size_t i = 0;;) {
    const Time next = i < changes.size() ? changes[i] : now;
    if (const Time deadline = alloc_->NextDeadline(); deadline < next) {
      Step(std::max(deadline, now_));
      continue;
    }
    if (i == changes.size()) break;
    Step(changes[i++]);
  }
  Step(now);
}

void ControlPlane::Step(Time now) {
  // A new month closes the last one's usage of every live lease (its invoice period).
  if (MonthStartUtc(now) != billed_month_) {
    if (billed_month_ != kTimeMax) leases_.MarkLiveDirty();
    billed_month_ = MonthStartUtc(now);
  }
  step::Step(*alloc_, *this, now);
  if (stats_.SampleDue(now, config_.sample_every)) {
    control::FleetStats::Sample s = stats_.Occupancy(*alloc_, now);
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      s.demand += alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want;
      s.forecast += forecast_->Quantile(p, 1.0, now, now + config_.sample_every);
    }
    s.spot_price = market_.price();
    stats_.Add(s);
  }
}

void ControlPlane::Integrate(Time now) {
  int64_t ms = (now - now_).ms;
  if (ms <= 0) return;
  stats_.Integrate(*alloc_, leases_.Rate(), ms);
  now_ = now;
}

void ControlPlane::StartBookings(Time now) { leases_.StartBookings(now, pending_); }

void ControlPlane::Market(Time now) { ClearMarket(now); }

void ControlPlane::SetDemand(Time now) {
  if (std::optional<fleet::PollResult> poll = fleet_->Poll(now)) ApplyPoll(*poll, now);
  if (!fleet_->DemandFromTrace()) return;
  std::erase_if(jobs_, [&](const store::InternalJobRecord& j) { return j.end <= now; });
  std::vector<Gpus> want(pool_count(), 0);
  for (int p = 0; p < pool_count(); ++p) want[p] = DemandAt(p, now);
  for (int p = 0; p < pool_count(); ++p) {
    if (want[p] == demand_[p]) continue;
    demand_[p] = want[p];
    PoolId pool{static_cast<uint32_t>(p)};
    alloc_->SetInternalDemand(pool, want[p], now);
    forecast_->Observe(p, alloc_->pool(pool).internal_want, now);
  }
}

// The spot market's clearing (control::Leases reprices the leases), and the price's history.
void ControlPlane::ClearMarket(Time now) {
  if (!leases_.ClearMarket(now, pending_)) return;
  if (decisions_ != nullptr) decisions_->Price(now, market_.price());
  if (market_.price() != recorded_spot_) {
    pending_.spot_prices.push_back({now, market_.price().micros});
    recorded_spot_ = market_.price();
  }
}

// ---------------------------------------------------------------- events and persistence

void ControlPlane::Flush() {
  if (defer_commits_) return;  // the server commits after the request (group commit)
  leases_.Flush(now_, pending_);
  // An event's payload is whole when it is stored: the lease as it is now, at the end of the
  // step that made the event. A replay (`Last-Event-ID`) then sends the bytes the live stream
  // sent, never the lease as it became later.
  for (store::LeaseEventRecord& e : pending_.events) {
    json data = json::parse(e.data, nullptr, false);
    if (!data.is_object()) data = json::object();
    data["lease"] = LeaseJson(book()[*book().IndexOf(e.lease_id)].rec);
    data["now"] = FormatUtc(now_);
    data["clock_speed"] = clock_->speed();
    e.data = data.dump();
  }
  // Where the owner's GPUs sit decides which nodes are free: kept so a restart is exact.
  for (int p = 0; p < alloc_->pool_count(); ++p) {
    std::string text = FormatPlacement(alloc_->InternalShares(PoolId{static_cast<uint32_t>(p)}));
    if (text == internal_placement_[p]) continue;
    pending_.settings.emplace_back(InternalPlacementKey(p), text);
    internal_placement_[p] = std::move(text);
  }
  if (pending_.empty()) return;
  // A balance is a snapshot: only the last one of each tenant in the batch needs writing (a
  // group commit of gateway usage holds one per request).
  if (pending_.balances.size() > 1) {
    std::vector<store::BalanceRecord> last;
    std::unordered_set<std::string> seen;
    for (auto it = pending_.balances.rbegin(); it != pending_.balances.rend(); ++it) {
      if (seen.insert(it->tenant_id).second) last.push_back(std::move(*it));
    }
    pending_.balances = std::move(last);
  }
  Status st = store_->Commit(pending_);
  LL_CHECK(st.ok());  // fail-stop: the store holds what was acknowledged; a restart resumes from it
  last_usage_inserted_ = pending_.usage_inserted;
  // Deliver after the commit, with the seqs the store assigned.
  std::vector<store::LeaseEventRecord> events = std::move(pending_.events);
  pending_ = store::Batch{};
  // The operational log's line of each lease event, once it is durable (api/ops_log.h).
  if (oplog::Enabled(oplog::Level::kInfo)) {
    for (const store::LeaseEventRecord& e : events) {
      oplog::LeaseEvent(e.seq, e.lease_id, e.tenant_id, e.type, nlohmann::json::parse(e.data, nullptr, false));
    }
  }
  events_.Publish(std::move(events));
}

// The allocator's listener: a replica's holder is the replicas', every other outside holder a lease's.
void ControlPlane::OnStart(const alloc::Holder& h, Time now) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnStart(h, topology(), now);
  leases_.OnStart(h, now, pending_);
}

void ControlPlane::OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnNotice(h);
  leases_.OnNotice(h, now, reason, pending_);
}

void ControlPlane::OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason) {
  if (!h.outside() || reason == alloc::EndReason::kRejected) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnEnd(h, reason);
  leases_.OnEnd(h, now, reason, pending_);
}

// ---------------------------------------------------------------- tenant API

std::optional<Principal> ControlPlane::Authenticate(std::string_view key) const {
  const store::KeyRecord* k = tenants_.Find(key, clock_->Now());
  if (k == nullptr) return std::nullopt;
  return Principal{k->admin, k->tenant_id};
}

int ControlPlane::PoolIndex(std::string_view name) const {
  const auto& pools = topology().pools;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

json ControlPlane::LeaseJson(const store::LeaseRecord& r) const {
  json nodes = json::array();
  if (auto shares = ParsePlacement(r.placement); shares.ok()) {
    for (const auto& s : *shares) {
      json n = {{"node", topology().nodes[s.node.v].name}, {"gpus", s.gpus}};
      if (auto access = fleet_->Access(topology().nodes[s.node.v].name)) n["access"] = *access;
      nodes.push_back(std::move(n));
    }
  }
  return {{"id", r.id},
          {"object", "lease"},
          {"tenant_id", r.tenant_id},
          {"kind", Name(r.kind)},
          {"state", Name(r.state)},
          {"gpus", r.gpus},
          {"pool", topology().pools[r.pool].name},
          {"price_per_gpu_hour", FormatMoney(Money::Micros(r.price_micros))},
          {"max_price_per_gpu_hour", r.kind == LeaseKind::kSpot ? json(FormatMoney(Money::Micros(r.max_price_micros))) : json(nullptr)},
          {"notice_tier", r.kind == LeaseKind::kSpot ? json(Name(r.notice_tier)) : json(nullptr)},
          {"created_at", TimeJson(r.created)},
          {"started_at", TimeJson(r.started)},
          {"noticed_at", TimeJson(r.noticed_at)},
          {"reclaim_at", TimeJson(r.reclaim_at)},
          {"term_end", TimeJson(r.term_end)},
          {"ended_at", TimeJson(r.ended)},
          {"end_reason", r.end_reason == LeaseEnd::kNone ? json(nullptr) : json(Name(r.end_reason))},
          {"nodes", nodes},
          {"workload", WorkloadJson(r)}};
}



}  // namespace ll::api
