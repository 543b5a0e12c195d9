// The default demo trace, built into the binary (src/sim/embedded_data.cc) so that
// `landlord serve` and `landlord sim` work from any directory of a fresh install: a clone's
// data/ is not there once the binary is copied elsewhere.
#pragma once

#include <optional>
#include <string_view>

namespace ll::sim {

// The bytes of the file at `path` when it is one of the embedded data files, named as the
// defaults name them (relative to the repository: "data/helios_earth_2020_05/…"); else nullopt.
std::optional<std::string_view> EmbeddedDataFile(std::string_view path);

}  // namespace ll::sim
