// The responses recorded from a real llama.cpp `llama-server` (tests/gateway/fixtures/llama_server,
// written by `LL_RECORD_FIXTURES=1 tests/engine/run.sh`).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace ll::gateway {

inline std::string Fixture(const std::string& name) {
  const std::string path = std::string(LL_SOURCE_DIR) + "/tests/gateway/fixtures/llama_server/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "no fixture " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace ll::gateway
