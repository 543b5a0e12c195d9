// Helpers the control plane's files share (not part of its interface).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocator.h"
#include "api/control_plane.h"
#include "control/placement.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::api {

// RFC 3339, or null for kTimeMax.
nlohmann::json TimeJson(Time t);
// A holder's shares as stored: "node:gpus,..." in node order; and back.
using control::FormatPlacement;
using control::ParsePlacement;
// The setting that keeps where the owner's GPUs of `pool` sit.
std::string InternalPlacementKey(int pool);
using control::FinalState;

}  // namespace ll::api
