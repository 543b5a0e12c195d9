// Workloads: the lease workloads, one workload::Runner per lease that asked for one: by default a
// workload::Sandbox on this machine (the sim fleet's), or what `WorkloadsOptions::runner` makes
// (on the Slurm fleet, a step of the lease's holder job; docs/workloads.md). The control plane starts a lease's workload when the
// lease becomes active, passes it the reclaim notice, and stops it when the lease ends; the
// status changes come back through the listener.
//
// Metadata tokens: each workload gets a random token (32 bytes, hex) in its
// LANDLORD_METADATA_URL; it lives in memory only, never in the store (a workload does not
// outlive the server that runs it: after a restart there is nothing left for it to open).
//
// Ended workloads are kept (their logs stay readable) up to `keep_ended`, oldest dropped first.
//
// Threading: the io_context's one thread, like the control plane.
#pragma once

#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/time.h"
#include "workload/runner.h"
#include "workload/sandbox.h"
#include "workload/spec.h"

namespace ll::control {

struct WorkloadsOptions {
  workload::SandboxOptions sandbox;              // runtime_root REQUIRED
  Duration stop_grace = Duration::Seconds(10);  // a released lease: SIGTERM, SIGKILL after this
  size_t keep_ended = 64;                       // ended workloads whose logs stay readable
  std::string metadata_base;                    // "http://127.0.0.1:PORT/metadata/"
  // A root server runs each sandbox as a host uid (and gid) of its own: uid_base + n, n counting
  // the workloads started (modulo 60,000). Unset: the server's own uid.
  std::optional<uid_t> uid_base;
  // Makes the runner of a lease's workload; unset: a workload::Sandbox of `sandbox` (and
  // `uid_base`). The listener it gets must be called as Runner::Listener says.
  std::function<std::unique_ptr<workload::Runner>(const workload::LeaseContext&, const workload::Spec&,
                                                  workload::Runner::Listener)>
      runner;
  // Whether this fleet can run `spec`; a refusal (kInvalidArgument) names the field in `why`
  // (`workload.image`), as ParseSpec does. Unset: any.
  std::function<Status(const workload::Spec&, workload::SpecError* why)> accepts;
};

class Workloads {
 public:
  // A lease's workload changed state. Always called from a handler posted to the io_context,
  // never from inside a call to this class (so it may call back into the control plane).
  using Listener = std::function<void(const std::string& lease_id, const workload::WorkloadStatus&)>;

  Workloads(boost::asio::io_context& io, const Clock& clock, WorkloadsOptions options);
  // Kills what still runs and wipes its work dir (blocking; without the listener).
  ~Workloads();
  Workloads(const Workloads&) = delete;
  Workloads& operator=(const Workloads&) = delete;

  void SetListener(Listener listener) { listener_ = std::move(listener); }

  // Starts the lease's workload (once); returns its status after the start: running, or failed.
  workload::WorkloadStatus Start(const std::string& lease_id, std::vector<std::string> nodes,
                                 std::string cuda_visible_devices, const workload::Spec& spec);
  // The reclaim notice: SIGTERM now (as configured), SIGKILL not before `reclaim_at`.
  void Notice(const std::string& lease_id, Time reclaim_at);
  // The lease ended: SIGTERM and SIGKILL after `grace` (zero: at once).
  void Stop(const std::string& lease_id, Duration grace);
  // The lease ended with no grace for its workload (a reclaim at `reclaim_at`): kills it now and
  // returns the status it ends with, to be recorded with the lease's end, before its final event
  // (the runner's own later report of the same end is then a repeat). The runner's end if it had
  // one already (an exit of its own, with its code); else kKilled at `now`, exit code 128 +
  // SIGKILL. Nullopt: the lease has no workload here.
  std::optional<workload::WorkloadStatus> StopNow(const std::string& lease_id, Time now);

  // Whether this fleet can run `spec` (WorkloadsOptions::accepts): an error names the field.
  Status Accepts(const workload::Spec& spec, workload::SpecError* why) const;
  // The lease's runner (running or ended and kept), or null.
  workload::Runner* Find(const std::string& lease_id);
  // The lease a metadata token opens, or empty.
  std::string LeaseOfToken(std::string_view token) const;
  const WorkloadsOptions& options() const { return options_; }

 private:
  struct Entry {
    std::unique_ptr<workload::Runner> runner;
    std::string token;
  };
  void Changed(const std::string& lease_id, const workload::WorkloadStatus& status);

  boost::asio::io_context& io_;
  const Clock& clock_;
  WorkloadsOptions options_;
  Listener listener_;
  std::map<std::string, Entry> by_lease_;
  std::map<std::string, std::string, std::less<>> by_token_;
  std::deque<std::string> ended_;  // oldest first
  uint32_t started_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace ll::control
