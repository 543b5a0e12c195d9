// Selling policies: how much of a pool's idle capacity may be sold right now, and which
// reserved terms the forecast can guarantee. Small interface, chosen by name in one factory
// (Mesos Sorter + Allocator::create). The allocator enforces whatever limit a policy returns:
// it never sells past it and reclaims (with notice) what exceeds it.
#pragma once

#include <memory>
#include <string>

#include "core/gpu.h"
#include "core/ids.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::forecast {
class DemandForecast;
}

namespace ll::alloc {

enum class HolderClass : uint8_t { kInternal, kReserved, kSpot, kInference };

// A pool as a policy sees it.
struct PoolView {
  PoolId pool;
  Gpus capacity = 0;
  Gpus internal_want = 0;  // running + queued owner demand, capped at capacity
  Gpus internal_held = 0;
  Gpus reserved = 0;
  Gpus outside_active = 0;  // spot + inference not under notice
  Gpus noticed = 0;
  Gpus free = 0;
};

// Perfect knowledge of the owner's future demand. Only `oracle` gets one.
class FutureDemand {
 public:
  virtual ~FutureDemand() = default;
  // The most the owner wants in `pool` at any time in [t0, t1].
  virtual Gpus MaxDemand(PoolId pool, Time t0, Time t1) const = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual const std::string& name() const = 0;
  // Most GPUs that spot and inference holders not under notice may hold in the pool now.
  virtual Gpus SellLimit(const PoolView& pool, Time now) = 0;
  // Most of SellLimit that may be sold with the standard notice; the rest only to a shorter tier
  // (flash), which is reclaimed first. Default: all of it.
  virtual Gpus StandardLimit(const PoolView& pool, Time now) { return SellLimit(pool, now); }
  // Largest reserved lease for [now, end) that the policy guarantees (0: sells no reserved).
  virtual Gpus ReservedRoom(const PoolView& /*pool*/, Time /*now*/, Time /*end*/) { return 0; }
  // The owner's demand in the pool changed (after the allocator applied it).
  virtual void OnDemand(const PoolView& /*pool*/, Time /*now*/) {}
  // The owner's demand noticed a spot lease of `gpus` GPUs that leaves after `notice`.
  virtual void OnOwnerReclaim(const PoolView& /*pool*/, Gpus /*gpus*/, Duration /*notice*/, Time /*now*/) {}
};

// The default of PolicyContext::flash_max_delay, for `sim` and `serve` alike (docs/sim.md:
// chosen on the first two weeks of Helios May 2020).
inline constexpr double kDefaultFlashMaxDelay = 0;

struct PolicyContext {
  Duration notice = Duration::Seconds(120);
  // How often the driver calls Allocator::Rebalance; `oracle` looks ahead notice + tick.
  Duration tick = Duration::Seconds(60);
  const forecast::DemandForecast* forecast = nullptr;  // landlord
  const FutureDemand* future = nullptr;                // oracle only
  // `landlord` tuning (see landlord's comment in policies.cc)
  Duration cooldown = Duration::Minutes(30);
  double delay_budget = 0.05;  // target delayed fraction of owner GPU-time per pool
  Duration warmup = Duration::Hours(6);
  Duration reserved_min_history = Duration::Hours(24 * 14);  // before any reserved term
  // Reserved terms: 1 promises only capacity above the owner's peak so far (and the forecast's
  // maximum); below 1 the term is sized to the forecast's `reserved_quantile` of demand over
  // the term (the lower quantile of what the owner leaves free), without the peak.
  double reserved_quantile = 1.0;
  // The flash tier's notice (zero: no flash tier): landlord then sells the GPUs its cooldown
  // holds back as flash, keeping a headroom learned from rises at that notice.
  Duration flash_notice;
  // Per pool and hour of the week (forecast::RiseHazards): the flash tier is sold only where
  // the GPUs the owner took back from flash leases per GPU-hour it left unwanted, times the
  // flash notice, is at most this; elsewhere the pool sells the standard tier alone. 0: flash
  // everywhere.
  double flash_max_delay = kDefaultFlashMaxDelay;
  int pools = 0;
};

// Names: `baseline`, `spot-all`, `lend-limit:F` (0 ≤ F ≤ 1), `landlord`, `oracle`.
Result<std::unique_ptr<Policy>> MakePolicy(const std::string& name, const PolicyContext& ctx);
// Whether MakePolicy would accept `name` (with whatever inputs the policy needs).
Status ValidatePolicyName(const std::string& name);

}  // namespace ll::alloc
