// A lease's kind, state and end reason (docs/api.md: the lease state machine). Enums in the
// code; their names appear only at the edges: the JSON of the API and the store's columns.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace ll {

enum class LeaseKind : uint8_t { kSpot, kReserved };

// scheduled → active → noticed → reclaimed; active/noticed → released; active → ended (term).
enum class LeaseState : uint8_t { kScheduled, kActive, kNoticed, kReleased, kReclaimed, kEnded };

enum class LeaseEnd : uint8_t { kNone, kReleased, kReclaimed, kTermEnded, kForecastMiss, kHolderLost };

// A spot lease's notice tier: the standard notice, or the shorter `flash` one (cheaper,
// reclaimed first). Reserved leases are `standard` (never noticed).
enum class NoticeTier : uint8_t { kStandard, kFlash };

std::string_view Name(LeaseKind kind);
std::string_view Name(LeaseState state);
std::string_view Name(LeaseEnd reason);  // "" for kNone
std::string_view Name(NoticeTier tier);

// The names back; an error names the value.
Result<LeaseKind> ParseLeaseKind(std::string_view name);
Result<LeaseState> ParseLeaseState(std::string_view name);
Result<LeaseEnd> ParseLeaseEnd(std::string_view name);
Result<NoticeTier> ParseNoticeTier(std::string_view name);

// Released, reclaimed or ended: nothing happens to the lease any more.
inline bool Final(LeaseState s) {
  return s == LeaseState::kReleased || s == LeaseState::kReclaimed || s == LeaseState::kEnded;
}
// Holding GPUs (active or noticed).
inline bool Live(LeaseState s) { return s == LeaseState::kActive || s == LeaseState::kNoticed; }

}  // namespace ll
