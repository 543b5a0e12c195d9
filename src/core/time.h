// Time is integer milliseconds since the Unix epoch (UTC); Duration is integer milliseconds.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ll {

struct Duration {
  int64_t ms = 0;

  static constexpr Duration Millis(int64_t v) { return {v}; }
  static constexpr Duration Seconds(int64_t v) { return {v * 1000}; }
  static constexpr Duration Minutes(int64_t v) { return {v * 60'000}; }
  static constexpr Duration Hours(int64_t v) { return {v * 3'600'000}; }
  constexpr double seconds() const { return static_cast<double>(ms) / 1000.0; }
  constexpr double hours() const { return static_cast<double>(ms) / 3'600'000.0; }

  constexpr auto operator<=>(const Duration&) const = default;
  constexpr Duration operator+(Duration o) const { return {ms + o.ms}; }
  constexpr Duration operator-(Duration o) const { return {ms - o.ms}; }
  constexpr Duration operator*(int64_t k) const { return {ms * k}; }
  constexpr Duration& operator+=(Duration o) { ms += o.ms; return *this; }
};

struct Time {
  int64_t ms = 0;  // since the Unix epoch, UTC

  static constexpr Time FromMillis(int64_t v) { return {v}; }
  static constexpr Time FromSeconds(int64_t v) { return {v * 1000}; }
  constexpr auto operator<=>(const Time&) const = default;
  constexpr Time operator+(Duration d) const { return {ms + d.ms}; }
  constexpr Time operator-(Duration d) const { return {ms - d.ms}; }
  constexpr Duration operator-(Time o) const { return {ms - o.ms}; }
  constexpr Time& operator+=(Duration d) { ms += d.ms; return *this; }

  // Hour of the week in UTC, 0 = Monday 00:00.
  int HourOfWeek() const;
};

inline constexpr Time kTimeMax = {INT64_MAX / 4};

// Parses "YYYY-MM-DD HH:MM:SS[.fffffff]" or "YYYY-MM-DDTHH:MM:SS" as UTC.
Result<Time> ParseUtc(std::string_view text);
// Formats as "YYYY-MM-DDTHH:MM:SSZ".
std::string FormatUtc(Time t);

// Calendar months, UTC (invoice periods): the start of t's month, the start of the next one,
// and the month's name "YYYY-MM".
Time MonthStartUtc(Time t);
Time NextMonthStartUtc(Time t);
std::string MonthUtc(Time t);
// Parses "YYYY-MM" into the start of that month.
Result<Time> ParseMonthUtc(std::string_view text);

}  // namespace ll
