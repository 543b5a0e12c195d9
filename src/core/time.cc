#include "core/time.h"

#include <charconv>
#include <cstdio>

#include <fmt/format.h>

namespace ll {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool ParseFixed(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;  // from_chars would take a sign
  }
  auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
  return ec == std::errc() && p == s.data() + pos + len;
}

}  // namespace

int Time::HourOfWeek() const {
  int64_t hours = ms >= 0 ? ms / 3'600'000 : (ms - 3'599'999) / 3'600'000;
  // 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of a Monday-based week.
  int64_t h = (hours + 72) % 168;
  return static_cast<int>(h < 0 ? h + 168 : h);
}

Result<Time> ParseUtc(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':' || !ParseFixed(s, 0, 4, &y) || !ParseFixed(s, 5, 2, &mo) ||
      !ParseFixed(s, 8, 2, &d) || !ParseFixed(s, 11, 2, &h) || !ParseFixed(s, 14, 2, &mi) ||
      !ParseFixed(s, 17, 2, &se)) {
    return Status::Invalid("expected a time like `2020-05-01 00:00:00`, got `" + std::string(s) + "`");
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
      mi > 59 || se > 60) {
    return Status::Invalid("time out of range: `" + std::string(s) + "`");
  }
  int64_t frac_ms = 0;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    int64_t v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) v = v * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return Status::Invalid("empty fraction in time `" + std::string(s) + "`");
    for (int i = digits; i < 3; ++i) v *= 10;
    frac_ms = v;
  }
  if (pos < s.size() && s[pos] == 'Z') ++pos;
  if (pos != s.size()) return Status::Invalid("trailing characters in time `" + std::string(s) + "`");
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return Time{((days * 24 + h) * 60 + mi) * 60'000 + se * 1000 + frac_ms};
}

std::string FormatUtc(Time t) {
  int64_t secs = t.ms >= 0 ? t.ms / 1000 : (t.ms - 999) / 1000;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t rem = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(y), m,
                d, static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60));
  return buf;
}

namespace {

constexpr int64_t kDayMs = 86'400'000;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

}  // namespace

Time MonthStartUtc(Time t) {
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(FloorDiv(t.ms, kDayMs), &y, &m, &d);
  return Time{DaysFromCivil(y, m, 1) * kDayMs};
}

Time NextMonthStartUtc(Time t) {
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(FloorDiv(t.ms, kDayMs), &y, &m, &d);
  return Time{(m == 12 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, m + 1, 1)) * kDayMs};
}

std::string MonthUtc(Time t) {
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(FloorDiv(t.ms, kDayMs), &y, &m, &d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u", static_cast<long long>(y), m);
  return buf;
}

Result<Time> ParseMonthUtc(std::string_view text) {
  int y = 0, m = 0;
  if (text.size() != 7 || text[4] != '-' || !ParseFixed(text, 0, 4, &y) || !ParseFixed(text, 5, 2, &m) || m < 1 ||
      m > 12) {
    return Status::Invalid(fmt::format("`{}` is not a month (YYYY-MM)", text));
  }
  return Time{DaysFromCivil(y, static_cast<unsigned>(m), 1) * kDayMs};
}

}  // namespace ll
