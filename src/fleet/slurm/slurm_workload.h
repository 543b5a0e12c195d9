// A lease's workload on the Slurm fleet: a step of the lease's holder job, one task on each of
// its nodes (docs/workloads.md, "On the Slurm fleet").
//
// Once the holder job runs, the server starts `srun --jobid=JOB --overlap --nodes=N
// --ntasks-per-node=1` beside the holder's own step: Slurm's I/O forwarding brings the tasks'
// stdout and stderr back to the server (into the lease's log ring, no shared file system
// needed), and srun's exit status is the workload's exit code (the highest of its tasks). At
// preemption Slurm itself sends SIGTERM to every step of the job, this one too, at the same
// moment the holder's step traps it and posts the notice: the workload hears it within about a
// second of the owner's job, with the partition's GraceTime to checkpoint.
//
// The tenant's argv is never parsed by a shell: a fixed launcher (`/bin/sh -c LAUNCHER
// landlord-workload ARGV...`) exports the environment and `exec "$@"`. The environment travels
// under prefixed names (`LLW_<NAME>`, listed by name in `srun --export`), so none of the tenant's
// variables (LD_PRELOAD, SLURM_*) reaches srun itself on the server; the launcher renames them
// on the node. With a container template and an `image`, the launcher execs the template (e.g.
// `podman run --rm {env} {image} {command}`) instead: `{command}` becomes the argv, `{env}` one
// `--env NAME` per variable (the runtime takes the value from the launcher's environment).
//
// With a container the launcher does not exec the runtime: it runs it under a keeper outside
// the step's process tree, so that Slurm's signals at preemption (SIGCONT, then SIGTERM to every
// process of the step; podman's signal proxy and its `runc kill` helpers died of them) reach only
// the launcher, which forwards one SIGTERM to the container (`container_kill` by name, or the
// runtime's process) and exits with the runtime's status; the keeper kills the container when the
// launcher is killed. The launcher also leaves a janitor that removes the notice dir on the node
// once the lease's tasks there are gone.
//
// Notice(): the notice file on each node (a short step) and, unless Slurm is already preempting
// the job (it then sent SIGTERM itself), `scancel --signal=TERM` to this step. Stop(grace):
// SIGTERM to the step now; the kill is the holder job's end (EndHolder, after `grace` for a
// release, at once at `reclaim_at`).
//
// Threading: the io_context's thread, like control::Workloads.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "workload/runner.h"
#include "workload/sandbox.h"
#include "workload/spec.h"

namespace ll::fleet {

struct SlurmWorkloadOptions {
  // The container runtime's argv for a workload with an `image` (`{image}`, `{command}` and
  // `{env}` as whole elements; `{lease}` and `{notice_dir}` anywhere). Empty: no containers.
  std::vector<std::string> container;
  // How to signal a container by its name (`{name}`, `{signal}` as whole elements, e.g.
  // `podman kill --signal {signal} {name}`): the launcher's SIGTERM at the notice and its SIGKILL
  // when the step is killed. Empty: the signals go to the runtime's own process (which must
  // proxy them; podman's and docker's `--sig-proxy` do, but a runtime killed outright leaves
  // podman's container running).
  std::vector<std::string> container_kill;
  std::string notice_root = "/tmp";  // on each node: <notice_root>/landlord-<lease>/notice.json
  size_t log_bytes = 1 << 20;
  bool sigterm_on_notice = true;
  Duration poll = Duration::Millis(250);  // how often to look whether the holder job runs
};

// A container template is usable: `{image}` and `{command}` each appear as a whole element, the
// runtime is named first, and no element is empty. The error names `fleet.slurm_container`.
Status CheckContainerTemplate(const std::vector<std::string>& argv);
// A kill template is usable: the runtime first, `{name}` and `{signal}` once each as whole
// elements, every element plain (no quoting needed), and `{name}` in the container template.
// The error names `fleet.slurm_container_kill`.
Status CheckContainerKill(const std::vector<std::string>& kill,
                          const std::vector<std::string>& container);
// Whether the Slurm fleet can run `spec`: no per-lease SSH login, and an `image` only with a
// container template. A refusal names the field in `why`.
Status AcceptsOnSlurm(const SlurmWorkloadOptions& o, const workload::Spec& spec,
                      workload::SpecError* why);

// The notice file on the nodes for `lease_id`.
std::string NoticeFile(const SlurmWorkloadOptions& o, const std::string& lease_id);

// What the server runs for the workload: srun's argv and the variables added to its
// environment ("LLW_NAME=VALUE"). Pure (tests check it).
struct StepCommand {
  std::vector<std::string> argv, env;
};
StepCommand WorkloadStep(const SlurmWorkloadOptions& o, int64_t job,
                         const workload::LeaseContext& lease, const workload::Spec& spec);

class SlurmWorkload final : public workload::Runner {
 public:
  // The holder's job id once it runs, else nullopt (asked every `poll` until then).
  using JobOf = std::function<std::optional<int64_t>()>;

  SlurmWorkload(boost::asio::io_context& io, const Clock& clock, SlurmWorkloadOptions options,
                workload::LeaseContext lease, workload::Spec spec, JobOf job_of, Listener listener);
  // Cancels the step if it still runs (srun ends it) and reaps srun (blocking, briefly).
  ~SlurmWorkload() override;

  void Start() override;
  void Notice(Time reclaim_at, Time kill_at) override;
  void Stop(Duration grace) override;
  const workload::WorkloadStatus& status() const override { return status_; }
  workload::LogRing& logs() override { return logs_; }
  const std::optional<workload::SshAccess>& ssh() const override { return ssh_; }

 private:
  void WaitForJob();
  void Launch(int64_t job);
  void ReadOutput();
  void WaitExit();
  void MaybeFinish();
  void SendNotice();
  void RunOffLoop(const std::vector<std::string>& argv, const char* what);
  void Finish(workload::State state, std::optional<int> code, std::string error);
  template <typename F>
  auto Guard(F f) {
    return [w = std::weak_ptr<int>(alive_), f = std::move(f)](auto&&... args) mutable {
      if (!w.expired()) f(std::forward<decltype(args)>(args)...);
    };
  }

  boost::asio::io_context& io_;
  const Clock& clock_;
  SlurmWorkloadOptions o_;
  workload::LeaseContext lease_;
  workload::Spec spec_;
  JobOf job_of_;
  Listener listener_;
  workload::WorkloadStatus status_;
  workload::LogRing logs_;
  std::optional<workload::SshAccess> ssh_;  // never: the fleet's own access line says how
  boost::asio::steady_timer poll_timer_, kill_timer_, grace_timer_;
  boost::asio::posix::stream_descriptor pid_sd_, out_sd_;
  pid_t pid_ = -1;
  int64_t job_ = 0;
  bool started_ = false, stopping_ = false, exited_ = false, eof_ = false, finished_ = false;
  std::optional<Time> notice_;  // a notice that came before the step started
  int raw_status_ = 0;
  std::array<char, 16384> buf_{};
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace ll::fleet
