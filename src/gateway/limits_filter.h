// limits: requests and tokens per minute per key, kept by the ledger (LimitsClient) so that
// every gateway in front of it shares them. 429 rate_limit_exceeded with `retry-after` (and
// `x-should-retry: false` for a request that alone is over the tokens per minute). Every
// answer after it carries the decision's x-ratelimit-* headers. A request refused after it got
// in, before it reached a model (its balance could not be held), gives its share back.
#pragma once

#include "gateway/filter.h"
#include "gateway/ledger_client.h"

namespace ll::gateway {

class LimitsFilter final : public StreamFilter {
 public:
  // `limits` outlives the filter.
  explicit LimitsFilter(LimitsClient& limits) : limits_(limits) {}
  // Stops until the ledger decides; sets `limits`. REQUIRES: `admission` set (ParseFilter).
  FilterStatus DecodeBody(RequestState& r) override;
  // Gives the share back when the request got in but was never held.
  FilterStatus EncodeComplete(RequestState& r, const Completion& c) override;

 private:
  void RefuseLimits(const RateLimits::Decision& d, int64_t needed);
  LimitsClient& limits_;
  bool taken_ = false;
};

}  // namespace ll::gateway
