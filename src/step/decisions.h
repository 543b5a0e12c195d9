// What the core decided about leases, in order, one line each: how a test holds `landlord sim`
// and `landlord serve` side by side (tests/step/sim_predicts_serve_test.cc). Both drivers write
// to one when given it; neither reads it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "core/money.h"
#include "core/time.h"

namespace ll::step {

class DecisionLog {
 public:
  // `lease` is the driver's number for the lease: 0, 1, 2, ... in the order leases were made.
  void Started(Time now, uint64_t lease, const alloc::Holder& h);
  void Noticed(Time now, uint64_t lease, const alloc::Holder& h, alloc::NoticeReason reason);
  void Ended(Time now, uint64_t lease, alloc::EndReason reason);
  void Repriced(Time now, uint64_t lease, Money price);
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
};

}  // namespace ll::step
