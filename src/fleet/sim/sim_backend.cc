#include "fleet/sim/sim_backend.h"

#include <algorithm>
#include <map>

namespace ll::fleet {

SimBackend::SimBackend(const sim::Trace& trace)
    : topology_{trace.pools, trace.nodes}, trace_(trace) {
  span_ms_ = std::max<int64_t>(1, (trace_.end - trace_.begin).ms);
  pools_.resize(trace_.pools.size());
  auto push = [&](int pool, int64_t off, Gpus level) {
    Steps& s = pools_[pool];
    if (!s.t.empty() && s.t.back() == off) {
      s.level.back() = level;
    } else {
      s.t.push_back(off);
      s.level.push_back(level);
    }
  };
  if (trace_.kind == sim::DemandKind::kOccupancy) {
    for (const sim::DemandLevel& l : trace_.levels) push(l.pool, (l.t - trace_.begin).ms, l.gpus);
  } else {
    // Jobs: +gpus at submit, -gpus at the end (clipped to the trace), summed per pool.
    std::vector<std::map<int64_t, Gpus>> delta(trace_.pools.size());
    for (const sim::JobSpec& j : trace_.jobs) {
      int64_t s = (j.submit - trace_.begin).ms;
      int64_t e = std::min(s + j.duration.ms, span_ms_);
      if (e <= s) continue;
      delta[j.pool][s] += j.gpus;
      delta[j.pool][e] -= j.gpus;
    }
    for (size_t p = 0; p < delta.size(); ++p) {
      Gpus level = 0;
      for (auto& [off, d] : delta[p]) {
        level += d;
        push(static_cast<int>(p), off, std::clamp<Gpus>(level, 0, trace_.pools[p].gpus));
      }
    }
  }
  for (const Steps& s : pools_)
    change_offsets_.insert(change_offsets_.end(), s.t.begin(), s.t.end());
  std::sort(change_offsets_.begin(), change_offsets_.end());
  change_offsets_.erase(std::unique(change_offsets_.begin(), change_offsets_.end()),
                        change_offsets_.end());
}

Gpus SimBackend::DemandAt(int pool, Time t) const {
  const Steps& s = pools_[pool];
  if (s.t.empty() || t < trace_.begin) return 0;
  int64_t off = (t - trace_.begin).ms % span_ms_;
  auto it = std::upper_bound(s.t.begin(), s.t.end(), off);
  if (it == s.t.begin()) return 0;
  return s.level[static_cast<size_t>(it - s.t.begin()) - 1];
}

}  // namespace ll::fleet
