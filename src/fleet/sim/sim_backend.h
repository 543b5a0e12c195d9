// The `sim` fleet backend (fleet/backend.h): the owner's demand comes from a cluster trace (any
// kind `landlord sim` reads), replayed in a loop, plus owner jobs injected through the admin API. A
// job trace becomes occupancy levels (each job holds its GPUs from submit for its duration).
#pragma once

#include <vector>

#include "core/gpu.h"
#include "core/time.h"
#include "fleet/backend.h"
#include "sim/trace.h"

namespace ll::fleet {

class SimBackend final : public Backend {
 public:
  explicit SimBackend(const sim::Trace& trace);

  const std::string& name() const override { return name_; }
  const Topology& topology() const override { return topology_; }
  bool DemandFromTrace() const override { return true; }
  // The trace's demand of `pool` at t; after the trace's end it starts over from its begin.
  Gpus DemandAt(int pool, Time t) const override;
  // Every time in (t0, t1] at which some pool's trace level changes (looping).
  void DemandChanges(Time t0, Time t1, std::vector<Time>* out) const override {
    ForEachChange(t0, t1, [&](Time t) { out->push_back(t); });
  }

 private:
  template <typename Fn>
  void ForEachChange(Time t0, Time t1, Fn fn) const;

  const std::string name_ = "sim";
  Topology topology_;
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
void SimBackend::ForEachChange(Time t0, Time t1, Fn fn) const {
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
