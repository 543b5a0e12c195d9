// The one place that reads the system clock.
#include <chrono>

#include "core/clock.h"

namespace ll {
namespace {

class SystemClock final : public Clock {
 public:
  Time Now() const override {
    auto since = std::chrono::system_clock::now().time_since_epoch();
    return Time{std::chrono::duration_cast<std::chrono::milliseconds>(since).count()};
  }
};

}  // namespace

std::unique_ptr<Clock> NewSystemClock() { return std::make_unique<SystemClock>(); }

}  // namespace ll
