#include "forecast/hazard.h"

#include <algorithm>

namespace ll::forecast {

void RiseHazards::Resize(int pools) {
  if (pools > static_cast<int>(pools_.size())) pools_.resize(pools);
}

void RiseHazards::Exposed(int pool, Gpus unwanted, Time since, Time now) {
  Resize(pool + 1);
  if (unwanted <= 0 || now <= since) return;
  Pool& p = pools_[pool];
  Time t = since;
  while (t < now) {
    // Split at hour boundaries so each hour-of-week bucket gets its share.
    const Time stop = Time{std::min((t.ms / 3'600'000 + 1) * 3'600'000, now.ms)};
    const int64_t d = (stop - t).ms;
    for (Bucket* b : {&p.hours[t.HourOfWeek()], &p.all}) {
      b->time_ms += d;
      b->gpu_ms += static_cast<double>(unwanted) * static_cast<double>(d);
    }
    t = stop;
  }
}

void RiseHazards::Rise(int pool, Gpus gpus, Time now) {
  Resize(pool + 1);
  if (gpus <= 0) return;
  Pool& p = pools_[pool];
  p.hours[now.HourOfWeek()].risen += gpus;
  p.all.risen += gpus;
}

double RiseHazards::Rate(const Bucket& b) {
  return b.gpu_ms > 0 ? static_cast<double>(b.risen) * 3'600'000.0 / b.gpu_ms : 0.0;
}

double RiseHazards::PerGpuHour(int pool, Time now) const {
  if (pool >= static_cast<int>(pools_.size())) return 0;
  const Pool& p = pools_[pool];
  const Bucket& b = p.hours[now.HourOfWeek()];
  return b.time_ms >= kMinBucketHistory.ms ? Rate(b) : Rate(p.all);
}

}  // namespace ll::forecast
