// Prepaid balances and the model API's side of the ledger: credits, holds (the gateway's
// reservations and their settlement with token usage), keys verified for standalone gateways.
#include <cctype>
#include <charconv>
#include <tuple>

#include <fmt/format.h>

#include "api/auth.h"
#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

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
  if (tenant->empty()) return ErrorReply(StatusCode::kInvalidArgument, "missing_field", "the owner names a tenant: `?tenant_id=`", "tenant_id");
  Reply r;
  r.body = BalanceJson(*tenant);
  return r;
}

Reply ControlPlane::Credit(const json& body) {
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"tenant_id", "amount"});
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && amount->micros <= 0) f.Fail("invalid_value", "`amount` must be above 0", "amount");
  if (!f.ok()) return f.error();
  if (!tenants_.contains(*tenant)) return ErrorReply(StatusCode::kNotFound, "tenant_not_found", fmt::format("no tenant `{}`", *tenant), "tenant_id");
  ledger::Balance& b = balances_[*tenant];
  if (Status st = b.Credit(*amount); !st.ok()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "`amount`: " + st.message(), "amount");
  pending_.balances.push_back({*tenant, (b.available() + b.charged() + b.held()).micros, b.charged().micros});
  Flush();  // durable before it is acknowledged
  Reply r;
  r.body = BalanceJson(*tenant);
  return r;
}

namespace {

json HoldJson(const store::HoldRecord& h) {
  json j = {{"object", "hold"}, {"id", h.id}, {"tenant_id", h.tenant_id},
            {"amount", FormatMoney(Money::Micros(h.amount_micros))}, {"state", h.charged_micros < 0 ? "open" : "settled"}};
  if (h.charged_micros >= 0) j["charged"] = FormatMoney(Money::Micros(h.charged_micros));
  return j;
}

// A standalone gateway's request also takes its share of the key's rate limits, which this
// control plane keeps for every gateway: {"key_id", "rpm", "tpm", "tokens"}. Nullopt when the
// hold has none (or `f` failed: the error names the field).
std::optional<gateway::Accounts::Admission> HoldLimits(const json& body, Fields& f, const std::string& id,
                                                       const std::string& tenant, Money amount) {
  if (!f.ok() || !body.contains("limits")) return std::nullopt;
  const json& l = body["limits"];
  if (!l.is_object()) {
    f.Fail("invalid_type", "`limits` must be an object", "limits");
    return std::nullopt;
  }
  Fields lf(l, "limits.");
  lf.Only({"key_id", "rpm", "tpm", "tokens"});
  auto key_id = lf.Str("key_id", true);
  auto rpm = lf.Int("rpm", 0, 1'000'000'000, true);
  auto tpm = lf.Int("tpm", 0, 1'000'000'000'000, true);
  auto tokens = lf.Int("tokens", 0, 1'000'000'000'000, true);
  if (lf.ok() && !ValidClientId(*key_id, 128)) lf.Fail("invalid_value", "`limits.key_id` must be 1..128 of [A-Za-z0-9_.:/-]", "limits.key_id");
  if (!lf.ok()) {
    f.Fail(lf.error());
    return std::nullopt;
  }
  return gateway::Accounts::Admission{.hold_id = id, .tenant_id = tenant, .key_id = *key_id, .rpm = *rpm,
                                      .tpm = *tpm, .tokens = *tokens, .amount = amount};
}

}  // namespace

// A retry of the same reservation gets the same answer; another one under its id is a conflict.
std::optional<Reply> ControlPlane::ExistingHold(const std::string& id, const std::string& tenant, Money amount) {
  std::optional<store::HoldRecord> found;
  if (auto it = open_holds_.find(id); it != open_holds_.end()) {
    found = it->second;
  } else {
    auto stored = store_->Hold(id);
    LL_CHECK(stored.ok());
    found = *stored;
  }
  if (!found) return std::nullopt;
  if (found->tenant_id != tenant || found->amount_micros != amount.micros) {
    return ErrorReply(StatusCode::kConflict, "hold_exists", fmt::format("hold `{}` exists with other terms", id), "id");
  }
  Reply r;
  r.body = HoldJson(*found);
  return r;
}

Reply ControlPlane::Reserve(const json& body) {
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"id", "tenant_id", "amount", "limits"});
  auto id = f.Str("id", true);
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && !ValidClientId(*id, 128)) f.Fail("invalid_value", "`id` must be 1..128 of [A-Za-z0-9_.:/-]", "id");
  const auto limits = f.ok() ? HoldLimits(body, f, *id, *tenant, *amount) : std::nullopt;
  if (!f.ok()) return f.error();
  if (!tenants_.contains(*tenant)) return ErrorReply(StatusCode::kNotFound, "tenant_not_found", fmt::format("no tenant `{}`", *tenant), "tenant_id");
  if (auto existing = ExistingHold(*id, *tenant, *amount)) return *existing;
  gateway::RateLimits::Decision decision;
  if (limits) {
    decision = TakeLimits(*limits);
    if (!decision.ok) {
      Reply r = ErrorReply(StatusCode::kRateLimited, "rate_limit_exceeded",
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
    Reply r = ErrorReply(StatusCode::kInsufficientFunds, "insufficient_quota", st.message(), "amount");
    if (limits) r.body["limits"] = gateway::DecisionJson(decision);
    return r;
  }
  store::HoldRecord h{*id, *tenant, amount->micros, -1, Now()};
  open_holds_[*id] = h;
  pending_.holds.push_back(h);
  Flush();
  Reply r;
  r.status = 201;
  r.body = HoldJson(h);
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
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"key"});
  auto key = f.Str("key", true);
  if (!f.ok()) return f.error();
  auto k = TenantKey(*key);
  if (!k) return ErrorReply(StatusCode::kNotFound, "key_not_found", "no tenant has this key", "key");
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
    *error = ErrorReply(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`events` must be an array of at most {}", kMaxIngestEvents), "events");
    return Status::Invalid("events");
  }
  const Time now = Now();
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    const std::string prefix = fmt::format("events[{}].", i);
    if (!e.is_object()) {
      *error = ErrorReply(StatusCode::kInvalidArgument, "invalid_type", fmt::format("`events[{}]` must be an object", i), fmt::format("events[{}]", i));
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
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
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
    if (!*stored) return ErrorReply(StatusCode::kNotFound, "hold_not_found", fmt::format("no hold `{}`", hold_id), "id");
    Reply r;
    r.body = {{"object", "hold"}, {"id", hold_id}, {"state", "settled"},
              {"charged", FormatMoney(Money::Micros((*stored)->charged_micros))}};
    return r;
  }
  store::HoldRecord h = it->second;
  for (const auto& u : usage) {
    if (u.tenant_id != h.tenant_id) {
      return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", fmt::format("usage of `{}` cannot settle a hold of `{}`", u.tenant_id, h.tenant_id),
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
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"events"});
  if (!f.ok()) return f.error();
  if (!body.contains("events")) return ErrorReply(StatusCode::kInvalidArgument, "missing_field", "`events` is required", "events");
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
