// The control plane on a real Slurm cluster (fleet/slurm.h): the owner's GPUs follow Slurm,
// leases become holder jobs, and Slurm's preemptions become reclaim notices.
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/fields.h"

namespace ll::api {

using nlohmann::json;

sim::Trace SlurmTrace(const fleet::SlurmBackend& slurm, Time now, Duration history) {
  sim::Trace t;
  t.spec = "slurm:" + slurm.options().partition;
  t.description = fmt::format("Slurm partition `{}` ({} nodes)", slurm.options().partition, slurm.nodes().size());
  t.kind = sim::DemandKind::kOccupancy;
  t.begin = now - history;
  t.end = now + Duration::Hours(24 * 365 * 50);
  sim::PoolSpec pool{.name = slurm.options().partition, .gpus = 0};
  for (const fleet::SlurmNode& n : slurm.nodes()) {
    t.nodes.push_back({.name = n.name, .pool = 0, .rack = 0, .gpus = n.gpus, .model = "slurm"});
    pool.gpus += n.gpus;
  }
  t.pools.push_back(pool);
  return t;
}

void ControlPlane::SetSlurm(fleet::SlurmBackend* slurm) {
  slurm_ = slurm;
  for (size_t n = 0; n < fleet_.trace().nodes.size(); ++n) {
    slurm_node_index_[fleet_.trace().nodes[n].name] = static_cast<uint32_t>(n);
  }
  slurm_->CancelStrayReplicas();
  for (size_t i : live_) slurm_->Adopt(leases_[i].rec.id, clock_->Now());
  PollSlurm(clock_->Now());
  Flush();
}

void ControlPlane::PollSlurm(Time now) {
  auto poll = slurm_->Poll(now);
  if (!poll) return;
  for (const std::string& id : slurm_lost_replicas_) poll->lost[id] = {now, "slurm did not take the job"};
  slurm_lost_replicas_.clear();
  // Holders gone without Landlord: their leases end when the holder went.
  for (const auto& [id, what] : poll->lost) {
    if (id.rfind("rep_", 0) == 0) {
      // A replica's job: its GPUs go back (the gateway stops routing to it in OnEnd).
      for (const auto& [tag, slot] : replicas_) {
        if (slot.id == id) {
          fmt::print(stderr, "landlord serve: replica {} is gone: {}\n", id, what.second);
          alloc_->Release(slot.holder, now);
          break;
        }
      }
      continue;
    }
    auto it = lease_index_.find(id);
    if (it == lease_index_.end()) continue;
    Lease& l = leases_[it->second];
    if (!live_.contains(it->second) || !l.holder.valid()) continue;
    l.lost = what.second;
    l.lost_at = what.first;
    alloc_->Release(l.holder, now);
  }
  // Holders Slurm preempts, as squeue shows them: the notice even when the holder's step
  // missed Slurm's SIGTERM (it started after the preemption, or its post did not arrive).
  for (const auto& [id, at] : poll->preempted) SlurmPreempted(id, fmt::format("squeue: preempted at {}", FormatUtc(at)));
  // The owner's GPUs exactly where Slurm runs other work.
  if (poll->owner != slurm_owner_) {
    slurm_owner_ = poll->owner;
    std::vector<alloc::Share> shares;
    for (const auto& [name, gpus] : poll->owner) {
      if (auto it = slurm_node_index_.find(name); it != slurm_node_index_.end()) shares.push_back({NodeId{it->second}, gpus});
    }
    const PoolId pool{0};
    alloc_->PlaceInternal(pool, shares, now);
    demand_[0] = alloc_->pool(pool).internal_want;
    forecast_->Observe(0, demand_[0], now);
  }
}

Reply ControlPlane::SlurmNotice(const json& body) {
  if (slurm_ == nullptr) return ErrorReply(StatusCode::kNotFound, "not_found", "this server has no slurm fleet");
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"lease", "token", "node"});
  auto lease = f.Str("lease", true);
  auto token = f.Str("token", true);
  auto node = f.Str("node", false);
  if (!f.ok()) return f.error();
  if (!slurm_->CheckToken(*lease, *token)) {
    return ErrorReply(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}` with that token", *lease), "lease");
  }
  {
    Work work(this);
    SlurmPreempted(*lease, fmt::format("node {}", node.value_or("?")));
  }
  for (const auto& [tag, slot] : replicas_) {
    if (slot.id != *lease) continue;
    // A replica's job is being preempted: drained (OnNotice) for the notice.
    Reply r;
    r.body = {{"object", "notice"}, {"replica", *lease}, {"state", "draining"}};
    return r;
  }
  auto it = lease_index_.find(*lease);
  if (it == lease_index_.end()) return ErrorReply(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}`", *lease), "lease");
  const Lease& l = leases_[it->second];
  Reply r;
  r.body = {{"object", "notice"}, {"lease", l.rec.id}, {"state", Name(l.rec.state)},
            {"reclaim_at", l.rec.reclaim_at == kTimeMax ? json(nullptr) : json(FormatUtc(l.rec.reclaim_at))}};
  return r;
}

// Slurm is preempting the job of `id` (a lease's holder, or a replica's job): the notice runs
// from now, the partition's GraceTime. Once: a lease already noticed or ended is left as it is.
void ControlPlane::SlurmPreempted(const std::string& id, const std::string& why) {
  for (const auto& [tag, slot] : replicas_) {
    if (slot.id != id) continue;
    if (!slot.noticed) alloc_->Notice(slot.holder, alloc::NoticeReason::kInternalDemand, now_);
    return;
  }
  auto it = lease_index_.find(id);
  if (it == lease_index_.end()) return;
  const Lease& l = leases_[it->second];
  if (live_.contains(it->second) && l.holder.valid() && l.rec.state == LeaseState::kActive && l.rec.kind == LeaseKind::kSpot) {
    alloc_->Notice(l.holder, alloc::NoticeReason::kInternalDemand, now_);
    fmt::print(stderr, "landlord serve: slurm preempts {} ({}): reclaim notice\n", l.rec.id, why);
  }
}

Reply ControlPlane::SlurmReplicaUp(const json& body) {
  if (slurm_ == nullptr || replica_host_ == nullptr) return ErrorReply(StatusCode::kNotFound, "not_found", "this server has no slurm replicas");
  if (!body.is_object()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
  Fields f(body);
  f.Only({"replica", "token", "url"});
  auto id = f.Str("replica", true);
  auto token = f.Str("token", true);
  auto url = f.Str("url", true);
  if (!f.ok()) return f.error();
  if (!slurm_->CheckToken(*id, *token)) {
    return ErrorReply(StatusCode::kNotFound, "replica_not_found", fmt::format("no replica `{}` with that token", *id), "replica");
  }
  for (const auto& [tag, slot] : replicas_) {
    if (slot.id != *id) continue;
    if (slot.noticed) break;  // already draining: not routed to again
    Status st = replica_host_->AddEndpoint(slot.id, slot.model, *url);
    if (!st.ok()) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", fmt::format("`url`: {}", st.message()), "url");
    fmt::print(stderr, "landlord serve: replica {} of {} serves at {}\n", slot.id, slot.model, *url);
    Reply r;
    r.body = {{"object", "replica"}, {"id", slot.id}, {"model", slot.model}, {"url", *url}, {"state", "serving"}};
    return r;
  }
  return ErrorReply(StatusCode::kNotFound, "replica_not_found", fmt::format("no live replica `{}`", *id), "replica");
}

}  // namespace ll::api
