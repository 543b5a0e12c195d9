#include "core/ids.h"

#include <fmt/format.h>

namespace ll {

std::string MakeExternalId(std::string_view prefix, uint64_t seq) {
  return fmt::format("{}_{:06d}", prefix, seq);
}

}  // namespace ll
