// What a fleet backend reports back (fleet/backend.h): the owner's GPUs where the fleet runs
// them, holders it lost, and preemptions that become reclaim notices (on Slurm: read every
// poll, and posted by the holder jobs).
#include <fmt/format.h>

#include <algorithm>

#include "api/control_plane.h"
#include "api/fields.h"
#include "core/check.h"

namespace ll::api {

using nlohmann::json;

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

Reply ControlPlane::SlurmNotice(const json& body) {
  if (!fleet_->TakesNotices())
    return ErrorReply(StatusCode::kNotFound, "not_found", "this server has no slurm fleet");
  Fields f(body);
  f.Only({"lease", "token", "node"});
  auto lease = f.Str("lease", true);
  auto token = f.Str("token", true);
  auto node = f.Str("node", false);
  if (!f.ok()) return f.error();
  if (!fleet_->CheckToken(*lease, *token)) {
    return ErrorReply(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}` with that token", *lease),
                      "lease");
  }
  {
    Work work(this);
    Preempted(*lease, fmt::format("node {}", node.value_or("?")));
  }
  if (replicas_.FindId(*lease) != nullptr) {
    // A replica's job is being preempted: drained (OnNotice) for the notice.
    Reply r;
    r.body = {{"object", "notice"}, {"replica", *lease}, {"state", "draining"}};
    return r;
  }
  auto i = book().Find(Principal{.admin = true, .tenant_id = ""}, *lease, "lease");
  if (!i.ok()) return ErrorReply(i.status());
  const Lease& l = book()[*i];
  Reply r;
  r.body = {{"object", "notice"},
            {"lease", l.rec.id},
            {"state", Name(l.rec.state)},
            {"reclaim_at",
             l.rec.reclaim_at == kTimeMax ? json(nullptr) : json(FormatUtc(l.rec.reclaim_at))}};
  return r;
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

Reply ControlPlane::SlurmReplicaUp(const json& body) {
  if (!fleet_->TakesNotices() || !replicas_.enabled()) {
    return ErrorReply(StatusCode::kNotFound, "not_found", "this server has no slurm replicas");
  }
  Fields f(body);
  f.Only({"replica", "token", "url"});
  auto id = f.Str("replica", true);
  auto token = f.Str("token", true);
  auto url = f.Str("url", true);
  if (!f.ok()) return f.error();
  if (!fleet_->CheckToken(*id, *token)) {
    return ErrorReply(StatusCode::kNotFound, "replica_not_found", fmt::format("no replica `{}` with that token", *id),
                      "replica");
  }
  auto slot = replicas_.Register(*id, *url);
  if (!slot.ok()) return ErrorReply(slot.status());
  fmt::print(stderr, "landlord serve: replica {} of {} serves at {}\n", slot->id, slot->model, *url);
  Reply r;
  r.body = {{"object", "replica"}, {"id", slot->id}, {"model", slot->model}, {"url", *url}, {"state", "serving"}};
  return r;
}

}  // namespace ll::api
