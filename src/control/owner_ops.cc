// The owner's operations through the facade: tenants, their keys, the selling settings and
// the owner's own jobs. Each change is a unit of work (Work) or commits at Advance.
#include <fmt/format.h>

#include "control/control_plane.h"

namespace ll::control {

Result<store::TenantRecord> ControlPlane::CreateTenant(std::string name) {
  store::TenantRecord t = tenants_.Create(std::move(name), clock_->Now(), pending_);
  Advance();
  return t;
}

Result<Tenants::NewKey> ControlPlane::CreateKey(const Tenants::KeySpec& spec) {
  LL_ASSIGN_OR_RETURN(Tenants::NewKey k, tenants_.CreateKey(spec, clock_->Now(), pending_));
  Advance();
  return k;
}

Result<Tenants::Revocation> ControlPlane::RevokeKey(const std::string& id) {
  LL_ASSIGN_OR_RETURN(Tenants::Revocation r, tenants_.RevokeKey(id, clock_->Now(), pending_));
  if (r.changed) Advance();
  return r;
}

PolicyView ControlPlane::GetPolicy() {
  Advance();
  PolicyView v{.policy = alloc_->policy().name(),
               .notice = alloc_->options().notice,
               .floor = floor_,
               .headroom_gpus = overrides_->headroom,
               .sellable_pools = {}};
  for (int p = 0; p < pool_count(); ++p) {
    if (overrides_->sellable[p]) v.sellable_pools.push_back(topology().pools[p].name);
  }
  return v;
}

Status ControlPlane::PutPolicy(const PolicyChange& change) {
  Work work(this);
  if (change.notice) {
    alloc_->SetNotice(*change.notice);
    overrides_->notice = *change.notice;
  }
  if (change.floor) {
    floor_ = *change.floor;
    alloc_->SetFloor(floor_);
    market_.set_floor(floor_);
  }
  if (change.headroom_gpus) overrides_->headroom = *change.headroom_gpus;
  if (change.sellable) overrides_->sellable = *change.sellable;
  pending_.settings.emplace_back("policy", PolicySettingsJson());
  // Apply at once: limits (notices for what is now over them) and the market at the new floor.
  alloc_->Rebalance(now_);
  ClearMarket(now_);
  return Status::Ok();
}

Status ControlPlane::AcceptsOwnerJobs() const {
  Status st = fleet_->AcceptsOwnerJobs();
  if (st.ok()) return st;
  return Status(st.code(), fmt::format("{}_fleet", fleet_->name()), std::string(st.message()));
}

Result<store::InternalJobRecord> ControlPlane::AddInternalJob(int pool, Gpus gpus, Duration duration) {
  LL_RETURN_IF_ERROR(AcceptsOwnerJobs());
  Work work(this);
  store::InternalJobRecord j;
  j.id = MakeExternalId("job", ++job_count_);
  j.pool = pool;
  j.gpus = gpus;
  j.start = now_;
  j.end = now_ + duration;
  jobs_.push_back(j);
  pending_.internal_jobs.push_back(j);
  SetDemand(now_);
  alloc_->Rebalance(now_);
  ClearMarket(now_);
  return j;
}

}  // namespace ll::control
