// Accounts: the tenants' prepaid balances (the model API's budgets), the holds on them and the
// rate-limit reservations of the keys, and the token usage records they settle to.
//
// A component of the control plane (docs/architecture.md): it knows nothing of HTTP or JSON
// and nothing of tenants beyond their ids (the caller checks that a tenant exists). Every
// change it makes goes into the caller's store::Batch, which the control plane's unit of work
// commits once; errors are domain errors (Status with a reason and the field it names).
//
// Two kinds of hold share one balance: durable ones (the hold API that standalone gateways
// use: stored, answered again on a retry) and the in-process gateway's, in memory only (a
// crash drops the hold and the request it covered alike).
//
// A third kind: standalone gateways' slices (docs/scale-out.md, account_slices.cc), durable
// holds that live on, each with part of a key's rate-limit buckets lent to it and a lease that
// its gateway renews with each report; past the lease the rest returns.
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/money.h"
#include "core/status.h"
#include "gateway/ledger_client.h"
#include "gateway/limits.h"
#include "gateway/slice.h"
#include "ledger/ledger.h"
#include "market/price_book.h"
#include "store/store.h"

namespace ll::control {

class Accounts {
 public:
  // `prices` (per-token prices), `wall` (the rate limits' clock) and `store` (read for holds
  // settled before) must outlive the object.
  Accounts(const market::PriceBook* prices, const Clock* wall, store::Store* store)
      : prices_(prices), wall_(wall), store_(store) {}

  // At start: the stored balances and their open holds.
  Status Restore(const std::vector<store::BalanceRecord>& balances, const std::vector<store::HoldRecord>& holds);

  // The tenant's balance (all zero before its first credit).
  const ledger::Balance& BalanceOf(const std::string& tenant) const;
  Result<ledger::Balance> Credit(const std::string& tenant, Money amount, store::Batch& batch);

  // ---- durable holds ----
  struct Reservation {
    store::HoldRecord hold;
    bool retry = false;  // the same reservation was made before: this is its answer again
    std::optional<gateway::RateLimits::Decision> limits;
  };
  // Holds `amount` of the tenant's balance under `id` and, with `limits`, takes the request's
  // share of the key's rate limits. A retry gets the same hold; another one under its id is a
  // conflict (`hold_exists`). `limits_decision` gets the limits' answer even on a refusal
  // (kRateLimited, or kInsufficientFunds with the limits given back).
  Result<Reservation> Reserve(const std::string& id, const std::string& tenant, Money amount,
                              const std::optional<gateway::Accounts::Admission>& limits, Time now,
                              store::Batch& batch, gateway::RateLimits::Decision* limits_decision);
  struct Settlement {
    std::string tenant_id;  // empty for a retry answered from the store
    Money charged;
  };
  // Settles hold `id` to `amount` or, without it, to the cost of `usage` (never more than the
  // hold: the records are cut to what was charged); the usage goes into the batch with it. A
  // retry after the settlement gets its charge again; an unknown hold is `hold_not_found`.
  Result<Settlement> Settle(const std::string& id, std::optional<Money> amount, std::vector<store::UsageRecord> usage,
                            store::Batch& batch);

  // ---- standalone gateways' slices (account_slices.cc) ----
  // A gateway's report on its slice: its usage since the last (charged to the slice), the
  // rate-limit units it admitted or gives back, and what it asks for the next while.
  struct SliceReport {
    int64_t seq = 0;  // 1 opens the slice; each next one is the last + 1; a repeat is answered again
    std::string tenant_id, key_id;
    int64_t rpm = 0, tpm = 0;
    std::vector<store::UsageRecord> usage;
    gateway::SliceUnits used, give_back, want, min;
    int64_t tokens_back = 0, requests_back = 0;
    bool close = false;
  };
  // Applies the report once (by `seq`) and answers what the slice holds now, its lease renewed
  // to now + `ttl`: usage charged (never more than it holds; the records cut to the charge),
  // units given back, and of what it asks a grant (GrantSlice: a quarter of what is available
  // at most, none below `min`). A report on a slice that expired or closed charges its usage
  // to the balance's available rest (never beyond) and grants nothing.
  Result<store::HoldRecord> ReportSlice(const std::string& id, SliceReport r, Duration ttl, store::Batch& batch);
  // Closes every slice whose lease ran out (wall clock): its money returns to the balance; its
  // rate-limit units count as used (its gateway may have admitted them before it died).
  void ExpireSlices(store::Batch& batch);
  // The tenant's open slices (every tenant's for ""), by id.
  std::vector<store::HoldRecord> OpenSlices(const std::string& tenant) const;

  // ---- the in-process gateway ----
  // Reserves the request and its tokens on the key's rate limits (SettleLimits returns them:
  // all of the tokens but `used`, and the request too with `request_back`).
  gateway::RateLimits::Decision TakeLimits(const gateway::Accounts::Admission& a);
  void SettleLimits(const std::string& hold_id, int64_t used, bool request_back);
  // Holds `a.amount` of the tenant's balance in memory only.
  Status GatewayHold(const gateway::Accounts::Admission& a);
  // Charges the usage's cost (never more than the hold) into the batch, with its records.
  void GatewaySettle(const std::string& hold_id, const gateway::Accounts::Usage& usage, Time now, store::Batch& batch);

  // The two usage records (input and output tokens) of one request or event, priced.
  std::vector<store::UsageRecord> TokenRecords(const std::string& key, const std::string& tenant_id,
                                               const std::string& model, int64_t input, int64_t output, Time at) const;

 private:
  // The balance's row as stored.
  static store::BalanceRecord Row(const std::string& tenant, const ledger::Balance& b);
  std::optional<store::HoldRecord> FindHold(const std::string& id, const store::Batch& batch) const;
  // The slice parts of ReportSlice.
  Result<store::HoldRecord> OpenSlice(const std::string& id, const SliceReport& r, Time now);
  store::HoldRecord LateReport(store::HoldRecord h, SliceReport r, store::Batch& batch);
  void CloseSlice(store::HoldRecord& h, bool expired, store::Batch& batch);
  // Charges `records` to hold `id` (a slice), cut to what it holds; returns the charge.
  Money ChargeSlice(ledger::Balance& b, const std::string& id, std::vector<store::UsageRecord>& records);

  const market::PriceBook* prices_;
  const Clock* wall_;
  store::Store* store_;
  std::map<std::string, ledger::Balance> balances_;             // by tenant
  std::map<std::string, store::HoldRecord> open_holds_;         // by hold id
  std::unordered_map<std::string, std::string> gateway_holds_;  // the gateway's: hold id → tenant
  // The model API's rate limits, shared by every gateway in front of this control plane, on the
  // wall clock. In memory: a new leader or a restart starts them full. `limit_holds_`: each
  // admitted request's token reservation.
  gateway::RateLimits limits_;
  struct LimitHold {
    std::string key_id;
    int64_t reserved = 0;
  };
  std::unordered_map<std::string, LimitHold> limit_holds_;
  std::set<std::pair<int64_t, std::string>> slice_expiry_;  // (expires ms, id) of open slices
};

}  // namespace ll::control
