#include "sim/metrics.h"

#include <algorithm>

namespace ll::sim {

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

std::vector<std::pair<std::string, double>> PolicyMetrics::Fields() const {
  return {
      {"capacity_gpu_h", capacity_gpu_h},
      {"internal_gpu_h", internal_gpu_h},
      {"idle_gpu_h", idle_gpu_h},
      {"sold_gpu_h", sold_gpu_h},
      {"reserved_gpu_h", reserved_gpu_h},
      {"spot_gpu_h", spot_gpu_h},
      {"flash_gpu_h", flash_gpu_h},
      {"inference_gpu_h", inference_gpu_h},
      {"harvested_gpu_h", harvested_gpu_h},
      {"harvest_ratio", harvest_ratio},
      {"sold_while_owner_waited_gpu_h", sold_while_owner_waited_gpu_h},
      {"utilization", utilization},
      {"internal_wait_added_mean_s", internal_wait_added_mean_s},
      {"internal_wait_added_p99_s", internal_wait_added_p99_s},
      {"internal_delayed_gpu_h", internal_delayed_gpu_h},
      {"internal_delayed_frac", internal_delayed_frac},
      {"reclaim_latency_p50_s", reclaim_latency_p50_s},
      {"reclaim_latency_p99_s", reclaim_latency_p99_s},
      {"spot_preemptions_per_1k_lease_h", spot_preemptions_per_1k_lease_h},
      {"reserved_violations", static_cast<double>(reserved_violations)},
      {"forecast_misses", static_cast<double>(forecast_misses)},
      {"revenue_usd", revenue_usd},
      {"revenue_per_gpu_h", revenue_per_gpu_h},
      {"cost_per_mtok_usd", cost_per_mtok_usd},
      {"energy_kwh", energy_kwh},
      {"revenue_per_kwh_usd", revenue_per_kwh_usd},
      {"margin_usd", margin_usd},
      {"spot_price_mean_usd", spot_price_mean_usd},
      {"reclaims", static_cast<double>(reclaims)},
      {"leases", static_cast<double>(leases)},
      {"events", static_cast<double>(events)},
      {"wall_s", wall_s},
      {"events_per_s", events_per_s},
  };
}

}  // namespace ll::sim
