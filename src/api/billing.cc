// The control plane's billing: lease usage into the ledger (committed with the transitions
// that caused it), and the usage and invoice endpoints. The arithmetic is src/ledger.
#include <fmt/format.h>

#include "api/control_plane.h"

namespace ll::api {

using nlohmann::json;

bool ControlPlane::UsageOf(const Lease& l, ledger::LeaseUsage* u) const {
  if (l.prices.empty() || l.rec.started == kTimeMax) return false;  // never held GPUs
  u->tenant_id = l.rec.tenant_id;
  u->lease_id = l.rec.id;
  u->kind = l.rec.kind;
  u->gpus = l.rec.gpus;
  u->start = l.rec.started;
  u->end = l.rec.ended;
  u->prices = l.prices;
  // Two price points at one instant (started, then cleared in the same step): the last wins.
  std::vector<ledger::PricePoint> unique;
  for (const auto& p : u->prices) {
    if (!unique.empty() && unique.back().at == p.at) {
      unique.back() = p;
    } else {
      unique.push_back(p);
    }
  }
  u->prices = std::move(unique);
  return true;
}

void ControlPlane::Bill(Lease& l) {
  ledger::LeaseUsage u;
  if (!UsageOf(l, &u)) return;
  auto events = ledger::CompletedEvents(u, now_);
  LL_CHECK(events.ok());  // the control plane built the usage: a failure here is a bug
  for (size_t i = l.billed; i < events->size(); ++i) {
    const ledger::UsageEvent& e = (*events)[i];
    pending_.usage.push_back({.key = e.key,
                              .tenant_id = e.tenant_id,
                              .source = "lease",
                              .ref = e.lease_id,
                              .kind = e.kind,
                              .period = e.period,
                              .start = e.start,
                              .end = e.end,
                              .quantity = e.gpu_ms,
                              .unit = "gpu_ms",
                              .unit_price_micros = e.price.micros,
                              .amount_micros = e.amount.micros});
  }
  l.billed = events->size();
}

std::optional<std::string> ControlPlane::BillingTenant(const Principal& who, const std::string& tenant_id,
                                                       Reply* error) const {
  if (!who.admin) {
    // A tenant asking for another tenant's billing gets the same answer as for a missing one.
    if (!tenant_id.empty() && tenant_id != who.tenant_id) {
      *error = ErrorReply(404, "tenant_not_found", fmt::format("no tenant `{}`", tenant_id), "tenant_id");
      return std::nullopt;
    }
    return who.tenant_id;
  }
  if (!tenant_id.empty() && !tenants_.contains(tenant_id)) {
    *error = ErrorReply(404, "tenant_not_found", fmt::format("no tenant `{}`", tenant_id), "tenant_id");
    return std::nullopt;
  }
  return tenant_id;  // "" = every tenant
}

namespace {

json UsageJson(const store::UsageRecord& u) {
  return {{"key", u.key},
          {"tenant_id", u.tenant_id},
          {"source", u.source},
          {"lease_id", u.ref},
          {"kind", u.kind},
          {"period", u.period},
          {"start", FormatUtc(u.start)},
          {"end", FormatUtc(u.end)},
          {"start_ms", u.start.ms},  // exact (the RFC 3339 strings are to the second)
          {"end_ms", u.end.ms},
          {"gpu_ms", u.quantity},
          {"price_per_gpu_hour", FormatMoney(Money::Micros(u.unit_price_micros))},
          {"amount", FormatMoney(Money::Micros(u.amount_micros))},
          {"amount_micros", u.amount_micros}};
}

ledger::UsageEvent ToLedger(const store::UsageRecord& u) {
  ledger::UsageEvent e;
  e.key = u.key;
  e.tenant_id = u.tenant_id;
  e.lease_id = u.ref;
  e.kind = u.kind;
  e.period = u.period;
  e.start = u.start;
  e.end = u.end;
  e.gpu_ms = u.quantity;
  e.price = Money::Micros(u.unit_price_micros);
  e.amount = Money::Micros(u.amount_micros);
  return e;
}

Result<std::string> CheckPeriod(const std::string& period) {
  LL_RETURN_IF_ERROR(ParseMonthUtc(period).status());
  return period;
}

}  // namespace

Reply ControlPlane::Usage(const Principal& who, const std::string& period_arg, const std::string& tenant_arg) {
  Advance();
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  const std::string period = period_arg.empty() ? MonthUtc(now_) : period_arg;
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(400, "invalid_value", p.status().message(), "period");
  auto records = store_->Usage(*tenant, period);
  LL_CHECK(records.ok());
  json data = json::array();
  Money total;
  for (const auto& u : *records) {
    data.push_back(UsageJson(u));
    total += Money::Micros(u.amount_micros);
  }
  // What live leases owe since their last completed piece: shown, billed when the piece ends.
  Money open;
  if (period == MonthUtc(now_)) {
    for (size_t i : live_) {
      const Lease& l = leases_[i];
      ledger::LeaseUsage u;
      if ((!tenant->empty() && l.rec.tenant_id != *tenant) || !UsageOf(l, &u)) continue;
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
            {"total", FormatMoney(total)},
            {"total_micros", total.micros},
            {"in_progress", FormatMoney(open)},
            {"now", FormatUtc(now_)}};
  return r;
}

Reply ControlPlane::Invoices(const Principal& who, const std::string& tenant_arg) {
  Advance();
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  if (tenant->empty()) return ErrorReply(400, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
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
  if (tenant->empty()) return ErrorReply(400, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(400, "invalid_value", p.status().message(), "period");
  auto records = store_->Usage(*tenant, period);
  LL_CHECK(records.ok());
  std::vector<ledger::UsageEvent> events;
  events.reserve(records->size());
  for (const auto& u : *records) events.push_back(ToLedger(u));
  ledger::Invoice inv = ledger::BuildInvoice(*tenant, period, events);
  Reply r;
  if (csv) {
    r.body = ledger::InvoiceCsv(inv);
    r.content_type = "text/csv; charset=utf-8";
    return r;
  }
  json items = json::array();
  for (const auto& li : inv.items) {
    items.push_back({{"lease_id", li.lease_id},
                     {"kind", li.kind},
                     {"price_per_gpu_hour", FormatMoney(li.price)},
                     {"gpu_ms", li.gpu_ms},
                     {"amount", FormatMoney(li.amount)},
                     {"amount_micros", li.amount.micros}});
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
