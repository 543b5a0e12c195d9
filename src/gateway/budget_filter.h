// budget: holds the request's worst case on the tenant's prepaid balance (BudgetClient) until
// the meter settles it. 429 insufficient_quota with `x-should-retry: false` when the balance
// is short; 503 ledger_unavailable when the ledger cannot be reached.
#pragma once

#include "gateway/filter.h"
#include "gateway/ledger_client.h"

namespace ll::gateway {

class BudgetFilter final : public StreamFilter {
 public:
  // `budget` outlives the filter.
  explicit BudgetFilter(BudgetClient& budget) : budget_(budget) {}
  // Stops until the ledger holds it (sets `held`) or cannot. REQUIRES: `admission` set.
  FilterStatus DecodeBody(RequestState& r) override;

 private:
  BudgetClient& budget_;
};

}  // namespace ll::gateway
