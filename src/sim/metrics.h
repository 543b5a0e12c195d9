// The metrics of DESIGN.md, with the same names in `landlord sim --json`, `/metrics` and the
// dashboard. Values that do not apply to a trace (per-job waits on an occupancy trace) are
// NaN and are written as JSON null and "-" in tables.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/time.h"

namespace ll::sim {

struct PolicyMetrics {
  double capacity_gpu_h = 0;
  double internal_gpu_h = 0;
  double idle_gpu_h = 0;  // idle under `baseline`
  double sold_gpu_h = 0;  // reserved + spot + inference
  double reserved_gpu_h = 0;
  double spot_gpu_h = 0;
  double flash_gpu_h = 0;  // of spot_gpu_h: on the flash notice tier
  double inference_gpu_h = 0;
  double harvested_gpu_h = 0;  // sold GPU-hours that were idle under `baseline` (alloc/harvest.h)
  double harvest_ratio = 0;    // harvested_gpu_h / idle_gpu_h: at most 1
  double sold_while_owner_waited_gpu_h = 0;  // sold GPU-hours in pools where the owner's demand waited
  double utilization = 0;
  double internal_wait_added_mean_s = NAN;  // job traces only
  double internal_wait_added_p99_s = NAN;   // job traces only
  double internal_delayed_gpu_h = 0;
  double internal_delayed_frac = 0;
  double reclaim_latency_p50_s = 0;
  double reclaim_latency_p99_s = 0;
  double spot_preemptions_per_1k_lease_h = 0;
  int64_t reserved_violations = 0;
  int64_t forecast_misses = 0;
  double revenue_usd = 0;
  double revenue_per_gpu_h = 0;
  double cost_per_mtok_usd = NAN;  // only with inference demand
  double energy_kwh = 0;
  double revenue_per_kwh_usd = 0;
  double margin_usd = 0;
  double spot_price_mean_usd = 0;  // time-weighted mean clearing price per GPU-hour
  int64_t reclaims = 0;
  int64_t leases = 0;
  int64_t events = 0;
  double wall_s = 0;
  double events_per_s = 0;

  // Every metric in a fixed order, for tables and JSON.
  std::vector<std::pair<std::string, double>> Fields() const;
};

// The q-quantile of `v` (nearest rank; 0 when empty).
double Quantile(std::vector<double> v, double q);

// GPUs by class at one instant, for the stacked chart.
struct FleetSample {
  Time t;
  int32_t internal = 0;
  int32_t reserved = 0;
  int32_t spot = 0;
  int32_t inference = 0;
  int32_t idle = 0;
  int32_t demand = 0;    // the owner's demand (running and waiting)
  int32_t forecast = 0;  // the forecast of it over the next sample interval
  int64_t spot_price_micros = 0;
  int64_t revenue_micros = 0;  // lease revenue accrued so far
  bool in_gap = false;
};

struct TraceSummary {
  std::string spec;
  std::string description;
  std::string begin;  // FormatUtc
  std::string end;
  int64_t nodes = 0;
  int64_t gpus = 0;
  int64_t pools = 0;
  int64_t jobs = 0;           // job traces
  double excluded_h = 0;      // data gaps excluded from metrics
  std::string external;       // "saturating" or a spec
  std::string external_prices;  // how spot max prices were drawn
  std::string inference;      // "" or a spec
  int64_t notice_s = 120;
  uint64_t seed = 1;
};

struct SimReport {
  TraceSummary trace;
  std::vector<std::pair<std::string, PolicyMetrics>> policies;  // in the order run
  std::vector<FleetSample> landlord_series;  // for --svg; may be empty
};

}  // namespace ll::sim
