// The owner's demand forecast: hour-of-week quantiles learned from the past only.
#include "forecast/forecast.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ll::forecast {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z, a Monday
constexpr Gpus kCap = 100;

Time At(int64_t hours, int64_t minutes = 0) {
  return Time{kMonday} + Duration::Hours(hours) + Duration::Minutes(minutes);
}

// The demand of the synthetic week: weekday working hours are busy. Within every hour the
// level is `base` for 45 minutes, then `base + 10` for 15 minutes.
Gpus Base(int hour_of_week) {
  int day = hour_of_week / 24, hour = hour_of_week % 24;
  if (day < 5 && hour >= 9 && hour < 17) return 70;
  if (day >= 5) return 5;
  return 20 + hour % 3;  // weekday nights: 20, 21, 22 repeating
}

// Feeds `weeks` weeks of the pattern, then drops demand to 0 so the current level (a floor
// for every query) does not mask the buckets.
DemandForecast TrainedForecast(int weeks) {
  DemandForecast f({kCap, 8});
  for (int h = 0; h < weeks * 168; ++h) {
    f.Observe(0, Base(h % 168), At(h));
    f.Observe(0, Base(h % 168) + 10, At(h, 45));
    f.Observe(1, 8, At(h));
  }
  f.Observe(0, 0, At(weeks * 168));
  f.Observe(1, 0, At(weeks * 168));
  return f;
}

TEST(ForecastTest, QuantilesPerHourOfWeek) {
  DemandForecast f = TrainedForecast(2);
  const Time now = At(2 * 168);
  EXPECT_EQ(f.Current(0), 0);
  EXPECT_EQ(f.Capacity(0), kCap);
  for (int h = 0; h < 168; ++h) {
    // The window [h, h+1) of the third week touches exactly one bucket.
    Time t0 = now + Duration::Hours(h), t1 = t0 + Duration::Hours(1);
    const Gpus base = Base(h);
    ASSERT_EQ(f.Quantile(0, 0.5, t0, t1), base) << "hour " << h;
    ASSERT_EQ(f.Quantile(0, 0.75, t0, t1), base) << "hour " << h;  // exactly 3/4 at base
    ASSERT_EQ(f.Quantile(0, 0.76, t0, t1), base + 10) << "hour " << h;
    ASSERT_EQ(f.Quantile(0, 1.0, t0, t1), base + 10) << "hour " << h;
    ASSERT_EQ(f.Quantile(0, 0.01, t0, t1), base) << "hour " << h;
    ASSERT_EQ(f.Quantile(1, 0.5, t0, t1), 8) << "hour " << h;
  }
  // A window is the maximum over the buckets it touches: Monday 08:30–09:30 spans a night
  // hour (22+10 at q=1) and the first busy hour (70+10).
  EXPECT_EQ(f.Quantile(0, 1.0, now + Duration::Minutes(8 * 60 + 30),
                       now + Duration::Minutes(9 * 60 + 30)),
            80);
  EXPECT_EQ(f.Quantile(0, 0.5, now + Duration::Hours(6), now + Duration::Hours(9)),
            22);  // 20, 21, 22
  // The whole weekend: 5 / 15.
  EXPECT_EQ(f.Quantile(0, 0.5, now + Duration::Hours(120), now + Duration::Hours(168)), 5);
  EXPECT_EQ(f.Quantile(0, 1.0, now + Duration::Hours(120), now + Duration::Hours(168)), 15);
  // A window longer than a week touches every bucket once.
  EXPECT_EQ(f.Quantile(0, 0.5, now, now + Duration::Hours(24 * 30)), 70);
  // Any week ahead answers the same: hour-of-week, not absolute time.
  EXPECT_EQ(f.Quantile(0, 0.5, now + Duration::Hours(10 * 168 + 10),
                       now + Duration::Hours(10 * 168 + 11)),
            70);
}

TEST(ForecastTest, UnknownBucketsAnswerCapacity) {
  DemandForecast fresh({kCap});
  EXPECT_EQ(fresh.Quantile(0, 0.5, At(0), At(1)), kCap);
  EXPECT_EQ(fresh.Quantile(0, 0.01, At(50), At(51)), kCap);

  // One Monday of data: Monday's buckets are known, the rest of the week is not.
  DemandForecast f({kCap});
  f.Observe(0, 30, At(0));
  f.Observe(0, 0, At(24));
  EXPECT_EQ(f.Quantile(0, 1.0, At(168 + 3), At(168 + 4)), 30);
  EXPECT_EQ(f.Quantile(0, 1.0, At(168 + 24), At(168 + 25)), kCap);  // Tuesday: never seen
  // A window that touches a known and an unknown bucket answers capacity.
  EXPECT_EQ(f.Quantile(0, 0.5, At(168 + 23), At(168 + 25)), kCap);

  // Less than `min_history` (45 min) in a bucket is not enough.
  DemandForecast g({kCap});
  g.Observe(0, 30, At(0));
  g.Observe(0, 0, At(0, 30));  // 30 minutes at 30
  g.Observe(0, 0, At(1));      // hour 0 has 60 minutes in all: 30 at 30, 30 at 0
  EXPECT_EQ(g.Quantile(0, 1.0, At(168), At(169)), 30);
  g.Observe(0, 0, At(1, 40));  // hour 1 has only 40 minutes
  EXPECT_EQ(g.Quantile(0, 1.0, At(169), At(170)), kCap);
  g.Observe(0, 0, At(1, 45));
  EXPECT_EQ(g.Quantile(0, 1.0, At(169), At(170)), 0);

  // A custom threshold.
  DemandForecast h({kCap}, ForecastOptions{Duration::Minutes(5)});
  h.Observe(0, 7, At(0));
  h.Observe(0, 0, At(0, 10));
  EXPECT_EQ(h.Quantile(0, 1.0, At(168), At(169)), 7);
}

TEST(ForecastTest, PauseAndResumeSkipAGap) {
  DemandForecast f({kCap});
  f.Observe(0, 10, At(0));
  f.Pause(At(2));           // data missing from Monday 02:00
  f.Observe(0, 90, At(3));  // observations during the gap are not learned from
  f.Observe(0, 40, At(4));
  f.Resume(At(5));  // data again from 05:00, at the last level seen (40)
  f.Observe(0, 40, At(8));
  f.Observe(0, 0, At(9));
  const Time wk = At(168);
  EXPECT_EQ(f.Quantile(0, 1.0, wk, wk + Duration::Hours(1)), 10);                         // 00:00
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(1), wk + Duration::Hours(2)), 10);    // 01:00
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(2), wk + Duration::Hours(3)), kCap);  // gap
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(3), wk + Duration::Hours(4)), kCap);  // gap
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(4), wk + Duration::Hours(5)), kCap);  // gap
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(5), wk + Duration::Hours(6)), 40);
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(8), wk + Duration::Hours(9)), 40);
  EXPECT_EQ(f.Quantile(0, 1.0, wk + Duration::Hours(9), wk + Duration::Hours(10)), kCap);  // after
  // The level seen during the pause is still the current one (it is a floor).
  EXPECT_EQ(f.Current(0), 0);
}

TEST(ForecastTest, CurrentLevelIsAFloor) {
  DemandForecast f = TrainedForecast(2);
  const Time now = At(2 * 168);
  // Saturday buckets say 5 (q=0.5); the owner queues 60 now.
  const Time sat = now + Duration::Hours(5 * 24 + 3);
  EXPECT_EQ(f.Quantile(0, 0.5, sat, sat + Duration::Hours(1)), 5);
  f.Observe(0, 60, now);
  EXPECT_EQ(f.Current(0), 60);
  EXPECT_EQ(f.Quantile(0, 0.5, sat, sat + Duration::Hours(1)), 60);
  // Busy hours stay above the floor.
  EXPECT_EQ(f.Quantile(0, 0.5, now + Duration::Hours(10), now + Duration::Hours(11)), 70);
  // An empty window answers the current level.
  EXPECT_EQ(f.Quantile(0, 0.5, sat, sat), 60);
  // The floor is capped at capacity.
  f.Observe(0, 250, now + Duration::Minutes(1));
  EXPECT_EQ(f.Quantile(0, 0.5, sat, sat + Duration::Hours(1)), kCap);
  // Other pools have their own level.
  EXPECT_EQ(f.Quantile(1, 0.5, sat, sat + Duration::Hours(1)), 8);
}

TEST(ForecastTest, FollowsAChangedPattern) {
  // The quantile follows a changed pattern as weeks go by: after two weeks at 70 and two
  // weeks at 10 in the same hour, the median sits at the boundary.
  DemandForecast f({kCap});
  for (int w = 0; w < 4; ++w) {
    for (int h = 0; h < 168; ++h) f.Observe(0, w < 2 ? 70 : 10, At(w * 168 + h));
  }
  f.Observe(0, 0, At(4 * 168));
  const Time t0 = At(4 * 168 + 12);
  EXPECT_EQ(f.Quantile(0, 0.5, t0, t0 + Duration::Hours(1)), 10);
  EXPECT_EQ(f.Quantile(0, 0.51, t0, t0 + Duration::Hours(1)), 70);
  EXPECT_EQ(f.Quantile(0, 1.0, t0, t0 + Duration::Hours(1)), 70);
}

}  // namespace
}  // namespace ll::forecast

namespace ll::forecast {
namespace {

// Queries cache per-bucket answers; a forecast that is queried all along must answer exactly
// like one that sees the same observations and is queried only at the end.
TEST(ForecastTest, CachedAnswersMatchFreshOnes) {
  DemandForecast queried({kCap}), fresh({kCap});
  uint64_t x = 7;
  for (int step = 0; step < 3000; ++step) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    Time t = At(0, step * 7);
    Gpus level = static_cast<Gpus>((x >> 33) % (kCap + 1));
    queried.Observe(0, level, t);
    fresh.Observe(0, level, t);
    double q = step % 500 < 250 ? 0.9 : 0.5;  // a changed quantile drops the cache
    Time end = t + Duration::Hours(1 + static_cast<int64_t>(x >> 60));
    Gpus got = queried.Quantile(0, q, t, end);
    DemandForecast copy = fresh;  // `fresh` is never queried: its copy has no cached answers
    ASSERT_EQ(got, copy.Quantile(0, q, t, end)) << "step " << step;
  }
}

}  // namespace
}  // namespace ll::forecast
