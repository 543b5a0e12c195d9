// Running the Slurm commands (sinfo, squeue, sbatch, scancel, scontrol) with a time limit:
// what the slurm backend and `landlord slurm check` share.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"

namespace ll::fleet::slurm {

struct Output {
  int rc = -1;
  std::string out, err;
};

// Runs argv (found on PATH) with a time limit; stdin is /dev/null; `env` ("K=V") is added to
// (or replaces in) the server's environment.
Result<Output> Run(const std::vector<std::string>& argv, Duration timeout = Duration::Seconds(15),
                   const std::vector<std::string>& env = {});
// Best effort (cleanup, draining): a failure is logged, not returned.
void RunLogged(const std::vector<std::string>& argv);
// Trailing newlines, spaces and carriage returns removed.
std::string Trim(std::string s);
// `cmd args...` whose non-zero exit is an error carrying its stderr.
Result<std::string> Call(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {});

}  // namespace ll::fleet::slurm
