// The owner's future demand as a baseline run recorded it: what the `oracle` policy knows.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "alloc/policy.h"
#include "core/gpu.h"
#include "core/time.h"

namespace ll::sim {

// The owner's future demand, from a baseline run (the oracle's crystal ball).
class RecordedFuture final : public alloc::FutureDemand {
 public:
  explicit RecordedFuture(const std::vector<std::vector<std::pair<Time, Gpus>>>& demand) {
    for (const auto& points : demand) {
      Pool p;
      for (auto& [t, g] : points) {
        p.t.push_back(t.ms);
        p.v.push_back(g);
      }
      // Sparse table for range maximum.
      size_t n = p.v.size();
      p.table.push_back(p.v);
      for (size_t k = 1; (size_t{1} << k) <= n; ++k) {
        const auto& prev = p.table.back();
        std::vector<Gpus> row(n - (size_t{1} << k) + 1);
        for (size_t i = 0; i < row.size(); ++i) row[i] = std::max(prev[i], prev[i + (size_t{1} << (k - 1))]);
        p.table.push_back(std::move(row));
      }
      pools_.push_back(std::move(p));
    }
  }

  Gpus MaxDemand(PoolId pool, Time t0, Time t1) const override {
    const Pool& p = pools_[pool.v];
    if (p.v.empty()) return 0;
    // From the point in force at t0 through the last point ≤ t1.
    size_t lo = std::upper_bound(p.t.begin(), p.t.end(), t0.ms) - p.t.begin();
    lo = lo == 0 ? 0 : lo - 1;
    size_t hi = std::upper_bound(p.t.begin(), p.t.end(), t1.ms) - p.t.begin();
    if (hi == 0) return 0;
    --hi;
    if (hi < lo) hi = lo;
    size_t len = hi - lo + 1;
    int k = 63 - __builtin_clzll(len);
    return std::max(p.table[k][lo], p.table[k][hi + 1 - (size_t{1} << k)]);
  }

 private:
  struct Pool {
    std::vector<int64_t> t;
    std::vector<Gpus> v;
    std::vector<std::vector<Gpus>> table;
  };
  std::vector<Pool> pools_;
};

}  // namespace ll::sim
