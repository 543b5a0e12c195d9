// The `slurm` fleet backend: sell what a real Slurm cluster leaves idle, and let Slurm itself
// enforce the owner's priority (DESIGN.md "On Slurm").
//
// - The fleet is the nodes of the landlord partition (`sinfo --json`), GPUs from gres/gpu.
// - The owner's demand is where Slurm runs jobs that are not Landlord's (`squeue --json`), node
//   by node, plus nodes that are down, drained or failing: the control plane places the
//   owner's GPUs exactly there, so it only ever sells GPUs Slurm has idle.
// - A lease is a holder job in the landlord partition on the nodes the allocator picked
//   (`sbatch --nodelist`); a reserved lease first gets a Slurm reservation of those whole
//   nodes for its term (22.05 reservations cannot hold GRES). The holder runs its work as an
//   `srun` step, because Slurm signals only steps at preemption: on SIGTERM the step posts
//   the notice to Landlord (`POST /slurm/notice`, a per-lease token) and keeps running until
//   the grace ends, so the tenant keeps its nodes for the whole notice.
// - The owner's partitions outrank the landlord partition (PriorityTier) with
//   `PreemptType=preempt/partition_prio`, `PreemptMode=CANCEL` and the landlord partition's
//   `GraceTime` = the reclaim notice: Slurm preempts leases when the owner needs their nodes.
//   `landlord slurm check` verifies that and says what to change.
// - A holder that ends without Landlord (scancel by an admin, a node failure) ends its lease
//   at that moment. Between tenants, an optional sanitize command runs on each node as a job;
//   a node that fails it is drained.
//
// Everything goes through the Slurm commands (sinfo, squeue, sbatch, scancel, scontrol): in
// 22.05 slurmrestd cannot create reservations. The reads, the holders' jobs (sbatch) and the
// clean-up after a lease run on a worker thread of the backend, so a slurmctld that does not
// answer never stalls the server (its commands hang until their timeout); the control plane
// calls the backend from its own thread only, and learns how a start went from the next Poll.
// A reserved lease's reservation is made by the worker too, just before its holder job: the
// lease is answered at once, and a reservation or a job that Slurm refuses ends the lease from
// its start (nothing billed, its GPUs free again) with Slurm's own error as the reason. While
// Slurm is unavailable new leases are refused at once (Available).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"
#include "core/time.h"
#include "fleet/backend.h"
#include "fleet/slurm/slurm_json.h"
#include "fleet/slurm/slurm_options.h"
#include "sim/trace.h"

namespace ll::fleet {

class SlurmBackend final : public Backend {
 public:
  // Checks that the Slurm commands answer and reads the landlord partition's nodes.
  static Result<std::unique_ptr<SlurmBackend>> Open(SlurmOptions options);
  ~SlurmBackend() override;

  const std::vector<SlurmNode>& nodes() const { return nodes_; }
  const SlurmOptions& options() const { return options_; }
  // The server's URL as the nodes reach it, once it listens (when the options named none).
  void set_notify_url(std::string url) { options_.notify_url = std::move(url); }
  // Whether the last read reached slurmctld, and why not.
  bool available() const;
  std::string status() const;
  // Nodes drained after a failed sanitize, with the reason.
  std::map<std::string, std::string> drained() const;

  // ---- fleet::Backend ----
  const std::string& name() const override { return name_; }
  // The partition's nodes in one pool, one rack.
  const Topology& topology() const override { return topology_; }
  // The owner's demand is where Slurm runs other jobs (Poll), never a trace.
  bool DemandFromTrace() const override { return false; }
  Gpus DemandAt(int /*pool*/, Time /*t*/) const override { return 0; }
  void DemandChanges(Time /*t0*/, Time /*t1*/, std::vector<Time>* /*out*/) const override {}
  Status AcceptsOwnerJobs() const override;
  // What the worker's newest read found, once per read (nullopt when there is none newer, or
  // when slurmctld could not be reached, which `status()` then says); replica jobs that sbatch
  // refused are among the lost.
  std::optional<PollResult> Poll(Time now) override;
  Status Available() const override;
  // A Slurm reservation holds whole nodes (22.05 reservations cannot hold GRES).
  bool ReservesWholeNodes() const override { return true; }
  // A holder job for the lease on `nodes` (name → GPUs); reserved leases (term_end set) get a
  // reservation of the whole nodes until term_end first. Both are made by the worker: a
  // reservation or a job Slurm refuses is reported lost by a later Poll, from the lease's start,
  // with Slurm's error.
  Status StartLease(const std::string& lease_id,
                    const std::vector<std::pair<std::string, Gpus>>& nodes, Time term_end,
                    Time now) override;
  // A model replica as a job on `node` running the model's command (`model_commands`, else
  // `model_command`) on port model_port + n, submitted
  // by the worker; once the server answers, the job posts its URL to `POST /slurm/replica`
  // (the same token scheme as notices).
  std::optional<std::string> StartReplica(const std::string& model, const std::string& node,
                                          Gpus gpus, int n, Time now) override;
  // Landlord ends the lease (or replica): the holder is cancelled, the reservation deleted,
  // and the nodes sanitized (if configured) before they count as idle again.
  void EndHolder(const std::string& id, Duration grace) override;
  // Replica jobs of an earlier run (replicas are not persisted) are cancelled; leases whose
  // holder was started before a restart are found again by their job name.
  void Attach(const std::vector<std::string>& live_leases, Time now) override;
  // The notice a holder posted: true when `token` is the lease's.
  bool TakesNotices() const override { return true; }
  bool CheckToken(const std::string& id, const std::string& token) const override;
  std::optional<std::string> Access(const std::string& node) const override;
  // The lease's holder job once squeue saw it running (a workload's step joins it), else
  // nullopt. The control plane's thread.
  std::optional<int64_t> RunningJob(const std::string& lease_id) const;
  std::optional<Health> health() const override;

 private:
  explicit SlurmBackend(SlurmOptions options) : options_(std::move(options)) {}
  Status Init();
  void Work();  // the worker thread: reads every `poll`, runs queued clean-up
  void Read();
  // A command for the worker: clean-up (retried until it runs), or the start of a holder's job
  // (`start`: the lease's or replica's id; once, its job id or failure kept for Poll; `first`
  // runs before it, and a failure of `first` is the start's (a lease's reservation); `undo`
  // runs when the job fails: the reservation goes again).
  struct Command {
    std::vector<std::string> argv, env;
    std::string start;
    std::vector<std::string> first, undo;
  };
  void Queue(std::vector<std::string> argv);
  void TakeDueEnds();
  void RunStart(const Command& c);  // on the worker, without mu_
  void CancelStrayReplicas();
  std::string Token(const std::string& lease_id) const;
  struct Held {
    int64_t job = 0;  // -1: adopted, not matched to a job yet
    Time submitted;
    bool running = false;
    bool reservation = false;
  };
  const std::string name_ = "slurm";
  SlurmOptions options_;
  std::vector<SlurmNode> nodes_;
  Topology topology_;
  std::set<std::string> node_names_;
  std::map<std::string, Held> held_;  // live leases by id (the control plane's thread)
  std::string key_;                   // for the per-lease notice tokens
  std::string script_;                // the holder job's script
  std::string replica_script_;

  // Shared with the worker, under mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool available_ = true;
  std::string status_ = "ok";
  uint64_t read_seq_ = 0, taken_seq_ = 0;
  std::vector<SlurmNode> read_nodes_;
  std::vector<SlurmJob> read_jobs_;
  Time read_at_;
  std::deque<Command> queue_;  // clean-up commands, retried until they run; replica starts
  std::map<std::string, int64_t> started_;      // holder id → its job, submitted by the worker
  std::map<std::string, std::string> refused_;  // holder id → why Slurm did not take it (the whole reason)
  std::vector<std::string> sanitize_nodes_;     // nodes to sanitize (the worker submits)
  struct Later {  // a holder's end after its workload's grace
    std::chrono::steady_clock::time_point at;
    std::vector<std::vector<std::string>> argvs;
    std::vector<std::string> sanitize;
    bool graced = false;
  };
  std::vector<Later> later_;
  std::map<int64_t, std::string> sanitizing_;   // job → node (the worker's)
  std::map<std::string, std::string> drained_;
  std::thread worker_;
};

// The fleet of a `slurm` backend as the control plane takes it: the partition's nodes in one
// pool, no trace demand (the owner's demand is read from Slurm), time from `now - history`.
sim::Trace SlurmTrace(const SlurmBackend& slurm, Time now, Duration history);

}  // namespace ll::fleet
