// Per-key rate limits: requests per minute and tokens per minute, as token buckets that refill
// continuously (a full minute's allowance at most). Integer arithmetic on an injected time:
// deterministic, so the same requests at the same times get the same answers.
//
// Tokens are reserved up front (the prompt's estimate plus `max_tokens`) and settled to what
// the upstream reported, so a burst of long requests cannot slip past the limit.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/time.h"

namespace ll::gateway {

class TokenBucket {
 public:
  // `per_minute` > 0. Starts full.
  TokenBucket(int64_t per_minute, Time now) : rate_(per_minute), level_(per_minute * kUnit), at_(now) {}

  int64_t limit() const { return rate_; }
  // Takes `n` if that many are there now; else takes nothing and returns false.
  bool Take(int64_t n, Time now);
  // Gives back `n` (unused reservation), never above the limit; a negative `n` takes more
  // (usage over the reservation) and may leave the bucket in debt.
  void Give(int64_t n, Time now);
  // Whole units available now (0 when in debt).
  int64_t Remaining(Time now);
  // Until `n` units are available (0 if they are); kTimeMax-like huge if n > limit.
  Duration WaitFor(int64_t n, Time now);
  // Until the bucket is full again.
  Duration UntilFull(Time now);

 private:
  static constexpr int64_t kUnit = 60'000;  // a unit refills in 60,000 / rate ms: level is in unit·ms/min
  void Refill(Time now);
  int64_t rate_;   // units per minute
  int64_t level_;  // units × kUnit
  Time at_;
};

// The buckets of every key. Limits of 0 mean no limit.
class RateLimits {
 public:
  struct Decision {
    bool ok = true;
    bool never = false;      // the request alone is over the limit: retrying cannot help
    bool tokens = false;     // which limit refused: tokens (else requests)
    Duration retry_after;
    // For the x-ratelimit-* headers (limit 0: that limit is off).
    int64_t limit_requests = 0, remaining_requests = 0, limit_tokens = 0, remaining_tokens = 0;
    Duration reset_requests, reset_tokens;
  };

  // Takes one request and `tokens` from `key`'s buckets (created with these limits, or resized
  // when the limits changed), or nothing.
  Decision Take(const std::string& key, int64_t rpm, int64_t tpm, int64_t tokens, Time now);
  // Settles a reservation of `reserved` tokens to `used`; `request_back` returns the request
  // too (one refused before it reached a model, such as for budget).
  void Settle(const std::string& key, int64_t reserved, int64_t used, Time now, bool request_back = false);

 private:
  struct Buckets {
    int64_t rpm = 0, tpm = 0;
    TokenBucket requests{1, Time{}}, tokens{1, Time{}};
  };
  std::unordered_map<std::string, Buckets> keys_;
};

// A decision as JSON (a control plane's answer to a standalone gateway) and back; a field
// missing reads as its default.
nlohmann::json DecisionJson(const RateLimits::Decision& d);
RateLimits::Decision DecisionFromJson(const nlohmann::json& j);

// "1s", "250ms", "6m0s" (the x-ratelimit-reset-* format OpenAI uses).
std::string FormatResetDuration(Duration d);

}  // namespace ll::gateway
