// Helpers the control plane's files share (not part of its interface).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocator.h"
#include "api/control_plane.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::api {

// RFC 3339, or null for kTimeMax.
nlohmann::json TimeJson(Time t);
// A holder's shares as stored: "node:gpus,..." in node order; and back.
std::string FormatPlacement(std::vector<alloc::Share> shares);
Result<std::vector<alloc::Share>> ParsePlacement(std::string_view text);
// The setting that keeps where the owner's GPUs of `pool` sit.
std::string InternalPlacementKey(int pool);
// A final state, or the event that reports reaching it (they share names).
bool FinalState(const std::string& s);

// The owner's settings over the named policy: extra headroom and which pools may be sold, and
// the bookings (OwnerLimits in control_plane.cc applies them).
struct ControlPlane::Overrides {
  int headroom = 0;
  std::vector<bool> sellable;
  // Reserved leases booked for a later start (`start_at`): their GPUs are promised from
  // `start` on, and spot sales make way for them from `start - notice` on.
  struct Booking {
    size_t lease;
    int pool;
    Gpus gpus;
    Time start, end;
  };
  std::vector<Booking> bookings;
  Duration notice;
  // GPUs of `pool` booked with a start before `end` (they count against a new term ending then).
  Gpus BookedBefore(int pool, Time end) const {
    Gpus g = 0;
    for (const auto& b : bookings) g += b.pool == pool && b.start < end ? b.gpus : 0;
    return g;
  }
  // GPUs of `pool` whose booked start is within the notice of `now`: not for sale.
  Gpus BookedSoon(int pool, Time now) const {
    Gpus g = 0;
    for (const auto& b : bookings) g += b.pool == pool && now >= b.start - notice ? b.gpus : 0;
    return g;
  }
};

}  // namespace ll::api
