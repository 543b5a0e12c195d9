// The `sim` fleet backend: the owner's demand comes from a cluster trace (any kind `landlord
// sim` reads), replayed in a loop, plus owner jobs injected through the admin API. A job
// trace becomes occupancy levels (each job holds its GPUs from submit for its duration).
#pragma once

#include <vector>

#include "core/gpu.h"
#include "core/time.h"
#include "sim/trace.h"

namespace ll::fleet {

class SimFleet {
 public:
  explicit SimFleet(const sim::Trace& trace);

  const sim::Trace& trace() const { return trace_; }
  int pool_count() const { return static_cast<int>(trace_.pools.size()); }
  // The trace's demand of `pool` at t; after the trace's end it starts over from its begin.
  Gpus TraceLevel(int pool, Time t) const;
  // Every time in (t0, t1] at which some pool's trace level changes, in order (looping).
  // Calls fn(t) for each; used to warm the forecast over the history.
  template <typename Fn>
  void ForEachChange(Time t0, Time t1, Fn fn) const;

 private:
  struct Steps {
    std::vector<int64_t> t;  // offsets from trace begin, ms, sorted
    std::vector<Gpus> level;
  };
  sim::Trace trace_;
  int64_t span_ms_ = 1;
  std::vector<Steps> pools_;
  std::vector<int64_t> change_offsets_;  // union of every pool's step offsets, sorted, unique
};

template <typename Fn>
void SimFleet::ForEachChange(Time t0, Time t1, Fn fn) const {
  if (change_offsets_.empty() || t1 <= t0) return;
  const int64_t begin = trace_.begin.ms;
  int64_t lap = (t0.ms - begin) / span_ms_;
  if (t0.ms < begin) lap = -1;
  for (;; ++lap) {
    const int64_t base = begin + lap * span_ms_;
    if (base > t1.ms) return;
    for (int64_t off : change_offsets_) {
      const int64_t t = base + off;
      if (t <= t0.ms) continue;
      if (t > t1.ms) return;
      fn(Time{t});
    }
  }
}

}  // namespace ll::fleet
