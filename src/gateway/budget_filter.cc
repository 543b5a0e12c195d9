#include "gateway/budget_filter.h"

#include <fmt/format.h>

namespace ll::gateway {

FilterStatus BudgetFilter::DecodeBody(RequestState& r) {
  budget_.Hold(r.admission, [this, &r, keep = callbacks().KeepAlive()](Status st) {
    if (st.ok()) {
      r.held = true;
      callbacks().ContinueDecoding();
    } else if (st.code() == StatusCode::kResourceExhausted) {
      callbacks().SendLocalReply(
          {.status = 429,
           .code = "insufficient_quota",
           .message = fmt::format("you exceeded your current quota: the prepaid balance does not cover this request's "
                                  "worst case (${}); {}",
                                  FormatMoney(r.admission.amount), st.message()),
           .type = "insufficient_quota",
           .headers = OneHeader("x-should-retry", "false")});
    } else {
      callbacks().SendLocalReply(
          {.status = 503,
           .code = "ledger_unavailable",
           .message = fmt::format("the ledger cannot hold the request's budget: {}", st.message()),
           .type = "server_error"});
    }
  });
  return FilterStatus::kStopIteration;
}

}  // namespace ll::gateway
