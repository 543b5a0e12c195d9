// The owner's API: tenants, the fleet, the policy, injected jobs, health and metrics.
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"
#include "api/http_metrics.h"
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
  auto t = control::ControlPlane::CreateTenant(*name);
  if (!t.ok()) return ErrorReply(t.status());
  return {.status = 201,
          .body = {{"id", t->id}, {"object", "tenant"}, {"name", t->name}, {"created_at", FormatUtc(t->created)}},
          .content_type = ""};
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

Reply ControlPlane::GetPolicy() {
  const control::PolicyView v = control::ControlPlane::GetPolicy();
  Reply r;
  r.body = {{"policy", v.policy},
            {"notice_s", v.notice.ms / 1000},
            {"floor_per_gpu_hour", FormatMoney(v.floor)},
            {"headroom_gpus", v.headroom_gpus},
            {"sellable_pools", v.sellable_pools}};
  return r;
}

Reply ControlPlane::PutPolicy(const json& body) {
  Fields f(body);
  f.Only({"policy", "notice_s", "floor_per_gpu_hour", "headroom_gpus", "sellable_pools"});
  auto policy = f.Str("policy", false);
  if (f.ok() && policy && *policy != policy_name()) {
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
  control::PolicyChange change;
  if (notice) change.notice = Duration::Seconds(*notice);
  change.floor = floor;
  if (headroom) change.headroom_gpus = static_cast<int>(*headroom);
  change.sellable = std::move(sellable);
  if (Status st = control::ControlPlane::PutPolicy(change); !st.ok()) return ErrorReply(st);
  return GetPolicy();
}

Reply ControlPlane::AddInternalJob(const json& body) {
  if (Status st = AcceptsOwnerJobs(); !st.ok()) return ErrorReply(st);
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
  auto j = control::ControlPlane::AddInternalJob(pool, static_cast<Gpus>(*gpus), Duration::Seconds(*duration));
  if (!j.ok()) return ErrorReply(j.status());
  Reply r;
  r.status = 201;
  r.body = {{"id", j->id}, {"object", "internal_job"}, {"pool", PoolName(pool)}, {"gpus", j->gpus},
            {"start", FormatUtc(j->start)}, {"end", FormatUtc(j->end)}};
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

// The fleet's figures since start, in Prometheus conventions (api/http_metrics.h): GPU-time in
// GPU-seconds (the base unit; the dashboard and `sim` show GPU-hours), money in USD.
std::string ControlPlane::Metrics() {
  Advance();
  const control::FleetStats::Totals& t = stats_.totals();
  const control::FleetStats::Counters& n = stats_.counters();
  auto s = [](int64_t ms) { return static_cast<double>(ms) / 1000; };  // GPU-ms → GPU-seconds
  const double idle = s(t.capacity_ms - t.internal_ms), sold = s(t.reserved_ms + t.spot_ms);
  Scrape m;
  m.Counter("landlord_capacity_gpu_seconds_total", "GPU-seconds of fleet capacity since start", s(t.capacity_ms));
  m.Counter("landlord_internal_gpu_seconds_total", "GPU-seconds used by the owner", s(t.internal_ms));
  m.Counter("landlord_idle_gpu_seconds_total", "GPU-seconds the owner left idle", idle);
  m.Counter("landlord_sold_gpu_seconds_total", "GPU-seconds sold (reserved + spot)", sold);
  m.Counter("landlord_reserved_gpu_seconds_total", "GPU-seconds sold as reserved leases", s(t.reserved_ms));
  m.Counter("landlord_spot_gpu_seconds_total", "GPU-seconds sold as spot leases", s(t.spot_ms));
  m.Counter("landlord_internal_delayed_gpu_seconds_total", "GPU-seconds of owner demand that waited", s(t.waiting_ms));
  m.Gauge("landlord_harvest_ratio",
          "Sold GPU-time the owner alone would have left idle, over that idle GPU-time (<= 1)", t.harvest_ratio());
  m.Counter("landlord_sold_while_owner_waited_gpu_seconds_total",
            "GPU-seconds sold while the owner's demand in the pool waited", s(static_cast<int64_t>(t.sold_while_owner_waited_ms)));
  m.Counter("landlord_revenue_usd_total", "Revenue accrued by leases", t.revenue_usd());
  m.Counter("landlord_reclaims_total", "Leases reclaimed after a notice", static_cast<double>(n.reclaims));
  m.Counter("landlord_leases_started_total", "Leases started", static_cast<double>(n.leases_started));
  m.Counter("landlord_reserved_violations_total",
            "Reserved leases preempted or booked ones that could not start (must be 0)",
            static_cast<double>(alloc_->reserved_violations() + n.bookings_missed));
  m.Counter("landlord_forecast_misses_total", "Owner demand that exceeded the forecast",
            static_cast<double>(alloc_->forecast_misses()));
  m.Gauge("landlord_spot_price_usd_per_gpu_hour", "Spot clearing price",
          static_cast<double>(market_.price().micros) / 1e6);
  const std::pair<const char*, Gpus> gpus[] = {{"internal", alloc_->TotalInternal()}, {"reserved", alloc_->TotalReserved()},
                                              {"spot", alloc_->TotalSpot()}, {"inference", alloc_->TotalInference()},
                                              {"capacity", alloc_->TotalCapacity()}};
  for (const auto& [cls, g] : gpus) m.Gauge("landlord_gpus", "GPUs by class now", static_cast<double>(g), {{"class", cls}});
  return m.Text() + ReportMetrics();
}

}  // namespace ll::api
