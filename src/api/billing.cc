// The control plane's billing: lease usage into the ledger (committed with the transitions
// that caused it), and the usage and invoice endpoints. The arithmetic is src/ledger.
#include <cctype>
#include <charconv>
#include <tuple>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

std::optional<std::string> ControlPlane::BillingTenant(const Principal& who, const std::string& tenant_id,
                                                       Reply* error) const {
  if (!who.admin) {
    // A tenant asking for another tenant's billing gets the same answer as for a missing one.
    if (!tenant_id.empty() && tenant_id != who.tenant_id) {
      *error = ErrorReply(StatusCode::kNotFound, "tenant_not_found", fmt::format("no tenant `{}`", tenant_id), "tenant_id");
      return std::nullopt;
    }
    return who.tenant_id;
  }
  if (Status st = tenant_id.empty() ? Status::Ok() : tenants_.Check(tenant_id); !st.ok()) {
    *error = ErrorReply(st);
    return std::nullopt;
  }
  return tenant_id;  // "" = every tenant
}

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

Result<std::string> CheckPeriod(const std::string& period) {
  LL_RETURN_IF_ERROR(ParseMonthUtc(period).status());
  return period;
}

}  // namespace

Reply ControlPlane::Usage(const Principal& who, const std::string& period_arg, const std::string& tenant_arg,
                          int limit, const std::string& after) {
  Advance();
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  const std::string period = period_arg.empty() ? MonthUtc(now_) : period_arg;
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", p.status().message(), "period");
  // The cursor is "<start_ms>:<key>" of the last record of the previous page.
  int64_t after_ms = -1;
  std::string after_key;
  if (!after.empty()) {
    size_t colon = after.find(':');
    auto [ptr, ec] = std::from_chars(after.data(), after.data() + std::min(colon, after.size()), after_ms);
    if (colon == std::string::npos || ec != std::errc() || ptr != after.data() + colon || after_ms < 0) {
      return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "`after` must be the `next` of a previous page", "after");
    }
    after_key = after.substr(colon + 1);
  }
  auto records = store_->UsagePage(*tenant, period, after_ms, after_key, limit + 1);
  LL_CHECK(records.ok());
  const bool more = records->size() > static_cast<size_t>(limit);
  if (more) records->pop_back();
  json data = json::array();
  for (const auto& u : *records) data.push_back(UsageJson(u));
  json total = nullptr, total_micros = nullptr;
  if (!tenant->empty()) {
    auto lines = store_->InvoiceLines(*tenant, period);
    LL_CHECK(lines.ok());
    Money t;
    for (const auto& l : *lines) t += Money::Micros(l.amount_micros);
    total = FormatMoney(t);
    total_micros = t.micros;
  }
  // What live leases owe since their last completed piece: shown, billed when the piece ends.
  Money open;
  if (period == MonthUtc(now_)) {
    for (size_t i : book().live()) {
      const Lease& l = book()[i];
      ledger::LeaseUsage u;
      if ((!tenant->empty() && l.rec.tenant_id != *tenant) || !control::Leases::UsageOf(l, &u)) continue;
      auto events = ledger::CompletedEvents(u, now_);
      auto accrued = ledger::AccruedUntil(u, now_);
      LL_CHECK(events.ok() && accrued.ok());
      Money billed;
      for (const auto& e : *events) billed += e.amount;
      open += *accrued - billed;
    }
  }
  Reply r;
  r.body = {{"object", "usage"},
            {"tenant_id", tenant->empty() ? json(nullptr) : json(*tenant)},
            {"period", period},
            {"data", data},
            {"has_more", more},
            {"next", more ? json(fmt::format("{}:{}", records->back().start.ms, records->back().key)) : json(nullptr)},
            {"total", total},
            {"total_micros", total_micros},
            {"in_progress", FormatMoney(open)},
            {"now", FormatUtc(now_)}};
  return r;
}

Reply ControlPlane::Invoices(const Principal& who, const std::string& tenant_arg) {
  Advance();
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  if (tenant->empty()) return ErrorReply(StatusCode::kInvalidArgument, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  auto periods = store_->UsagePeriods(*tenant);
  LL_CHECK(periods.ok());
  const std::string current = MonthUtc(now_);
  json data = json::array();
  for (const auto& [period, total] : *periods) {
    data.push_back({{"object", "invoice"},
                    {"tenant_id", *tenant},
                    {"period", period},
                    {"status", period < current ? "closed" : "open"},
                    {"total", FormatMoney(Money::Micros(total))},
                    {"total_micros", total}});
  }
  Reply r;
  r.body = {{"object", "list"}, {"data", data}};
  return r;
}

Reply ControlPlane::Invoice(const Principal& who, const std::string& period, const std::string& tenant_arg, bool csv) {
  Advance();
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  if (tenant->empty()) return ErrorReply(StatusCode::kInvalidArgument, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", p.status().message(), "period");
  auto lines = store_->InvoiceLines(*tenant, period);
  LL_CHECK(lines.ok());
  ledger::Invoice inv;
  inv.tenant_id = *tenant;
  inv.period = period;
  for (const auto& l : *lines) {
    ledger::LineItem li;
    li.lease_id = l.ref;
    li.kind = l.kind;
    li.price = Money::Micros(l.unit_price_micros);
    (l.unit == "gpu_ms" ? li.gpu_ms : li.tokens) = l.quantity;
    li.amount = Money::Micros(l.amount_micros);
    inv.total += li.amount;
    inv.gpu_ms += li.gpu_ms;
    inv.items.push_back(std::move(li));
  }
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
            {"tenant_id", *tenant},
            {"period", period},
            {"status", period < MonthUtc(now_) ? "closed" : "open"},
            {"currency", "usd"},
            {"items", items},
            {"gpu_ms", inv.gpu_ms},
            {"total", FormatMoney(inv.total)},
            {"total_micros", inv.total.micros}};
  return r;
}

}  // namespace ll::api

// ---------------------------------------------------------------- owner reports

namespace ll::api {

namespace {

// Billed revenue by class from the store's totals by kind (micro-dollars, exact).
struct Billed {
  Money spot, reserved, tokens;
  int64_t input_tokens = 0, output_tokens = 0;
  Money total() const { return spot + reserved + tokens; }
};

Billed Sum(const std::vector<store::UsageRecord>& totals) {
  Billed b;
  for (const auto& t : totals) {
    const Money m = Money::Micros(t.amount_micros);
    if (t.kind == "spot") {
      b.spot += m;
    } else if (t.kind == "reserved") {
      b.reserved += m;
    } else {
      b.tokens += m;
      (t.kind == "input_tokens" ? b.input_tokens : b.output_tokens) += t.quantity;
    }
  }
  return b;
}

}  // namespace

Reply ControlPlane::Report(const std::string& period_arg) {
  Advance();
  const std::string period = period_arg.empty() ? MonthUtc(now_) : period_arg;
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", p.status().message(), "period");
  auto totals = store_->UsageTotals(period);
  LL_CHECK(totals.ok());
  const Billed b = Sum(*totals);
  const control::FleetStats::Totals& t = stats_.totals();
  auto gpu_h = control::FleetStats::Totals::GpuHours;
  const double capacity = gpu_h(t.capacity_ms);
  const double idle = t.idle_gpu_h();
  const double revenue = t.revenue_usd();
  const int64_t tokens = b.input_tokens + b.output_tokens;
  // What serving cost: the GPU-hours inference held, at the floor (power + wear) per GPU-hour.
  const double inference_cost = gpu_h(t.inference_ms) * floor_.dollars();
  Reply r;
  r.body = {
      {"object", "report"},
      {"period", period},
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
        {"cost_per_mtok_usd", tokens > 0 ? json(inference_cost / (static_cast<double>(tokens) / 1e6)) : json(nullptr)}}},
      {"now", FormatUtc(now_)}};
  return r;
}

std::string ControlPlane::ReportMetrics() {
  auto totals = store_->UsageTotals("");
  LL_CHECK(totals.ok());
  const Billed b = Sum(*totals);
  const control::FleetStats::Totals& t = stats_.totals();
  auto gpu_h = control::FleetStats::Totals::GpuHours;
  const double capacity = gpu_h(t.capacity_ms);
  const double revenue = t.revenue_usd();
  const int64_t tokens = b.input_tokens + b.output_tokens;
  std::string out;
  out += "# HELP landlord_billed_usd revenue billed to tenants (the ledger), all time\n# TYPE landlord_billed_usd counter\n";
  for (auto [cls, m] : {std::pair{"spot", b.spot}, std::pair{"reserved", b.reserved}, std::pair{"tokens", b.tokens}}) {
    out += fmt::format("landlord_billed_usd{{class=\"{}\"}} {}\n", cls, FormatMoney(m));
  }
  out += "# HELP landlord_tokens tokens billed, all time\n# TYPE landlord_tokens counter\n";
  out += fmt::format("landlord_tokens{{direction=\"input\"}} {}\nlandlord_tokens{{direction=\"output\"}} {}\n",
                     b.input_tokens, b.output_tokens);
  out += "# HELP landlord_utilization share of capacity GPU-hours by class since start\n# TYPE landlord_utilization gauge\n";
  for (auto [cls, ms] : {std::pair{"internal", t.internal_ms}, std::pair{"reserved", t.reserved_ms},
                         std::pair{"spot", t.spot_ms}, std::pair{"inference", t.inference_ms}}) {
    out += fmt::format("landlord_utilization{{class=\"{}\"}} {}\n", cls, t.Share(ms));
  }
  out += fmt::format("# HELP landlord_revenue_per_gpu_h revenue_usd / capacity_gpu_h\n# TYPE landlord_revenue_per_gpu_h gauge\n"
                     "landlord_revenue_per_gpu_h {}\n",
                     capacity > 0 ? revenue / capacity : 0.0);
  out += fmt::format("# HELP landlord_cost_per_mtok_usd inference GPU-hours at the floor per million tokens billed\n"
                     "# TYPE landlord_cost_per_mtok_usd gauge\nlandlord_cost_per_mtok_usd {}\n",
                     tokens > 0 ? gpu_h(t.inference_ms) * floor_.dollars() / (static_cast<double>(tokens) / 1e6) : 0.0);
  return out;
}

}  // namespace ll::api
