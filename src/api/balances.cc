// Prepaid balances and the model API's side of the ledger: credits, holds (the gateway's
// reservations and their settlement with token usage), keys verified for standalone gateways.
#include <cctype>
#include <charconv>
#include <tuple>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

namespace {

constexpr size_t kMaxIngestEvents = 5000;

}  // namespace

json ControlPlane::BalanceJson(const std::string& tenant_id) const {
  const ledger::Balance& b = accounts_.BalanceOf(tenant_id);
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
  Fields f(body);
  f.Only({"tenant_id", "amount"});
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && amount->micros <= 0) f.Fail("invalid_value", "`amount` must be above 0", "amount");
  if (!f.ok()) return f.error();
  if (Status st = tenants_.Check(*tenant); !st.ok()) return ErrorReply(st);
  if (auto b = accounts_.Credit(*tenant, *amount, pending_); !b.ok()) return ErrorReply(b.status());
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

Reply ControlPlane::Reserve(const json& body) {
  Fields f(body);
  f.Only({"id", "tenant_id", "amount", "limits"});
  auto id = f.Str("id", true);
  auto tenant = f.Str("tenant_id", true);
  auto amount = f.Dollars("amount", true);
  if (f.ok() && !ValidClientId(*id, 128)) f.Fail("invalid_value", "`id` must be 1..128 of [A-Za-z0-9_.:/-]", "id");
  const auto limits = f.ok() ? HoldLimits(body, f, *id, *tenant, *amount) : std::nullopt;
  if (!f.ok()) return f.error();
  if (Status st = tenants_.Check(*tenant); !st.ok()) return ErrorReply(st);
  gateway::RateLimits::Decision decision;
  auto held = accounts_.Reserve(*id, *tenant, *amount, limits, Now(), pending_, &decision);
  if (!held.ok()) {
    Reply r = ErrorReply(held.status());
    if (limits) r.body["limits"] = gateway::DecisionJson(decision);
    return r;
  }
  Reply r;
  r.body = HoldJson(held->hold);
  if (held->retry) return r;
  Flush();
  r.status = 201;
  r.body["balance"] = BalanceJson(*tenant);
  if (held->limits) r.body["limits"] = gateway::DecisionJson(*held->limits);
  return r;
}

Reply ControlPlane::VerifyKey(const json& body) {
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
  const store::KeyRecord* k = tenants_.Find(key, clock_->Now());
  if (k == nullptr || k->admin) return std::nullopt;
  return gateway::Accounts::Key{k->tenant_id, k->id, k->rpm, k->tpm};
}

Status ControlPlane::GatewayHold(const gateway::Accounts::Admission& a) {
  if (!tenants_.Exists(a.tenant_id)) return Status::NotFound(fmt::format("no tenant `{}`", a.tenant_id));
  return accounts_.GatewayHold(a);
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
    if (f.ok() && !tenants_.Exists(*tenant)) f.Fail("invalid_value", fmt::format("`{}tenant_id`: no tenant `{}`", prefix, *tenant), prefix + "tenant_id");
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
    for (auto& r : accounts_.TokenRecords(*key, *tenant, *model, *in, *out_tokens, at)) out.push_back(std::move(r));
  }
  return out;
}

Reply ControlPlane::Settle(const std::string& hold_id, const json& body) {
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
  auto settled = accounts_.Settle(hold_id, amount, std::move(usage), pending_);
  if (!settled.ok()) return ErrorReply(settled.status());
  Reply r;
  r.body = {{"object", "hold"}, {"id", hold_id}, {"state", "settled"}, {"charged", FormatMoney(settled->charged)}};
  if (settled->tenant_id.empty()) return r;  // a retry: settled before
  Flush();  // the charge and its usage, in one transaction
  r.body["balance"] = BalanceJson(settled->tenant_id);
  return r;
}

Reply ControlPlane::IngestUsage(const json& body) {
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
