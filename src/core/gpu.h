// GPU counts and GPU-time. Counts are small integers; GPU-time is integer GPU-milliseconds
// so that sums over a month at 100,000 GPUs stay exact in int64.
#pragma once

#include <cstdint>

namespace ll {

using Gpus = int32_t;      // a number of whole GPUs
using GpuMillis = int64_t;  // GPU-milliseconds

inline constexpr double GpuHours(GpuMillis gm) { return static_cast<double>(gm) / 3'600'000.0; }

}  // namespace ll
