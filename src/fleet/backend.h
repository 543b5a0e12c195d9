// What the control plane needs from a fleet: its shape, where the owner's demand is, and
// holders started and ended on it. One interface, two implementations: sim/ (a trace replayed
// in a loop; every holder call answers at once) and slurm/ (a real cluster read through the
// Slurm commands; leases are holder jobs).
//
// The owner's demand comes one of two ways (DemandFromTrace): as a level per pool over time
// that the control plane asks for at any time (DemandAt, DemandChanges), or as what the fleet
// finds on its nodes, handed over by Poll once per read together with the holders the fleet
// lost or preempts. Work that takes time (a lease's or a replica's job, a reservation) runs off
// the caller's thread and reports back through Poll: StartLease answers at once whether the
// fleet can take the lease at all, and a start that fails later is a holder lost from its start
// (the lease ends with the fleet's reason, nothing billed).
//
// Thread-safety: the control plane calls a backend from its one thread only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"
#include "core/time.h"
#include "fleet/topology.h"

namespace ll::fleet {

// What one poll found (a backend that reads its cluster).
struct PollResult {
  // Node name → GPUs not Landlord's (the owner's jobs, or unusable): the owner's placement.
  std::vector<std::pair<std::string, Gpus>> owner;
  // Holders gone without Landlord ending them (leases and replicas): id → (when, why).
  std::map<std::string, std::pair<Time, std::string>> lost;
  // Holders the fleet preempts and that still run, in their grace time: id → since when.
  std::map<std::string, Time> preempted;
};

// How a backend that runs on a real cluster is doing (GET /healthz).
struct Health {
  std::string backend;  // e.g. "slurm"
  std::string partition;
  bool available = true;
  std::string message;
  std::map<std::string, std::string> drained;  // node → why
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const std::string& name() const = 0;  // "sim", "slurm"
  virtual const Topology& topology() const = 0;

  // ---- the owner's demand ----
  // True: the owner's demand is a level per pool over time (DemandAt, DemandChanges). False:
  // it is where the fleet runs the owner's work, node by node (PollResult::owner).
  virtual bool DemandFromTrace() const = 0;
  // REQUIRES: DemandFromTrace(). The owner's demand of `pool` at t (not clamped).
  virtual Gpus DemandAt(int pool, Time t) const = 0;
  // REQUIRES: DemandFromTrace(). Appends every time in (t0, t1] at which DemandAt changes, in
  // order.
  virtual void DemandChanges(Time t0, Time t1, std::vector<Time>* out) const = 0;
  // Ok when owner jobs may be injected through the admin API; else why not.
  virtual Status AcceptsOwnerJobs() const { return Status::Ok(); }
  // What the fleet found since the last poll; nullopt when nothing is new (always, for a
  // backend whose demand is a trace).
  virtual std::optional<PollResult> Poll(Time /*now*/) { return std::nullopt; }

  // ---- holders ----
  // Ok when the fleet can take a new lease now; else why not (Unavailable).
  virtual Status Available() const { return Status::Ok(); }
  // Whether a reserved lease holds whole nodes (its GPUs are rounded up to them).
  virtual bool ReservesWholeNodes() const { return false; }
  // The lease's holder on `nodes` (name → GPUs) until `term_end` (kTimeMax: spot); an error
  // when the fleet cannot take it (the lease then ends at once). A start that takes time is
  // made later, and a failure of it reported by Poll (`lost`, from the lease's start).
  virtual Status StartLease(const std::string& /*lease_id*/,
                            const std::vector<std::pair<std::string, Gpus>>& /*nodes*/,
                            Time /*term_end*/, Time /*now*/) {
    return Status::Ok();
  }
  // The `n`-th replica of `model` as a job on `node`: its id, or nullopt when replicas run
  // beside the fleet (the caller starts them). The job registers its URL later; a job the
  // fleet does not take is reported lost by a later Poll.
  virtual std::optional<std::string> StartReplica(const std::string& /*model*/,
                                                  const std::string& /*node*/, Gpus /*gpus*/,
                                                  int /*n*/, Time /*now*/) {
    return std::nullopt;
  }
  // Landlord ends the holder (a lease's or a replica's id). `grace` > 0: the workload running in
  // it hears SIGTERM now and is killed with the holder after `grace` (a released lease's
  // `stop_grace`); zero: the holder ends at once.
  virtual void EndHolder(const std::string& /*id*/, Duration /*grace*/) {}
  // The control plane takes over the fleet: `live_leases` were started by an earlier run.
  virtual void Attach(const std::vector<std::string>& /*live_leases*/, Time /*now*/) {}
  // Whether holders post notices and registrations (POST /slurm/...) checked by CheckToken.
  virtual bool TakesNotices() const { return false; }
  virtual bool CheckToken(const std::string& /*id*/, const std::string& /*token*/) const {
    return false;
  }
  // How a tenant reaches `node`; nullopt: the fleet does not say.
  virtual std::optional<std::string> Access(const std::string& /*node*/) const {
    return std::nullopt;
  }
  // nullopt for a fleet with nothing to report (the sim backend).
  virtual std::optional<Health> health() const { return std::nullopt; }
};

}  // namespace ll::fleet
