// Billing as the API shows it: usage pages, invoices (JSON or CSV) and the owner's report, in
// JSON and as Prometheus lines. What they hold is control::ControlPlane's (billing_ops.cc).
#include <cctype>
#include <charconv>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"
#include "api/http_metrics.h"

namespace ll::api {

using nlohmann::json;

namespace {

json UsageJson(const store::UsageRecord& u) {
  const bool tokens = u.source == "tokens";
  json j = {{"key", u.key},
            {"tenant_id", u.tenant_id},
            {"source", u.source},
            {tokens ? "model" : "lease_id", u.ref},
            {"kind", u.kind},
            {"period", u.period},
            {"start", FormatUtc(u.start)},
            {"end", FormatUtc(u.end)},
            {"start_ms", u.start.ms},  // exact (the RFC 3339 strings are to the second)
            {"end_ms", u.end.ms},
            {"quantity", u.quantity},
            {"unit", u.unit},
            {"amount", FormatMoney(Money::Micros(u.amount_micros))},
            {"amount_micros", u.amount_micros}};
  if (tokens) {
    j["tokens"] = u.quantity;
    j["price_per_mtok"] = FormatMoney(Money::Micros(u.unit_price_micros));
  } else {
    j["gpu_ms"] = u.quantity;
    j["price_per_gpu_hour"] = FormatMoney(Money::Micros(u.unit_price_micros));
  }
  return j;
}

}  // namespace

std::optional<std::string> ControlPlane::BillingTenant(const Principal& who, const std::string& tenant_id,
                                                       Reply* error) const {
  auto tenant = control::ControlPlane::BillingTenant(who, tenant_id);
  if (tenant.ok()) return *tenant;
  *error = ErrorReply(tenant.status());
  return std::nullopt;
}

Reply ControlPlane::Usage(const Principal& who, const std::string& period, const std::string& tenant_id, int limit,
                          const std::string& after) {
  auto page = control::ControlPlane::Usage(who, period, tenant_id, limit, after);
  if (!page.ok()) return ErrorReply(page.status());
  json data = json::array();
  for (const auto& u : page->records) data.push_back(UsageJson(u));
  const bool more = page->has_more;
  Reply r;
  r.body = {{"object", "usage"},
            {"tenant_id", page->tenant_id.empty() ? json(nullptr) : json(page->tenant_id)},
            {"period", page->period},
            {"data", data},
            {"has_more", more},
            {"next", more ? json(fmt::format("{}:{}", page->records.back().start.ms, page->records.back().key)) : json(nullptr)},
            {"total", page->total ? json(FormatMoney(*page->total)) : json(nullptr)},
            {"total_micros", page->total ? json(page->total->micros) : json(nullptr)},
            {"in_progress", FormatMoney(page->in_progress)},
            {"now", FormatUtc(page->now)}};
  return r;
}

Reply ControlPlane::Invoices(const Principal& who, const std::string& tenant_id) {
  auto list = control::ControlPlane::Invoices(who, tenant_id);
  if (!list.ok()) return ErrorReply(list.status());
  json data = json::array();
  for (const auto& [period, total] : list->periods) {
    data.push_back({{"object", "invoice"},
                    {"tenant_id", list->tenant_id},
                    {"period", period},
                    {"status", period < list->current ? "closed" : "open"},
                    {"total", FormatMoney(Money::Micros(total))},
                    {"total_micros", total}});
  }
  Reply r;
  r.body = {{"object", "list"}, {"data", data}};
  return r;
}

Reply ControlPlane::Invoice(const Principal& who, const std::string& period, const std::string& tenant_id, bool csv) {
  auto view = control::ControlPlane::Invoice(who, period, tenant_id);
  if (!view.ok()) return ErrorReply(view.status());
  const ledger::Invoice& inv = view->invoice;
  Reply r;
  if (csv) {
    r.body = ledger::InvoiceCsv(inv);
    r.content_type = "text/csv; charset=utf-8";
    return r;
  }
  json items = json::array();
  for (const auto& li : inv.items) {
    const bool tokens = li.kind == "input_tokens" || li.kind == "output_tokens";
    json item = {{tokens ? "model" : "lease_id", li.lease_id}, {"kind", li.kind},
                 {"amount", FormatMoney(li.amount)}, {"amount_micros", li.amount.micros}};
    if (tokens) {
      item["price_per_mtok"] = FormatMoney(li.price);
      item["tokens"] = li.tokens;
    } else {
      item["price_per_gpu_hour"] = FormatMoney(li.price);
      item["gpu_ms"] = li.gpu_ms;
    }
    items.push_back(std::move(item));
  }
  r.body = {{"object", "invoice"},
            {"tenant_id", inv.tenant_id},
            {"period", period},
            {"status", view->closed ? "closed" : "open"},
            {"currency", "usd"},
            {"items", items},
            {"gpu_ms", inv.gpu_ms},
            {"total", FormatMoney(inv.total)},
            {"total_micros", inv.total.micros}};
  return r;
}

// ---------------------------------------------------------------- owner reports

Reply ControlPlane::Report(const std::string& period) {
  auto report = control::ControlPlane::Report(period);
  if (!report.ok()) return ErrorReply(report.status());
  const control::Billed& b = report->billed;
  const control::FleetStats::Totals& t = report->since_start;
  auto gpu_h = control::FleetStats::Totals::GpuHours;
  const double capacity = gpu_h(t.capacity_ms);
  const double idle = t.idle_gpu_h();
  const double revenue = t.revenue_usd();
  const std::optional<double> cost = report->cost_per_mtok;
  Reply r;
  r.body = {
      {"object", "report"},
      {"period", report->period},
      {"billed", {{"spot", FormatMoney(b.spot)}, {"reserved", FormatMoney(b.reserved)}, {"tokens", FormatMoney(b.tokens)},
                  {"total", FormatMoney(b.total())}, {"total_micros", b.total().micros},
                  {"input_tokens", b.input_tokens}, {"output_tokens", b.output_tokens}}},
      {"since_start",
       {{"capacity_gpu_h", capacity},
        {"gpu_h", {{"internal", gpu_h(t.internal_ms)}, {"reserved", gpu_h(t.reserved_ms)}, {"spot", gpu_h(t.spot_ms)},
                   {"inference", gpu_h(t.inference_ms)}, {"idle", idle}}},
        {"utilization", {{"internal", t.Share(t.internal_ms)}, {"reserved", t.Share(t.reserved_ms)},
                         {"spot", t.Share(t.spot_ms)}, {"inference", t.Share(t.inference_ms)}}},
        {"revenue_usd", revenue},
        {"revenue_per_gpu_h", capacity > 0 ? revenue / capacity : 0.0},
        {"cost_per_mtok_usd", cost ? json(*cost) : json(nullptr)}}},
      {"now", FormatUtc(report->now)}};
  return r;
}

std::string ControlPlane::ReportMetrics() {
  const control::OwnerReport report = ReportOf("");  // all time
  const control::Billed& b = report.billed;
  const control::FleetStats::Totals& t = report.since_start;
  const double capacity = control::FleetStats::Totals::GpuHours(t.capacity_ms);
  Scrape m;
  for (auto [cls, money] : {std::pair{"spot", b.spot}, std::pair{"reserved", b.reserved}, std::pair{"tokens", b.tokens}}) {
    m.Counter("landlord_billed_usd_total", "Revenue billed to tenants (the ledger), all time",
              static_cast<double>(money.micros) / 1e6, {{"class", cls}});
  }
  for (auto [dir, n] : {std::pair{"input", b.input_tokens}, std::pair{"output", b.output_tokens}}) {
    m.Counter("landlord_tokens_total", "Tokens billed, all time", static_cast<double>(n), {{"direction", dir}});
  }
  for (auto [cls, ms] : {std::pair{"internal", t.internal_ms}, std::pair{"reserved", t.reserved_ms},
                         std::pair{"spot", t.spot_ms}, std::pair{"inference", t.inference_ms}}) {
    m.Gauge("landlord_utilization_ratio", "Share of capacity GPU-time by class since start", t.Share(ms), {{"class", cls}});
  }
  m.Gauge("landlord_revenue_usd_per_gpu_hour", "Revenue per GPU-hour of capacity since start",
          capacity > 0 ? t.revenue_usd() / capacity : 0.0);
  if (report.cost_per_mtok) {
    m.Gauge("landlord_cost_usd_per_million_tokens",
            "Inference GPU-time at the floor price per million tokens billed (absent below 1M tokens)", *report.cost_per_mtok);
  }
  return m.Text();
}

}  // namespace ll::api
