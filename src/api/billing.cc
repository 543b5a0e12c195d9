// The control plane's billing: lease usage into the ledger (committed with the transitions
// that caused it), and the usage and invoice endpoints. The arithmetic is src/ledger.
#include <cctype>
#include <charconv>
#include <tuple>

#include <fmt/format.h>

#include "api/auth.h"
#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

bool ControlPlane::UsageOf(const Lease& l, ledger::LeaseUsage* u) const {
  // Never held GPUs, or for no time at all (released in the instant it started).
  if (l.prices.empty() || l.rec.started == kTimeMax) return false;
  if (l.rec.ended != kTimeMax && l.rec.ended <= l.rec.started) return false;
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
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(400, "invalid_value", p.status().message(), "period");
  // The cursor is "<start_ms>:<key>" of the last record of the previous page.
  int64_t after_ms = -1;
  std::string after_key;
  if (!after.empty()) {
    size_t colon = after.find(':');
    auto [ptr, ec] = std::from_chars(after.data(), after.data() + std::min(colon, after.size()), after_ms);
    if (colon == std::string::npos || ec != std::errc() || ptr != after.data() + colon || after_ms < 0) {
      return ErrorReply(400, "invalid_value", "`after` must be the `next` of a previous page", "after");
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

// ---------------------------------------------------------------- balances and token usage

namespace ll::api {

namespace {

constexpr size_t kMaxIngestEvents = 5000;

// Ids chosen by clients (hold ids, usage keys): printable, no spaces, bounded.
bool ValidClientId(const std::string& id, size_t max) {
  if (id.empty() || id.size() > max) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '/')) return false;
  }
  return true;
}

}  // namespace

json ControlPlane::BalanceJson(const std::string& tenant_id) const {
  auto it = balances_.find(tenant_id);
  const ledger::Balance none;
  const ledger::Balance& b = it != balances_.end() ? it->second : none;
  const Money credited = b.available() + b.charged() + b.held();
  return {{"object", "balance"},
          {"tenant_id", tenant_id},
          {"credited", FormatMoney(credited)},
          {"charged", FormatMoney(b.charged())},
          {"held", FormatMoney(b.held())},
          {"available", FormatMoney(b.available())},
          {"available_micros", b.available().micros}};
}

Reply ControlPlane::GetBalance(const Principal& who, const std::string& tenant_arg) {
  Reply error;
  auto tenant = BillingTenant(who, tenant_arg, &error);
  if (!tenant) return error;
  if (tenant->empty()) return ErrorReply(400, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  Reply r;
  r.body = BalanceJson(*tenant);
  return r;
}

Reply ControlPlane::Credit(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"tenant_id", "amount"});
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && amount->micros <= 0) f.Fail("invalid_value", "`amount` must be above 0", "amount");
  if (!f.ok()) return f.error();
  if (!tenants_.contains(*tenant)) return ErrorReply(404, "tenant_not_found", fmt::format("no tenant `{}`", *tenant), "tenant_id");
  ledger::Balance& b = balances_[*tenant];
  if (Status st = b.Credit(*amount); !st.ok()) return ErrorReply(400, "invalid_value", "`amount`: " + st.message(), "amount");
  pending_.balances.push_back({*tenant, (b.available() + b.charged() + b.held()).micros, b.charged().micros});
  Flush();  // durable before it is acknowledged
  Reply r;
  r.body = BalanceJson(*tenant);
  return r;
}

Reply ControlPlane::Reserve(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"id", "tenant_id", "amount", "limits"});
  auto id = f.Str("id", true);
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && !ValidClientId(*id, 128)) f.Fail("invalid_value", "`id` must be 1..128 of [A-Za-z0-9_.:/-]", "id");
  // A standalone gateway's request also takes its share of the key's rate limits, which this
  // control plane keeps for every gateway: {"key_id", "rpm", "tpm", "tokens"}.
  std::optional<gateway::Accounts::Admission> limits;
  if (f.ok() && body.contains("limits")) {
    const json& l = body["limits"];
    if (!l.is_object()) {
      f.Fail("invalid_type", "`limits` must be an object", "limits");
    } else {
      Fields lf(l, "limits.");
      lf.Only({"key_id", "rpm", "tpm", "tokens"});
      auto key_id = lf.Str("key_id", true);
      auto rpm = lf.Int("rpm", 0, 1'000'000'000, true);
      auto tpm = lf.Int("tpm", 0, 1'000'000'000'000, true);
      auto tokens = lf.Int("tokens", 0, 1'000'000'000'000, true);
      if (lf.ok() && !ValidClientId(*key_id, 128)) lf.Fail("invalid_value", "`limits.key_id` must be 1..128 of [A-Za-z0-9_.:/-]", "limits.key_id");
      if (!lf.ok()) return lf.error();
      limits = gateway::Accounts::Admission{.hold_id = *id, .tenant_id = *tenant, .key_id = *key_id, .rpm = *rpm,
                                            .tpm = *tpm, .tokens = *tokens, .amount = *amount};
    }
  }
  if (!f.ok()) return f.error();
  if (!tenants_.contains(*tenant)) return ErrorReply(404, "tenant_not_found", fmt::format("no tenant `{}`", *tenant), "tenant_id");
  auto hold_json = [&](const store::HoldRecord& h) {
    json j = {{"object", "hold"}, {"id", h.id}, {"tenant_id", h.tenant_id},
              {"amount", FormatMoney(Money::Micros(h.amount_micros))}, {"state", h.charged_micros < 0 ? "open" : "settled"}};
    if (h.charged_micros >= 0) j["charged"] = FormatMoney(Money::Micros(h.charged_micros));
    return j;
  };
  // A retry of the same reservation gets the same answer; another one under its id is a conflict.
  auto same = [&](const store::HoldRecord& h) { return h.tenant_id == *tenant && h.amount_micros == amount->micros; };
  if (auto it = open_holds_.find(*id); it != open_holds_.end()) {
    if (!same(it->second)) return ErrorReply(409, "hold_exists", fmt::format("hold `{}` exists with other terms", *id), "id");
    Reply r;
    r.body = hold_json(it->second);
    return r;
  }
  auto stored = store_->Hold(*id);
  LL_CHECK(stored.ok());
  if (*stored) {
    if (!same(**stored)) return ErrorReply(409, "hold_exists", fmt::format("hold `{}` exists with other terms", *id), "id");
    Reply r;
    r.body = hold_json(**stored);
    return r;
  }
  gateway::RateLimits::Decision decision;
  if (limits) {
    decision = TakeLimits(*limits);
    if (!decision.ok) {
      Reply r = ErrorReply(429, "rate_limit_exceeded",
                           fmt::format("the key's {} per minute are used up", decision.tokens ? "tokens" : "requests"),
                           decision.tokens ? "tokens" : "requests");
      r.body["limits"] = gateway::DecisionJson(decision);
      return r;
    }
  }
  ledger::Balance& b = balances_[*tenant];
  Status st = b.Reserve(*id, *amount);
  if (!st.ok()) {
    SettleLimits(*id, 0, /*request_back=*/true);
    Reply r = ErrorReply(402, "insufficient_quota", st.message(), "amount");
    if (limits) r.body["limits"] = gateway::DecisionJson(decision);
    return r;
  }
  store::HoldRecord h{*id, *tenant, amount->micros, -1, Now()};
  open_holds_[*id] = h;
  pending_.holds.push_back(h);
  Flush();
  Reply r;
  r.status = 201;
  r.body = hold_json(h);
  r.body["balance"] = BalanceJson(*tenant);
  if (limits) r.body["limits"] = gateway::DecisionJson(decision);
  return r;
}

std::vector<store::UsageRecord> ControlPlane::TokenRecords(const std::string& key, const std::string& tenant_id,
                                                           const std::string& model, int64_t input, int64_t output,
                                                           Time at) const {
  std::vector<store::UsageRecord> out;
  const market::PriceBook::TokenPrices tp = prices_.TokenPricesFor(model);
  for (auto [unit, tokens, price] : {std::tuple{"input_tokens", input, tp.input_per_mtok},
                                     std::tuple{"output_tokens", output, tp.output_per_mtok}}) {
    out.push_back({.key = fmt::format("{}/{}", key, unit == std::string("input_tokens") ? "in" : "out"),
                   .tenant_id = tenant_id,
                   .source = "tokens",
                   .ref = model,
                   .kind = unit,
                   .period = MonthUtc(at),
                   .start = at,
                   .end = at,
                   .quantity = tokens,
                   .unit = "tokens",
                   .unit_price_micros = price.micros,
                   .amount_micros = ledger::TokenCost(tokens, price).micros});
  }
  return out;
}

Reply ControlPlane::VerifyKey(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"key"});
  auto key = f.Str("key", true);
  if (!f.ok()) return f.error();
  auto k = TenantKey(*key);
  if (!k) return ErrorReply(404, "key_not_found", "no tenant has this key", "key");
  Reply r;
  r.body = {{"object", "key"}, {"tenant_id", k->tenant_id}, {"key_id", k->key_id}, {"rpm", k->rpm}, {"tpm", k->tpm}};
  return r;
}

std::optional<gateway::Accounts::Key> ControlPlane::TenantKey(std::string_view key) const {
  if (key.empty() || key.size() > 256) return std::nullopt;
  auto it = keys_by_hash_.find(HashApiKey(key));
  if (it == keys_by_hash_.end() || it->second.admin || !KeyUsable(it->second)) return std::nullopt;
  return gateway::Accounts::Key{it->second.tenant_id, it->second.id, it->second.rpm, it->second.tpm};
}

gateway::RateLimits::Decision ControlPlane::TakeLimits(const gateway::Accounts::Admission& a) {
  gateway::RateLimits::Decision d = limits_.Take(a.key_id, a.rpm, a.tpm, a.tokens, wall_->Now());
  // Nothing to give back later when both limits are off (no entry on the hot path for it).
  if (d.ok && (a.rpm > 0 || a.tpm > 0)) limit_holds_[a.hold_id] = {a.key_id, a.tokens};
  return d;
}

void ControlPlane::SettleLimits(const std::string& hold_id, int64_t used, bool request_back) {
  auto it = limit_holds_.find(hold_id);
  if (it == limit_holds_.end()) return;  // taken by a leader before this one, or never
  limits_.Settle(it->second.key_id, it->second.reserved, used, wall_->Now(), request_back);
  limit_holds_.erase(it);
}

Status ControlPlane::GatewayAdmit(const gateway::Accounts::Admission& a, gateway::RateLimits::Decision* decision) {
  if (!tenants_.contains(a.tenant_id)) return Status::NotFound(fmt::format("no tenant `{}`", a.tenant_id));
  *decision = TakeLimits(a);
  if (!decision->ok) return Status::Ok();
  Status st = GatewayHold(a);
  if (!st.ok()) SettleLimits(a.hold_id, 0, /*request_back=*/true);  // refused before it reached a model
  return st;
}

Status ControlPlane::GatewayHold(const gateway::Accounts::Admission& a) {
  if (!tenants_.contains(a.tenant_id)) return Status::NotFound(fmt::format("no tenant `{}`", a.tenant_id));
  ledger::Balance& b = balances_[a.tenant_id];
  Status st = b.Reserve(a.hold_id, a.amount);
  if (!st.ok()) {
    if (st.code() == StatusCode::kResourceExhausted) {
      return Status::Exhausted(fmt::format("the balance available is ${}", FormatMoney(b.available())));
    }
    return st;
  }
  gateway_holds_[a.hold_id] = a.tenant_id;
  return Status::Ok();
}

namespace {

// Settles `hold_id` to the records' cost (never more than the hold: the records are cut to what
// was charged) and returns the charge.
Money ChargeUsage(ledger::Balance& b, const std::string& hold_id, std::vector<store::UsageRecord>& records) {
  int64_t cost = 0;
  for (const auto& r : records) cost += r.amount_micros;
  auto charged = b.Settle(hold_id, Money::Micros(cost));
  LL_CHECK(charged.ok());
  // Over the hold (an upstream that ignored max_tokens): bill what was charged, last records first.
  for (int64_t over = cost - charged->micros, i = static_cast<int64_t>(records.size()) - 1; over > 0 && i >= 0; --i) {
    const int64_t cut = std::min(over, records[i].amount_micros);
    records[i].amount_micros -= cut;
    over -= cut;
  }
  return *charged;
}

}  // namespace

void ControlPlane::GatewaySettle(const std::string& hold_id, const gateway::Accounts::Usage& usage) {
  auto it = gateway_holds_.find(hold_id);
  if (it == gateway_holds_.end()) return;
  SettleLimits(hold_id, usage.input_tokens + usage.output_tokens, false);
  ledger::Balance& b = balances_[it->second];
  gateway_holds_.erase(it);
  std::vector<store::UsageRecord> records =
      TokenRecords(usage.key, usage.tenant_id, usage.model, usage.input_tokens, usage.output_tokens, Now());
  ChargeUsage(b, hold_id, records);
  if (usage.input_tokens == 0 && usage.output_tokens == 0) return;  // nothing used: only the hold goes
  pending_.balances.push_back({usage.tenant_id, (b.available() + b.charged() + b.held()).micros, b.charged().micros});
  for (auto& r : records) pending_.usage.push_back(std::move(r));
}

Result<std::vector<store::UsageRecord>> ControlPlane::TokenUsage(const json& events, Reply* error) {
  std::vector<store::UsageRecord> out;
  if (!events.is_array() || events.size() > kMaxIngestEvents) {
    *error = ErrorReply(400, "invalid_value", fmt::format("`events` must be an array of at most {}", kMaxIngestEvents), "events");
    return Status::Invalid("events");
  }
  const Time now = Now();
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    const std::string prefix = fmt::format("events[{}].", i);
    if (!e.is_object()) {
      *error = ErrorReply(400, "invalid_type", fmt::format("`events[{}]` must be an object", i), fmt::format("events[{}]", i));
      return Status::Invalid("events");
    }
    Fields f(e, prefix);
    f.Only({"key", "tenant_id", "model", "input_tokens", "output_tokens", "at"});
    auto key = f.Str("key", true);
    auto tenant = f.Str("tenant_id", true);
    auto model = f.Text("model", true, 100);
    auto in = f.Int("input_tokens", 0, 1'000'000'000, true);
    auto out_tokens = f.Int("output_tokens", 0, 1'000'000'000, true);
    auto at_text = f.Str("at", false);
    Time at = now;
    if (f.ok() && !ValidClientId(*key, 200)) f.Fail("invalid_value", fmt::format("`{}key` must be 1..200 of [A-Za-z0-9_.:/-]", prefix), prefix + "key");
    if (f.ok() && !tenants_.contains(*tenant)) f.Fail("invalid_value", fmt::format("`{}tenant_id`: no tenant `{}`", prefix, *tenant), prefix + "tenant_id");
    if (f.ok() && at_text) {
      auto t = ParseUtc(*at_text);
      if (!t.ok()) {
        f.Fail("invalid_value", fmt::format("`{}at`: {}", prefix, t.status().message()), prefix + "at");
      } else {
        at = *t;
      }
    }
    if (!f.ok()) {
      *error = f.error();
      return Status::Invalid("events");
    }
    for (auto& r : TokenRecords(*key, *tenant, *model, *in, *out_tokens, at)) out.push_back(std::move(r));
  }
  return out;
}

Reply ControlPlane::Settle(const std::string& hold_id, const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"amount", "usage"});
  // Without `amount`, the charge is the usage's own cost (what a standalone gateway sends).
  auto amount = f.Dollars("amount", !body.contains("usage"));
  if (!f.ok()) return f.error();
  std::vector<store::UsageRecord> usage;
  if (body.contains("usage")) {
    Reply error;
    auto u = TokenUsage(body["usage"], &error);
    if (!u.ok()) return error;
    usage = std::move(*u);
  }
  auto it = open_holds_.find(hold_id);
  if (it == open_holds_.end()) {
    // A retry after the settlement went through gets its answer again (settled in the batch not
    // yet committed, or in the store).
    for (const auto& h : pending_.holds) {
      if (h.id != hold_id || h.charged_micros < 0) continue;
      Reply r;
      r.body = {{"object", "hold"}, {"id", hold_id}, {"state", "settled"},
                {"charged", FormatMoney(Money::Micros(h.charged_micros))}};
      return r;
    }
    auto stored = store_->Hold(hold_id);
    LL_CHECK(stored.ok());
    if (!*stored) return ErrorReply(404, "hold_not_found", fmt::format("no hold `{}`", hold_id), "id");
    Reply r;
    r.body = {{"object", "hold"}, {"id", hold_id}, {"state", "settled"},
              {"charged", FormatMoney(Money::Micros((*stored)->charged_micros))}};
    return r;
  }
  store::HoldRecord h = it->second;
  for (const auto& u : usage) {
    if (u.tenant_id != h.tenant_id) {
      return ErrorReply(400, "invalid_value", fmt::format("usage of `{}` cannot settle a hold of `{}`", u.tenant_id, h.tenant_id),
                        "usage");
    }
  }
  int64_t used_tokens = 0;
  for (const auto& u : usage) used_tokens += u.quantity;
  SettleLimits(hold_id, used_tokens, false);
  ledger::Balance& b = balances_[h.tenant_id];
  Result<Money> charged = amount ? b.Settle(hold_id, *amount) : ChargeUsage(b, hold_id, usage);
  LL_CHECK(charged.ok());
  h.charged_micros = charged->micros;
  open_holds_.erase(it);
  pending_.holds.push_back(h);
  pending_.balances.push_back({h.tenant_id, (b.available() + b.charged() + b.held()).micros, b.charged().micros});
  for (auto& u : usage) pending_.usage.push_back(std::move(u));
  Flush();  // the charge and its usage, in one transaction
  Reply r;
  r.body = {{"object", "hold"}, {"id", hold_id}, {"state", "settled"}, {"charged", FormatMoney(*charged)},
            {"balance", BalanceJson(h.tenant_id)}};
  return r;
}

Reply ControlPlane::IngestUsage(const json& body) {
  if (!body.is_object()) return ErrorReply(400, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"events"});
  if (!f.ok()) return f.error();
  if (!body.contains("events")) return ErrorReply(400, "missing_field", "`events` is required", "events");
  Reply error;
  auto usage = TokenUsage(body["events"], &error);
  if (!usage.ok()) return error;
  const size_t records = usage->size();
  for (auto& u : *usage) pending_.usage.push_back(std::move(u));
  last_usage_inserted_ = 0;
  Flush();  // durable before it is acknowledged
  Reply r;
  r.body = {{"object", "usage_ingest"}, {"events", records / 2}, {"records", records},
            {"new_records", last_usage_inserted_}, {"duplicate_records", static_cast<int64_t>(records) - last_usage_inserted_}};
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
  if (auto p = CheckPeriod(period); !p.ok()) return ErrorReply(400, "invalid_value", p.status().message(), "period");
  auto totals = store_->UsageTotals(period);
  LL_CHECK(totals.ok());
  const Billed b = Sum(*totals);
  auto gpu_h = [](__int128 ms) { return static_cast<double>(ms) / 3.6e6; };
  const double capacity = gpu_h(capacity_ms_);
  const double idle = capacity - gpu_h(internal_ms_) - gpu_h(reserved_ms_) - gpu_h(spot_ms_) - gpu_h(inference_ms_);
  auto share = [&](__int128 ms) { return capacity > 0 ? gpu_h(ms) / capacity : 0.0; };
  const double revenue = static_cast<double>(revenue_rate_ms_) / 3.6e6 / 1e6;
  const int64_t tokens = b.input_tokens + b.output_tokens;
  // What serving cost: the GPU-hours inference held, at the floor (power + wear) per GPU-hour.
  const double inference_cost = gpu_h(inference_ms_) * floor_.dollars();
  Reply r;
  r.body = {
      {"object", "report"},
      {"period", period},
      {"billed", {{"spot", FormatMoney(b.spot)}, {"reserved", FormatMoney(b.reserved)}, {"tokens", FormatMoney(b.tokens)},
                  {"total", FormatMoney(b.total())}, {"total_micros", b.total().micros},
                  {"input_tokens", b.input_tokens}, {"output_tokens", b.output_tokens}}},
      {"since_start",
       {{"capacity_gpu_h", capacity},
        {"gpu_h", {{"internal", gpu_h(internal_ms_)}, {"reserved", gpu_h(reserved_ms_)}, {"spot", gpu_h(spot_ms_)},
                   {"inference", gpu_h(inference_ms_)}, {"idle", idle}}},
        {"utilization", {{"internal", share(internal_ms_)}, {"reserved", share(reserved_ms_)}, {"spot", share(spot_ms_)},
                         {"inference", share(inference_ms_)}}},
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
  auto gpu_h = [](__int128 ms) { return static_cast<double>(ms) / 3.6e6; };
  const double capacity = gpu_h(capacity_ms_);
  const double revenue = static_cast<double>(revenue_rate_ms_) / 3.6e6 / 1e6;
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
  for (auto [cls, ms] : {std::pair{"internal", internal_ms_}, std::pair{"reserved", reserved_ms_},
                         std::pair{"spot", spot_ms_}, std::pair{"inference", inference_ms_}}) {
    out += fmt::format("landlord_utilization{{class=\"{}\"}} {}\n", cls, capacity > 0 ? gpu_h(ms) / capacity : 0.0);
  }
  out += fmt::format("# HELP landlord_revenue_per_gpu_h revenue_usd / capacity_gpu_h\n# TYPE landlord_revenue_per_gpu_h gauge\n"
                     "landlord_revenue_per_gpu_h {}\n",
                     capacity > 0 ? revenue / capacity : 0.0);
  out += fmt::format("# HELP landlord_cost_per_mtok_usd inference GPU-hours at the floor per million tokens billed\n"
                     "# TYPE landlord_cost_per_mtok_usd gauge\nlandlord_cost_per_mtok_usd {}\n",
                     tokens > 0 ? gpu_h(inference_ms_) * floor_.dollars() / (static_cast<double>(tokens) / 1e6) : 0.0);
  return out;
}

}  // namespace ll::api
