// The owner's dashboard: one snapshot of everything but the fleet map (Dashboard) and the map
// (FleetMap), read by `GET /admin/dashboard`, `GET /admin/fleet/map` and pushed over
// `GET /admin/stream` (http_server.cc).
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "core/money.h"

namespace ll::api {

using nlohmann::json;

namespace {

double Seconds(Time t) { return static_cast<double>(t.ms) / 1000.0; }
double Dollars(int64_t micros) { return static_cast<double>(micros) / 1e6; }

}  // namespace

// The fleet's series, thinned by a stride so that a long history stays a few thousand points;
// the newest sample is always in.
json ControlPlane::DashboardSeries(size_t max_points) const {
  json t = json::array(), internal = json::array(), reserved = json::array(), spot = json::array(),
       inference = json::array(), idle = json::array(), price = json::array(), demand = json::array(),
       forecast = json::array(), revenue = json::array(), per_gpu_h = json::array();
  const auto& samples = stats().samples();
  const size_t n = samples.size();
  const size_t stride = std::max<size_t>(1, (n + max_points - 1) / std::max<size_t>(1, max_points));
  const Time first = n > 0 ? samples.front().t : advanced_to();
  const Gpus capacity = allocator().TotalCapacity();
  for (size_t i = n % stride == 0 ? stride - 1 : n % stride - 1; i < n; i += stride) {
    const control::FleetStats::Sample& s = samples[i];
    t.push_back(Seconds(s.t));
    internal.push_back(s.internal);
    reserved.push_back(s.reserved);
    spot.push_back(s.spot);
    inference.push_back(s.inference);
    idle.push_back(s.free);
    price.push_back(Dollars(s.spot_price.micros));
    demand.push_back(s.demand);
    forecast.push_back(s.forecast);
    revenue.push_back(Dollars(s.revenue_micros));
    // Revenue per GPU-hour of capacity since the first sample (what the owner earns per GPU).
    const double hours = static_cast<double>((s.t - first).ms) / 3.6e6;
    per_gpu_h.push_back(hours > 0 && capacity > 0 ? Dollars(s.revenue_micros) / (hours * capacity) : 0.0);
  }

  return {{"t", t},
          {"internal", internal},
          {"reserved", reserved},
          {"spot", spot},
          {"inference", inference},
          {"idle", idle},
          {"spot_price", price},
          {"demand", demand},
          {"forecast", forecast},
          {"revenue_usd", revenue},
          {"revenue_per_gpu_h", per_gpu_h}};
}

// The live leases, then the most recently created others (at most 200 in all), and the recent
// reclaims.
void ControlPlane::DashboardLeases(json* leases, json* reclaims) const {
  *leases = json::array();
  for (size_t i : book().live()) leases->push_back(LeaseJson(book()[i].rec));
  for (size_t i = book().size(); i > 0 && leases->size() < 200; --i) {
    if (!book().IsLive(i - 1)) leases->push_back(LeaseJson(book()[i - 1].rec));
  }
  // Recent reclaims: leases that got a notice, newest notice first.
  std::vector<size_t> noticed;
  for (size_t i = 0; i < book().size(); ++i) {
    if (book()[i].rec.noticed_at != kTimeMax) noticed.push_back(i);
  }
  std::sort(noticed.begin(), noticed.end(),
            [&](size_t a, size_t b) { return book()[a].rec.noticed_at > book()[b].rec.noticed_at; });
  *reclaims = json::array();
  for (size_t k = 0; k < noticed.size() && k < 20; ++k) {
    const store::LeaseRecord& r = book()[noticed[k]].rec;
    reclaims->push_back({{"lease", r.id},
                        {"tenant_id", r.tenant_id},
                        {"gpus", r.gpus},
                        {"state", Name(r.state)},
                        {"noticed_at", FormatUtc(r.noticed_at)},
                        {"reclaim_at", r.reclaim_at == kTimeMax ? json(nullptr) : json(FormatUtc(r.reclaim_at))},
                        {"ended_at", r.ended == kTimeMax ? json(nullptr) : json(FormatUtc(r.ended))}});
  }
}

// Tenants (the first 100 by id): balance, this month's bill and tokens, what they hold now.
json ControlPlane::DashboardTenants() const {
  const std::string period = MonthUtc(advanced_to());
  json tenants = json::array();
  for (const auto& [id, rec] : this->tenants().all()) {
    if (tenants.size() >= 100) break;
    int64_t billed = 0, tokens = 0;
    for (const auto& u : InvoiceLines(id, period)) {
      billed += u.amount_micros;
      if (u.unit == "tokens") tokens += u.quantity;
    }
    int live_leases = 0, gpus = 0;
    for (size_t i : book().OfTenant(id)) {
      if (book().IsLive(i)) {
        ++live_leases;
        gpus += book()[i].rec.gpus;
      }
    }
    tenants.push_back({{"id", id},
                       {"name", rec.name},
                       {"balance", BalanceJson(id)["available"]},
                       {"billed", FormatMoney(Money::Micros(billed))},
                       {"tokens", tokens},
                       {"live_leases", live_leases},
                       {"gpus", gpus}});
  }

  return tenants;
}

Reply ControlPlane::Dashboard(size_t max_points) {
  Advance();
  const Gpus capacity = allocator().TotalCapacity();
  json leases, reclaims;
  DashboardLeases(&leases, &reclaims);
  const json series = DashboardSeries(max_points), tenants = DashboardTenants();
  json replicas = json::array();
  for (const auto& [tag, slot] : this->replicas().all()) {
    replicas.push_back({{"id", slot.id}, {"model", slot.model}, {"state", slot.noticed ? "draining" : "serving"}});
  }

  Reply report = Report("");
  Reply r;
  r.body = {{"object", "dashboard"},
            {"now", FormatUtc(advanced_to())},
            {"now_s", Seconds(advanced_to())},
            {"clock_speed", clock_speed()},
            {"policy", policy_name()},
            {"gpus",
             {{"capacity", capacity},
              {"internal", allocator().TotalInternal()},
              {"reserved", allocator().TotalReserved()},
              {"spot", allocator().TotalSpot()},
              {"inference", allocator().TotalInference()},
              {"idle", capacity - allocator().TotalInternal() - allocator().TotalReserved() - allocator().TotalSpot() -
                           allocator().TotalInference()},
              {"waiting", allocator().InternalWaiting()}}},
            {"spot_price", FormatMoney(spot_price())},
            {"report", report.body},
            {"series", series},
            {"leases", leases},
            {"reclaims", reclaims},
            {"tenants", tenants},
            {"replicas", replicas}};
  return r;
}

Reply ControlPlane::FleetMap() {
  Advance();
  // Holders: one row per live holder that any node shows; nodes list [holder index, GPUs].
  json holders = json::array();
  const auto& trace = topology();
  std::vector<json> per_node(trace.nodes.size(), json::array());
  for (size_t i = 0; i < allocator().holder_count(); ++i) {
    const alloc::Holder& h = allocator().holder(HolderId{static_cast<uint32_t>(i)});
    if (h.state != alloc::HolderState::kActive && h.state != alloc::HolderState::kNoticed) continue;
    json row = {{"class", alloc::HolderClassName(h.cls)}, {"noticed", h.state == alloc::HolderState::kNoticed}};
    if (h.cls == alloc::HolderClass::kInference) {
      if (const auto* slot = replicas().Find(h.tag)) {
        row["replica"] = slot->id;
        row["model"] = slot->model;
      }
    } else if (h.outside()) {
      const store::LeaseRecord& rec = book()[h.tag].rec;
      row["lease"] = rec.id;
      row["tenant_id"] = rec.tenant_id;
      row["state"] = Name(rec.state);
      if (rec.reclaim_at != kTimeMax) row["reclaim_at"] = FormatUtc(rec.reclaim_at);
    }
    const size_t index = holders.size();
    holders.push_back(std::move(row));
    for (const auto& s : h.shares) per_node[s.node.v].push_back(json::array({index, s.gpus}));
  }
  json nodes = json::array();
  json pools = json::array();
  for (const auto& p : trace.pools) pools.push_back(p.name);
  for (size_t n = 0; n < trace.nodes.size(); ++n) {
    const auto& ns = trace.nodes[n];
    nodes.push_back(json::array({ns.name, ns.pool, ns.gpus, std::move(per_node[n])}));
  }
  Reply r;
  r.body = {{"object", "fleet_map"}, {"now", FormatUtc(advanced_to())}, {"pools", pools}, {"holders", holders}, {"nodes", nodes}};
  return r;
}

}  // namespace ll::api
