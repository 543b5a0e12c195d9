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
// 22.05 slurmrestd cannot create reservations. The reads and the clean-up after a lease run on
// a worker thread of the backend, so a slurmctld that does not answer never stalls the server
// (its commands hang until their timeout); the control plane calls the backend from its own
// thread only. Starting a holder is synchronous (the lease needs its job), refused at once
// while Slurm is unavailable.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::fleet {

struct SlurmOptions {
  std::string partition = "landlord";  // where holder jobs run (the lowest PriorityTier)
  // The server's URL as the nodes reach it, for the holder's notice (default: the listen
  // address of `landlord serve`).
  std::string notify_url;
  // How a tenant reaches a leased node: `{node}` is replaced by its name.
  std::string access = "ssh {node}";
  // Run on each node of an ended lease before it is sold again (e.g. `nvidia-smi -r && ...`);
  // empty: none. A non-zero exit drains the node.
  std::string sanitize;
  // Model replicas placed on the fleet run this as a Slurm job on their node ({model}, {addr},
  // {port}, {node} are filled in); it must serve the OpenAI API at http://{addr}:{port}.
  // Empty: replicas run beside the fleet, as on no fleet.
  std::string model_command;
  int model_port = 18000;  // replica n listens on model_port + n
  Duration poll = Duration::Seconds(1);          // wall time between squeue/sinfo reads
  Duration start_timeout = Duration::Seconds(60);  // a holder still pending after this is given up
  std::string state_dir;  // the holder script and the notice key (the server's data_dir/slurm)
};

struct SlurmNode {
  std::string name;
  Gpus gpus = 0;
  std::string state;  // sinfo's, e.g. "idle", "mixed", "down"
  std::string address;  // NodeAddr
  bool usable = true;  // not down, drained, failing or unknown
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
Result<std::vector<SlurmNode>> ParseSinfoJson(const std::string& text, const std::string& partition);
Result<std::vector<SlurmJob>> ParseSqueueJson(const std::string& text);

// What one poll found.
struct SlurmPoll {
  std::vector<std::pair<std::string, Gpus>> owner;  // node name → GPUs not Landlord's (busy or unusable)
  // Leases whose holder is gone without Landlord ending it: id → (when, why).
  std::map<std::string, std::pair<Time, std::string>> lost;
  // Leases (and replicas) whose holder Slurm has preempted and still runs, in its grace time:
  // id → when Slurm preempted it. The holder's step also posts the notice, but only a step that
  // already runs gets Slurm's SIGTERM: this read is what a holder that missed it relies on.
  std::map<std::string, Time> preempted;
};

class SlurmBackend {
 public:
  // Checks that the Slurm commands answer and reads the landlord partition's nodes.
  static Result<std::unique_ptr<SlurmBackend>> Open(SlurmOptions options);
  ~SlurmBackend();

  const std::vector<SlurmNode>& nodes() const { return nodes_; }
  const SlurmOptions& options() const { return options_; }
  // The server's URL as the nodes reach it, once it listens (when the options named none).
  void set_notify_url(std::string url) { options_.notify_url = std::move(url); }
  // Whether the last read reached slurmctld, and why not.
  bool available() const;
  std::string status() const;

  // What the worker's newest read found, once per read (nullopt when there is none newer, or
  // when slurmctld could not be reached, which `status()` then says).
  std::optional<SlurmPoll> Poll(Time now);

  // A holder job for the lease on `nodes` (name → GPUs); reserved leases (term_end set) get a
  // reservation of the whole nodes until term_end first.
  Status StartLease(const std::string& lease_id, const std::vector<std::pair<std::string, Gpus>>& nodes,
                    Time term_end, Time now);
  // A model replica as a job on `node` running `model_command`; once the server answers, the
  // job posts its URL to `POST /slurm/replica` (the same token scheme as notices).
  Status StartReplica(const std::string& replica_id, const std::string& model, const std::string& node, Gpus gpus,
                      int port, Time now);
  // Replica jobs of an earlier run of the server (replicas are not persisted): cancelled.
  void CancelStrayReplicas();
  // A lease whose holder was started before a restart: found again by its job name.
  void Adopt(const std::string& lease_id, Time now);
  // Landlord ends the lease: the holder is cancelled, the reservation deleted, and the nodes
  // sanitized (if configured) before they count as idle again.
  void EndLease(const std::string& lease_id);
  // The notice a holder posted: true when `token` is the lease's.
  bool CheckToken(const std::string& lease_id, const std::string& token) const;
  std::string Access(const std::string& node) const;
  // Nodes drained after a failed sanitize, with the reason.
  std::map<std::string, std::string> drained() const;

 private:
  explicit SlurmBackend(SlurmOptions options) : options_(std::move(options)) {}
  Status Init();
  void Work();  // the worker thread: reads every `poll`, runs queued clean-up
  void Read();
  void Queue(std::vector<std::string> argv);
  std::string Token(const std::string& lease_id) const;
  struct Held {
    int64_t job = 0;  // -1: adopted, not matched to a job yet
    Time submitted;
    bool running = false;
    bool reservation = false;
  };
  SlurmOptions options_;
  std::vector<SlurmNode> nodes_;
  std::set<std::string> node_names_;
  std::map<std::string, Held> held_;  // live leases by id (the control plane's thread)
  std::string key_;     // for the per-lease notice tokens
  std::string script_;  // the holder job's script
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
  std::deque<std::vector<std::string>> queue_;   // clean-up commands, retried until they run
  std::vector<std::string> sanitize_nodes_;      // nodes to sanitize (the worker submits)
  std::map<int64_t, std::string> sanitizing_;    // job → node (the worker's)
  std::map<std::string, std::string> drained_;
  std::thread worker_;
};

// `landlord slurm check`: what the cluster's configuration must be for the backend, each
// problem with the exact change to make. Empty when everything is right.
std::vector<std::string> CheckSlurmConfig(const std::string& scontrol_config, const std::string& partitions,
                                          const std::string& landlord_partition, Duration notice);
// Runs `scontrol show config` and `scontrol show partition --oneliner` and checks them.
Result<std::vector<std::string>> CheckSlurm(const std::string& landlord_partition, Duration notice);

}  // namespace ll::fleet
