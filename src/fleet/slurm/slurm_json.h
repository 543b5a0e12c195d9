// What the Slurm clients answer (`sinfo --json`, `squeue --json`, openapi v0.0.38) and the
// hostlist syntax they use, parsed.
#pragma once

#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::fleet {

struct SlurmNode {
  std::string name;
  Gpus gpus = 0;
  std::string state;    // sinfo's, e.g. "idle", "mixed", "down"
  std::string address;  // NodeAddr
  bool usable = true;   // not down, drained, failing or unknown
};

struct SlurmJob {
  int64_t id = 0;
  std::string name;
  std::string state;  // PENDING, RUNNING, COMPLETING, CANCELLED, PREEMPTED, ...
  std::string partition;
  std::vector<std::string> nodes;  // expanded
  Gpus gpus_per_node = 0;
  Time end;  // 0 when unknown
  // When Slurm preempted it (`preempt_time`): the start of its GraceTime while it runs on, the
  // kill once it is COMPLETING. 0 when not preempted.
  Time preempted;
  int exit_code = 0;
};

// "n[1-3,5],gpu01" → n1 n2 n3 n5 gpu01 (Slurm hostlist syntax, zero padding kept).
Result<std::vector<std::string>> ExpandHostlist(const std::string& list);
// Parsers of the clients' JSON (openapi v0.0.38), for tests.
Result<std::vector<SlurmNode>> ParseSinfoJson(const std::string& text,
                                              const std::string& partition);
Result<std::vector<SlurmJob>> ParseSqueueJson(const std::string& text);

// A job state in which the job no longer runs or waits (COMPLETED, CANCELLED, PREEMPTED, ...);
// SIGNALING (a preempted job being signalled) and unknown states are not.
bool Terminal(const std::string& state);

}  // namespace ll::fleet
