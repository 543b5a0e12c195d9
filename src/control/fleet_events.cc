// What a fleet backend reports back (fleet/backend.h): the owner's GPUs where the fleet runs
// them, holders it lost, and preemptions that become reclaim notices (on Slurm: read every
// poll, and posted by the holder jobs: api/fleet_events.cc decodes those posts).
#include <fmt/format.h>

#include <algorithm>

#include "control/control_plane.h"
#include "core/check.h"

namespace ll::control {

void ControlPlane::UseBackend(fleet::Backend* backend) {
  LL_CHECK(backend->topology().nodes.size() == topology().nodes.size());
  LL_CHECK(backend->topology().pools.size() == topology().pools.size());
  fleet_ = backend;
  replicas_.UseFleet(backend);
  leases_.UseFleet(backend);
  own_fleet_.reset();
  for (size_t n = 0; n < topology().nodes.size(); ++n) {
    node_index_[topology().nodes[n].name] = static_cast<uint32_t>(n);
  }
  std::vector<std::string> live;
  for (size_t i : book().live()) live.push_back(book()[i].rec.id);
  fleet_->Attach(live, clock_->Now());
  if (std::optional<fleet::PollResult> poll = fleet_->Poll(clock_->Now()))
    ApplyPoll(*poll, clock_->Now());
  Flush();
}

// What the fleet found: holders it lost or preempts, and where the owner's GPUs are.
void ControlPlane::ApplyPoll(const fleet::PollResult& poll, Time now) {
  // Holders gone without Landlord: their leases end when the holder went.
  for (const auto& [id, what] : poll.lost) {
    if (id.rfind("rep_", 0) == 0) {
      // A replica's job: its GPUs go back (the gateway stops routing to it in OnEnd).
      if (const auto* slot = replicas_.FindId(id)) {
        fmt::print(stderr, "landlord serve: replica {} is gone: {}\n", id, what.second);
        alloc_->Release(slot->holder, now);
      }
      continue;
    }
    leases_.Lost(id, what.second, what.first, now);
  }
  // Holders Slurm preempts, as squeue shows them: the notice even when the holder's step
  // missed Slurm's SIGTERM (it started after the preemption, or its post did not arrive).
  for (const auto& [id, at] : poll.preempted)
    Preempted(id, fmt::format("squeue: preempted at {}", FormatUtc(at)));
  // The owner's GPUs exactly where Slurm runs other work.
  if (poll.owner != fleet_owner_) {
    fleet_owner_ = poll.owner;
    std::vector<alloc::Share> shares;
    for (const auto& [name, gpus] : poll.owner) {
      if (auto it = node_index_.find(name); it != node_index_.end())
        shares.push_back({NodeId{it->second}, gpus});
    }
    const PoolId pool{0};
    alloc_->PlaceInternal(pool, shares, now);
    demand_[0] = alloc_->pool(pool).internal_want;
    forecast_->Observe(0, demand_[0], now);
  }
}

// Slurm is preempting the job of `id` (a lease's holder, or a replica's job): the notice runs
// from now, the partition's GraceTime. Once: a lease already noticed or ended is left as it is.
void ControlPlane::Preempted(const std::string& id, const std::string& why) {
  if (const auto* slot = replicas_.FindId(id)) {
    if (!slot->noticed) alloc_->Notice(slot->holder, alloc::NoticeReason::kInternalDemand, now_);
    return;
  }
  if (leases_.Preempted(id, now_)) fmt::print(stderr, "landlord serve: slurm preempts {} ({}): reclaim notice\n", id, why);
}

Status ControlPlane::TakesNotices() const {
  if (fleet_->TakesNotices()) return Status::Ok();
  return Status(StatusCode::kNotFound, "not_found", "this server has no slurm fleet");
}

Status ControlPlane::TakesReplicas() const {
  if (fleet_->TakesNotices() && replicas_.enabled()) return Status::Ok();
  return Status(StatusCode::kNotFound, "not_found", "this server has no slurm replicas");
}

Result<ControlPlane::NoticeTaken> ControlPlane::SlurmNotice(const std::string& id, const std::string& token,
                                                            const std::string& node) {
  LL_RETURN_IF_ERROR(TakesNotices());
  if (!fleet_->CheckToken(id, token)) {
    return Status(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}` with that token", id), "lease");
  }
  {
    Work work(this);
    Preempted(id, fmt::format("node {}", node));
  }
  if (replicas_.FindId(id) != nullptr) return NoticeTaken{};  // a replica's job: drained (OnNotice)
  LL_ASSIGN_OR_RETURN(size_t i, book().Find(Principal{.admin = true, .tenant_id = ""}, id, "lease"));
  return NoticeTaken{.lease = &book()[i].rec};
}

Result<Replicas::Slot> ControlPlane::SlurmReplicaUp(const std::string& id, const std::string& token,
                                                   const std::string& url) {
  LL_RETURN_IF_ERROR(TakesReplicas());
  if (!fleet_->CheckToken(id, token)) {
    return Status(StatusCode::kNotFound, "replica_not_found", fmt::format("no replica `{}` with that token", id),
                  "replica");
  }
  LL_ASSIGN_OR_RETURN(Replicas::Slot slot, replicas_.Register(id, url));
  fmt::print(stderr, "landlord serve: replica {} of {} serves at {}\n", slot.id, slot.model, url);
  return slot;
}

}  // namespace ll::control
