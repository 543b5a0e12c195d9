// FleetStats: the control plane's read model of the fleet since the server started — GPU-time
// by class, the owner's waiting, lease revenue, the counters of what happened, and samples
// over time for the dashboard. What `/metrics`, the owner's report and the dashboard show.
//
// A component of the control plane (docs/architecture.md): the step tells it each interval
// (Integrate) and when a sample is due; it renders nothing itself.
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <cstdint>
#include <vector>

#include "alloc/allocator.h"
#include "core/gpu.h"
#include "core/money.h"
#include "core/time.h"

namespace ll::control {

class FleetStats {
 public:
  // GPU-milliseconds by class since start, and Σ price(µ$/GPU-h) × GPUs × ms of the leases.
  struct Totals {
    __int128 capacity_ms = 0, internal_ms = 0, reserved_ms = 0, spot_ms = 0, inference_ms = 0, waiting_ms = 0;
    __int128 revenue_rate_ms = 0;
    // Harvest by alloc/harvest.h: the GPU-ms the owner alone would leave idle, the sold GPU-ms
    // within them, and the sold GPU-ms while the owner's demand waited.
    __int128 idle_alone_ms = 0, harvested_ms = 0, sold_while_owner_waited_ms = 0;

    static double GpuHours(__int128 ms) { return static_cast<double>(ms) / 3.6e6; }
    double revenue_usd() const { return static_cast<double>(revenue_rate_ms) / 3.6e6 / 1e6; }
    int64_t revenue_micros() const { return static_cast<int64_t>(revenue_rate_ms / 3'600'000); }
    // What the owner left idle: capacity less every class held.
    double idle_gpu_h() const {
      return GpuHours(capacity_ms - internal_ms - reserved_ms - spot_ms - inference_ms);
    }
    // Harvested over what the owner alone would leave idle: at most 1.
    double harvest_ratio() const { return idle_alone_ms > 0 ? GpuHours(harvested_ms) / GpuHours(idle_alone_ms) : 0.0; }
    // The class's share of capacity (0 before any).
    double Share(__int128 ms) const { return capacity_ms > 0 ? GpuHours(ms) / GpuHours(capacity_ms) : 0.0; }
  };
  struct Sample {
    Time t;
    Gpus internal = 0, reserved = 0, spot = 0, inference = 0, free = 0;
    Gpus demand = 0;    // the owner's demand (running and waiting)
    Gpus forecast = 0;  // the forecast of it over the next sample interval
    Money spot_price;
    int64_t revenue_micros = 0;  // lease revenue accrued since start
  };
  struct Counters {
    int64_t reclaims = 0;         // leases reclaimed after a notice
    int64_t leases_started = 0;
    int64_t bookings_missed = 0;  // booked reserved leases that could not start
  };

  // Adds `ms` of the allocator's occupancy now, with leases paying `rate` (Σ price × GPUs).
  void Integrate(const alloc::Allocator& alloc, __int128 rate, int64_t ms);
  // Whether a sample `every` after the last one is due at `now` (the first one always is).
  bool SampleDue(Time now, Duration every) const { return last_sample_ == kTimeMax || now - last_sample_ >= every; }
  // The allocator's classes at `now`; the caller adds the demand, forecast and price.
  Sample Occupancy(const alloc::Allocator& alloc, Time now) const;
  // Keeps the newest 9,000 to 10,000 samples.
  void Add(const Sample& s);

  const Totals& totals() const { return totals_; }
  const std::vector<Sample>& samples() const { return samples_; }
  Counters& counters() { return counters_; }
  const Counters& counters() const { return counters_; }

 private:
  Totals totals_;
  Counters counters_;
  Time last_sample_ = kTimeMax;
  std::vector<Sample> samples_;
};

}  // namespace ll::control
