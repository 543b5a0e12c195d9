// Model-API demand in the simulator: an LLM request trace replayed as per-minute token rates
// (looped over the simulated period), inference replicas sized to it at every tick, and the
// tokens they serve. A replica holds one GPU and wins it over spot when serving tokens earns
// more per GPU-hour than the spot price (DESIGN.md "Inference vs spot").
//
// Apart from sim::Engine's run, whose other job is the owner's and the tenants' leases.
#pragma once

#include <cstdint>
#include <vector>

#include "alloc/allocator.h"
#include "core/money.h"
#include "core/status.h"
#include "core/time.h"
#include "market/price_book.h"

namespace ll::sim {

struct InferenceOptions;

class InferenceDemand {
 public:
  // Reads the trace of `options.spec` (none when empty: then enabled() is false).
  Status Load(const InferenceOptions& options);
  bool enabled() const { return enabled_; }

  // At a tick, `since` after the trace's begin: replicas sized to the minute's demand (scaled
  // down with slack; up while GPUs are sellable, then spot leases noticed to make room when a
  // replica earns more than `spot`). `baseline`: only the bookkeeping, nothing placed.
  void Size(alloc::Allocator& alloc, Time now, Duration since, const market::PriceBook& prices, Money floor,
            Money spot, bool baseline);
  // `ms` of serving at the capacity of the replicas now.
  void Serve(const alloc::Allocator& alloc, Duration since, int64_t ms);

  double in_tokens() const { return in_tokens_; }
  double out_tokens() const { return out_tokens_; }

 private:
  size_t Minute(Duration since) const { return static_cast<size_t>(since.ms / 60'000) % out_tps_.size(); }

  bool enabled_ = false;
  int64_t tokens_per_s_per_gpu_ = 0;
  std::vector<double> in_tps_, out_tps_;  // per minute of the trace
  std::vector<HolderId> replicas_;
  double in_tokens_ = 0, out_tokens_ = 0;
};

}  // namespace ll::sim
