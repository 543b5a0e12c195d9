#include "control/accounts.h"

#include <tuple>

#include <fmt/format.h>

namespace ll::control {

Status Accounts::Restore(const std::vector<store::BalanceRecord>& balances, const std::vector<store::HoldRecord>& holds) {
  std::map<std::string, std::map<std::string, Money>> holds_of;
  for (const auto& h : holds) {
    holds_of[h.tenant_id][h.id] = Money::Micros(h.amount_micros);
    open_holds_[h.id] = h;
    if (h.slice()) {  // its units stay lent, its lease runs on: its gateway renews it or it expires
      slice_expiry_.emplace(h.expires.ms, h.id);
      limits_.RestoreLent(h.key_id, {.requests = h.requests, .tokens = h.tokens});
    }
  }
  for (const auto& b : balances) {
    auto bal = ledger::Balance::Restore(Money::Micros(b.credited_micros), Money::Micros(b.charged_micros),
                                        holds_of[b.tenant_id]);
    if (!bal.ok()) return Status::Invalid(fmt::format("store: tenant `{}`: {}", b.tenant_id, bal.status().message()));
    balances_.emplace(b.tenant_id, std::move(*bal));
  }
  return Status::Ok();
}

const ledger::Balance& Accounts::BalanceOf(const std::string& tenant) const {
  static const ledger::Balance kNone;
  auto it = balances_.find(tenant);
  return it != balances_.end() ? it->second : kNone;
}

store::BalanceRecord Accounts::Row(const std::string& tenant, const ledger::Balance& b) {
  return {tenant, (b.available() + b.charged() + b.held()).micros, b.charged().micros};
}

Result<ledger::Balance> Accounts::Credit(const std::string& tenant, Money amount, store::Batch& batch) {
  ledger::Balance& b = balances_[tenant];
  if (Status st = b.Credit(amount); !st.ok()) {
    return Status(StatusCode::kInvalidArgument, "invalid_value", "`amount`: " + st.message(), "amount");
  }
  batch.balances.push_back(Row(tenant, b));
  return b;
}

// Open, settled in the batch not yet committed, or stored.
std::optional<store::HoldRecord> Accounts::FindHold(const std::string& id, const store::Batch& batch) const {
  if (auto it = open_holds_.find(id); it != open_holds_.end()) return it->second;
  for (auto it = batch.holds.rbegin(); it != batch.holds.rend(); ++it) {
    if (it->id == id) return *it;
  }
  auto stored = store_->Hold(id);
  LL_CHECK(stored.ok());
  return *stored;
}

Result<Accounts::Reservation> Accounts::Reserve(const std::string& id, const std::string& tenant, Money amount,
                                                const std::optional<gateway::Accounts::Admission>& limits, Time now,
                                                store::Batch& batch, gateway::RateLimits::Decision* limits_decision) {
  if (auto found = FindHold(id, batch)) {
    if (found->tenant_id != tenant || found->amount_micros != amount.micros) {
      return Status(StatusCode::kConflict, "hold_exists", fmt::format("hold `{}` exists with other terms", id), "id");
    }
    return Reservation{.hold = *found, .retry = true, .limits = std::nullopt};
  }
  std::optional<gateway::RateLimits::Decision> decision;
  if (limits) {
    decision = TakeLimits(*limits);
    *limits_decision = *decision;
    if (!decision->ok) {
      return Status(StatusCode::kRateLimited, "rate_limit_exceeded",
                    fmt::format("the key's {} per minute are used up", decision->tokens ? "tokens" : "requests"),
                    decision->tokens ? "tokens" : "requests");
    }
  }
  ledger::Balance& b = balances_[tenant];
  if (Status st = b.Reserve(id, amount); !st.ok()) {
    SettleLimits(id, 0, /*request_back=*/true);
    return Status(StatusCode::kInsufficientFunds, "insufficient_quota", st.message(), "amount");
  }
  store::HoldRecord h{.id = id, .tenant_id = tenant, .amount_micros = amount.micros, .charged_micros = -1,
                      .created = now, .key_id = {}, .requests = 0, .tokens = 0, .spent_micros = 0, .seq = 0,
                      .expires = Time{}, .expired = false};
  open_holds_[id] = h;
  batch.holds.push_back(h);
  return Reservation{.hold = h, .retry = false, .limits = decision};
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

Result<Accounts::Settlement> Accounts::Settle(const std::string& id, std::optional<Money> amount,
                                              std::vector<store::UsageRecord> usage, store::Batch& batch) {
  auto it = open_holds_.find(id);
  if (it == open_holds_.end()) {
    // A retry after the settlement went through gets its answer again.
    auto found = FindHold(id, batch);
    if (!found || found->charged_micros < 0) {
      return Status(StatusCode::kNotFound, "hold_not_found", fmt::format("no hold `{}`", id), "id");
    }
    return Settlement{.tenant_id = {}, .charged = Money::Micros(found->charged_micros)};
  }
  store::HoldRecord h = it->second;
  if (h.slice()) {
    return Status(StatusCode::kConflict, "hold_is_slice", fmt::format("`{}` is a gateway's slice: it reports, it is not settled", id), "id");
  }
  int64_t used_tokens = 0;
  for (const auto& u : usage) {
    if (u.tenant_id != h.tenant_id) {
      return Status(StatusCode::kInvalidArgument, "invalid_value",
                    fmt::format("usage of `{}` cannot settle a hold of `{}`", u.tenant_id, h.tenant_id), "usage");
    }
    used_tokens += u.quantity;
  }
  SettleLimits(id, used_tokens, false);
  ledger::Balance& b = balances_[h.tenant_id];
  Result<Money> charged = amount ? b.Settle(id, *amount) : ChargeUsage(b, id, usage);
  LL_CHECK(charged.ok());
  h.charged_micros = charged->micros;
  open_holds_.erase(it);
  batch.holds.push_back(h);
  batch.balances.push_back(Row(h.tenant_id, b));
  for (auto& u : usage) batch.usage.push_back(std::move(u));
  return Settlement{.tenant_id = h.tenant_id, .charged = *charged};
}

gateway::RateLimits::Decision Accounts::TakeLimits(const gateway::Accounts::Admission& a) {
  gateway::RateLimits::Decision d = limits_.Take(a.key_id, a.rpm, a.tpm, a.tokens, wall_->Now());
  // Nothing to give back later when both limits are off (no entry on the hot path for it).
  if (d.ok && (a.rpm > 0 || a.tpm > 0)) limit_holds_[a.hold_id] = {a.key_id, a.tokens};
  return d;
}

void Accounts::SettleLimits(const std::string& hold_id, int64_t used, bool request_back) {
  auto it = limit_holds_.find(hold_id);
  if (it == limit_holds_.end()) return;  // taken by a leader before this one, or never
  limits_.Settle(it->second.key_id, it->second.reserved, used, wall_->Now(), request_back);
  limit_holds_.erase(it);
}

Status Accounts::GatewayHold(const gateway::Accounts::Admission& a) {
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

void Accounts::GatewaySettle(const std::string& hold_id, const gateway::Accounts::Usage& usage, Time now,
                             store::Batch& batch) {
  auto it = gateway_holds_.find(hold_id);
  if (it == gateway_holds_.end()) return;
  SettleLimits(hold_id, usage.input_tokens + usage.output_tokens, false);
  ledger::Balance& b = balances_[it->second];
  gateway_holds_.erase(it);
  std::vector<store::UsageRecord> records =
      TokenRecords(usage.key, usage.tenant_id, usage.model, usage.input_tokens, usage.output_tokens, now);
  ChargeUsage(b, hold_id, records);
  if (usage.input_tokens == 0 && usage.output_tokens == 0) return;  // nothing used: only the hold goes
  batch.balances.push_back(Row(usage.tenant_id, b));
  for (auto& r : records) batch.usage.push_back(std::move(r));
}

std::vector<store::UsageRecord> Accounts::TokenRecords(const std::string& key, const std::string& tenant_id,
                                                       const std::string& model, int64_t input, int64_t output,
                                                       Time at) const {
  std::vector<store::UsageRecord> out;
  const market::PriceBook::TokenPrices tp = prices_->TokenPricesFor(model);
  for (auto [suffix, unit, tokens, price] : {std::tuple{"in", "input_tokens", input, tp.input_per_mtok},
                                             std::tuple{"out", "output_tokens", output, tp.output_per_mtok}}) {
    out.push_back({.key = fmt::format("{}/{}", key, suffix),
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

}  // namespace ll::control
