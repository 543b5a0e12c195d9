// Money is integer micro-dollars (1e-6 USD). No floating point where money is stored or billed.
#pragma once

#include <compare>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/time.h"

namespace ll {

struct Money {
  int64_t micros = 0;

  static constexpr Money Micros(int64_t v) { return {v}; }
  static constexpr Money Dollars(int64_t v) { return {v * 1'000'000}; }
  constexpr auto operator<=>(const Money&) const = default;
  constexpr Money operator+(Money o) const { return {micros + o.micros}; }
  constexpr Money operator-(Money o) const { return {micros - o.micros}; }
  constexpr Money& operator+=(Money o) { micros += o.micros; return *this; }
  // For reports only, never for billing.
  constexpr double dollars() const { return static_cast<double>(micros) / 1e6; }
};

// The most any one amount (a credit, a price, a hold) may be, and the most a balance may hold:
// sums of a few of them stay far inside int64 micro-dollars (9.2e12 dollars).
inline constexpr Money kMaxAmount = Money::Dollars(1'000'000'000);      // $1e9
inline constexpr Money kMaxBalance = Money::Dollars(1'000'000'000'000);  // $1e12

// a + b, or nullopt when the sum leaves int64 micro-dollars.
std::optional<Money> CheckedAdd(Money a, Money b);

// Parses a decimal dollar amount such as "2.5", "0.000125" or "12" (at most 6 decimals).
Result<Money> ParseMoney(std::string_view text);
// The amount a JSON or TOML number stands for, under ParseMoney's rules: a double that needs more
// than 6 decimals to be written exactly as given (0.1234567) is refused, never rounded.
Result<Money> MoneyFromDouble(double d);
// "2.500000" style with trailing zeros trimmed to at least 2 decimals: "2.50", "0.000125".
std::string FormatMoney(Money m);

// Cost of `gpu_ms` GPU-milliseconds at `price_per_gpu_hour`, rounded down to the micro-dollar.
// Exact integer arithmetic (128-bit intermediate); a cost beyond int64 saturates at its maximum
// (no balance covers it, so it is refused, never wrapped into a credit).
Money CostOfGpuTime(Money price_per_gpu_hour, int64_t gpu_ms);

}  // namespace ll
