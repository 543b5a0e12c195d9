// The fleet's shape as every driver sees it: nodes with GPUs in racks and quota pools. The
// simulator's traces carry one (sim/trace.h) and each fleet backend answers one (backend.h);
// the allocator takes it as an alloc::FleetSpec (FleetSpecOf).
#pragma once

#include <string>
#include <vector>

#include "alloc/fleet.h"
#include "core/gpu.h"
#include "core/ids.h"

namespace ll::fleet {

struct NodeSpec {
  std::string name;
  int pool = 0;  // index into the pools
  int rack = 0;
  Gpus gpus = 8;
  std::string model = "H100";
};

// A quota pool: owner demand of a pool runs only on that pool's nodes (Helios VCs).
struct PoolSpec {
  std::string name;
  Gpus gpus = 0;  // sum of its nodes' GPUs
};

struct Topology {
  std::vector<PoolSpec> pools;
  std::vector<NodeSpec> nodes;
};

// The allocator's view of `pools` and `nodes`; `pool_gpus` gets each pool's GPUs.
inline alloc::FleetSpec FleetSpecOf(const std::vector<PoolSpec>& pools,
                                    const std::vector<NodeSpec>& nodes,
                                    std::vector<Gpus>* pool_gpus) {
  alloc::FleetSpec spec;
  pool_gpus->assign(pools.size(), 0);
  for (const auto& p : pools) spec.pools.push_back(p.name);
  for (const auto& n : nodes) {
    spec.nodes.push_back({n.name, PoolId{static_cast<uint32_t>(n.pool)},
                          RackId{static_cast<uint32_t>(n.rack)}, n.gpus});
    (*pool_gpus)[n.pool] += n.gpus;
  }
  return spec;
}

}  // namespace ll::fleet
