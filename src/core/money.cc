#include "core/money.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace ll {

Result<Money> ParseMoney(std::string_view s) {
  const std::string orig(s);
  bool neg = false;
  if (!s.empty() && s[0] == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  if (s.empty()) return Status::Invalid("empty money amount");
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (whole.empty() && frac.empty()) return Status::Invalid("bad money amount `" + orig + "`");
  if (frac.size() > 6) return Status::Invalid("money `" + orig + "` has more than 6 decimals");
  int64_t w = 0, f = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return Status::Invalid("bad money amount `" + orig + "`");
    if (w > (INT64_MAX / 1'000'000 - 9) / 10) return Status::Invalid("money `" + orig + "` too large");
    w = w * 10 + (c - '0');
  }
  for (size_t i = 0; i < 6; ++i) {
    int digit = 0;
    if (i < frac.size()) {
      if (frac[i] < '0' || frac[i] > '9') return Status::Invalid("bad money amount `" + orig + "`");
      digit = frac[i] - '0';
    }
    f = f * 10 + digit;
  }
  int64_t v = w * 1'000'000 + f;
  return Money{neg ? -v : v};
}

Result<Money> MoneyFromDouble(double d) {
  if (!std::isfinite(d)) return Status::Invalid("a money amount must be a finite number");
  // Six decimals, then back: the same double only if six decimals hold the number written.
  const std::string fixed = fmt::format("{:.6f}", d);
  if (std::strtod(fixed.c_str(), nullptr) != d) {
    return Status::Invalid(fmt::format("money `{}` has more than 6 decimals", d));
  }
  return ParseMoney(fixed);
}

std::string FormatMoney(Money m) {
  uint64_t v = m.micros < 0 ? 0 - static_cast<uint64_t>(m.micros) : static_cast<uint64_t>(m.micros);
  std::string out = fmt::format("{}{}.{:06d}", m.micros < 0 ? "-" : "", v / 1'000'000, v % 1'000'000);
  // Trim trailing zeros down to two decimals.
  size_t keep = out.size();
  while (keep > out.find('.') + 3 && out[keep - 1] == '0') --keep;
  out.resize(keep);
  return out;
}

std::optional<Money> CheckedAdd(Money a, Money b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a.micros, b.micros, &sum)) return std::nullopt;
  return Money{sum};
}

Money CostOfGpuTime(Money price_per_gpu_hour, int64_t gpu_ms) {
  const __int128 cost = static_cast<__int128>(price_per_gpu_hour.micros) * gpu_ms / 3'600'000;
  if (cost > INT64_MAX) return Money{INT64_MAX};
  if (cost < INT64_MIN) return Money{INT64_MIN};
  return Money{static_cast<int64_t>(cost)};
}

}  // namespace ll
