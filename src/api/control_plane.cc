#include "api/control_plane.h"

#include <algorithm>
#include <unordered_set>
#include <cmath>

#include <fmt/format.h>

#include "api/auth.h"
#include "api/control_plane_internal.h"
#include "api/fields.h"
#include "core/check.h"
#include "market/auction.h"
#include "sim/engine.h"

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

std::string FormatPlacement(std::vector<alloc::Share> shares) {
  std::sort(shares.begin(), shares.end(), [](auto& a, auto& b) { return a.node < b.node; });
  std::string out;
  for (const auto& s : shares) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", s.node.v, s.gpus);
  return out;
}

std::string InternalPlacementKey(int pool) { return fmt::format("internal_placement:{}", pool); }

Result<std::vector<alloc::Share>> ParsePlacement(std::string_view text) {
  std::vector<alloc::Share> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = text.substr(pos, comma - pos);
    size_t colon = part.find(':');
    if (colon == std::string_view::npos) return Status::Invalid(fmt::format("bad placement `{}`", text));
    try {
      out.push_back({NodeId{static_cast<uint32_t>(std::stoul(std::string(part.substr(0, colon))))},
                     static_cast<Gpus>(std::stoi(std::string(part.substr(colon + 1))))});
    } catch (...) {
      return Status::Invalid(fmt::format("bad placement `{}`", text));
    }
    pos = comma + 1;
  }
  return out;
}

bool FinalState(const std::string& s) { return s == "released" || s == "reclaimed" || s == "ended"; }

Reply ErrorReply(int status, std::string_view code, std::string message, std::string_view param) {
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

namespace {

// The owner's settings and the bookings on top of the selling policy.
class OwnerLimits final : public alloc::Policy {
 public:
  OwnerLimits(std::unique_ptr<alloc::Policy> inner, std::shared_ptr<const ControlPlane::Overrides> o)
      : inner_(std::move(inner)), o_(std::move(o)) {}
  const std::string& name() const override { return inner_->name(); }
  Gpus SellLimit(const alloc::PoolView& p, Time now) override {
    if (!o_->sellable[p.pool.v]) return 0;
    return std::max<Gpus>(0, inner_->SellLimit(p, now) - o_->headroom - o_->BookedSoon(static_cast<int>(p.pool.v), now));
  }
  Gpus ReservedRoom(const alloc::PoolView& p, Time now, Time end) override {
    if (!o_->sellable[p.pool.v]) return 0;
    return std::max<Gpus>(0, inner_->ReservedRoom(p, now, end) - o_->headroom -
                                 o_->BookedBefore(static_cast<int>(p.pool.v), end));
  }
  void OnDemand(const alloc::PoolView& p, Time now) override { inner_->OnDemand(p, now); }

 private:
  std::unique_ptr<alloc::Policy> inner_;
  std::shared_ptr<const ControlPlane::Overrides> o_;
};

}  // namespace

ControlPlane::ControlPlane(const ServeConfig& config, const sim::Trace& trace, store::Store* store)
    : config_(config), fleet_(trace), store_(store), prices_(config.prices) {}

ControlPlane::~ControlPlane() = default;

Result<std::unique_ptr<ControlPlane>> ControlPlane::Open(const ServeConfig& config, const sim::Trace& trace,
                                                         store::Store* store, const Clock* wall,
                                                         const std::string& admin_key_env) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane(config, trace, store));
  LL_RETURN_IF_ERROR(cp->Load(wall, admin_key_env));
  return cp;
}

Status ControlPlane::InitClock(const Clock* wall) {
  LL_ASSIGN_OR_RETURN(auto saved, store_->Setting("clock"));
  Time origin_wall = wall->Now();
  Time origin = fleet_.trace().begin + config_.history;
  if (saved) {
    json j = json::parse(*saved, nullptr, false);
    if (j.is_discarded() || !j.contains("origin_wall_ms") || !j.contains("origin_ms") || !j.contains("speed")) {
      return Status::Invalid("store: setting `clock` is corrupt");
    }
    // Continue the saved timeline; if the speed changed, re-anchor at the saved clock's now.
    ScaledClock old(wall, Time{j["origin_wall_ms"].get<int64_t>()}, Time{j["origin_ms"].get<int64_t>()},
                    j["speed"].get<double>());
    origin = old.Now();
    if (j["speed"].get<double>() == config_.speed) {
      origin_wall = Time{j["origin_wall_ms"].get<int64_t>()};
      origin = Time{j["origin_ms"].get<int64_t>()};
    }
  }
  clock_ = std::make_unique<ScaledClock>(wall, origin_wall, origin, config_.speed);
  json j = {{"origin_wall_ms", origin_wall.ms}, {"origin_ms", origin.ms}, {"speed", config_.speed}};
  pending_.settings.emplace_back("clock", j.dump());
  return Status::Ok();
}

Status ControlPlane::Load(const Clock* wall, const std::string& admin_key_env) {
  const sim::Trace& trace = fleet_.trace();
  wall_ = wall;
  LL_RETURN_IF_ERROR(InitClock(wall));

  // The owner's settings: config first, then what PUT /admin/policy saved.
  overrides_ = std::make_shared<Overrides>();
  overrides_->headroom = config_.headroom_gpus;
  overrides_->sellable.assign(trace.pools.size(), config_.sellable_pools.empty());
  for (const std::string& name : config_.sellable_pools) {
    int p = PoolIndex(name);
    if (p < 0) return Status::Invalid(fmt::format("config: `policy.sellable_pools`: unknown pool `{}`", name));
    overrides_->sellable[p] = true;
  }
  floor_ = prices_.Floor();
  Duration notice = config_.notice;
  LL_ASSIGN_OR_RETURN(auto saved_policy, store_->Setting("policy"));
  if (saved_policy) {
    json j = json::parse(*saved_policy, nullptr, false);
    if (j.is_discarded()) return Status::Invalid("store: setting `policy` is corrupt");
    overrides_->headroom = j.value("headroom_gpus", overrides_->headroom);
    notice = Duration::Millis(j.value("notice_ms", notice.ms));
    floor_ = Money::Micros(j.value("floor_micros", floor_.micros));
    if (j.contains("sellable")) overrides_->sellable = j["sellable"].get<std::vector<bool>>();
    if (overrides_->sellable.size() != trace.pools.size()) return Status::Invalid("store: setting `policy` does not match the fleet");
  }
  market_.set_floor(floor_);

  // The allocator, forecast and policy, as `landlord sim` builds them.
  std::vector<Gpus> caps;
  alloc::FleetSpec spec = sim::FleetSpecOf(trace, &caps);
  LL_RETURN_IF_ERROR(alloc::Fleet::Create(spec).status());
  forecast_ = std::make_unique<forecast::DemandForecast>(caps);
  alloc::PolicyContext ctx;
  ctx.notice = notice;
  ctx.tick = Duration::Millis(std::max<int64_t>(1, static_cast<int64_t>(config_.tick.ms * config_.speed)));
  ctx.forecast = forecast_.get();
  ctx.cooldown = config_.cooldown;
  ctx.delay_budget = config_.delay_budget;
  ctx.warmup = config_.warmup;
  ctx.reserved_min_history = config_.reserved_min_history;
  ctx.pools = static_cast<int>(trace.pools.size());
  LL_ASSIGN_OR_RETURN(auto policy, alloc::MakePolicy(config_.policy, ctx));
  overrides_->notice = notice;
  auto wrapped = std::make_unique<OwnerLimits>(std::move(policy), overrides_);
  alloc::AllocatorOptions ao;
  ao.notice = notice;
  ao.occupancy = true;
  ao.floor = floor_;
  alloc_ = std::make_unique<alloc::Allocator>(spec, ao, std::move(wrapped), this);
  demand_.assign(trace.pools.size(), -1);
  internal_placement_.assign(trace.pools.size(), "");

  // Tenants and keys.
  LL_ASSIGN_OR_RETURN(auto tenants, store_->Tenants());
  for (auto& t : tenants) tenants_[t.id] = t;
  LL_ASSIGN_OR_RETURN(auto keys, store_->Keys());
  key_count_ = keys.size();
  bool have_admin = false;
  for (auto& k : keys) {
    have_admin = have_admin || k.admin;
    IndexKey(k);
  }
  const Time now = clock_->Now();
  auto add_admin = [&](const std::string& key) {
    store::KeyRecord k;
    k.id = MakeExternalId("key", ++key_count_);
    k.hash = HashApiKey(key);
    k.admin = true;
    k.created = now;
    IndexKey(k);
    pending_.keys.push_back(k);
  };
  if (!admin_key_env.empty()) {
    if (admin_key_env.size() < 16) return Status::Invalid("LANDLORD_ADMIN_KEY must be at least 16 characters");
    if (!keys_by_hash_.contains(HashApiKey(admin_key_env))) add_admin(admin_key_env);
  } else if (!have_admin) {
    admin_key_once_ = NewApiKey();
    add_admin(admin_key_once_);
  }

  // What the owner did before now (the trace and the jobs injected, ended ones too) teaches
  // the forecast and the policy.
  LL_ASSIGN_OR_RETURN(jobs_, store_->InternalJobs());
  job_count_ = jobs_.size();
  WarmUp(now);

  // Leases: the live ones go back on exactly the GPUs they held.
  LL_ASSIGN_OR_RETURN(auto leases, store_->Leases());
  LL_ASSIGN_OR_RETURN(auto lease_prices, store_->LeasePrices());
  std::unordered_map<std::string, std::vector<ledger::PricePoint>> prices_of;
  for (const auto& p : lease_prices) prices_of[p.lease_id].push_back({p.at, Money::Micros(p.price_micros)});
  for (auto& rec : leases) {
    Lease l;
    l.rec = rec;
    if (auto it = prices_of.find(rec.id); it != prices_of.end()) l.prices = std::move(it->second);
    size_t index = leases_.size();
    if (rec.state == "active" || rec.state == "noticed") {
      alloc::Allocator::RestoreSpec rs;
      rs.cls = rec.kind == "reserved" ? HolderClass::kReserved : HolderClass::kSpot;
      rs.state = rec.state == "noticed" ? HolderState::kNoticed : HolderState::kActive;
      rs.pool = PoolId{static_cast<uint32_t>(rec.pool)};
      LL_ASSIGN_OR_RETURN(rs.shares, ParsePlacement(rec.placement));
      rs.price = Money::Micros(rec.price_micros);
      rs.max_price = Money::Micros(rec.max_price_micros);
      rs.created = rec.created;
      rs.started = rec.started;
      rs.noticed_at = rec.noticed_at;
      rs.reclaim_at = rec.reclaim_at;
      rs.term_end = rec.term_end;
      rs.tag = index;
      auto id = alloc_->Restore(rs);
      if (!id.ok()) return Status::Invalid(fmt::format("store: lease `{}` cannot be restored: {}", rec.id, id.status().message()));
      l.holder = *id;
      live_.insert(index);
    } else if (rec.state == "scheduled") {
      overrides_->bookings.push_back({index, rec.pool, static_cast<Gpus>(rec.gpus), rec.started, rec.term_end});
    }
    lease_index_[rec.id] = index;
    by_tenant_[rec.tenant_id].push_back(index);
    leases_.push_back(std::move(l));
  }
  // Prepaid balances and their open holds.
  LL_ASSIGN_OR_RETURN(auto balances, store_->Balances());
  LL_ASSIGN_OR_RETURN(auto holds, store_->OpenHolds());
  std::map<std::string, std::map<std::string, Money>> holds_of;
  for (auto& h : holds) {
    holds_of[h.tenant_id][h.id] = Money::Micros(h.amount_micros);
    open_holds_[h.id] = h;
  }
  for (const auto& b : balances) {
    auto bal = ledger::Balance::Restore(Money::Micros(b.credited_micros), Money::Micros(b.charged_micros),
                                        holds_of[b.tenant_id]);
    if (!bal.ok()) return Status::Invalid(fmt::format("store: tenant `{}`: {}", b.tenant_id, bal.status().message()));
    balances_.emplace(b.tenant_id, std::move(*bal));
  }
  // The owner's GPUs go back where they were.
  for (int p = 0; p < alloc_->pool_count(); ++p) {
    LL_ASSIGN_OR_RETURN(auto text, store_->Setting(InternalPlacementKey(p)));
    if (!text || text->empty()) continue;
    auto shares = ParsePlacement(*text);
    Status st = shares.ok() ? alloc_->RestoreInternal(PoolId{static_cast<uint32_t>(p)}, *shares) : shares.status();
    if (!st.ok()) return Status::Invalid(fmt::format("store: setting `{}`: {}", InternalPlacementKey(p), st.message()));
    internal_placement_[p] = *text;
  }
  now_ = now;
  AdvanceTo(now);
  Flush();
  return Status::Ok();
}

Gpus ControlPlane::DemandAt(int pool, Time t) const {
  int64_t want = fleet_.TraceLevel(pool, t);
  for (const auto& j : jobs_) {
    if (j.pool == pool && j.start <= t && t < j.end) want += j.gpus;
  }
  return static_cast<Gpus>(std::clamp<int64_t>(want, 0, fleet_.trace().pools[pool].gpus));
}

std::vector<Time> ControlPlane::DemandChanges(Time t0, Time t1) const {
  std::vector<Time> out;
  fleet_.ForEachChange(t0, t1, [&](Time t) { out.push_back(t); });
  for (const auto& j : jobs_) {
    for (Time t : {j.start, j.end}) {
      if (t0 < t && t <= t1) out.push_back(t);
    }
  }
  // A booking's start, and the notice before it (spot sales make way then).
  for (const auto& b : overrides_->bookings) {
    for (Time t : {b.start - overrides_->notice, b.start}) {
      if (t0 < t && t <= t1) out.push_back(t);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void ControlPlane::WarmUp(Time until) {
  const sim::Trace& trace = fleet_.trace();
  if (trace.pools.empty()) return;
  std::vector<Gpus> last(trace.pools.size(), -1);
  auto observe = [&](Time t) {
    for (int p = 0; p < fleet_.pool_count(); ++p) {
      Gpus level = DemandAt(p, t);
      if (level == last[p]) continue;
      last[p] = level;
      forecast_->Observe(p, level, t);
      alloc::PoolView v;
      v.pool = PoolId{static_cast<uint32_t>(p)};
      v.capacity = trace.pools[p].gpus;
      v.internal_want = level;
      alloc_->policy().OnDemand(v, t);
    }
  };
  observe(trace.begin);
  for (Time t : DemandChanges(trace.begin, until - Duration::Millis(1))) observe(t);
}

// ---------------------------------------------------------------- time

void ControlPlane::Advance() {
  AdvanceTo(clock_->Now());
  if (replica_host_ != nullptr) PlaceReplicas(now_);
  Flush();
}

void ControlPlane::SetReplicaHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models) {
  replica_host_ = host;
  replica_models_ = std::move(models);
  Advance();
}

void ControlPlane::PlaceReplicas(Time now) {
  for (const gateway::SimModelConfig& m : replica_models_) {
    if (m.gpus_per_replica <= 0) continue;
    int live = 0;
    for (const auto& [tag, r] : replicas_) live += r.model == m.model && !r.noticed;
    for (; live < m.replicas; ++live) {
      const uint64_t tag = kReplicaTag | next_replica_tag_;
      bool placed = false;
      for (int p = 0; p < alloc_->pool_count() && !placed; ++p) {
        if (!overrides_->sellable[p]) continue;
        // Priced at the floor: among outsiders an inference holder is reclaimed first anyway.
        placing_model_ = m.model;
        auto h = alloc_->PlaceOutside(alloc::HolderClass::kInference, PoolId{static_cast<uint32_t>(p)},
                                      m.gpus_per_replica, floor_, floor_, tag, now);
        placed = h.ok();
      }
      if (!placed) break;  // no room now: tried again on the next step
      ++next_replica_tag_;
    }
  }
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
    if (billed_month_ != kTimeMax) dirty_leases_.insert(dirty_leases_.end(), live_.begin(), live_.end());
    billed_month_ = MonthStartUtc(now);
  }
  step::Step(*alloc_, *this, now);
  if (last_sample_ == kTimeMax || now - last_sample_ >= config_.sample_every) {
    Sample s;
    s.t = now;
    s.internal = alloc_->TotalInternal();
    s.reserved = alloc_->TotalReserved();
    s.spot = alloc_->TotalSpot();
    s.inference = alloc_->TotalInference();
    s.free = alloc_->TotalCapacity() - s.internal - s.reserved - s.spot - s.inference;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      s.demand += alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want;
      s.forecast += forecast_->Quantile(p, 1.0, now, now + config_.sample_every);
    }
    s.spot_price = market_.price();
    s.revenue_micros = static_cast<int64_t>(revenue_rate_ms_ / 3'600'000);
    samples_.push_back(s);
    if (samples_.size() > 10'000) samples_.erase(samples_.begin(), samples_.begin() + 1'000);
    last_sample_ = now;
  }
}

void ControlPlane::Integrate(Time now) {
  int64_t ms = (now - now_).ms;
  if (ms <= 0) return;
  capacity_ms_ += static_cast<__int128>(alloc_->TotalCapacity()) * ms;
  internal_ms_ += static_cast<__int128>(alloc_->TotalInternal()) * ms;
  reserved_ms_ += static_cast<__int128>(alloc_->TotalReserved()) * ms;
  spot_ms_ += static_cast<__int128>(alloc_->TotalSpot()) * ms;
  inference_ms_ += static_cast<__int128>(alloc_->TotalInference()) * ms;
  waiting_ms_ += static_cast<__int128>(alloc_->InternalWaiting()) * ms;
  if (rate_dirty_) {
    rate_ = 0;
    for (size_t i : live_) rate_ += static_cast<__int128>(leases_[i].rec.price_micros) * leases_[i].rec.gpus;
    rate_dirty_ = false;
  }
  revenue_rate_ms_ += rate_ * ms;
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
    ++bookings_missed_;
    l.rec.state = "ended";
    l.rec.end_reason = "forecast_miss";
    l.rec.ended = now;
    Emit(l, "ended", now, {{"reason", "forecast_miss"}, {"message", id.status().message()}});
    LeasesChanged();
  }
}

void ControlPlane::Market(Time now) { ClearMarket(now); }

void ControlPlane::SetDemand(Time now) {
  if (slurm_ != nullptr) {
    PollSlurm(now);
    return;
  }
  std::erase_if(jobs_, [&](const store::InternalJobRecord& j) { return j.end <= now; });
  std::vector<Gpus> want(fleet_.pool_count(), 0);
  for (int p = 0; p < fleet_.pool_count(); ++p) want[p] = DemandAt(p, now);
  for (int p = 0; p < fleet_.pool_count(); ++p) {
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
  for (size_t i : live_) {
    const Lease& l = leases_[i];
    if (l.rec.kind == "spot") holders.push_back({i, l.holder});
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
  size_t index = lease_index_.at(l.rec.id);
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
    data["lease"] = LeaseJson(leases_[lease_index_.at(e.lease_id)].rec);
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
  for (auto& e : events) {
    LeaseEvent ev;
    ev.seq = e.seq;
    ev.type = e.type;
    ev.data = std::move(e.data);
    ev.final = FinalState(e.type);
    for (const std::string& key : {e.lease_id, std::string("*")}) {
      auto [b, en] = watchers_.equal_range(key);
      for (auto w = b; w != en;) {
        if (!w->second.second(ev)) {
          w = watchers_.erase(w);
        } else {
          ++w;
        }
      }
    }
  }
}

void ControlPlane::OnStart(const alloc::Holder& h, Time now) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) {
    // Placed by PlaceReplicas (a placement starts at once or fails): `placing_model_`.
    Result<std::string> id = Status::Internal("unset");
    if (slurm_ != nullptr) {
      // A Slurm job on the node; it registers its URL when it answers (SlurmReplicaUp).
      const int n = static_cast<int>(replica_starts_);
      id = fmt::format("rep_slurm{}", n + 1);
      Status st = slurm_->StartReplica(*id, placing_model_, fleet_.trace().nodes[h.shares.at(0).node.v].name,
                                       h.gpus, slurm_->options().model_port + n, now);
      if (!st.ok()) {
        fmt::print(stderr, "landlord serve: slurm did not take replica {}: {}\n", *id, st.message());
        slurm_lost_replicas_.push_back(*id);
      }
    } else {
      id = replica_host_->StartReplica(placing_model_);
    }
    LL_CHECK(id.ok());  // the model is one of [[gateway.sim_models]]; a loopback listener
    ReplicaSlot slot{.model = placing_model_, .id = *id, .holder = h.id};
    replicas_[h.tag] = slot;
    ++replica_starts_;
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Started(now, h.tag, h);
  Lease& l = leases_[h.tag];
  if (slurm_ != nullptr) {
    std::vector<std::pair<std::string, Gpus>> nodes;
    for (const auto& sh : h.shares) nodes.emplace_back(fleet_.trace().nodes[sh.node.v].name, sh.gpus);
    Status st = slurm_->StartLease(l.rec.id, nodes, h.cls == HolderClass::kReserved ? h.term_end : kTimeMax, now);
    if (!st.ok()) {
      slurm_error_ = st.message();
      l.lost = fmt::format("slurm did not take the holder job: {}", st.message());
    }
  }
  live_.insert(h.tag);
  l.rec.state = "active";
  l.rec.started = now;
  l.prices.push_back({now, h.price});
  pending_.lease_prices.push_back({l.rec.id, now, h.price.micros});
  ++leases_started_;
  Emit(l, "active", now);
}

void ControlPlane::OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) {
    if (auto it = replicas_.find(h.tag); it != replicas_.end()) {
      it->second.noticed = true;
      replica_host_->DrainReplica(it->second.id);
    }
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Noticed(now, h.tag, h, reason);
  Lease& l = leases_[h.tag];
  l.rec.state = "noticed";
  l.rec.noticed_at = now;
  l.rec.reclaim_at = h.reclaim_at;
  Emit(l, "reclaim_notice", now,
       {{"reclaim_at", FormatUtc(h.reclaim_at)}, {"reason", alloc::NoticeReasonName(reason)}});
}

void ControlPlane::OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason) {
  if (!h.outside() || reason == alloc::EndReason::kRejected) return;
  if (h.cls == alloc::HolderClass::kInference) {
    if (auto it = replicas_.find(h.tag); it != replicas_.end()) {
      replica_host_->StopReplica(it->second.id);
      if (slurm_ != nullptr) slurm_->EndLease(it->second.id);
      replica_reclaims_ += reason == alloc::EndReason::kReclaimed;
      replicas_.erase(it);
    }
    return;
  }
  LeasesChanged();
  if (decisions_ != nullptr) decisions_->Ended(now, h.tag, reason);
  Lease& l = leases_[h.tag];
  live_.erase(h.tag);
  l.rec.ended = now;
  if (slurm_ != nullptr) slurm_->EndLease(l.rec.id);
  if (!l.lost.empty()) {
    // The holder is gone without Landlord (slurm): billing stops when it went.
    if (l.lost_at != kTimeMax) l.rec.ended = std::clamp(l.lost_at, l.rec.started, now);
    l.rec.state = "ended";
    l.rec.end_reason = "holder_lost";
    Emit(l, l.rec.state, l.rec.ended, {{"message", l.lost}});
    return;
  }
  if (reason == alloc::EndReason::kReclaimed) {
    ++reclaims_;
    l.rec.state = "reclaimed";
    l.rec.end_reason = "reclaimed";
  } else if (l.releasing) {
    l.rec.state = "released";
    l.rec.end_reason = "released";
  } else {
    l.rec.state = "ended";
    l.rec.end_reason = "term_ended";
  }
  Emit(l, l.rec.state, now);
}

// ---------------------------------------------------------------- tenant API

std::optional<Principal> ControlPlane::Authenticate(std::string_view key) const {
  if (key.empty() || key.size() > 256) return std::nullopt;
  auto it = keys_by_hash_.find(HashApiKey(key));
  if (it == keys_by_hash_.end() || !KeyUsable(it->second)) return std::nullopt;
  return Principal{it->second.admin, it->second.tenant_id};
}

int ControlPlane::PoolIndex(std::string_view name) const {
  const auto& pools = fleet_.trace().pools;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

json ControlPlane::LeaseJson(const store::LeaseRecord& r) const {
  json nodes = json::array();
  if (auto shares = ParsePlacement(r.placement); shares.ok()) {
    for (const auto& s : *shares) {
      json n = {{"node", fleet_.trace().nodes[s.node.v].name}, {"gpus", s.gpus}};
      if (slurm_ != nullptr) n["access"] = slurm_->Access(fleet_.trace().nodes[s.node.v].name);
      nodes.push_back(std::move(n));
    }
  }
  return {{"id", r.id},
          {"object", "lease"},
          {"tenant_id", r.tenant_id},
          {"kind", r.kind},
          {"state", r.state},
          {"gpus", r.gpus},
          {"pool", fleet_.trace().pools[r.pool].name},
          {"price_per_gpu_hour", FormatMoney(Money::Micros(r.price_micros))},
          {"max_price_per_gpu_hour", r.kind == "spot" ? json(FormatMoney(Money::Micros(r.max_price_micros))) : json(nullptr)},
          {"created_at", TimeJson(r.created)},
          {"started_at", TimeJson(r.started)},
          {"noticed_at", TimeJson(r.noticed_at)},
          {"reclaim_at", TimeJson(r.reclaim_at)},
          {"term_end", TimeJson(r.term_end)},
          {"ended_at", TimeJson(r.ended)},
          {"end_reason", r.end_reason.empty() ? json(nullptr) : json(r.end_reason)},
          {"nodes", nodes}};
}

Money ControlPlane::ReservedPriceFor(Duration d) const { return step::ReservedPrice(prices_, d, floor_); }

Reply ControlPlane::Quote(const Principal&, std::optional<int64_t> gpus) {
  Advance();
  Gpus spot_room = 0;
  for (int p = 0; p < alloc_->pool_count(); ++p) spot_room = std::max(spot_room, alloc_->Sellable(PoolId{static_cast<uint32_t>(p)}, now_));
  json reserved = json::array();
  for (const auto& t : prices_.reserved_terms) {
    Gpus room = 0;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      room = std::max(room, alloc_->ReservedRoom(PoolId{static_cast<uint32_t>(p)}, now_ + t.term, now_));
    }
    json q = {{"duration_s", t.term.ms / 1000}, {"price_per_gpu_hour", FormatMoney(ReservedPriceFor(t.term))}, {"max_gpus", room}};
    if (gpus) q["available"] = room >= *gpus;
    reserved.push_back(q);
  }
  json spot = {{"price_per_gpu_hour", FormatMoney(market_.price())}, {"available_gpus", spot_room}};
  if (gpus) spot["available"] = spot_room >= *gpus;
  Reply r;
  r.body = {{"object", "quote"}, {"now", FormatUtc(now_)}, {"spot", spot}, {"reserved", reserved}};
  return r;
}

Reply ControlPlane::Prices(std::optional<Time> from, std::optional<Time> to) {
  Advance();
  json history = nullptr;
  if (from || to) {
    const Time t1 = to.value_or(now_ + Duration::Millis(1));
    const Time t0 = from.value_or(t1 - Duration::Hours(24));
    if (t0 >= t1) return ErrorReply(400, "invalid_value", "`from` must be before `to`", "from");
    if (t1 - t0 > Duration::Hours(24 * 366)) return ErrorReply(400, "invalid_value", "at most 366 days of history at once", "from");
    auto points = store_->SpotPrices(t0, t1);
    LL_CHECK(points.ok());  // fail-stop, as for every store failure
    history = json::array();
    for (const auto& p : *points) {
      history.push_back({{"at", FormatUtc(std::max(p.at, t0))}, {"spot_per_gpu_hour", FormatMoney(Money::Micros(p.price_micros))}});
    }
  }
  json reserved = json::array();
  for (const auto& t : prices_.reserved_terms) {
    reserved.push_back({{"duration_s", t.term.ms / 1000},
                        {"discount", t.discount_permille / 1000.0},
                        {"price_per_gpu_hour", FormatMoney(ReservedPriceFor(t.term))}});
  }
  Reply r;
  r.body = {{"floor_per_gpu_hour", FormatMoney(floor_)},
            {"spot_per_gpu_hour", FormatMoney(market_.price())},
            {"list_per_gpu_hour", FormatMoney(prices_.list_per_gpu_hour)},
            {"reserved", reserved},
            {"now", FormatUtc(now_)}};
  if (!history.is_null()) r.body["history"] = history;
  return r;
}

// ---------------------------------------------------------------- owner API

Reply ControlPlane::CreateTenant(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"name"});
  auto name = f.Text("name", true);
  if (!f.ok()) return f.error();
  store::TenantRecord t;
  t.id = "ten_" + RandomHex(8);
  t.name = *name;
  t.created = clock_->Now();
  tenants_[t.id] = t;
  pending_.tenants.push_back(t);
  Advance();
  Reply r;
  r.status = 201;
  r.body = {{"id", t.id}, {"object", "tenant"}, {"name", t.name}, {"created_at", FormatUtc(t.created)}};
  return r;
}

Reply ControlPlane::Fleet() {
  Advance();
  json pools = json::array();
  for (int p = 0; p < alloc_->pool_count(); ++p) {
    const auto& c = alloc_->pool(PoolId{static_cast<uint32_t>(p)});
    pools.push_back({{"name", fleet_.trace().pools[p].name},
                     {"capacity", c.capacity},
                     {"internal", c.internal_held},
                     {"internal_want", c.internal_want},
                     {"reserved", c.reserved},
                     {"spot", c.spot},
                     {"inference", c.inference},
                     {"noticed", c.noticed},
                     {"free", c.free},
                     {"sellable", alloc_->Sellable(PoolId{static_cast<uint32_t>(p)}, now_)},
                     {"for_sale", static_cast<bool>(overrides_->sellable[p])}});
  }
  // Node → holders, from every live holder's shares.
  std::vector<json> holders(fleet_.trace().nodes.size(), json::array());
  for (size_t i = 0; i < alloc_->holder_count(); ++i) {
    const alloc::Holder& h = alloc_->holder(HolderId{static_cast<uint32_t>(i)});
    if (h.state != HolderState::kActive && h.state != HolderState::kNoticed) continue;
    for (const auto& s : h.shares) {
      json e = {{"class", alloc::HolderClassName(h.cls)}, {"gpus", s.gpus}};
      if (h.cls == alloc::HolderClass::kInference) {
        auto it = replicas_.find(h.tag);
        if (it != replicas_.end()) {
          e["replica"] = it->second.id;
          e["model"] = it->second.model;
          e["state"] = it->second.noticed ? "draining" : "serving";
        }
      } else if (h.outside()) {
        e["lease"] = leases_[h.tag].rec.id;
        e["tenant_id"] = leases_[h.tag].rec.tenant_id;
        e["state"] = leases_[h.tag].rec.state;
      }
      holders[s.node.v].push_back(e);
    }
  }
  json nodes = json::array();
  for (size_t n = 0; n < fleet_.trace().nodes.size(); ++n) {
    const auto& ns = fleet_.trace().nodes[n];
    nodes.push_back({{"name", ns.name}, {"pool", fleet_.trace().pools[ns.pool].name}, {"rack", ns.rack},
                     {"gpus", ns.gpus}, {"holders", holders[n]}});
  }
  Reply r;
  r.body = {{"now", FormatUtc(now_)}, {"policy", alloc_->policy().name()}, {"pools", pools}, {"nodes", nodes}};
  return r;
}

std::string ControlPlane::PolicySettingsJson() const {
  json j = {{"headroom_gpus", overrides_->headroom},
            {"notice_ms", alloc_->options().notice.ms},
            {"floor_micros", floor_.micros},
            {"sellable", overrides_->sellable}};
  return j.dump();
}

Reply ControlPlane::GetPolicy() {
  Advance();
  json pools = json::array();
  for (int p = 0; p < fleet_.pool_count(); ++p) {
    if (overrides_->sellable[p]) pools.push_back(fleet_.trace().pools[p].name);
  }
  Reply r;
  r.body = {{"policy", alloc_->policy().name()},
            {"notice_s", alloc_->options().notice.ms / 1000},
            {"floor_per_gpu_hour", FormatMoney(floor_)},
            {"headroom_gpus", overrides_->headroom},
            {"sellable_pools", pools}};
  return r;
}

Reply ControlPlane::PutPolicy(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"policy", "notice_s", "floor_per_gpu_hour", "headroom_gpus", "sellable_pools"});
  auto policy = f.Str("policy", false);
  if (f.ok() && policy && *policy != alloc_->policy().name()) {
    f.Fail("invalid_value", "`policy` is chosen in the config file (`policy.name`); restart to change it", "policy");
  }
  auto notice = f.Int("notice_s", 1, 86400, false);
  auto floor = f.Dollars("floor_per_gpu_hour", false);
  auto headroom = f.Int("headroom_gpus", 0, 1'000'000, false);
  std::optional<std::vector<bool>> sellable;
  if (f.ok() && body.contains("sellable_pools")) {
    const json& a = body["sellable_pools"];
    if (!a.is_array()) {
      f.Fail("invalid_type", "`sellable_pools` must be an array of pool names", "sellable_pools");
    } else {
      sellable.emplace(fleet_.pool_count(), false);
      for (const json& e : a) {
        int p = e.is_string() ? PoolIndex(e.get<std::string>()) : -1;
        if (p < 0) {
          f.Fail("invalid_value", fmt::format("`sellable_pools`: unknown pool {}", e.dump()), "sellable_pools");
          break;
        }
        (*sellable)[p] = true;
      }
    }
  }
  if (!f.ok()) return f.error();
  Work work(this);
  if (notice) {
    alloc_->SetNotice(Duration::Seconds(*notice));
    overrides_->notice = Duration::Seconds(*notice);
  }
  if (floor) {
    floor_ = *floor;
    alloc_->SetFloor(floor_);
    market_.set_floor(floor_);
  }
  if (headroom) overrides_->headroom = static_cast<int>(*headroom);
  if (sellable) overrides_->sellable = *sellable;
  pending_.settings.emplace_back("policy", PolicySettingsJson());
  // Apply at once: limits (notices for what is now over them) and the market at the new floor.
  alloc_->Rebalance(now_);
  ClearMarket(now_);
  return GetPolicy();
}

Reply ControlPlane::AddInternalJob(const json& body) {
  if (slurm_ != nullptr) {
    return ErrorReply(409, "slurm_fleet", "on a slurm fleet the owner's jobs are Slurm's: submit them with sbatch");
  }
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"pool", "gpus", "duration_s"});
  auto pool_name = f.Str("pool", fleet_.pool_count() > 1);
  auto gpus = f.Int("gpus", 1, 1'000'000, true);
  auto duration = f.Int("duration_s", 1, 365LL * 24 * 3600, true);
  int pool = 0;
  if (f.ok() && pool_name) {
    pool = PoolIndex(*pool_name);
    if (pool < 0) f.Fail("invalid_value", fmt::format("unknown pool `{}`", *pool_name), "pool");
  }
  if (!f.ok()) return f.error();
  Work work(this);
  store::InternalJobRecord j;
  j.id = MakeExternalId("job", ++job_count_);
  j.pool = pool;
  j.gpus = static_cast<int>(*gpus);
  j.start = now_;
  j.end = now_ + Duration::Seconds(*duration);
  jobs_.push_back(j);
  pending_.internal_jobs.push_back(j);
  SetDemand(now_);
  alloc_->Rebalance(now_);
  ClearMarket(now_);
  Reply r;
  r.status = 201;
  r.body = {{"id", j.id}, {"object", "internal_job"}, {"pool", fleet_.trace().pools[pool].name}, {"gpus", j.gpus},
            {"start", FormatUtc(j.start)}, {"end", FormatUtc(j.end)}};
  return r;
}

Reply ControlPlane::Timeseries() {
  Advance();
  json points = json::array();
  for (const Sample& s : samples_) {
    points.push_back({{"t", FormatUtc(s.t)}, {"internal", s.internal}, {"reserved", s.reserved}, {"spot", s.spot},
                      {"free", s.free}, {"spot_price", FormatMoney(s.spot_price)}});
  }
  Reply r;
  r.body = {{"points", points}};
  return r;
}

Reply ControlPlane::Health() {
  Advance();
  Reply r;
  r.body = {{"status", "ok"}, {"now", FormatUtc(now_)}, {"clock_speed", clock_->speed()}};
  if (slurm_ != nullptr) {
    json drained = json::object();
    for (const auto& [node, why] : slurm_->drained()) drained[node] = why;
    r.body["fleet"] = {{"backend", "slurm"},
                       {"partition", slurm_->options().partition},
                       {"status", slurm_->available() ? "ok" : "unavailable"},
                       {"message", slurm_->status()},
                       {"drained", drained}};
    if (!slurm_->available()) r.body["status"] = "degraded";
  }
  return r;
}

std::string ControlPlane::Metrics() {
  Advance();
  auto h = [](__int128 ms) { return static_cast<double>(ms) / 3.6e6; };
  double capacity = h(capacity_ms_), internal = h(internal_ms_), reserved = h(reserved_ms_), spot = h(spot_ms_);
  double idle = capacity - internal, sold = reserved + spot;
  double revenue = static_cast<double>(revenue_rate_ms_) / 3.6e6 / 1e6;
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += fmt::format("# HELP landlord_{0} {1}\n# TYPE landlord_{0} {2}\nlandlord_{0} {3}\n", name, help, type, v);
  };
  metric("capacity_gpu_h", "counter", "GPU-hours of fleet capacity since start", capacity);
  metric("internal_gpu_h", "counter", "GPU-hours used by the owner", internal);
  metric("idle_gpu_h", "counter", "GPU-hours the owner left idle", idle);
  metric("sold_gpu_h", "counter", "GPU-hours sold (reserved + spot + inference)", sold);
  metric("reserved_gpu_h", "counter", "GPU-hours sold as reserved leases", reserved);
  metric("spot_gpu_h", "counter", "GPU-hours sold as spot leases", spot);
  metric("harvest_ratio", "gauge", "sold_gpu_h / idle_gpu_h", idle > 0 ? sold / idle : 0);
  metric("internal_delayed_gpu_h", "counter", "GPU-hours of owner demand that waited", h(waiting_ms_));
  metric("revenue_usd", "counter", "revenue accrued by leases", revenue);
  metric("reclaims", "counter", "leases reclaimed after a notice", static_cast<double>(reclaims_));
  metric("leases", "counter", "leases started", static_cast<double>(leases_started_));
  metric("reserved_violations", "counter", "reserved leases preempted or booked ones that could not start (must be 0)",
         static_cast<double>(alloc_->reserved_violations() + bookings_missed_));
  metric("forecast_misses", "counter", "owner demand that exceeded the forecast", static_cast<double>(alloc_->forecast_misses()));
  metric("market_.price()usd", "gauge", "spot clearing price per GPU-hour", static_cast<double>(market_.price().micros) / 1e6);
  out += ReportMetrics();
  out += "# HELP landlord_gpus GPUs by class now\n# TYPE landlord_gpus gauge\n";
  out += fmt::format("landlord_gpus{{class=\"internal\"}} {}\n", alloc_->TotalInternal());
  out += fmt::format("landlord_gpus{{class=\"reserved\"}} {}\n", alloc_->TotalReserved());
  out += fmt::format("landlord_gpus{{class=\"spot\"}} {}\n", alloc_->TotalSpot());
  out += fmt::format("landlord_gpus{{class=\"inference\"}} {}\n", alloc_->TotalInference());
  out += fmt::format("landlord_gpus{{class=\"capacity\"}} {}\n", alloc_->TotalCapacity());
  return out;
}

}  // namespace ll::api
