#include "forecast/forecast.h"

#include <algorithm>

#include "core/check.h"

namespace ll::forecast {

DemandForecast::DemandForecast(std::vector<Gpus> pool_capacity, ForecastOptions options)
    : options_(options) {
  pools_.resize(pool_capacity.size());
  for (size_t i = 0; i < pools_.size(); ++i) {
    Pool& p = pools_[i];
    p.capacity = pool_capacity[i];
    p.hist.assign(168 * static_cast<size_t>(p.capacity + 1), 0);
    p.hour_total.assign(168, 0);
    p.cached.assign(168, -1);
    p.since = Time{INT64_MIN / 4};
  }
}

void DemandForecast::Accumulate(Pool& p, Time until) {
  if (p.since.ms == INT64_MIN / 4 || paused_) {
    p.since = until;
    return;
  }
  LL_CHECK(until >= p.since);
  Time t = p.since;
  const Gpus lvl = std::clamp(p.level, 0, p.capacity);
  while (t < until) {
    // Split at hour boundaries so each hour-of-week bucket gets its share.
    int64_t hour_end = (t.ms / 3'600'000 + 1) * 3'600'000;
    Time stop = Time{std::min(hour_end, until.ms)};
    int h = t.HourOfWeek();
    int64_t d = (stop - t).ms;
    p.hist[static_cast<size_t>(h) * (p.capacity + 1) + lvl] += d;
    p.hour_total[h] += d;
    p.cached[h] = -1;
    t = stop;
  }
  p.since = until;
}

void DemandForecast::Observe(int pool, Gpus level, Time now) {
  Pool& p = pools_[pool];
  Accumulate(p, now);
  p.level = level;
}

void DemandForecast::Pause(Time now) {
  for (Pool& p : pools_) Accumulate(p, now);
  paused_ = true;
}

void DemandForecast::Resume(Time now) {
  paused_ = false;
  for (Pool& p : pools_) p.since = now;
}

Gpus DemandForecast::BucketQuantile(const Pool& p, int hour, double q) const {
  const int64_t total = p.hour_total[hour];
  if (total < options_.min_history.ms) return p.capacity;
  const int64_t want = static_cast<int64_t>(q * static_cast<double>(total));
  int64_t acc = 0;
  const int64_t* row = &p.hist[static_cast<size_t>(hour) * (p.capacity + 1)];
  for (Gpus l = 0; l <= p.capacity; ++l) {
    acc += row[l];
    if (acc >= want && acc > 0) return l;
  }
  return p.capacity;
}

// Only the bucket being accumulated changes, so a query over the next hours mostly reads cached
// answers (the simulator asks every pool for its reserved room on every tick).
Gpus DemandForecast::CachedBucketQuantile(const Pool& p, int hour, double q) const {
  if (q != p.cached_q) {
    std::fill(p.cached.begin(), p.cached.end(), -1);
    p.cached_q = q;
  }
  if (p.cached[hour] < 0) p.cached[hour] = BucketQuantile(p, hour, q);
  return p.cached[hour];
}

Gpus DemandForecast::Quantile(int pool, double q, Time t0, Time t1) const {
  const Pool& p = pools_[pool];
  Gpus out = std::clamp(p.level, 0, p.capacity);
  if (t1 <= t0) return out;
  // At most 168 distinct buckets; a week-long window touches them all.
  int64_t first = t0.ms / 3'600'000, last = (t1.ms - 1) / 3'600'000;
  if (last - first >= 168) last = first + 167;
  for (int64_t h = first; h <= last; ++h) {
    out = std::max(out, CachedBucketQuantile(p, Time{h * 3'600'000}.HourOfWeek(), q));
    if (out >= p.capacity) break;
  }
  return out;
}

}  // namespace ll::forecast
