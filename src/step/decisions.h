// What the core decided about leases, in order, one line each: how a test holds `landlord sim`
// and `landlord serve` side by side (tests/step/sim_predicts_serve_test.cc). Both drivers write
// to one when given it; neither reads it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
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
  // The spot price after a clearing (a line only when it changed).
  void Price(Time now, Money price);
  // The request `action` of the driver's script was refused with `code` (an API error code).
  void Refused(Time now, size_t action, std::string_view code);
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
  Money price_ = Money::Micros(-1);
};

}  // namespace ll::step
