// The gateway's configuration (`[gateway]` in the server's config) and its counters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/time.h"
#include "gateway/router.h"

namespace ll::gateway {

// A static upstream: the owner's own model server (vLLM, SGLang, llama.cpp server, ...).
struct UpstreamConfig {
  std::string model;
  std::string url;  // http://HOST:PORT
};

// A real engine that runs a model's replicas (a model's config names it): which engine, and
// how to start its server.
struct EngineConfig {
  std::string engine = "llama.cpp";  // the one engine so far
  std::string server;                // the `llama-server` binary
  std::string model_path;            // the GGUF file
  std::vector<std::string> args;     // more arguments (e.g. "-c", "4096", "-np", "2")
  int threads = 1;                   // `-t`: one per server (two per server on 2 cores collapse)
  std::string log_dir;               // each replica's output in <log_dir>/<id>.log ("" : discarded)
};

// The sim fleet's model servers: replicas simulated in process (fake_model.h), or real engine
// processes for a model named in `GatewayOptions::engines`.
struct SimModelConfig {
  std::string model;
  int replicas = 2;
  // GPUs each replica holds on the fleet (an inference holder the allocator places, drains
  // and reclaims like any outsider); 0: the replicas run beside the fleet and hold none.
  int gpus_per_replica = 8;
  double tokens_per_s = 50;
  Duration first_token = Duration::Millis(50);
};

// Slices (docs/scale-out.md): a standalone gateway admits and settles against slices of each
// key's balance and rate limits that it leases from the control plane.
struct SliceOptions {
  bool enabled = true;                          // the standalone gateway's; false: asks per request
  Duration ttl = Duration::Seconds(10);         // the control plane's: a slice's lease, renewed by reports
  Duration horizon = Duration::Seconds(2);      // the gateway's: a slice holds about this much of the key's rate
  Duration idle = Duration::Seconds(2);         // the gateway's: a slice unused this long returns
};

struct GatewayOptions {
  int64_t rpm = 600;            // requests per minute per key (0: no limit)
  int64_t tpm = 1'000'000;      // tokens per minute per key (0: no limit)
  int64_t max_output_tokens = 4096;  // a request without max_tokens is held for this many
  size_t prefix_bytes = 4096;   // prompt bytes hashed for affinity (about two 512-token KV blocks)
  int max_attempts = 3;         // replicas tried before the first byte
  Duration connect_timeout = Duration::Seconds(2);
  // Connect to the response header: a non-streamed answer's whole generation (504 past it).
  Duration first_byte_timeout = Duration::Seconds(600);
  Duration idle_timeout = Duration::Seconds(60);  // between stream bytes
  size_t max_response_bytes = 64u << 20;
  RouterOptions router;
  std::vector<UpstreamConfig> upstreams;
  std::vector<SimModelConfig> sim_models;
  // By model (one of `sim_models`): its replicas are this engine's server processes
  // (engine_replicas.h), placed and drained like simulated ones; its tokens_per_s and
  // first_token are then the engine's own.
  std::map<std::string, EngineConfig> engines;
  SliceOptions slices;
};

// What the filters count for the metrics.
struct GatewayStats {
  int64_t requests = 0, retries = 0, upstream_failures = 0, interrupted_streams = 0;
  int64_t input_tokens = 0, output_tokens = 0;
};

}  // namespace ll::gateway
