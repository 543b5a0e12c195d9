// The GPUs each pool left idle in the baseline run (the owner alone) over time, read forward by a
// run of another policy: what its sold GPUs may count as harvest (alloc/harvest.h).
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "core/gpu.h"
#include "core/time.h"

namespace ll::sim {

class BaselineIdle {
 public:
  // Per pool, (time, idle GPUs) change points in time order. Before a pool's first point it
  // counts as 0 idle (nothing is harvest).
  explicit BaselineIdle(const std::vector<std::vector<std::pair<Time, Gpus>>>& idle) : idle_(idle.size(), 0) {
    for (size_t p = 0; p < idle.size(); ++p) {
      for (const auto& [t, g] : idle[p]) points_.push_back({t.ms, p, g});
    }
    std::stable_sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) { return a.t < b.t; });
  }

  // Applies every change up to and including `t`; returns the next change after it.
  Time AdvanceTo(Time t) {
    while (next_ < points_.size() && points_[next_].t <= t.ms) {
      idle_[points_[next_].pool] = points_[next_].gpus;
      ++next_;
    }
    return next_ < points_.size() ? Time{points_[next_].t} : kTimeMax;
  }
  const std::vector<Gpus>& idle() const { return idle_; }

 private:
  struct Point {
    int64_t t;
    size_t pool;
    Gpus gpus;
  };
  std::vector<Point> points_;
  size_t next_ = 0;
  std::vector<Gpus> idle_;
};

}  // namespace ll::sim
