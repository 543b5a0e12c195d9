// How a holder's GPUs are stored: "node:gpus,..." in node order (the lease records' and the
// owner's placement settings' text), so that a restart puts each holder back exactly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "alloc/allocator.h"
#include "core/status.h"

namespace ll::control {

std::string FormatPlacement(std::vector<alloc::Share> shares);
Result<std::vector<alloc::Share>> ParsePlacement(std::string_view text);

}  // namespace ll::control
