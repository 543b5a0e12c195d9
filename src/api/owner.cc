// The owner's API: tenants, the fleet, the policy, injected jobs, health and metrics.
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/control_plane_internal.h"
#include "api/fields.h"
#include "core/check.h"

namespace ll::api {

using alloc::HolderClass;
using alloc::HolderState;
using nlohmann::json;

Reply ControlPlane::CreateTenant(const json& body) {
  Fields f(body);
  f.Only({"name"});
  auto name = f.Text("name", true);
  if (!f.ok()) return f.error();
  const store::TenantRecord t = tenants_.Create(*name, clock_->Now(), pending_);
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
    pools.push_back({{"name", topology().pools[p].name},
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
  std::vector<json> holders(topology().nodes.size(), json::array());
  for (size_t i = 0; i < alloc_->holder_count(); ++i) {
    const alloc::Holder& h = alloc_->holder(HolderId{static_cast<uint32_t>(i)});
    if (h.state != HolderState::kActive && h.state != HolderState::kNoticed) continue;
    for (const auto& s : h.shares) {
      json e = {{"class", alloc::HolderClassName(h.cls)}, {"gpus", s.gpus}};
      if (h.cls == alloc::HolderClass::kInference) {
        if (const auto* slot = replicas_.Find(h.tag)) {
          e["replica"] = slot->id;
          e["model"] = slot->model;
          e["state"] = slot->noticed ? "draining" : "serving";
        }
      } else if (h.outside()) {
        e["lease"] = book()[h.tag].rec.id;
        e["tenant_id"] = book()[h.tag].rec.tenant_id;
        e["state"] = Name(book()[h.tag].rec.state);
      }
      holders[s.node.v].push_back(e);
    }
  }
  json nodes = json::array();
  for (size_t n = 0; n < topology().nodes.size(); ++n) {
    const auto& ns = topology().nodes[n];
    nodes.push_back({{"name", ns.name}, {"pool", topology().pools[ns.pool].name}, {"rack", ns.rack},
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
  for (int p = 0; p < pool_count(); ++p) {
    if (overrides_->sellable[p]) pools.push_back(topology().pools[p].name);
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
      sellable.emplace(pool_count(), false);
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
  if (Status st = fleet_->AcceptsOwnerJobs(); !st.ok()) {
    return ErrorReply(st.code(), fmt::format("{}_fleet", fleet_->name()), std::string(st.message()));
  }
  Fields f(body);
  f.Only({"pool", "gpus", "duration_s"});
  auto pool_name = f.Str("pool", pool_count() > 1);
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
  r.body = {{"id", j.id}, {"object", "internal_job"}, {"pool", topology().pools[pool].name}, {"gpus", j.gpus},
            {"start", FormatUtc(j.start)}, {"end", FormatUtc(j.end)}};
  return r;
}

Reply ControlPlane::Timeseries() {
  Advance();
  json points = json::array();
  for (const control::FleetStats::Sample& s : stats_.samples()) {
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
  if (std::optional<fleet::Health> h = fleet_->health()) {
    json drained = json::object();
    for (const auto& [node, why] : h->drained) drained[node] = why;
    r.body["fleet"] = {{"backend", h->backend},
                       {"partition", h->partition},
                       {"status", h->available ? "ok" : "unavailable"},
                       {"message", h->message},
                       {"drained", drained}};
    if (!h->available) r.body["status"] = "degraded";
  }
  return r;
}

std::string ControlPlane::Metrics() {
  Advance();
  const control::FleetStats::Totals& t = stats_.totals();
  const control::FleetStats::Counters& n = stats_.counters();
  auto h = control::FleetStats::Totals::GpuHours;
  double capacity = h(t.capacity_ms), internal = h(t.internal_ms), reserved = h(t.reserved_ms), spot = h(t.spot_ms);
  double idle = capacity - internal, sold = reserved + spot;
  double revenue = t.revenue_usd();
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
  metric("internal_delayed_gpu_h", "counter", "GPU-hours of owner demand that waited", h(t.waiting_ms));
  metric("revenue_usd", "counter", "revenue accrued by leases", revenue);
  metric("reclaims", "counter", "leases reclaimed after a notice", static_cast<double>(n.reclaims));
  metric("leases", "counter", "leases started", static_cast<double>(n.leases_started));
  metric("reserved_violations", "counter", "reserved leases preempted or booked ones that could not start (must be 0)",
         static_cast<double>(alloc_->reserved_violations() + n.bookings_missed));
  metric("forecast_misses", "counter", "owner demand that exceeded the forecast", static_cast<double>(alloc_->forecast_misses()));
  metric("spot_price_usd", "gauge", "spot clearing price per GPU-hour", static_cast<double>(market_.price().micros) / 1e6);
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
