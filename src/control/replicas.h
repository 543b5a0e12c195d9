// Replicas: the model API's inference capacity on the fleet. Each model with gpus_per_replica
// > 0 keeps `replicas` inference holders placed on the sellable pools (reclaimed first when
// the owner needs GPUs): a notice drains the replica, its end stops it, free GPUs start it
// again. A replica runs on the fleet (a Slurm job that registers its URL) or beside it (the
// gateway's ReplicaHost). Not persisted: after a restart they are placed anew.
//
// A component of the control plane (docs/architecture.md): it is told the allocator's starts,
// notices and ends of its holders (tags with kTag set) and answers with domain errors.
//
// Thread-safety: none; the control plane's one thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "core/money.h"
#include "core/status.h"
#include "fleet/backend.h"
#include "gateway/gateway.h"
#include "gateway/options.h"

namespace ll::control {

class Replicas {
 public:
  // The bit that tells a replica's holder tag from a lease's (an index).
  static constexpr uint64_t kTag = uint64_t{1} << 62;
  static bool Owns(uint64_t tag) { return (tag & kTag) != 0; }

  struct Slot {
    std::string model, id;
    HolderId holder;
    bool noticed = false;  // draining
  };

  // `fleet` must outlive the object (UseFleet replaces it).
  explicit Replicas(fleet::Backend* fleet) : fleet_(fleet) {}
  void UseFleet(fleet::Backend* fleet) { fleet_ = fleet; }
  // From now on keeps `models`' replicas placed; `host` runs those the fleet does not and must
  // outlive the object.
  void SetHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models);
  bool enabled() const { return host_ != nullptr; }

  // Places the replicas missing (not counting draining ones) on the pools `sellable` allows,
  // priced at `floor`; a model with no room now is tried again next time.
  void Place(alloc::Allocator& alloc, const std::vector<bool>& sellable, Money floor, Time now);

  // The allocator's word on a replica's holder.
  void OnStart(const alloc::Holder& h, const fleet::Topology& topology, Time now);
  void OnNotice(const alloc::Holder& h);
  void OnEnd(const alloc::Holder& h, alloc::EndReason reason);

  const Slot* Find(uint64_t tag) const;
  const Slot* FindId(const std::string& id) const;
  const std::map<uint64_t, Slot>& all() const { return slots_; }
  // A replica's job answers at `url` (Slurm): the gateway routes to it from now on.
  // `replica_not_found` unless it is placed and not draining; a bad url names `url`.
  Result<Slot> Register(const std::string& id, const std::string& url);

  int64_t starts() const { return starts_; }
  int64_t reclaims() const { return reclaims_; }

 private:
  fleet::Backend* fleet_;
  gateway::ReplicaHost* host_ = nullptr;
  std::vector<gateway::SimModelConfig> models_;
  std::map<uint64_t, Slot> slots_;  // by tag: placed and not ended
  uint64_t next_tag_ = 0;
  int64_t starts_ = 0, reclaims_ = 0;
};

}  // namespace ll::control
