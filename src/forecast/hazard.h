// Per-pool, hour-of-week hazards of the owner's demand rises: how many GPUs a rise takes back
// per GPU-hour the owner leaves unwanted, learned from the past only. `landlord` asks it
// whether selling in the short-notice (flash) tier pays in this pool at this hour of the week:
// a sold GPU is reclaimed at about the hazard's rate, and each reclaim makes the owner wait the
// notice, so hazard × notice is the owner's expected delay per GPU-hour sold.
#pragma once

#include <cstdint>
#include <vector>

#include "core/gpu.h"
#include "core/time.h"

namespace ll::forecast {

class RiseHazards {
 public:
  // An hour-of-week bucket with less unwanted time than this answers with the pool's overall
  // hazard (two weeks of history leave each bucket at most two hours).
  static constexpr Duration kMinBucketHistory = Duration::Minutes(45);

  explicit RiseHazards(int pools = 0) { Resize(pools); }
  void Resize(int pools);

  // From `since` to `now`, `unwanted` GPUs of the pool were left by the owner. REQUIRES: the
  // intervals of a pool come in time order and do not overlap.
  void Exposed(int pool, Gpus unwanted, Time since, Time now);
  // The owner's demand rose by `gpus` past what was held back, at `now`.
  void Rise(int pool, Gpus gpus, Time now);

  // GPUs taken back per unwanted GPU-hour in the pool's hour-of-week bucket of `now` (the pool's
  // overall rate where the bucket has too little history; 0 before any exposure).
  double PerGpuHour(int pool, Time now) const;

 private:
  struct Bucket {
    int64_t time_ms = 0;      // time observed with something unwanted
    double gpu_ms = 0;        // unwanted GPU-milliseconds
    int64_t risen = 0;        // GPUs of rises
  };
  struct Pool {
    std::vector<Bucket> hours = std::vector<Bucket>(168);
    Bucket all;
  };
  static double Rate(const Bucket& b);
  std::vector<Pool> pools_;
};

}  // namespace ll::forecast
