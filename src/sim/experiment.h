// Runs several policies side by side on one trace and builds the report.
#pragma once

#include <string>
#include <vector>

#include "sim/engine.h"
#include "sim/metrics.h"
#include "sim/trace.h"

namespace ll::sim {

struct ExperimentOptions {
  std::vector<std::string> policies = {"baseline", "spot-all", "lend-limit:0.5", "landlord", "oracle"};
  SimOptions sim;
  bool progress = false;  // a progress bar on stderr (drawn only on a terminal)
};

// `baseline` always runs first (the others are measured against it) and is reported only if
// listed. Returns the first error of any run.
Result<SimReport> RunExperiment(const Trace& trace, const ExperimentOptions& options);

}  // namespace ll::sim
