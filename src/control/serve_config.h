// `landlord serve`'s settings as the control plane takes them (docs/serve.example.toml
// documents every key). api/config.h reads them from TOML and the command line.
#pragma once

#include <string>
#include <vector>

#include "core/time.h"
#include "fleet/slurm/slurm_options.h"
#include "gateway/gateway.h"
#include "market/price_book.h"

namespace ll::control {

// [workloads]: tenants' workloads on the sim fleet (docs/workloads.md).
struct WorkloadConfig {
  bool enabled = true;
  std::string runtime_root;      // the sandboxes' work dirs; "": `<data_dir>-workloads`
  int64_t memory_mb = 0;         // per workload; 0: unbounded
  int64_t max_processes = 0;     // per workload; 0: unbounded
  int64_t log_bytes = 1 << 20;   // kept per workload (oldest dropped)
  bool sigterm_on_notice = true;
  Duration stop_grace = Duration::Seconds(10);  // a released lease's workload: SIGTERM, then SIGKILL
  int64_t keep_ended = 64;       // ended workloads whose logs stay readable
};

struct ServeConfig {
  // [server]
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "landlord-data";
  // The store: "" for SQLite in `data_dir` (the embedded default), or a postgresql:// URL shared
  // by several servers (one leads, the others stand by) and standalone gateways.
  std::string store;
  int max_connections = 1024;
  size_t max_body_bytes = 1 << 20;
  // A request (headers and body) must arrive within this, counted from the end of the last
  // response; slow senders and idle keep-alive connections are closed after it.
  Duration request_timeout = Duration::Seconds(10);
  Duration tick = Duration::Millis(100);            // wall time between control-loop steps
  // [clock]
  double speed = 60;  // server-clock seconds per wall second (sim fleet)
  // [fleet]
  std::string backend = "sim";
  std::string trace = "helios:data/helios_earth_2020_05";
  int nodes = 0;  // csv/sacct traces: fleet size (0: fit the trace)
  int gpus_per_node = 8;
  Duration history = Duration::Hours(24 * 15);  // of the trace, learned before serving
  fleet::SlurmOptions slurm;  // backend = "slurm": the slurm_* keys
  // [policy]
  std::string policy = "landlord";
  Duration notice = Duration::Seconds(120);
  Duration flash_notice = Duration::Seconds(30);  // the flash spot tier (0: not offered)
  Duration min_runtime;  // a spot lease runs this long before a notice (AllocatorOptions::min_runtime)
  Duration cooldown = Duration::Minutes(30);
  double delay_budget = 0.05;
  Duration warmup = Duration::Hours(6);
  Duration reserved_min_history = Duration::Hours(24 * 14);
  int headroom_gpus = 0;               // kept unsold on top of the policy's own headroom
  std::vector<std::string> sellable_pools;  // empty: every pool
  Duration sample_every = Duration::Seconds(60);  // server clock, for /admin/timeseries
  // [prices]
  market::PriceBook prices;
  // [gateway]: the model API. By default the sim fleet runs two simulated replicas of one
  // model (gateway/fake_model.h); `[[gateway.upstreams]]` or `[[gateway.sim_models]]` in a
  // config replace that default.
  bool gateway_enabled = true;
  Duration meter_flush = Duration::Millis(0);  // group commit window of metered usage (0: none)
  int64_t gateway_threads = 0;  // a standalone gateway's event loops (0: one per core)
  gateway::GatewayOptions gateway = DefaultGatewayOptions();
  WorkloadConfig workloads;

  static gateway::GatewayOptions DefaultGatewayOptions() {
    gateway::GatewayOptions g;
    g.sim_models.push_back({.model = "landlord-sim-8b", .replicas = 2, .gpus_per_replica = 8, .tokens_per_s = 50,
                            .first_token = Duration::Millis(50)});
    return g;
  }
};

}  // namespace ll::control
