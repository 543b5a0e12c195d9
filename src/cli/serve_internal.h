// Private to the server commands (serve.cc, gateway_cmd.cc).
#pragma once

#include <string>

#include <boost/asio/io_context.hpp>

#include "api/config.h"
#include "store/store.h"

namespace ll::cli {

// What the startup lines call the store (a URL without its password).
inline std::string StoreName(const api::ServeConfig& config) {
  return config.store.empty() ? config.data_dir + "/landlord.db" : store::RedactedUrl(config.store);
}

// After the loop stopped and everything was shut down: runs the handlers that are left (their
// operations end as aborted) while the objects they refer to still live.
inline void Drain(boost::asio::io_context& ioc) {
  ioc.restart();
  for (int i = 0; i < 100 && ioc.poll() > 0; ++i) {
  }
}

}  // namespace ll::cli
