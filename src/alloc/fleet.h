// The static shape of the fleet: nodes with GPUs, racks, quota pools.
#pragma once

#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/ids.h"
#include "core/status.h"

namespace ll::alloc {

struct NodeSpec {
  std::string name;
  PoolId pool;
  RackId rack;
  Gpus gpus = 8;  // one NVLink domain
};

struct FleetSpec {
  std::vector<std::string> pools;
  std::vector<NodeSpec> nodes;
};

class Fleet {
 public:
  // Validates: at least one node, every node's pool exists, 1 ≤ gpus ≤ 64.
  static Result<Fleet> Create(FleetSpec spec);

  const std::vector<NodeSpec>& nodes() const { return spec_.nodes; }
  const NodeSpec& node(NodeId n) const { return spec_.nodes[n.v]; }
  const std::vector<std::string>& pools() const { return spec_.pools; }
  int rack_count() const { return racks_; }
  Gpus total_gpus() const { return total_; }
  Gpus pool_gpus(PoolId p) const { return pool_gpus_[p.v]; }
  Gpus max_node_gpus() const { return max_node_gpus_; }

 private:
  FleetSpec spec_;
  int racks_ = 0;
  Gpus total_ = 0;
  Gpus max_node_gpus_ = 0;
  std::vector<Gpus> pool_gpus_;
};

// A uniform fleet for tests and benchmarks: `nodes` nodes of `gpus` GPUs in `pools` pools
// (round-robin), `per_rack` nodes a rack.
FleetSpec UniformFleet(int nodes, Gpus gpus, int pools, int per_rack);

}  // namespace ll::alloc
