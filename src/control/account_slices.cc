// Standalone gateways' slices (docs/scale-out.md): a durable hold on part of a tenant's
// balance with part of a key's rate-limit buckets lent to it, leased to one gateway, which
// admits requests against it in memory and reports their usage here in batches.
//
// Exactness: a slice's money is a hold, so slices and requests' holds together never pass the
// balance; its units are lent from the key's buckets, which then refill only up to their limit
// less what is lent (TokenBucket::Lend), so slices and per-request admissions together never
// pass one bucket. Each grant is at most a quarter of what is there (GrantSlice).
#include <algorithm>

#include <fmt/format.h>

#include "control/accounts.h"

namespace ll::control {

namespace {

Status SliceConflict(std::string_view reason, std::string message, std::string_view field) {
  return Status(StatusCode::kConflict, std::string(reason), std::move(message), std::string(field));
}

// Cuts `records` (last first) so that they bill `charged` in all.
void CutTo(std::vector<store::UsageRecord>& records, int64_t cost, Money charged) {
  for (int64_t over = cost - charged.micros, i = static_cast<int64_t>(records.size()) - 1; over > 0 && i >= 0; --i) {
    const int64_t cut = std::min(over, records[i].amount_micros);
    records[i].amount_micros -= cut;
    over -= cut;
  }
}

int64_t CostOf(const std::vector<store::UsageRecord>& records) {
  int64_t cost = 0;
  for (const auto& r : records) cost += r.amount_micros;
  return cost;
}

}  // namespace

Money Accounts::ChargeSlice(ledger::Balance& b, const std::string& id, std::vector<store::UsageRecord>& records) {
  const int64_t cost = CostOf(records);
  auto charged = b.Charge(id, Money::Micros(cost));
  LL_CHECK(charged.ok());
  CutTo(records, cost, *charged);
  return *charged;
}

Result<store::HoldRecord> Accounts::OpenSlice(const std::string& id, const SliceReport& r, Time now) {
  if (r.seq != 1) {
    return Status(StatusCode::kNotFound, "slice_not_found", fmt::format("no slice `{}`", id), "id");
  }
  ledger::Balance& b = balances_[r.tenant_id];
  LL_CHECK(b.Reserve(id, Money{}).ok());
  store::HoldRecord h{.id = id, .tenant_id = r.tenant_id, .amount_micros = 0, .charged_micros = -1, .created = now,
                      .key_id = r.key_id, .requests = 0, .tokens = 0, .spent_micros = 0, .seq = 0, .expires = now,
                      .expired = false};
  return h;
}

Result<store::HoldRecord> Accounts::ReportSlice(const std::string& id, SliceReport r, Duration ttl,
                                                store::Batch& batch) {
  const Time now = wall_->Now();
  auto it = open_holds_.find(id);
  if (it == open_holds_.end()) {
    std::optional<store::HoldRecord> found = FindHold(id, batch);
    if (found && !found->slice()) return SliceConflict("hold_exists", fmt::format("`{}` is a request's hold", id), "id");
    if (found) return LateReport(*found, std::move(r), batch);
    LL_ASSIGN_OR_RETURN(store::HoldRecord h, OpenSlice(id, r, now));
    it = open_holds_.emplace(id, std::move(h)).first;
  }
  store::HoldRecord& h = it->second;
  if (h.tenant_id != r.tenant_id || h.key_id != r.key_id) {
    return SliceConflict("slice_exists", fmt::format("slice `{}` is another key's", id), "id");
  }
  if (r.seq <= h.seq) return h;  // applied before: its answer again
  if (r.seq != h.seq + 1) {
    return SliceConflict("slice_seq", fmt::format("slice `{}` is at report {}, not {}", id, h.seq, r.seq - 1), "seq");
  }
  ledger::Balance& b = balances_[h.tenant_id];
  const Money charged = ChargeSlice(b, id, r.usage);
  h.spent_micros += charged.micros;
  // Units: what it admitted is gone, what it gives back returns (never more than it holds).
  const gateway::RateLimits::Units used{.requests = std::clamp<int64_t>(r.used.requests, 0, h.requests),
                               .tokens = std::clamp<int64_t>(r.used.tokens, 0, h.tokens)};
  h.requests -= used.requests;
  h.tokens -= used.tokens;
  const gateway::RateLimits::Units repaid{.requests = r.close ? h.requests : std::clamp<int64_t>(r.give_back.requests, 0, h.requests),
                                 .tokens = r.close ? h.tokens : std::clamp<int64_t>(r.give_back.tokens, 0, h.tokens)};
  h.requests -= repaid.requests;
  h.tokens -= repaid.tokens;
  limits_.Report(h.key_id, used, repaid, r.tokens_back, r.requests_back, now);
  h.seq = r.seq;
  for (auto& u : r.usage) batch.usage.push_back(std::move(u));
  if (r.close) {
    CloseSlice(h, /*expired=*/false, batch);
    store::HoldRecord closed = h;
    open_holds_.erase(it);
    return closed;
  }
  const Money held = b.HeldBy(id);
  LL_CHECK(b.Resize(id, held - std::clamp(Money::Micros(r.give_back.micros), Money{}, held)).ok());
  const int64_t grant = gateway::GrantSlice(r.want.micros, r.min.micros, b.available().micros);
  LL_CHECK(b.Resize(id, b.HeldBy(id) + Money::Micros(grant)).ok());
  const gateway::RateLimits::Units lent =
      limits_.Lend(h.key_id, r.rpm, r.tpm, {.requests = r.want.requests, .tokens = r.want.tokens},
                   {.requests = r.min.requests, .tokens = r.min.tokens}, now);
  h.requests += lent.requests;
  h.tokens += lent.tokens;
  h.amount_micros = b.HeldBy(id).micros;
  slice_expiry_.erase({h.expires.ms, id});
  h.expires = now + ttl;
  slice_expiry_.emplace(h.expires.ms, id);
  batch.holds.push_back(h);
  batch.balances.push_back(Row(h.tenant_id, b));
  return h;
}

// A slice closed (expired, or returned) still gets its gateway's last usage: requests admitted
// before it closed whose answers ended after. It is charged to what the balance has available
// (never beyond: the records are cut to it), once, by the report's number.
store::HoldRecord Accounts::LateReport(store::HoldRecord h, SliceReport r, store::Batch& batch) {
  if (r.seq != h.seq + 1) return h;  // a repeat (or out of turn): what it is
  ledger::Balance& b = balances_[h.tenant_id];
  const int64_t cost = CostOf(r.usage);
  const std::string late = h.id + "/late";
  LL_CHECK(b.Reserve(late, std::min(Money::Micros(cost), b.available())).ok());
  auto charged = b.Settle(late, Money::Micros(cost));
  LL_CHECK(charged.ok());
  CutTo(r.usage, cost, *charged);
  h.spent_micros += charged->micros;
  h.amount_micros = h.spent_micros;
  h.charged_micros = h.spent_micros;
  h.seq = r.seq;
  for (auto& u : r.usage) batch.usage.push_back(std::move(u));
  batch.holds.push_back(h);
  batch.balances.push_back(Row(h.tenant_id, b));
  return h;
}

void Accounts::CloseSlice(store::HoldRecord& h, bool expired, store::Batch& batch) {
  ledger::Balance& b = balances_[h.tenant_id];
  LL_CHECK(b.Settle(h.id, Money{}).ok());  // the rest returns, nothing more charged
  if (expired) {
    // Its gateway may have admitted these before it died: they count as used.
    limits_.Report(h.key_id, {.requests = h.requests, .tokens = h.tokens}, {}, 0, 0, wall_->Now());
  }
  slice_expiry_.erase({h.expires.ms, h.id});
  h.requests = h.tokens = 0;
  h.amount_micros = h.spent_micros;
  h.charged_micros = h.spent_micros;
  h.expired = expired;
  batch.holds.push_back(h);
  batch.balances.push_back(Row(h.tenant_id, b));
}

void Accounts::ExpireSlices(store::Batch& batch) {
  const int64_t now = wall_->Now().ms;
  while (!slice_expiry_.empty() && slice_expiry_.begin()->first <= now) {
    auto it = open_holds_.find(slice_expiry_.begin()->second);
    LL_CHECK(it != open_holds_.end());
    CloseSlice(it->second, /*expired=*/true, batch);
    open_holds_.erase(it);
  }
}

std::vector<store::HoldRecord> Accounts::OpenSlices(const std::string& tenant) const {
  std::vector<store::HoldRecord> out;
  for (const auto& [id, h] : open_holds_) {
    if (h.slice() && (tenant.empty() || h.tenant_id == tenant)) out.push_back(h);
  }
  return out;
}

}  // namespace ll::control
