// The ledger's arithmetic: lease usage cut into billable events, invoices, prepaid balances.
// Pure and deterministic (no clock, no I/O); integer micro-dollars only, no floating point.
//
// Rounding, the one rule: what a lease owes for [start, t) is
//     C(t) = floor( Σ over its price segments of gpus × ms × price_micros_per_gpu_hour / 3.6e6 )
// and a usage event for [a, b) is billed C(b) − C(a). However a lease is cut (price changes,
// month boundaries), its events add up to C(end) exactly: no fraction of a micro-dollar is
// dropped or counted twice, and the sum over any set of events equals an independent
// evaluation of C at their ends.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/money.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::ledger {

// A lease's price per GPU-hour from `at` on.
struct PricePoint {
  Time at;
  Money per_gpu_hour;
};

// What the persisted lease transitions say about one lease.
struct LeaseUsage {
  std::string tenant_id;
  std::string lease_id;
  std::string kind;  // "spot" | "reserved"
  int gpus = 0;
  Time start;             // when it started holding GPUs
  Time end = kTimeMax;    // when it stopped (kTimeMax: still live)
  std::vector<PricePoint> prices;  // in time order; the first at or before `start`
};

// One billable piece of usage: one lease, one price, inside one invoice period.
struct UsageEvent {
  std::string key;  // idempotency key: "<lease_id>/<start_ms>-<end_ms>", the same however often it is derived
  std::string tenant_id;
  std::string lease_id;
  std::string kind;
  std::string period;  // invoice period, "YYYY-MM" (UTC)
  Time start, end;
  int gpus = 0;
  int64_t gpu_ms = 0;
  Money price;   // per GPU-hour (tokens: per million tokens)
  Money amount;  // C(end) − C(start) (tokens: TokenCost)
  int64_t tokens = 0;  // token usage (kind "input_tokens" | "output_tokens"; lease_id is the model)
};

// What `tokens` cost at `per_mtok` per million, rounded down to the micro-dollar (per request).
Money TokenCost(int64_t tokens, Money per_mtok);

// Checks `u` (gpus ≥ 1, start < end, prices sorted, the first at or before start, prices ≥ 0).
Status Validate(const LeaseUsage& u);

// The events of `u` that are complete by `until`: [start, min(end, until)) cut at every price
// change and every UTC month boundary, keeping only pieces whose own end is a cut point (a
// price change, a month start, or the lease's end) at or before `until`. So the events of
// a live lease never change as time passes: they are only added to (deterministic keys, and
// ingesting them again is a no-op). In time order.
Result<std::vector<UsageEvent>> CompletedEvents(const LeaseUsage& u, Time until);

// What `u` owes for [start, until) (C(until), the open piece included): for usage shown
// before it is billed.
Result<Money> AccruedUntil(const LeaseUsage& u, Time until);

// `prices` (in time order) with one point per instant: the last of each (a lease started and
// repriced in one step pays the clearing's price from its start).
std::vector<PricePoint> LastAtEachInstant(const std::vector<PricePoint>& prices);

// ---------------------------------------------------------------- invoices

struct LineItem {
  std::string lease_id;  // token usage: the model
  std::string kind;      // "spot" | "reserved" | "input_tokens" | "output_tokens"
  Money price;           // per GPU-hour (tokens: per million)
  int64_t gpu_ms = 0;
  int64_t tokens = 0;
  Money amount;
};

struct Invoice {
  std::string tenant_id;
  std::string period;  // "YYYY-MM"
  std::vector<LineItem> items;  // one per (lease, price), in lease then price order
  Money total;                  // Σ items
  int64_t gpu_ms = 0;
};

// The invoice of `tenant_id` for `period` from its usage events (others are ignored). Events
// of the same lease at the same price are summed into one line item.
Invoice BuildInvoice(const std::string& tenant_id, const std::string& period, const std::vector<UsageEvent>& events);

// CSV: header, one row per line item, then a total row. Money as decimal dollars (exact).
std::string InvoiceCsv(const Invoice& invoice);

// ---------------------------------------------------------------- prepaid balances

// A tenant's prepaid balance for the model API: reserve the worst case before a request,
// settle to what it used after. Never overspent: a reservation fails unless the available
// balance (credited − charged − held) covers it, and a settlement charges at most what was
// held.
class Balance {
 public:
  explicit Balance(Money credited = Money{}) : credited_(credited) {}
  // As stored: what was credited and charged, and the holds still open (id → amount).
  static Result<Balance> Restore(Money credited, Money charged, const std::map<std::string, Money>& open_holds);

  Money available() const { return credited_ - charged_ - held_; }
  Money charged() const { return charged_; }
  Money held() const { return held_; }

  // Adds `m` (> 0); kInvalidArgument, changing nothing, when the balance would pass kMaxBalance.
  Status Credit(Money m);
  // Holds `worst` (≥ 0) under `hold_id`; kResourceExhausted if the available balance is short,
  // kConflict if the id is in use.
  Status Reserve(const std::string& hold_id, Money worst);
  // Charges min(actual, held) and releases the hold; returns what was charged. kNotFound for an
  // unknown (or already settled) hold: settling twice charges once.
  Result<Money> Settle(const std::string& hold_id, Money actual);
  // A hold that lives on (a gateway's slice): charges min(actual, held) of it and keeps the
  // rest held; returns what was charged. kNotFound for an unknown hold.
  Result<Money> Charge(const std::string& hold_id, Money actual);
  // Sets hold `hold_id` to `amount` (≥ 0): less gives the difference back to the available
  // balance, more takes it from there (kResourceExhausted, changing nothing, if it is short).
  Status Resize(const std::string& hold_id, Money amount);
  // What hold `hold_id` holds (zero for an unknown one).
  Money HeldBy(const std::string& hold_id) const;

 private:
  Money credited_, charged_, held_;
  std::map<std::string, Money> holds_;
};

}  // namespace ll::ledger
