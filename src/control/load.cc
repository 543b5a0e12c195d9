// Opening the control plane: the clock, the core (allocator, forecast, policy under the owner's
// settings) and everything the store holds, brought back as it was acknowledged.
#include <algorithm>

#include <fmt/format.h>

#include "control/control_plane.h"
#include "control/placement.h"
#include "core/check.h"
#include "fleet/sim/sim_backend.h"

namespace ll::control {

using alloc::HolderClass;
using alloc::HolderState;
using nlohmann::json;

namespace {

// The owner's settings and the bookings on top of the selling policy.
class OwnerLimits final : public alloc::Policy {
 public:
  OwnerLimits(std::unique_ptr<alloc::Policy> inner, std::shared_ptr<const Overrides> o)
      : inner_(std::move(inner)), o_(std::move(o)) {}
  const std::string& name() const override { return inner_->name(); }
  Gpus SellLimit(const alloc::PoolView& p, Time now) override {
    if (!o_->sellable[p.pool.v]) return 0;
    return std::max<Gpus>(0, inner_->SellLimit(p, now) - o_->headroom - o_->BookedSoon(static_cast<int>(p.pool.v), now));
  }
  // The same owner's limits on the standard tier's part (the rest goes to the flash tier only).
  Gpus StandardLimit(const alloc::PoolView& p, Time now) override {
    if (!o_->sellable[p.pool.v]) return 0;
    return std::max<Gpus>(0, inner_->StandardLimit(p, now) - o_->headroom -
                                 o_->BookedSoon(static_cast<int>(p.pool.v), now));
  }
  Gpus ReservedRoom(const alloc::PoolView& p, Time now, Time end) override {
    if (!o_->sellable[p.pool.v]) return 0;
    return std::max<Gpus>(0, inner_->ReservedRoom(p, now, end) - o_->headroom -
                                 o_->BookedBefore(static_cast<int>(p.pool.v), end));
  }
  void OnDemand(const alloc::PoolView& p, Time now) override { inner_->OnDemand(p, now); }
  void OnOwnerReclaim(const alloc::PoolView& p, Gpus gpus, Duration notice, Time now) override {
    inner_->OnOwnerReclaim(p, gpus, notice, now);
  }

 private:
  std::unique_ptr<alloc::Policy> inner_;
  std::shared_ptr<const Overrides> o_;
};

}  // namespace

ControlPlane::ControlPlane(const ServeConfig& config, const sim::Trace& trace, store::Store* store, const Clock* wall)
    : config_(config),
      own_fleet_(std::make_unique<fleet::SimBackend>(trace)),
      fleet_(own_fleet_.get()),
      history_begin_(trace.begin),
      store_(store),
      prices_(config.prices),
      accounts_(&prices_, wall, store),
      wall_(wall),
      replicas_(fleet_) {}

ControlPlane::~ControlPlane() = default;

Status ControlPlane::InitClock(const Clock* wall) {
  LL_ASSIGN_OR_RETURN(auto saved, store_->Setting("clock"));
  Time origin_wall = wall->Now();
  Time origin = history_begin_ + config_.history;
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
  LL_RETURN_IF_ERROR(InitClock(wall));
  LL_RETURN_IF_ERROR(BuildCore());
  LL_RETURN_IF_ERROR(LoadKeys(admin_key_env));
  const Time now = clock_->Now();
  // What the owner did before now (the trace and the jobs injected, ended ones too) teaches
  // the forecast and the policy.
  LL_ASSIGN_OR_RETURN(jobs_, store_->InternalJobs());
  job_count_ = jobs_.size();
  WarmUp(now);

  LL_RETURN_IF_ERROR(LoadLeases());
  LL_RETURN_IF_ERROR(LoadBalances());
  LL_RETURN_IF_ERROR(RestoreInternalPlacement());
  now_ = now;
  AdvanceTo(now);
  Flush();
  return Status::Ok();
}

// The owner's settings (config first, then what PUT /admin/policy saved) and the allocator,
// forecast and policy over them.
Status ControlPlane::BuildCore() {
  const fleet::Topology& trace = topology();
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
  market_.set_flash_discount(prices_.flash_discount_permille);

  // The allocator, forecast and policy, as `landlord sim` builds them.
  std::vector<Gpus> caps;
  alloc::FleetSpec spec = fleet::FleetSpecOf(trace.pools, trace.nodes, &caps);
  LL_RETURN_IF_ERROR(alloc::Fleet::Create(spec).status());
  forecast_ = std::make_unique<forecast::DemandForecast>(caps);
  alloc::PolicyContext ctx;
  ctx.notice = notice;
  ctx.tick = Duration::Millis(std::max<int64_t>(1, static_cast<int64_t>(config_.tick.ms * config_.speed)));
  ctx.forecast = forecast_.get();
  ctx.cooldown = config_.cooldown;
  // The flash tier only with a notice shorter than the standard one (as `landlord sim`).
  ctx.flash_notice = config_.flash_notice < notice ? config_.flash_notice : Duration{};
  ctx.delay_budget = config_.delay_budget;
  ctx.warmup = config_.warmup;
  ctx.reserved_min_history = config_.reserved_min_history;
  ctx.pools = static_cast<int>(trace.pools.size());
  LL_ASSIGN_OR_RETURN(auto policy, alloc::MakePolicy(config_.policy, ctx));
  overrides_->notice = notice;
  overrides_->flash_notice = ctx.flash_notice;
  auto wrapped = std::make_unique<OwnerLimits>(std::move(policy), overrides_);
  alloc::AllocatorOptions ao;
  ao.notice = notice;
  ao.occupancy = true;
  ao.floor = floor_;
  ao.min_runtime = config_.min_runtime;
  alloc_ = std::make_unique<alloc::Allocator>(spec, ao, std::move(wrapped), this);
  leases_.Bind({.alloc = alloc_.get(),
                .fleet = fleet_,
                .market = &market_,
                .overrides = overrides_.get(),
                .stats = &stats_,
                .prices = &prices_,
                .floor = &floor_});
  demand_.assign(trace.pools.size(), -1);
  internal_placement_.assign(trace.pools.size(), "");

  return Status::Ok();
}

// Tenants and keys; the admin key made on first start (or from LANDLORD_ADMIN_KEY).
Status ControlPlane::LoadKeys(const std::string& admin_key_env) {
  LL_ASSIGN_OR_RETURN(auto tenants, store_->Tenants());
  LL_ASSIGN_OR_RETURN(auto keys, store_->Keys());
  LL_ASSIGN_OR_RETURN(admin_key_once_, tenants_.Restore(tenants, keys, admin_key_env, clock_->Now(), pending_));
  return Status::Ok();
}

Status ControlPlane::LoadLeases() {
  // Leases: the live ones go back on exactly the GPUs they held.
  LL_ASSIGN_OR_RETURN(auto leases, store_->Leases());
  LL_ASSIGN_OR_RETURN(auto lease_prices, store_->LeasePrices());
  return leases_.Restore(std::move(leases), lease_prices, clock_->Now(), pending_);
}

Status ControlPlane::LoadBalances() {
  // Prepaid balances and their open holds.
  LL_ASSIGN_OR_RETURN(auto balances, store_->Balances());
  LL_ASSIGN_OR_RETURN(auto holds, store_->OpenHolds());
  return accounts_.Restore(balances, holds);
}

Status ControlPlane::RestoreInternalPlacement() {
  // The owner's GPUs go back where they were.
  for (int p = 0; p < alloc_->pool_count(); ++p) {
    LL_ASSIGN_OR_RETURN(auto text, store_->Setting(InternalPlacementKey(p)));
    if (!text || text->empty()) continue;
    auto shares = ParsePlacement(*text);
    Status st = shares.ok() ? alloc_->RestoreInternal(PoolId{static_cast<uint32_t>(p)}, *shares) : shares.status();
    if (!st.ok()) return Status::Invalid(fmt::format("store: setting `{}`: {}", InternalPlacementKey(p), st.message()));
    internal_placement_[p] = *text;
  }
  return Status::Ok();
}

Gpus ControlPlane::DemandAt(int pool, Time t) const {
  int64_t want = fleet_->DemandAt(pool, t);
  for (const auto& j : jobs_) {
    if (j.pool == pool && j.start <= t && t < j.end) want += j.gpus;
  }
  return static_cast<Gpus>(std::clamp<int64_t>(want, 0, topology().pools[pool].gpus));
}

std::vector<Time> ControlPlane::DemandChanges(Time t0, Time t1) const {
  std::vector<Time> out;
  fleet_->DemandChanges(t0, t1, &out);
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
  const fleet::Topology& trace = topology();
  if (trace.pools.empty()) return;
  std::vector<Gpus> last(trace.pools.size(), -1);
  auto observe = [&](Time t) {
    for (int p = 0; p < pool_count(); ++p) {
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
  observe(history_begin_);
  for (Time t : DemandChanges(history_begin_, until - Duration::Millis(1))) observe(t);
}

}  // namespace ll::control
