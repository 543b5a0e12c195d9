#include "alloc/harvest.h"

#include <algorithm>

namespace ll::alloc {

SoldSplit SplitSold(const Allocator& alloc, const std::vector<Gpus>* idle_alone) {
  SoldSplit s;
  for (int p = 0; p < alloc.pool_count(); ++p) {
    const PoolCounters& c = alloc.pool(PoolId{static_cast<uint32_t>(p)});
    const Gpus sold = c.reserved + c.spot + c.inference;
    const Gpus idle = idle_alone != nullptr ? (*idle_alone)[p] : std::max<Gpus>(0, c.capacity - c.internal_want);
    s.idle_alone += idle;
    s.harvested += std::min(sold, idle);
    s.while_owner_waited += std::min(sold, std::max<Gpus>(0, c.internal_want - c.internal_held));
  }
  return s;
}

}  // namespace ll::alloc
