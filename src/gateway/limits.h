// Per-key rate limits: requests per minute and tokens per minute, as token buckets that refill
// continuously (a full minute's allowance at most). Integer arithmetic on an injected time:
// deterministic, so the same requests at the same times get the same answers.
//
// Tokens are reserved up front (the prompt's estimate plus `max_tokens`) and settled to what
// the upstream reported, so a burst of long requests cannot slip past the limit.
#pragma once

#include <algorithm>
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
  // Slices (docs/scale-out.md): units lent to a gateway count as taken until it repays them
  // (unused) or consumes them (used), and the bucket refills only up to its limit less what is
  // lent, so the bucket and its slices together admit what the bucket alone would.
  // Lend takes `n` if that many are there now (else nothing: false).
  bool Lend(int64_t n, Time now);
  void Repay(int64_t n, Time now);  // at most what is lent
  void Consume(int64_t n);          // at most what is lent
  void RestoreLent(int64_t n);      // a slice kept in the store (the bucket starts full less it)
  int64_t lent() const { return lent_; }

 private:
  static constexpr int64_t kUnit = 60'000;  // a unit refills in 60,000 / rate ms: level is in unit·ms/min
  void Refill(Time now);
  int64_t rate_;   // units per minute
  int64_t level_;  // units × kUnit
  Time at_;
  int64_t lent_ = 0;  // units lent to slices
  int64_t Full() const { return std::max<int64_t>(0, rate_ - lent_) * kUnit; }
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

  // ---- slices (docs/scale-out.md) ----
  struct Units {
    int64_t requests = 0, tokens = 0;
  };
  // Lends `key`'s buckets' units to a gateway's slice: of each limit that is on, what `want`
  // asks, at most a quarter of what is there now (GrantSlice), none below `min`.
  Units Lend(const std::string& key, int64_t rpm, int64_t tpm, Units want, Units min, Time now);
  // A slice's report: `used` units were admitted from it (gone), `repaid` come back unused,
  // and `back` tokens were reserved by requests that used fewer (as Settle gives them back).
  void Report(const std::string& key, Units used, Units repaid, int64_t tokens_back, int64_t requests_back, Time now);
  // A slice restored from the store: its units stay lent.
  // (The buckets take their limits from the next call that names them.)
  void RestoreLent(const std::string& key, Units lent);

 private:
  struct Buckets {
    int64_t rpm = 0, tpm = 0;
    TokenBucket requests{1, Time{}}, tokens{1, Time{}};
  };
  Buckets& BucketsOf(const std::string& key, int64_t rpm, int64_t tpm, Time now);
  std::unordered_map<std::string, Buckets> keys_;
};

// What the control plane grants of `want` when `available` is there: at most a quarter of it
// (so that slices shrink geometrically as a balance or a bucket runs out, and other gateways
// find some), and nothing when that is below `min` (one request's worth: the gateway then asks
// per request, exactly). Never negative.
int64_t GrantSlice(int64_t want, int64_t min, int64_t available);

// A decision as JSON (a control plane's answer to a standalone gateway) and back; a field
// missing reads as its default.
nlohmann::json DecisionJson(const RateLimits::Decision& d);
RateLimits::Decision DecisionFromJson(const nlohmann::json& j);

// "1s", "250ms", "6m0s" (the x-ratelimit-reset-* format OpenAI uses).
std::string FormatResetDuration(Duration d);

}  // namespace ll::gateway
