// The owner's settings over the named policy — extra headroom and which pools may be sold —
// and the reserved leases booked for a later start. Shared by the control plane (which sets
// them), control::Leases (which books) and the policy wrapper that applies them
// (OwnerLimits in src/api/load.cc).
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <cstddef>
#include <vector>

#include "core/gpu.h"
#include "core/time.h"

namespace ll::control {

struct Overrides {
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
  // The flash tier's notice (zero: the tier is not offered). Only below `notice`: a spot
  // lease asked on the flash tier is then placed with it, priced at the flash discount.
  Duration flash_notice;
  bool FlashOffered() const { return flash_notice.ms > 0 && flash_notice < notice; }
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

}  // namespace ll::control
