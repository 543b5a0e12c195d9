#include "core/lease.h"

#include <array>
#include <string>

namespace ll {
namespace {

constexpr std::array<std::string_view, 2> kKinds = {"spot", "reserved"};
constexpr std::array<std::string_view, 6> kStates = {"scheduled", "active", "noticed", "released", "reclaimed", "ended"};
constexpr std::array<std::string_view, 2> kTiers = {"standard", "flash"};
constexpr std::array<std::string_view, 6> kEnds = {"", "released", "reclaimed", "term_ended", "forecast_miss", "holder_lost"};

template <typename E, size_t N>
Result<E> Parse(const std::array<std::string_view, N>& names, std::string_view name, std::string_view what) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return Status::Invalid("unknown lease " + std::string(what) + " `" + std::string(name) + "`");
}

}  // namespace

std::string_view Name(LeaseKind kind) { return kKinds[static_cast<size_t>(kind)]; }
std::string_view Name(LeaseState state) { return kStates[static_cast<size_t>(state)]; }
std::string_view Name(LeaseEnd reason) { return kEnds[static_cast<size_t>(reason)]; }
std::string_view Name(NoticeTier tier) { return kTiers[static_cast<size_t>(tier)]; }

Result<LeaseKind> ParseLeaseKind(std::string_view name) { return Parse<LeaseKind>(kKinds, name, "kind"); }
Result<LeaseState> ParseLeaseState(std::string_view name) { return Parse<LeaseState>(kStates, name, "state"); }
Result<LeaseEnd> ParseLeaseEnd(std::string_view name) { return Parse<LeaseEnd>(kEnds, name, "end reason"); }
Result<NoticeTier> ParseNoticeTier(std::string_view name) { return Parse<NoticeTier>(kTiers, name, "notice tier"); }

}  // namespace ll
