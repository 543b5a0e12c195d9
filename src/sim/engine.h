// The discrete-event simulator: replays a trace's owner demand, external (tenant) demand and
// model-API demand through one allocator and policy, and measures what happened.
//
// Deterministic: events are ordered by (time, sequence number); randomness comes from the
// seed. The allocator is the same core `landlord serve` drives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "core/status.h"
#include "market/price_book.h"
#include "sim/metrics.h"
#include "sim/trace.h"
#include "step/decisions.h"

namespace ll::sim {

struct InferenceOptions {
  std::string spec;                 // "" (none), "azure:PATH" or "mooncake:PATH"
  double rate_scale = 40;           // the published traces are samples: replay at this multiple
  int64_t tokens_per_s_per_gpu = 1500;  // output tokens a GPU of a replica serves per second
};

// One scripted tenant request: the simulator plays it as `landlord serve` takes the API call
// (tests/step/sim_predicts_serve_test.cc drives both with one script).
struct TenantAction {
  enum class Kind : uint8_t {
    kSpot,      // a spot lease of `gpus` bidding `max_price`
    kReserved,  // a reserved lease of `gpus` for `term`, starting now
    kRelease,   // the tenant releases lease number `lease` (if it is still live)
    kFloor,     // the owner sets the spot floor to `floor`
  };
  Time at;
  Kind kind = Kind::kSpot;
  Gpus gpus = 0;
  Money max_price;
  Duration term;
  uint64_t lease = 0;
  Money floor;
};

// A lease the script made: what the ledger bills it for.
struct ScriptedLease {
  bool reserved = false;
  Gpus gpus = 0;
  Time start, end = kTimeMax;
  std::vector<std::pair<Time, Money>> prices;  // per GPU-hour from each time on, from the start
};

struct SimOptions {
  Duration notice = Duration::Seconds(120);
  // The flash tier's notice (saturating demand takes flash leases on what the policy holds back
  // from the standard tier; reclaimed first). Zero or not shorter than `notice`: no flash tier.
  Duration flash_notice = Duration::Seconds(30);
  Duration min_runtime;  // spot leases not noticed before (AllocatorOptions::min_runtime)
  Duration tick = Duration::Seconds(60);  // the policy re-evaluates limits and the market clears
  uint64_t seed = 1;
  std::string external = "saturating";  // or a job-trace spec re-read as spot requests
  InferenceOptions inference;
  market::PriceBook prices;
  Duration reserved_term = Duration::Hours(4);
  Duration sample_every = Duration::Minutes(10);  // fleet series for the chart
  bool check_invariants = false;  // check every rule after every event (tests)
  // landlord tuning
  Duration cooldown = Duration::Minutes(30);
  double delay_budget = 0.05;
  Duration warmup = Duration::Hours(6);
  Duration reserved_min_history = Duration::Hours(24 * 14);
  double reserved_quantile = 1.0;  // alloc::PolicyContext::reserved_quantile
  double flash_max_delay = alloc::kDefaultFlashMaxDelay;  // alloc::PolicyContext::flash_max_delay
  // Scripted tenants, in time order: when set they are the only outside demand (no saturating
  // or external requests, no reserved offers) and the market clears at every step, as in
  // `landlord serve`. The decisions go to `decisions` (if set), the leases to the result.
  std::vector<TenantAction> script;
  step::DecisionLog* decisions = nullptr;
};

// What a baseline run leaves for the others: per-job waits (matched by job index) and the
// owner's demand over time (the oracle's knowledge of the future).
struct BaselineRecord {
  std::vector<int64_t> job_wait_ms;  // -1: never started
  // Per pool, (time, demand) change points of internal_want.
  std::vector<std::vector<std::pair<Time, Gpus>>> demand;
  // Per pool, (time, GPUs idle) change points: what another policy's sales may count as harvest.
  std::vector<std::vector<std::pair<Time, Gpus>>> idle;
};

struct RunResult {
  PolicyMetrics metrics;
  std::vector<FleetSample> series;
  BaselineRecord record;
  std::vector<ScriptedLease> scripted;  // by lease number
};

// Runs one policy over the trace. `baseline` must come from a `baseline` run of the same trace
// and options (for waits and for `oracle`); it may be null only for `baseline` itself.
// `progress` (optional) is called with the fraction done.
// The allocator's fleet for a trace's nodes and pools, and each pool's GPUs (shared by the
// simulator and the server's sim fleet).
alloc::FleetSpec FleetSpecOf(const Trace& trace, std::vector<Gpus>* pool_gpus);

Result<RunResult> RunPolicy(const Trace& trace, const std::string& policy, const SimOptions& options,
                            const BaselineRecord* baseline, void (*progress)(double, void*) = nullptr,
                            void* progress_arg = nullptr);

}  // namespace ll::sim
