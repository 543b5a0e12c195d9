// Billing through the facade: whose billing a caller may see, billed usage, invoices and the
// owner's report, read from the store (the arithmetic is src/ledger).
#include <charconv>

#include <fmt/format.h>

#include "control/control_plane.h"
#include "core/check.h"

namespace ll::control {

namespace {

Status CheckPeriod(const std::string& period) {
  if (Status st = ParseMonthUtc(period).status(); !st.ok()) {
    return Status(StatusCode::kInvalidArgument, "invalid_value", st.message(), "period");
  }
  return Status::Ok();
}

// A million tokens is minutes of one replica's output: below it the cost per token says nothing.
constexpr int64_t kCostMinTokens = 1'000'000;

std::optional<double> CostPerMtok(const FleetStats::Totals& t, Money floor, int64_t tokens) {
  if (tokens < kCostMinTokens) return std::nullopt;
  return FleetStats::Totals::GpuHours(t.inference_ms) * floor.dollars() / (static_cast<double>(tokens) / 1e6);
}

}  // namespace

Result<std::string> ControlPlane::BillingTenant(const Principal& who, const std::string& tenant_id) const {
  if (!who.admin) {
    // A tenant asking for another tenant's billing gets the same answer as for a missing one.
    if (!tenant_id.empty() && tenant_id != who.tenant_id) {
      return Status(StatusCode::kNotFound, "tenant_not_found", fmt::format("no tenant `{}`", tenant_id), "tenant_id");
    }
    return who.tenant_id;
  }
  if (!tenant_id.empty()) LL_RETURN_IF_ERROR(tenants_.Check(tenant_id));
  return tenant_id;  // "" = every tenant
}

// What live leases of `tenant` ("": all) owe since their last completed piece: shown, billed
// when the piece ends.
Money ControlPlane::InProgress(const std::string& tenant) const {
  Money open;
  for (size_t i : book().live()) {
    const Lease& l = book()[i];
    ledger::LeaseUsage u;
    if ((!tenant.empty() && l.rec.tenant_id != tenant) || !Leases::UsageOf(l, &u)) continue;
    auto events = ledger::CompletedEvents(u, now_);
    auto accrued = ledger::AccruedUntil(u, now_);
    LL_CHECK(events.ok() && accrued.ok());
    Money billed;
    for (const auto& e : *events) billed += e.amount;
    open += *accrued - billed;
  }
  return open;
}

Result<UsagePage> ControlPlane::Usage(const Principal& who, const std::string& period_arg,
                                      const std::string& tenant_arg, int limit, const std::string& after) {
  Advance();
  UsagePage page;
  LL_ASSIGN_OR_RETURN(page.tenant_id, BillingTenant(who, tenant_arg));
  page.period = period_arg.empty() ? MonthUtc(now_) : period_arg;
  page.now = now_;
  LL_RETURN_IF_ERROR(CheckPeriod(page.period));
  // The cursor is "<start_ms>:<key>" of the last record of the previous page.
  int64_t after_ms = -1;
  std::string after_key;
  if (!after.empty()) {
    size_t colon = after.find(':');
    auto [ptr, ec] = std::from_chars(after.data(), after.data() + std::min(colon, after.size()), after_ms);
    if (colon == std::string::npos || ec != std::errc() || ptr != after.data() + colon || after_ms < 0) {
      return Status(StatusCode::kInvalidArgument, "invalid_value", "`after` must be the `next` of a previous page", "after");
    }
    after_key = after.substr(colon + 1);
  }
  auto records = store_->UsagePage(page.tenant_id, page.period, after_ms, after_key, limit + 1);
  LL_CHECK(records.ok());
  page.records = std::move(*records);
  page.has_more = page.records.size() > static_cast<size_t>(limit);
  if (page.has_more) page.records.pop_back();
  if (!page.tenant_id.empty()) {
    auto lines = store_->InvoiceLines(page.tenant_id, page.period);
    LL_CHECK(lines.ok());
    Money t;
    for (const auto& l : *lines) t += Money::Micros(l.amount_micros);
    page.total = t;
  }
  if (page.period == MonthUtc(now_)) page.in_progress = InProgress(page.tenant_id);
  return page;
}

Result<InvoiceList> ControlPlane::Invoices(const Principal& who, const std::string& tenant_arg) {
  Advance();
  InvoiceList out;
  LL_ASSIGN_OR_RETURN(out.tenant_id, BillingTenant(who, tenant_arg));
  if (out.tenant_id.empty()) {
    return Status(StatusCode::kInvalidArgument, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  }
  auto periods = store_->UsagePeriods(out.tenant_id);
  LL_CHECK(periods.ok());
  for (const auto& [period, total] : *periods) out.periods.emplace_back(period, total);
  out.current = MonthUtc(now_);
  return out;
}

Result<InvoiceView> ControlPlane::Invoice(const Principal& who, const std::string& period, const std::string& tenant_arg) {
  Advance();
  InvoiceView out;
  LL_ASSIGN_OR_RETURN(out.invoice.tenant_id, BillingTenant(who, tenant_arg));
  if (out.invoice.tenant_id.empty()) {
    return Status(StatusCode::kInvalidArgument, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  }
  LL_RETURN_IF_ERROR(CheckPeriod(period));
  auto lines = store_->InvoiceLines(out.invoice.tenant_id, period);
  LL_CHECK(lines.ok());
  ledger::Invoice& inv = out.invoice;
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
  out.closed = period < MonthUtc(now_);
  return out;
}

Billed ControlPlane::BilledIn(const std::string& period) const {
  auto totals = store_->UsageTotals(period);
  LL_CHECK(totals.ok());
  Billed b;
  for (const auto& t : *totals) {
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

Result<OwnerReport> ControlPlane::Report(const std::string& period_arg) {
  Advance();
  const std::string period = period_arg.empty() ? MonthUtc(now_) : period_arg;
  LL_RETURN_IF_ERROR(CheckPeriod(period));
  return ReportOf(period);
}

OwnerReport ControlPlane::ReportOf(const std::string& period) const {
  OwnerReport r;
  r.period = period;
  r.billed = BilledIn(period);
  r.since_start = stats_.totals();
  r.cost_per_mtok = CostPerMtok(r.since_start, floor_, r.billed.input_tokens + r.billed.output_tokens);
  r.now = now_;
  return r;
}

}  // namespace ll::control
