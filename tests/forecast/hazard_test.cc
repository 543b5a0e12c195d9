// Hour-of-week hazards of the owner's rises, learned from the past only.
#include "forecast/hazard.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ll::forecast {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z, a Monday

Time At(int64_t hours, int64_t minutes = 0) {
  return Time{kMonday} + Duration::Hours(hours) + Duration::Minutes(minutes);
}

TEST(RiseHazardsTest, PerHourOfWeekWithThePoolsRateWhereABucketIsShort) {
  RiseHazards h(2);
  EXPECT_EQ(h.PerGpuHour(0, At(0)), 0);  // nothing seen
  EXPECT_EQ(h.PerGpuHour(5, At(0)), 0);  // a pool never seen
  // Hour 0: 10 GPUs unwanted for the hour, 5 GPUs risen; hour 1: 10 GPUs for 30 minutes
  // (split at the hour boundary), 15 risen.
  h.Exposed(0, 10, At(0), At(1, 30));
  h.Rise(0, 5, At(0, 20));
  h.Rise(0, 15, At(1, 10));
  EXPECT_DOUBLE_EQ(h.PerGpuHour(0, At(0, 59)), 0.5);
  EXPECT_DOUBLE_EQ(h.PerGpuHour(0, At(168)), 0.5);  // the same hour of the next week
  // Hour 1 has 30 minutes, under kMinBucketHistory: the pool's overall 20 / 15.
  EXPECT_DOUBLE_EQ(h.PerGpuHour(0, At(1, 40)), 20.0 / 15.0);
  // Another 30 minutes in hour 1 a week later make it its own: 15 / 10.
  h.Exposed(0, 10, At(169, 0), At(169, 30));
  EXPECT_DOUBLE_EQ(h.PerGpuHour(0, At(1, 40)), 1.5);
  EXPECT_EQ(h.PerGpuHour(1, At(0)), 0);  // pools are separate
  h.Exposed(1, 0, At(0), At(5));          // nothing unwanted: no exposure
  h.Rise(1, 3, At(2));
  EXPECT_EQ(h.PerGpuHour(1, At(2)), 0);
}

}  // namespace
}  // namespace ll::forecast
