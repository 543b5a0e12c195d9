#include "api/control_plane.h"

#include <algorithm>
#include <unordered_set>
#include <cmath>

#include <fmt/format.h>

#include "api/control_plane_internal.h"
#include "api/fields.h"
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
    if (billed_month_ != kTimeMax) dirty_leases_.insert(dirty_leases_.end(), leases_.live().begin(), leases_.live().end());
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
  if (rate_dirty_) {
    rate_ = 0;
    for (size_t i : leases_.live()) rate_ += static_cast<__int128>(leases_[i].rec.price_micros) * leases_[i].rec.gpus;
    rate_dirty_ = false;
  }
  stats_.Integrate(*alloc_, rate_, ms);
  now_ = now;
}

// Booked reserved leases whose start has come are placed. The promise was made out of the
// forecast when they were booked, so the room is not checked again; if the owner took the
// GPUs anyway (demand above the forecast), the lease ends as a forecast miss.
void ControlPlane::StartBookings(Time now) {
  auto& bookings = overrides_->bookings;
  for (size_t k = 0; k < bookings.size();) {
    const auto b = bookings[k];
    if (b.start > now) {
      ++k;
      continue;
    }
    bookings.erase(bookings.begin() + static_cast<std::ptrdiff_t>(k));
    Lease& l = leases_[b.lease];
    auto id = alloc_->PlaceReserved(PoolId{static_cast<uint32_t>(b.pool)}, b.gpus, b.end,
                                    Money::Micros(l.rec.price_micros), b.lease, now, /*booked=*/true);
    if (id.ok()) {
      l.holder = *id;  // OnStart made it active
      continue;
    }
    ++stats_.counters().bookings_missed;
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kForecastMiss;
    l.rec.ended = now;
    Emit(l, "ended", now, {{"reason", "forecast_miss"}, {"message", id.status().message()}});
    LeasesChanged();
  }
}

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

// Uniform-price auction over the spot leases (DESIGN.md "Spot market"): the price is the
// highest losing max price, never below the floor; a lease whose max is below it is noticed.
// Skipped when nothing it reads changed since the last run (the lease set and states, the
// sellable supply, the floor): the answer would be the same and it walks every live lease.
void ControlPlane::ClearMarket(Time now) {
  if (!market_.Due(*alloc_, now, /*requests_waiting=*/false)) return;
  std::vector<step::SpotMarket::Holder> holders;
  for (size_t i : leases_.live()) {
    const Lease& l = leases_[i];
    if (l.rec.kind == LeaseKind::kSpot) holders.push_back({i, l.holder});
  }
  auto cleared = market_.Clear(*alloc_, now, holders, {}, [&](uint64_t i, HolderId, Money) {
    Lease& l = leases_[i];
    const Money price = market_.price();
    l.rec.price_micros = price.micros;
    l.prices.push_back({now, price});
    pending_.lease_prices.push_back({l.rec.id, now, price.micros});
    rate_dirty_ = true;
    if (decisions_ != nullptr) decisions_->Repriced(now, i, price);
    Emit(l, "price_changed", now, {{"price_per_gpu_hour", FormatMoney(price)}});
  });
  (void)cleared;
  if (decisions_ != nullptr) decisions_->Price(now, market_.price());
  if (market_.price() != recorded_spot_) {
    pending_.spot_prices.push_back({now, market_.price().micros});
    recorded_spot_ = market_.price();
  }
}

// ---------------------------------------------------------------- events and persistence

void ControlPlane::Emit(Lease& l, std::string type, Time at, json extra) {
  size_t index = *leases_.IndexOf(l.rec.id);
  dirty_leases_.push_back(index);
  store::LeaseEventRecord e;
  e.lease_id = l.rec.id;
  e.tenant_id = l.rec.tenant_id;
  e.type = type;
  e.at = at;
  json data = extra.is_object() ? extra : json::object();
  data["type"] = type;
  data["at"] = FormatUtc(at);
  e.data = data.dump();
  pending_.events.push_back(e);
}

void ControlPlane::Flush() {
  if (defer_commits_) return;  // the server commits after the request (group commit)
  std::sort(dirty_leases_.begin(), dirty_leases_.end());
  dirty_leases_.erase(std::unique(dirty_leases_.begin(), dirty_leases_.end()), dirty_leases_.end());
  for (size_t i : dirty_leases_) {
    Lease& l = leases_[i];
    if (l.holder.valid()) {
      const alloc::Holder& h = alloc_->holder(l.holder);
      if (!h.shares.empty()) l.rec.placement = FormatPlacement(h.shares);
    }
    pending_.leases.push_back(l.rec);
    Bill(l);
  }
  dirty_leases_.clear();
  // An event's payload is whole when it is stored: the lease as it is now, at the end of the
  // step that made the event. A replay (`Last-Event-ID`) then sends the bytes the live stream
  // sent, never the lease as it became later.
  for (store::LeaseEventRecord& e : pending_.events) {
    json data = json::parse(e.data, nullptr, false);
    if (!data.is_object()) data = json::object();
    data["lease"] = LeaseJson(leases_[*leases_.IndexOf(e.lease_id)].rec);
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
  events_.Publish(std::move(events));
}

void ControlPlane::OnStart(const alloc::Holder& h, Time now) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) {
    replicas_.OnStart(h, topology(), now);
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Started(now, h.tag, h);
  Lease& l = leases_[h.tag];
  {
    std::vector<std::pair<std::string, Gpus>> nodes;
    for (const auto& sh : h.shares) nodes.emplace_back(topology().nodes[sh.node.v].name, sh.gpus);
    Status st = fleet_->StartLease(l.rec.id, nodes, h.cls == HolderClass::kReserved ? h.term_end : kTimeMax, now);
    if (!st.ok()) {
      l.refused = st.message();
      l.lost = fmt::format("{} did not take the holder job: {}", fleet_->name(), st.message());
    }
  }
  leases_.SetLive(h.tag, true);
  l.rec.state = LeaseState::kActive;
  l.rec.started = now;
  l.prices.push_back({now, h.price});
  pending_.lease_prices.push_back({l.rec.id, now, h.price.micros});
  ++stats_.counters().leases_started;
  Emit(l, "active", now);
  StartWorkload(l, h);
}

void ControlPlane::OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) {
    replicas_.OnNotice(h);
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Noticed(now, h.tag, h, reason);
  Lease& l = leases_[h.tag];
  l.rec.state = LeaseState::kNoticed;
  l.rec.noticed_at = now;
  l.rec.reclaim_at = h.reclaim_at;
  Emit(l, "reclaim_notice", now,
       {{"reclaim_at", FormatUtc(h.reclaim_at)}, {"reason", alloc::NoticeReasonName(reason)}});
  if (workloads_ != nullptr && !l.rec.workload.empty()) workloads_->Notice(l.rec.id, h.reclaim_at);
}

void ControlPlane::OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason) {
  if (!h.outside() || reason == alloc::EndReason::kRejected) return;
  if (h.cls == alloc::HolderClass::kInference) {
    replicas_.OnEnd(h, reason);
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Ended(now, h.tag, reason);
  Lease& l = leases_[h.tag];
  leases_.SetLive(h.tag, false);
  l.rec.ended = now;
  fleet_->EndHolder(l.rec.id);
  if (workloads_ != nullptr && !l.rec.workload.empty()) {
    workloads_->Stop(l.rec.id, reason == alloc::EndReason::kReclaimed ? Duration{} : workloads_->options().stop_grace);
  }
  if (!l.lost.empty()) {
    // The holder is gone without Landlord (slurm): billing stops when it went.
    if (l.lost_at != kTimeMax) l.rec.ended = std::clamp(l.lost_at, l.rec.started, now);
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kHolderLost;
    Emit(l, std::string(Name(l.rec.state)), l.rec.ended, {{"message", l.lost}});
    return;
  }
  if (reason == alloc::EndReason::kReclaimed) {
    ++stats_.counters().reclaims;
    l.rec.state = LeaseState::kReclaimed;
    l.rec.end_reason = LeaseEnd::kReclaimed;
  } else if (l.releasing) {
    l.rec.state = LeaseState::kReleased;
    l.rec.end_reason = LeaseEnd::kReleased;
  } else {
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kTermEnded;
  }
  Emit(l, std::string(Name(l.rec.state)), now);
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

Money ControlPlane::ReservedPriceFor(Duration d) const { return step::ReservedPrice(prices_, d, floor_); }


}  // namespace ll::api
