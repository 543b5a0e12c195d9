// What runs one lease's workload, whichever fleet: the sim fleet's bubblewrap Sandbox on this
// machine, or the Slurm fleet's step in the lease's holder job (fleet/slurm/slurm_workload.h).
// control::Workloads keeps one per lease and drives it through this interface only.
//
// Threading: every method, and the listener, runs on the server's io_context thread.
#pragma once

#include <functional>
#include <optional>

#include "core/time.h"
#include "workload/log_ring.h"
#include "workload/status.h"

namespace ll::workload {

class Runner {
 public:
  // Called when the workload starts (kRunning, or kFailed if it could not) and when it ends
  // (kExited, kKilled), after its logs are closed.
  // REQUIRES: the listener does not destroy the runner from inside the call (post it).
  using Listener = std::function<void(const WorkloadStatus&)>;

  virtual ~Runner() = default;
  // Starts the workload once; a failure is the kFailed status (and the listener), not a crash.
  virtual void Start() = 0;
  // The reclaim notice: the notice file, SIGTERM (as configured), nothing killed before
  // `reclaim_at`; the kill at max(kill_at, reclaim_at) where the runner does it itself.
  virtual void Notice(Time reclaim_at, Time kill_at) = 0;
  // Ends it (the lease ended): SIGTERM, then SIGKILL after `grace` (zero: at once).
  virtual void Stop(Duration grace) = 0;

  virtual const WorkloadStatus& status() const = 0;
  virtual LogRing& logs() = 0;
  // The tenant's login into it, where the runner gives one.
  virtual const std::optional<SshAccess>& ssh() const = 0;
};

}  // namespace ll::workload
