// The owner's demand forecast. Per pool and hour of the week, a time-weighted histogram of the
// demand levels seen so far; a query returns a quantile over a window, never less than the
// demand queued now. It learns only from the past: Observe() must be called in time order, and
// nothing here can see the future (only the `oracle` policy can, through its own input).
#pragma once

#include <cstdint>
#include <vector>

#include "core/gpu.h"
#include "core/time.h"

namespace ll::forecast {

struct ForecastOptions {
  // An hour-of-week bucket with less history than this is unknown: the forecast answers
  // with the pool's capacity (assume the owner needs everything).
  Duration min_history = Duration::Minutes(45);
};

// Not thread-safe: queries fill a per-bucket cache (callers serialise access).
class DemandForecast {
 public:
  DemandForecast(std::vector<Gpus> pool_capacity, ForecastOptions options = {});

  // The owner's demand in `pool` is `level` from `now` on. REQUIRES: now is non-decreasing.
  void Observe(int pool, Gpus level, Time now);
  // Data is missing from `now` on (a trace gap): stop learning until the next Observe after
  // Resume().
  void Pause(Time now);
  void Resume(Time now);

  // The q-quantile (0 < q <= 1) of demand over [t0, t1): the maximum over the hour-of-week
  // buckets the window touches, and at least the current level (queued demand).
  Gpus Quantile(int pool, double q, Time t0, Time t1) const;
  Gpus Current(int pool) const { return pools_[pool].level; }
  Gpus Capacity(int pool) const { return pools_[pool].capacity; }

 private:
  struct Pool {
    Gpus capacity = 0;
    Gpus level = 0;
    Time since;
    // hist[hour * (capacity + 1) + level] = milliseconds spent at `level` in that hour-of-week.
    std::vector<int64_t> hist;
    std::vector<int64_t> hour_total;  // per hour of week
    // BucketQuantile per hour of week for `cached_q`; -1 when the bucket changed since.
    mutable std::vector<Gpus> cached;
    mutable double cached_q = -1;
  };
  void Accumulate(Pool& p, Time until);
  Gpus BucketQuantile(const Pool& p, int hour, double q) const;
  Gpus CachedBucketQuantile(const Pool& p, int hour, double q) const;

  ForecastOptions options_;
  std::vector<Pool> pools_;
  bool paused_ = false;
};

}  // namespace ll::forecast
