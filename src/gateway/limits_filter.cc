#include "gateway/limits_filter.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::gateway {

FilterStatus LimitsFilter::DecodeBody(RequestState& r) {
  limits_.TakeLimits(r.admission, [this, &r, keep = callbacks().KeepAlive()](RateLimits::Decision d) {
    r.limits = d;
    if (!d.ok) {
      RefuseLimits(d, r.admission.tokens);
      return;
    }
    taken_ = true;
    callbacks().ContinueDecoding();
  });
  return FilterStatus::kStopIteration;
}

FilterStatus LimitsFilter::EncodeComplete(RequestState& r, const Completion&) {
  if (taken_ && !r.held) limits_.GiveBackLimits(r.admission.hold_id);  // refused before it reached a model
  taken_ = false;
  return FilterStatus::kContinue;
}

void LimitsFilter::RefuseLimits(const RateLimits::Decision& d, int64_t needed) {
  if (d.never) {
    callbacks().SendLocalReply(
        {.status = 429,
         .code = "rate_limit_exceeded",
         .message = fmt::format("this request needs {} tokens, over the key's limit of {} tokens per minute: lower "
                                "`max_tokens` or the prompt",
                                needed, d.limit_tokens),
         .type = "tokens",
         .headers = OneHeader("x-should-retry", "false")});
    return;
  }
  Headers extra;
  extra.reserve(2);  // (GCC 12 warns falsely on growing an empty vector here: -Warray-bounds)
  const int64_t ms = std::max<int64_t>(1, d.retry_after.ms);
  extra.emplace_back("retry-after", std::to_string((ms + 999) / 1000));
  extra.emplace_back("retry-after-ms", std::to_string(ms));
  const std::string per_minute = d.tokens ? fmt::format("{} tokens", d.limit_tokens)
                                          : fmt::format("{} requests", d.limit_requests);
  callbacks().SendLocalReply({.status = 429,
                              .code = "rate_limit_exceeded",
                              .message = fmt::format("rate limit reached: {} per minute; retry in {}", per_minute,
                                                     FormatResetDuration(d.retry_after)),
                              .type = d.tokens ? "tokens" : "requests",
                              .headers = std::move(extra)});
}

}  // namespace ll::gateway
