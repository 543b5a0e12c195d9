#include "gateway/limits.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::gateway {

void TokenBucket::Refill(Time now) {
  if (now <= at_) return;
  const int64_t ms = (now - at_).ms;
  const int64_t full = Full();
  // level + rate × ms, capped; ms is bounded so that the product cannot overflow.
  level_ = ms >= kUnit ? std::max(level_, full) : std::max(level_, std::min(full, level_ + rate_ * ms));
  at_ = now;
}

bool TokenBucket::Take(int64_t n, Time now) {
  Refill(now);
  if (n * kUnit > level_) return false;
  level_ -= n * kUnit;
  return true;
}

void TokenBucket::Give(int64_t n, Time now) {
  Refill(now);
  level_ = std::min(Full(), level_ + n * kUnit);
}

bool TokenBucket::Lend(int64_t n, Time now) {
  if (n <= 0 || !Take(n, now)) return false;
  lent_ += n;
  return true;
}

void TokenBucket::Repay(int64_t n, Time now) {
  n = std::clamp<int64_t>(n, 0, lent_);
  Refill(now);
  lent_ -= n;
  level_ += n * kUnit;
}

void TokenBucket::Consume(int64_t n) { lent_ -= std::clamp<int64_t>(n, 0, lent_); }

void TokenBucket::RestoreLent(int64_t n) {
  lent_ += std::max<int64_t>(0, n);
  level_ = std::min(level_, Full());
}

int64_t TokenBucket::Remaining(Time now) {
  Refill(now);
  return std::max<int64_t>(0, level_ / kUnit);
}

Duration TokenBucket::WaitFor(int64_t n, Time now) {
  Refill(now);
  const int64_t missing = n * kUnit - level_;
  if (missing <= 0) return Duration{};
  return Duration::Millis((missing + rate_ - 1) / rate_);
}

Duration TokenBucket::UntilFull(Time now) {
  Refill(now);
  return Duration::Millis((rate_ * kUnit - level_ + rate_ - 1) / rate_);
}

RateLimits::Buckets& RateLimits::BucketsOf(const std::string& key, int64_t rpm, int64_t tpm, Time now) {
  Buckets& b = keys_[key];
  // New limits: new buckets, keeping what slices hold of the old ones lent.
  if (b.rpm != rpm) {
    const int64_t lent = b.requests.lent();
    b.rpm = rpm;
    if (rpm > 0) b.requests = TokenBucket(rpm, now);
    b.requests.RestoreLent(lent);
  }
  if (b.tpm != tpm) {
    const int64_t lent = b.tokens.lent();
    b.tpm = tpm;
    if (tpm > 0) b.tokens = TokenBucket(tpm, now);
    b.tokens.RestoreLent(lent);
  }
  return b;
}

RateLimits::Decision RateLimits::Take(const std::string& key, int64_t rpm, int64_t tpm, int64_t tokens, Time now) {
  Buckets& b = BucketsOf(key, rpm, tpm, now);
  Decision d;
  d.limit_requests = rpm;
  d.limit_tokens = tpm;
  if (tpm > 0 && tokens > tpm) {
    d.ok = false;
    d.never = true;
    d.tokens = true;
  } else if (rpm > 0 && b.requests.Remaining(now) < 1) {
    d.ok = false;
    d.retry_after = b.requests.WaitFor(1, now);
  } else if (tpm > 0 && !b.tokens.Take(tokens, now)) {
    d.ok = false;
    d.tokens = true;
    d.retry_after = b.tokens.WaitFor(tokens, now);
  } else if (rpm > 0) {
    b.requests.Take(1, now);
  }
  if (rpm > 0) {
    d.remaining_requests = b.requests.Remaining(now);
    d.reset_requests = b.requests.UntilFull(now);
  }
  if (tpm > 0) {
    d.remaining_tokens = b.tokens.Remaining(now);
    d.reset_tokens = b.tokens.UntilFull(now);
  }
  return d;
}

void RateLimits::Settle(const std::string& key, int64_t reserved, int64_t used, Time now, bool request_back) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  Buckets& b = it->second;
  if (request_back && b.rpm > 0) b.requests.Give(1, now);
  if (b.tpm > 0 && reserved != used) b.tokens.Give(reserved - used, now);
}

int64_t GrantSlice(int64_t want, int64_t min, int64_t available) {
  const int64_t grant = std::min(want, available / 4);
  return grant > 0 && grant >= min ? grant : 0;
}

RateLimits::Units RateLimits::Lend(const std::string& key, int64_t rpm, int64_t tpm, Units want, Units min, Time now) {
  Buckets& b = BucketsOf(key, rpm, tpm, now);
  Units out;
  if (rpm > 0) {
    out.requests = GrantSlice(want.requests, min.requests, b.requests.Remaining(now));
    if (!b.requests.Lend(out.requests, now)) out.requests = 0;
  }
  if (tpm > 0) {
    out.tokens = GrantSlice(want.tokens, min.tokens, b.tokens.Remaining(now));
    if (!b.tokens.Lend(out.tokens, now)) out.tokens = 0;
  }
  return out;
}

void RateLimits::Report(const std::string& key, Units used, Units repaid, int64_t tokens_back, int64_t requests_back,
                        Time now) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  Buckets& b = it->second;
  b.requests.Consume(used.requests);
  b.tokens.Consume(used.tokens);
  b.requests.Repay(repaid.requests, now);
  b.tokens.Repay(repaid.tokens, now);
  if (b.rpm > 0 && requests_back > 0) b.requests.Give(requests_back, now);
  if (b.tpm > 0 && tokens_back != 0) b.tokens.Give(tokens_back, now);  // < 0: used over the reservation
}

void RateLimits::RestoreLent(const std::string& key, Units lent) {
  Buckets& b = keys_[key];
  b.requests.RestoreLent(lent.requests);
  b.tokens.RestoreLent(lent.tokens);
}

nlohmann::json DecisionJson(const RateLimits::Decision& d) {
  return {{"ok", d.ok},
          {"never", d.never},
          {"tokens", d.tokens},
          {"retry_after_ms", d.retry_after.ms},
          {"limit_requests", d.limit_requests},
          {"remaining_requests", d.remaining_requests},
          {"reset_requests_ms", d.reset_requests.ms},
          {"limit_tokens", d.limit_tokens},
          {"remaining_tokens", d.remaining_tokens},
          {"reset_tokens_ms", d.reset_tokens.ms}};
}

RateLimits::Decision DecisionFromJson(const nlohmann::json& j) {
  RateLimits::Decision d;
  if (!j.is_object()) return d;
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : int64_t{0}; };
  auto flag = [&](const char* k, bool def) { return j.contains(k) && j[k].is_boolean() ? j[k].get<bool>() : def; };
  d.ok = flag("ok", true);
  d.never = flag("never", false);
  d.tokens = flag("tokens", false);
  d.retry_after = Duration::Millis(num("retry_after_ms"));
  d.limit_requests = num("limit_requests");
  d.remaining_requests = num("remaining_requests");
  d.reset_requests = Duration::Millis(num("reset_requests_ms"));
  d.limit_tokens = num("limit_tokens");
  d.remaining_tokens = num("remaining_tokens");
  d.reset_tokens = Duration::Millis(num("reset_tokens_ms"));
  return d;
}

std::string FormatResetDuration(Duration d) {
  int64_t ms = std::max<int64_t>(0, d.ms);
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return ms % 1000 == 0 ? fmt::format("{}s", ms / 1000) : fmt::format("{:.3g}s", ms / 1000.0);
  return fmt::format("{}m{}s", ms / 60'000, (ms % 60'000 + 999) / 1000);
}

}  // namespace ll::gateway
