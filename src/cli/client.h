// The `landlord` API client commands: `lease`, `quote` and `admin` (docs/api.md).
#pragma once

#include <functional>
#include <optional>

#include <CLI/CLI.hpp>

namespace ll::cli {

// Registers `lease create|list|show|release|watch`, `quote` and `admin tenant create|key
// create|list|revoke` on `app`. After app.parse(), call the returned function: it runs the parsed client
// command and returns its exit code, or nullopt when none of them was parsed.
std::function<std::optional<int>()> AddClientCommands(CLI::App& app);

}  // namespace ll::cli
