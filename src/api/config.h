// `landlord serve` configuration: TOML (docs/serve.example.toml documents every key) with
// command-line overrides, read into control::ServeConfig. Every value is validated; errors name
// the file and key.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"
#include "control/serve_config.h"
#include "market/price_book.h"

namespace ll::api {

using control::ServeConfig;
using control::WorkloadConfig;

// Reads `path` over the defaults in `config`.
Status LoadServeConfig(const std::string& path, ServeConfig* config);
// Reads only the [prices] table of `path` over `prices` (`landlord sim --config`).
Status LoadPrices(const std::string& path, market::PriceBook* prices);

}  // namespace ll::api
