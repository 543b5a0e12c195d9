// The injectable clock (Envoy TimeSource, Ray FakeClock). Only system_clock.cc reads the
// system clock; the core never does.
#pragma once

#include <memory>

#include "core/time.h"

namespace ll {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time Now() const = 0;
};

// A clock that moves only when told to. Used by the simulator and by tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Time start = Time{}) : now_(start) {}
  Time Now() const override { return now_; }
  void Set(Time t) { now_ = t; }
  void Advance(Duration d) { now_ += d; }

 private:
  Time now_;
};

// Wall-clock time. REQUIRES: used only by drivers (serve, benchmarks), never by the core.
std::unique_ptr<Clock> NewSystemClock();

}  // namespace ll
