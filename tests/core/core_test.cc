// Core value types: money, time, clock, randomness, status.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/json_depth.h"
#include "core/money.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/time.h"

namespace ll {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z, a Monday

// ---------------------------------------------------------------- money

TEST(CoreMoney, ParsesDecimalDollars) {
  EXPECT_EQ(ParseMoney("2.5")->micros, 2'500'000);
  EXPECT_EQ(ParseMoney("0.000125")->micros, 125);
  EXPECT_EQ(ParseMoney("-1.25")->micros, -1'250'000);
  EXPECT_EQ(ParseMoney("12")->micros, 12'000'000);
  EXPECT_EQ(ParseMoney("0")->micros, 0);
  EXPECT_EQ(ParseMoney("0.000001")->micros, 1);
  EXPECT_EQ(ParseMoney("3.999999")->micros, 3'999'999);
  EXPECT_EQ(ParseMoney("007.10")->micros, 7'100'000);
  EXPECT_EQ(ParseMoney("9223372036849.999999")->micros, 9'223'372'036'849'999'999);
}

TEST(CoreMoney, RejectsBadAmounts) {
  for (const char* bad : {"1.2345678", "abc", "", "-", ".", "1.2.3", "1,5", "+1", " 1", "1 ", "1e3",
                          "0x10", "--1", "1.-5", "99999999999999999999", "9223372036855"}) {
    Result<Money> r = ParseMoney(bad);
    EXPECT_FALSE(r.ok()) << "`" << bad << "` parsed as " << (r.ok() ? r->micros : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(ParseMoney("1.2345678").status().message().find("6 decimals"), std::string::npos);
}

TEST(CoreMoney, Formats) {
  EXPECT_EQ(FormatMoney(Money::Micros(2'500'000)), "2.50");
  EXPECT_EQ(FormatMoney(Money::Micros(125)), "0.000125");
  EXPECT_EQ(FormatMoney(Money::Micros(-1'250'000)), "-1.25");
  EXPECT_EQ(FormatMoney(Money::Micros(0)), "0.00");
  EXPECT_EQ(FormatMoney(Money::Micros(1)), "0.000001");
  EXPECT_EQ(FormatMoney(Money::Micros(-1)), "-0.000001");
  EXPECT_EQ(FormatMoney(Money::Dollars(12)), "12.00");
  EXPECT_EQ(FormatMoney(Money::Micros(1'234'500)), "1.2345");
  EXPECT_EQ(FormatMoney(Money::Micros(225'600)), "0.2256");
  EXPECT_EQ(FormatMoney(Money::Micros(INT64_MIN)), "-9223372036854.775808");
}

TEST(CoreMoney, FormatParseRoundTrip) {
  Rng rng(7);
  for (int i = 0; i < 10'000; ++i) {
    int64_t v = static_cast<int64_t>(rng.Below(2'000'000'000'000'000)) - 1'000'000'000'000'000;
    if (i % 3 == 0) v %= 10'000;  // many small amounts too
    Result<Money> back = ParseMoney(FormatMoney(Money::Micros(v)));
    ASSERT_TRUE(back.ok()) << FormatMoney(Money::Micros(v));
    ASSERT_EQ(back->micros, v);
  }
}

TEST(CoreMoney, Arithmetic) {
  Money a = Money::Dollars(2), b = Money::Micros(500'000);
  EXPECT_EQ((a + b).micros, 2'500'000);
  EXPECT_EQ((a - b).micros, 1'500'000);
  a += b;
  EXPECT_EQ(a.micros, 2'500'000);
  EXPECT_LT(b, a);
  EXPECT_DOUBLE_EQ(a.dollars(), 2.5);
}

TEST(CoreMoney, SumsAreCheckedAndCostsSaturate) {
  EXPECT_EQ(CheckedAdd(Money::Micros(1), Money::Micros(2)), Money::Micros(3));
  EXPECT_FALSE(CheckedAdd(Money::Micros(INT64_MAX), Money::Micros(1)).has_value());
  EXPECT_FALSE(CheckedAdd(Money::Micros(INT64_MIN), Money::Micros(-1)).has_value());
  // $1e9 an hour on 1,024 GPUs for a year is beyond int64 micro-dollars: the maximum, not a wrap.
  EXPECT_EQ(CostOfGpuTime(kMaxAmount, int64_t{1024} * 365 * 24 * 3'600'000), Money::Micros(INT64_MAX));
}

TEST(CoreJson, NestingDepthIsReadWithoutParsing) {
  EXPECT_FALSE(JsonNestsDeeperThan("[[[]]]", 3));
  EXPECT_TRUE(JsonNestsDeeperThan("[[[[]]]]", 3));
  EXPECT_TRUE(JsonNestsDeeperThan(R"({"a":{"b":[{"c":1}]}})", 3));
  EXPECT_FALSE(JsonNestsDeeperThan(R"({"a":"[[[[[[\"[[[["})", 1)) << "brackets in strings do not count";
  EXPECT_TRUE(JsonNestsDeeperThan(std::string(150'000, '[')));
  EXPECT_FALSE(JsonNestsDeeperThan(std::string(64, '[')));
  EXPECT_FALSE(JsonNestsDeeperThan("]]]]][", 1)) << "stray closers do not go below zero";
}

TEST(CoreMoney, CostOfGpuTimeIsExact) {
  const int64_t hour = 3'600'000;
  EXPECT_EQ(CostOfGpuTime(Money::Micros(2'500'000), hour).micros, 2'500'000);
  EXPECT_EQ(CostOfGpuTime(Money::Micros(2'500'000), 8 * hour).micros, 20'000'000);
  EXPECT_EQ(CostOfGpuTime(Money::Micros(3'600'000), 1).micros, 1);  // $3.60/h for 1 ms
  EXPECT_EQ(CostOfGpuTime(Money::Micros(3'599'999), 1).micros, 0);  // rounded down
  EXPECT_EQ(CostOfGpuTime(Money::Micros(1), hour - 1).micros, 0);
  EXPECT_EQ(CostOfGpuTime(Money::Micros(0), hour).micros, 0);
  EXPECT_EQ(CostOfGpuTime(Money::Micros(2'500'000), 0).micros, 0);
  // $0.29/h for 100 GPU-hours is $29 (floor(0.29 * 100 * 1e6) in double is 28999999).
  EXPECT_EQ(CostOfGpuTime(Money::Micros(290'000), 100 * hour).micros, 29'000'000);
  // $3.333333/h for 3 h is exactly $9.999999.
  EXPECT_EQ(CostOfGpuTime(Money::Micros(3'333'333), 3 * hour).micros, 9'999'999);
  // 100,000 GPUs for a 31-day month at $4/h: the product overflows int64, the result not.
  const int64_t month_gpu_ms = int64_t{100'000} * 31 * 24 * hour;
  EXPECT_EQ(CostOfGpuTime(Money::Dollars(4), month_gpu_ms).micros,
            int64_t{297'600'000} * 1'000'000);
  // 0.1 + 0.2 style accumulation: 10 pieces of 0.1 h at $0.30/h are exactly $0.30.
  Money sum;
  for (int i = 0; i < 10; ++i) sum += CostOfGpuTime(Money::Micros(300'000), hour / 10);
  EXPECT_EQ(sum.micros, 300'000);
  // Splitting a period never bills more than billing it whole.
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    Money p = Money::Micros(static_cast<int64_t>(rng.Below(10'000'000)));
    int64_t a = static_cast<int64_t>(rng.Below(10 * hour)),
            b = static_cast<int64_t>(rng.Below(10 * hour));
    Money parts = CostOfGpuTime(p, a) + CostOfGpuTime(p, b);
    Money whole = CostOfGpuTime(p, a + b);
    ASSERT_LE(parts, whole);
    ASSERT_GE(parts.micros, whole.micros - 1);
  }
}

// ---------------------------------------------------------------- time

TEST(CoreTime, ParsesUtc) {
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:00")->ms, kMonday);
  EXPECT_EQ(ParseUtc("2020-05-04T00:00:00")->ms, kMonday);
  EXPECT_EQ(ParseUtc("2020-05-04T00:00:00Z")->ms, kMonday);
  EXPECT_EQ(ParseUtc("1970-01-01 00:00:00")->ms, 0);
  EXPECT_EQ(ParseUtc("2020-05-04 12:34:56")->ms, kMonday + ((12 * 60 + 34) * 60 + 56) * 1000);
  // Fractions: up to 7 digits (Helios), truncated to the millisecond.
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:01.5")->ms, kMonday + 1500);
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:01.25")->ms, kMonday + 1250);
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:01.123")->ms, kMonday + 1123);
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:01.1234567")->ms, kMonday + 1123);
  EXPECT_EQ(ParseUtc("2020-05-04 00:00:01.9999999")->ms, kMonday + 1999);
  EXPECT_EQ(ParseUtc("2020-05-04T00:00:01.1234567Z")->ms, kMonday + 1123);
  EXPECT_EQ(ParseUtc("2020-02-29 00:00:00")->ms, ParseUtc("2020-03-01 00:00:00")->ms - 86'400'000);
  EXPECT_EQ(ParseUtc("1969-12-31 23:59:59")->ms, -1000);
}

TEST(CoreTime, RejectsBadUtc) {
  for (const char* bad :
       {"", "2020-05-04", "2020-05-04 00:00", "2020/05/04 00:00:00", "2020-05-04X00:00:00",
        "2020-13-01 00:00:00", "2020-00-01 00:00:00", "2020-05-32 00:00:00", "2020-05-00 00:00:00",
        "2020-05-04 24:00:00", "2020-05-04 00:60:00", "2020-05-04 00:00:61", "2020-05-04 00:00:00.",
        "2020-05-04 00:00:00x", "2020-05-04 00:00:00.12a", "2020-05-04 00:00:00ZZ",
        "abcd-ef-gh ij:kl:mn", "2020-05-04 0a:00:00", "2020-05-04 00:00:00 "}) {
    Result<Time> r = ParseUtc(bad);
    EXPECT_FALSE(r.ok()) << "`" << bad << "` parsed as " << (r.ok() ? FormatUtc(*r) : "");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

// Regression: ParseUtc read each field with std::from_chars, which accepts a leading '-', and
// checked only upper bounds, so "2020-05-04 -1:00:00" became 2020-05-03T23:00:00Z and
// "2021-02-30" became 2021-03-02 (fixed in src/core/time.cc).
TEST(CoreTime, RejectsNegativeAndImpossibleFields) {
  for (const char* bad : {"2020-05-04 -1:00:00", "2020-05-04 00:-1:00", "2020-05-04 00:00:-1",
                          "2021-02-30 00:00:00", "2021-04-31 00:00:00"}) {
    Result<Time> r = ParseUtc(bad);
    EXPECT_FALSE(r.ok()) << "`" << bad << "` parsed as " << (r.ok() ? FormatUtc(*r) : "");
  }
}

TEST(CoreTime, FormatsAndRoundTrips) {
  EXPECT_EQ(FormatUtc(Time{kMonday}), "2020-05-04T00:00:00Z");
  EXPECT_EQ(FormatUtc(Time{0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatUtc(Time{-1}), "1969-12-31T23:59:59Z");  // floors, never rounds toward zero
  EXPECT_EQ(FormatUtc(Time{kMonday + 1999}), "2020-05-04T00:00:01Z");
  EXPECT_EQ(FormatUtc(*ParseUtc("2020-05-04 00:00:01.1234567")), "2020-05-04T00:00:01Z");
  for (const char* s : {"2020-05-04T00:00:00Z", "2000-02-29T23:59:59Z", "1999-12-31T00:00:00Z",
                        "2038-01-19T03:14:08Z", "1969-07-20T20:17:40Z", "2100-03-01T12:00:00Z"}) {
    EXPECT_EQ(FormatUtc(*ParseUtc(s)), s);
  }
  Rng rng(11);
  for (int i = 0; i < 20'000; ++i) {
    // Whole seconds between 1900 and 2200.
    int64_t secs =
        static_cast<int64_t>(rng.Below(int64_t{300} * 366 * 86400)) - int64_t{70} * 366 * 86400;
    Time t{secs * 1000};
    std::string f = FormatUtc(t);
    Result<Time> back = ParseUtc(f);
    ASSERT_TRUE(back.ok()) << f;
    ASSERT_EQ(back->ms, t.ms) << f;
    // The space-separated form with a 7-digit fraction parses to the same second plus ms.
    std::string spaced = f.substr(0, 10) + " " + f.substr(11, 8) + ".2500000";
    ASSERT_EQ(ParseUtc(spaced)->ms, t.ms + 250) << spaced;
  }
}

TEST(CoreTime, HourOfWeek) {
  EXPECT_EQ(Time{kMonday}.HourOfWeek(), 0);
  EXPECT_EQ((Time{kMonday} + Duration::Minutes(59)).HourOfWeek(), 0);
  EXPECT_EQ((Time{kMonday} + Duration::Hours(1)).HourOfWeek(), 1);
  EXPECT_EQ((Time{kMonday} + Duration::Hours(24 + 5)).HourOfWeek(), 29);  // Tuesday 05:00
  EXPECT_EQ((Time{kMonday} + Duration::Hours(168) - Duration::Millis(1)).HourOfWeek(), 167);
  EXPECT_EQ((Time{kMonday} + Duration::Hours(168)).HourOfWeek(), 0);
  EXPECT_EQ(ParseUtc("2020-05-10 23:30:00")->HourOfWeek(), 167);  // Sunday night
  EXPECT_EQ(Time{0}.HourOfWeek(), 72);                            // 1970-01-01 was a Thursday
  EXPECT_EQ(Time{-1}.HourOfWeek(), 71);                           // Wednesday 23:59:59.999
  EXPECT_EQ((Time{kMonday} - Duration::Hours(168 * 100)).HourOfWeek(), 0);
  for (int h = 0; h < 2 * 168; ++h) {
    ASSERT_EQ((Time{kMonday} + Duration::Hours(h) + Duration::Minutes(30)).HourOfWeek(), h % 168);
  }
}

TEST(CoreTime, DurationArithmetic) {
  EXPECT_EQ(Duration::Seconds(2).ms, 2000);
  EXPECT_EQ(Duration::Minutes(2).ms, 120'000);
  EXPECT_EQ(Duration::Hours(2).ms, 7'200'000);
  EXPECT_EQ((Duration::Seconds(90) * 2).ms, 180'000);
  EXPECT_DOUBLE_EQ(Duration::Minutes(90).hours(), 1.5);
  EXPECT_DOUBLE_EQ(Duration::Millis(1500).seconds(), 1.5);
  Time t = Time::FromSeconds(10);
  EXPECT_EQ((t + Duration::Seconds(5)) - t, Duration::Seconds(5));
  t += Duration::Millis(1);
  EXPECT_EQ(t.ms, 10'001);
  EXPECT_LT(Time{}, kTimeMax);
}

// ---------------------------------------------------------------- clock, rng, ids

TEST(CoreClock, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(Time{kMonday});
  const Clock& c = clock;
  EXPECT_EQ(c.Now().ms, kMonday);
  EXPECT_EQ(c.Now().ms, kMonday);
  clock.Advance(Duration::Seconds(120));
  EXPECT_EQ(c.Now().ms, kMonday + 120'000);
  clock.Set(Time{5});
  EXPECT_EQ(c.Now().ms, 5);
  EXPECT_EQ(ManualClock().Now().ms, 0);
}

TEST(CoreClock, SystemClockIsNearNow) {
  std::unique_ptr<Clock> c = NewSystemClock();
  Time a = c->Now();
  EXPECT_GT(a.ms, ParseUtc("2024-01-01 00:00:00")->ms);
  EXPECT_GE(c->Now(), a);
}

TEST(CoreRng, DeterministicSplitMix64) {
  EXPECT_EQ(Rng(0).Next(), 0xe220a8397b1dcdafULL);  // the SplitMix64 reference value
  Rng a(42), b(42), c(43);
  std::vector<uint64_t> va, vc;
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.Next();
    ASSERT_EQ(x, b.Next());
    va.push_back(x);
    vc.push_back(c.Next());
  }
  EXPECT_NE(va, vc);
}

TEST(CoreRng, Distributions) {
  Rng r(5);
  double sum_u = 0, sum_e = 0;
  std::vector<int> hist(10, 0);
  const int n = 100'000;
  for (int i = 0; i < n; ++i) {
    uint64_t k = r.Below(10);
    ASSERT_LT(k, 10u);
    ++hist[k];
    double u = r.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum_u += u;
    double e = r.Exponential(3.0);
    ASSERT_GE(e, 0.0);
    sum_e += e;
  }
  EXPECT_NEAR(sum_u / n, 0.5, 0.01);
  EXPECT_NEAR(sum_e / n, 3.0, 0.05);
  for (int c : hist) EXPECT_NEAR(c, n / 10, n / 100);
  EXPECT_EQ(r.Below(1), 0u);
  // Same seed, same draws from every distribution.
  Rng x(9), y(9);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(x.Below(1000), y.Below(1000));
    ASSERT_EQ(x.Uniform(), y.Uniform());
    ASSERT_EQ(x.Exponential(2), y.Exponential(2));
  }
}

TEST(CoreIds, ExternalIdsAndDenseIds) {
  EXPECT_EQ(MakeExternalId("lease", 42), "lease_000042");
  EXPECT_EQ(MakeExternalId("ten", 1234567), "ten_1234567");
  NodeId n;
  EXPECT_FALSE(n.valid());
  n = NodeId{3};
  EXPECT_TRUE(n.valid());
  EXPECT_LT(NodeId{2}, n);
  EXPECT_EQ(std::hash<NodeId>()(n), std::hash<uint32_t>()(3));
}

// ---------------------------------------------------------------- status

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::Invalid("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  LL_ASSIGN_OR_RETURN(int h, Half(x));
  LL_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  LL_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(CoreStatus, StatusBasics) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.code(), StatusCode::kOk);
  EXPECT_EQ(ok.ToString(), "ok");
  EXPECT_TRUE(Status::Ok().ok());
  Status c = Status::Conflict("no room");
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.code(), StatusCode::kConflict);
  EXPECT_EQ(c.message(), "no room");
  EXPECT_EQ(c.ToString(), "conflict: no room");
  EXPECT_EQ(Status::Invalid("x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Status::NotFound("x").code(), StatusCode::kNotFound);
  EXPECT_EQ(Status::Exhausted("x").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Status::Io("x").code(), StatusCode::kIoError);
  EXPECT_STREQ(StatusCodeName(StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_STREQ(StatusCodeName(StatusCode::kResourceExhausted), "resource_exhausted");
  EXPECT_STREQ(StatusCodeName(StatusCode::kInternal), "internal");
}

TEST(CoreStatus, ResultBasics) {
  Result<std::string> v = std::string("abc");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.status().ok());
  EXPECT_EQ(*v, "abc");
  EXPECT_EQ(v->size(), 3u);
  std::string moved = std::move(v).value();
  EXPECT_EQ(moved, "abc");

  Result<std::string> e = Status::NotFound("gone");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "gone");

  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_EQ(Quarter(3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), StatusCode::kInvalidArgument);
}

TEST(CoreStatusDeathTest, ValueOfErrorAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Result<int> e = Status::Invalid("bad");
  EXPECT_DEATH((void)e.value(), "check failed");
  EXPECT_DEATH((void)Result<int>(Status::Ok()), "check failed");  // an error Result needs an error
}

}  // namespace
}  // namespace ll
