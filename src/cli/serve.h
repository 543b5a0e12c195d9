// `landlord serve`: the control plane on HTTP (docs/api.md, docs/serve.example.toml).
#pragma once

#include <functional>
#include <optional>

#include <CLI/CLI.hpp>

namespace ll::cli {

// Registers `serve` on `app`; the returned function runs it if it was parsed.
std::function<std::optional<int>()> AddServeCommand(CLI::App& app);

}  // namespace ll::cli
