// A lease's workload as the lease records it (its state, exit code, times) and the tenant's
// login into it: the values every runner (workload/runner.h) reports.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/time.h"

namespace ll::workload {

enum class State { kPending, kRunning, kExited, kKilled, kFailed };
const char* StateName(State state);

// What the lease records of its workload.
struct WorkloadStatus {
  State state = State::kPending;
  std::optional<int> exit_code;  // the exit status, or 128 + the signal that ended it
  std::optional<Time> started_at, ended_at;
  std::string error;  // why it failed to start, or what killed it (`memory limit`)
  nlohmann::json ToJson() const;
};

// The tenant's login into a running sandbox.
struct SshAccess {
  int port = 0;  // on 127.0.0.1
  std::string user;
  std::string host_public_key;       // "ssh-ed25519 AAAA…", for known_hosts
  std::vector<std::string> command;  // ssh argv without the key: `ssh -p PORT user@127.0.0.1`
};

}  // namespace ll::workload
