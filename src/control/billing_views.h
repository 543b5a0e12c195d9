// What billing answers (control/billing_ops.cc): usage, invoices and the owner's report.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/fleet_stats.h"
#include "core/money.h"
#include "core/time.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace ll::control {

// A page of billed usage of one tenant ("": every tenant) in a period ("YYYY-MM").
struct UsagePage {
  std::string tenant_id;  // "": every tenant
  std::string period;
  std::vector<store::UsageRecord> records;
  bool has_more = false;
  std::optional<Money> total;  // the period's invoice total, for one tenant
  Money in_progress;           // what live leases have accrued since their last billed piece
  Time now;
};

// A tenant's invoice periods, newest first, with their totals (micro-dollars).
struct InvoiceList {
  std::string tenant_id;
  std::vector<std::pair<std::string, int64_t>> periods;
  std::string current;  // this month: its invoice is open, earlier ones closed
};

struct InvoiceView {
  ledger::Invoice invoice;
  bool closed = false;
};

// Billed revenue by class from the store's totals by kind (micro-dollars, exact).
struct Billed {
  Money spot, reserved, tokens;
  int64_t input_tokens = 0, output_tokens = 0;
  Money total() const { return spot + reserved + tokens; }
};

// The owner's report: billed revenue of a period and the fleet's figures since start.
struct OwnerReport {
  std::string period;
  Billed billed;
  FleetStats::Totals since_start;
  // Serving's cost per million tokens: the GPU-hours inference held, at the floor (power +
  // wear) per GPU-hour, over the tokens billed; none below a million tokens (over a few tokens
  // the quotient says nothing: 5,976,042 USD after 22 tokens was seen).
  std::optional<double> cost_per_mtok;
  Time now;
};

}  // namespace ll::control
