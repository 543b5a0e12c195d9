// Running the Slurm commands (sinfo, squeue, sbatch, scancel, scontrol) with a time limit:
// what the slurm backend and `landlord slurm check` share.
#pragma once

#include <sys/types.h>

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
// A command left running: the caller waits for it through `pidfd` (readable when it exits)
// and reaps it with waitpid.
struct Child {
  pid_t pid = -1;
  int pidfd = -1;
  int output_fd = -1;  // with `capture`: its stdout and stderr, one pipe; else -1
};
// Starts argv (found on PATH) in a session of its own, stdin /dev/null, `env` as for Run. With
// `capture` its stdout and stderr go into one pipe (`output_fd`); else stdout is /dev/null and
// stderr the server's. The fds are close-on-exec.
Result<Child> Start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    bool capture);
// Best effort (cleanup, draining): a failure is logged, not returned.
void RunLogged(const std::vector<std::string>& argv);
// Trailing newlines, spaces and carriage returns removed.
std::string Trim(std::string s);
// `cmd args...` whose non-zero exit is an error carrying its stderr.
Result<std::string> Call(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {});

}  // namespace ll::fleet::slurm
