#include "alloc/fleet.h"

#include <algorithm>

#include <fmt/format.h>

namespace ll::alloc {

Result<Fleet> Fleet::Create(FleetSpec spec) {
  if (spec.nodes.empty()) return Status::Invalid("fleet: no nodes");
  if (spec.pools.empty()) return Status::Invalid("fleet: no pools");
  Fleet f;
  f.pool_gpus_.assign(spec.pools.size(), 0);
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    if (!n.pool.valid() || n.pool.v >= spec.pools.size()) {
      return Status::Invalid(fmt::format("fleet: node `{}`: unknown pool", n.name));
    }
    if (n.gpus < 1 || n.gpus > 64) {
      return Status::Invalid(fmt::format("fleet: node `{}`: `gpus` must be 1..64, got {}", n.name, n.gpus));
    }
    if (!n.rack.valid()) return Status::Invalid(fmt::format("fleet: node `{}`: no rack", n.name));
    f.racks_ = std::max<int>(f.racks_, static_cast<int>(n.rack.v) + 1);
    f.total_ += n.gpus;
    f.pool_gpus_[n.pool.v] += n.gpus;
    f.max_node_gpus_ = std::max(f.max_node_gpus_, n.gpus);
  }
  f.spec_ = std::move(spec);
  return f;
}

FleetSpec UniformFleet(int nodes, Gpus gpus, int pools, int per_rack) {
  FleetSpec s;
  for (int p = 0; p < pools; ++p) s.pools.push_back(fmt::format("pool{}", p));
  for (int i = 0; i < nodes; ++i) {
    s.nodes.push_back({fmt::format("node{:05d}", i), PoolId{static_cast<uint32_t>(i % pools)},
                       RackId{static_cast<uint32_t>(i / per_rack)}, gpus});
  }
  return s;
}

}  // namespace ll::alloc
