#include "gateway/meter_filter.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::gateway {

FilterStatus MeterFilter::EncodeComplete(RequestState& r, const Completion& c) {
  if (!r.held) return FilterStatus::kContinue;
  const bool used = c.input_tokens > 0 || c.output_tokens > 0;
  const bool wait = used && c.last_bytes_wait;
  stats_.input_tokens += c.input_tokens;
  stats_.output_tokens += c.output_tokens;
  std::function<void(Status)> durable;
  if (wait) {
    durable = [this, keep = callbacks().KeepAlive()](Status st) { callbacks().ContinueEncoding(std::move(st)); };
  }
  meter_.Settle(r.id,
                {.key = fmt::format("{}:{}", r.id, std::max(r.attempt, 1)),
                 .tenant_id = r.key.tenant_id,
                 .model = r.call.model,
                 .input_tokens = c.input_tokens,
                 .output_tokens = c.output_tokens},
                std::move(durable));
  return wait ? FilterStatus::kStopIteration : FilterStatus::kContinue;
}

}  // namespace ll::gateway
