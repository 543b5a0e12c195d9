#include "control/replicas.h"

#include <fmt/format.h>

namespace ll::control {

void Replicas::SetHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models) {
  host_ = host;
  models_ = std::move(models);
}

void Replicas::Place(alloc::Allocator& alloc, const std::vector<bool>& sellable, Money floor, Time now) {
  if (host_ == nullptr) return;
  for (const gateway::SimModelConfig& m : models_) {
    if (m.gpus_per_replica <= 0) continue;
    int live = 0;
    for (const auto& [tag, r] : slots_) live += r.model == m.model && !r.noticed;
    for (; live < m.replicas; ++live) {
      const uint64_t tag = kTag | next_tag_;
      slots_[tag] = Slot{.model = m.model, .id = "", .holder = HolderId{}, .noticed = false};  // OnStart fills it
      bool placed = false;
      for (int p = 0; p < alloc.pool_count() && !placed; ++p) {
        if (!sellable[p]) continue;
        // Priced at the floor: among outsiders an inference holder is reclaimed first anyway.
        auto h = alloc.PlaceOutside(alloc::HolderClass::kInference, PoolId{static_cast<uint32_t>(p)},
                                    m.gpus_per_replica, floor, floor, tag, now);
        placed = h.ok();
      }
      if (!placed) {
        slots_.erase(tag);
        break;  // no room now: tried again on the next step
      }
      ++next_tag_;
    }
  }
}

void Replicas::OnStart(const alloc::Holder& h, const fleet::Topology& topology, Time now) {
  // Placed by Place (a placement starts at once or fails), which made its slot.
  Slot& slot = slots_.at(h.tag);
  const int n = static_cast<int>(starts_);
  // On the fleet (a job that registers its URL when it answers: Register), or beside it.
  std::optional<std::string> id = fleet_->StartReplica(slot.model, topology.nodes[h.shares.at(0).node.v].name, h.gpus, n, now);
  if (!id) {
    Result<std::string> local = host_->StartReplica(slot.model);
    LL_CHECK(local.ok());  // the model is one of [[gateway.sim_models]]; a loopback listener
    id = *local;
  }
  slot.id = *id;
  slot.holder = h.id;
  ++starts_;
}

void Replicas::OnNotice(const alloc::Holder& h) {
  auto it = slots_.find(h.tag);
  if (it == slots_.end()) return;
  it->second.noticed = true;
  host_->DrainReplica(it->second.id);
}

void Replicas::OnEnd(const alloc::Holder& h, alloc::EndReason reason) {
  auto it = slots_.find(h.tag);
  if (it == slots_.end()) return;
  host_->StopReplica(it->second.id);
  fleet_->EndHolder(it->second.id, Duration{});
  reclaims_ += reason == alloc::EndReason::kReclaimed;
  slots_.erase(it);
}

const Replicas::Slot* Replicas::Find(uint64_t tag) const {
  auto it = slots_.find(tag);
  return it != slots_.end() ? &it->second : nullptr;
}

const Replicas::Slot* Replicas::FindId(const std::string& id) const {
  for (const auto& [tag, slot] : slots_) {
    if (slot.id == id) return &slot;
  }
  return nullptr;
}

Result<Replicas::Slot> Replicas::Register(const std::string& id, const std::string& url) {
  const Slot* slot = FindId(id);
  // Draining: not routed to again.
  if (slot == nullptr || slot->noticed) {
    return Status(StatusCode::kNotFound, "replica_not_found", fmt::format("no live replica `{}`", id), "replica");
  }
  if (Status st = host_->AddEndpoint(slot->id, slot->model, url); !st.ok()) {
    return Status(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`url`: {}", st.message()), "url");
  }
  return *slot;
}

}  // namespace ll::control
