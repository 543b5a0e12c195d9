// The simulator's input: a fleet, the owner's demand (as occupancy levels or as jobs), and
// the gaps to exclude. Every reader produces this one shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"
#include "core/time.h"
#include "fleet/topology.h"

namespace ll::sim {

// The fleet's shape (fleet/topology.h), under the names the trace readers use.
using fleet::NodeSpec;
using fleet::PoolSpec;

// From `t` on, the owner wants `gpus` GPUs in `pool` (running + pending). Occupancy traces.
struct DemandLevel {
  Time t;
  int pool = 0;
  Gpus gpus = 0;
};

// One owner job. Job traces.
struct JobSpec {
  std::string id;
  Time submit;
  Gpus gpus = 1;
  Duration duration;
  int priority = 0;
  int pool = 0;
};

// A period whose data is missing; excluded from every metric.
struct Gap {
  Time begin;
  Time end;  // exclusive
};

enum class DemandKind { kOccupancy, kJobs };

struct Trace {
  std::string spec;         // e.g. "helios:data/helios_earth_2020_05"
  std::string description;  // one line for reports
  DemandKind kind = DemandKind::kOccupancy;
  Time begin;
  Time end;  // exclusive
  std::vector<PoolSpec> pools;
  std::vector<NodeSpec> nodes;
  std::vector<DemandLevel> levels;  // kOccupancy: sorted by t (ties in file order)
  std::vector<JobSpec> jobs;        // kJobs: sorted by submit (ties by file order)
  std::vector<Gap> gaps;            // sorted, disjoint
  Gpus total_gpus() const;
};

// How to build a fleet for traces that do not carry one (sacct, csv).
struct FleetOptions {
  int nodes = 0;  // 0: smallest fleet of `gpus_per_node` nodes that fits the trace's peak demand
  Gpus gpus_per_node = 8;
  int nodes_per_rack = 16;
  std::string model = "H100";
};

struct ReadOptions {
  FleetOptions fleet;
  double load_scale = 0;  // openb: target owner utilization (0: 0.7)
  uint64_t seed = 1;
  // Racks of traces that carry their own fleet (helios, openb); sacct and csv use `fleet`.
  int nodes_per_rack = 16;
};

// Parses "helios:DIR", "openb:DIR", "sacct:FILE", "csv:FILE" and reads the trace.
// Errors name the file, line and field.
Result<Trace> ReadTrace(const std::string& spec, const ReadOptions& options);

Result<Trace> ReadHelios(const std::string& dir, const ReadOptions& options);
Result<Trace> ReadOpenb(const std::string& dir, const ReadOptions& options);
Result<Trace> ReadSacct(const std::string& file, const ReadOptions& options);
Result<Trace> ReadJobCsv(const std::string& file, const ReadOptions& options);

// Model-API demand: requests with token counts, from an LLM request trace.
struct LlmRequest {
  Duration offset;  // since the trace's first request
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  // Mooncake: the ids of the prompt's 512-token blocks (equal ids, equal content), for
  // prefix-cache studies; empty for Azure.
  std::vector<uint64_t> blocks;
};

struct LlmTrace {
  std::string spec;
  Duration span;
  std::vector<LlmRequest> requests;  // sorted by offset
};

// Parses "azure:FILE" (Azure LLM 2023 CSV) or "mooncake:FILE" (Mooncake JSON Lines).
Result<LlmTrace> ReadLlmTrace(const std::string& spec);

}  // namespace ll::sim
