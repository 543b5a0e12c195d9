// `landlord serve`: the control plane on HTTP (docs/api.md, docs/serve.example.toml).
#pragma once

#include <functional>
#include <optional>

#include <CLI/CLI.hpp>

namespace ll::cli {

// Registers `serve` (and `fake-model`, `gateway`) on `app`; the returned function runs the one
// that was parsed (nullopt: none was).
std::function<std::optional<int>()> AddServeCommand(CLI::App& app);

// Registers `gateway` (gateway_cmd.cc): the model API alone, against a control plane's ledger.
std::function<std::optional<int>()> AddGatewayCommand(CLI::App& app);

}  // namespace ll::cli
