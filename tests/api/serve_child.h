// Starting and stopping a `landlord serve` child process, without a test framework: shared by
// the integration tests (serve_test_util) and the API benchmark (bench/api_bench.cc).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/status.h"

namespace ll::testing {

struct ServeChild {
  pid_t pid = -1;
  int out_fd = -1;  // the child's stdout (non-blocking after the first line)
  std::string url;  // "http://127.0.0.1:PORT", from the first line of output
};

// Runs `bin args...` with LANDLORD_ADMIN_KEY=admin_key and waits (up to 30 s) for its first
// line, which must name the address it bound ("... http://HOST:PORT").
Result<ServeChild> SpawnLandlord(const std::string& bin, const std::vector<std::string>& args,
                                 const std::string& admin_key);

// Runs `bin serve --config config` with LANDLORD_ADMIN_KEY=admin_key and waits (up to 30 s)
// for its first line, which names the address it bound.
Result<ServeChild> SpawnServe(const std::string& bin, const std::string& config, const std::string& admin_key);

// Sends `sig`, reaps the child and closes its pipe. Returns the exit code (128 + signal if it
// was killed by one).
int StopServe(ServeChild& child, int sig);

}  // namespace ll::testing
