// control::Leases: what the store keeps of the leases (restoring them at start, writing the
// changed ones and their completed usage), and the workload that runs on a lease.
#include <unordered_map>

#include <fmt/format.h>

#include "control/leases.h"
#include "control/placement.h"
#include "core/check.h"

namespace ll::control {

using alloc::HolderClass;
using alloc::HolderState;
using nlohmann::json;

json StoredWorkload(const store::LeaseRecord& r) {
  if (r.workload.empty()) return nullptr;
  json j = json::parse(r.workload, nullptr, false);
  return j.is_object() ? j : json(nullptr);
}

namespace {

bool EndedState(const std::string& s) { return s == "exited" || s == "killed" || s == "failed"; }

alloc::Allocator::RestoreSpec RestoreSpecOf(const store::LeaseRecord& rec, size_t index, Duration flash_notice) {
  alloc::Allocator::RestoreSpec rs;
  rs.cls = rec.kind == LeaseKind::kReserved ? HolderClass::kReserved : HolderClass::kSpot;
  rs.state = rec.state == LeaseState::kNoticed ? HolderState::kNoticed : HolderState::kActive;
  rs.pool = PoolId{static_cast<uint32_t>(rec.pool)};
  rs.price = Money::Micros(rec.price_micros);
  rs.max_price = Money::Micros(rec.max_price_micros);
  rs.created = rec.created;
  rs.started = rec.started;
  rs.noticed_at = rec.noticed_at;
  rs.reclaim_at = rec.reclaim_at;
  rs.term_end = rec.term_end;
  rs.tag = index;
  if (rec.notice_tier == NoticeTier::kFlash) rs.notice = flash_notice;
  return rs;
}

}  // namespace

Status Leases::Restore(std::vector<store::LeaseRecord> records, const std::vector<store::LeasePriceRecord>& prices,
                       Time now, store::Batch& batch) {
  std::unordered_map<std::string, std::vector<ledger::PricePoint>> prices_of;
  for (const auto& p : prices) prices_of[p.lease_id].push_back({p.at, Money::Micros(p.price_micros)});
  for (auto& rec : records) {
    Lease l;
    l.rec = rec;
    if (auto it = prices_of.find(rec.id); it != prices_of.end()) l.prices = std::move(it->second);
    const size_t index = book_.Add(std::move(l));
    EndWorkloadAtLoad(index, now, batch);
    if (Live(rec.state)) {
      alloc::Allocator::RestoreSpec rs = RestoreSpecOf(rec, index, c_.overrides->flash_notice);
      LL_ASSIGN_OR_RETURN(rs.shares, ParsePlacement(rec.placement));
      auto id = c_.alloc->Restore(rs);
      if (!id.ok()) return Status::Invalid(fmt::format("store: lease `{}` cannot be restored: {}", rec.id, id.status().message()));
      book_[index].holder = *id;
      book_.SetLive(index, true);
    } else if (rec.state == LeaseState::kScheduled) {
      c_.overrides->bookings.push_back({index, rec.pool, static_cast<Gpus>(rec.gpus), rec.started, rec.term_end});
    }
  }
  return Status::Ok();
}

void Leases::MarkLiveDirty() { dirty_.insert(dirty_.end(), book_.live().begin(), book_.live().end()); }

void Leases::Flush(Time now, store::Batch& batch) {
  std::sort(dirty_.begin(), dirty_.end());
  dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
  for (size_t i : dirty_) {
    Lease& l = book_[i];
    if (l.holder.valid()) {
      const alloc::Holder& h = c_.alloc->holder(l.holder);
      if (!h.shares.empty()) l.rec.placement = FormatPlacement(h.shares);
    }
    batch.leases.push_back(l.rec);
    Bill(l, now, batch);
  }
  dirty_.clear();
}

bool Leases::UsageOf(const Lease& l, ledger::LeaseUsage* u) {
  // Never held GPUs, or for no time at all (released in the instant it started).
  if (l.prices.empty() || l.rec.started == kTimeMax) return false;
  if (l.rec.ended != kTimeMax && l.rec.ended <= l.rec.started) return false;
  u->tenant_id = l.rec.tenant_id;
  u->lease_id = l.rec.id;
  u->kind = Name(l.rec.kind);
  u->gpus = l.rec.gpus;
  u->start = l.rec.started;
  u->end = l.rec.ended;
  u->prices = ledger::LastAtEachInstant(l.prices);
  return true;
}

// Adds the lease's newly completed usage events to the batch.
void Leases::Bill(Lease& l, Time now, store::Batch& batch) {
  ledger::LeaseUsage u;
  if (!UsageOf(l, &u)) return;
  auto events = ledger::CompletedEvents(u, now);
  LL_CHECK(events.ok());  // the control plane built the usage: a failure here is a bug
  for (size_t i = l.billed; i < events->size(); ++i) {
    const ledger::UsageEvent& e = (*events)[i];
    batch.usage.push_back({.key = e.key,
                           .tenant_id = e.tenant_id,
                           .source = "lease",
                           .ref = e.lease_id,
                           .kind = e.kind,
                           .period = e.period,
                           .start = e.start,
                           .end = e.end,
                           .quantity = e.gpu_ms,
                           .unit = "gpu_ms",
                           .unit_price_micros = e.price.micros,
                           .amount_micros = e.amount.micros});
  }
  l.billed = events->size();
}

// ---------------------------------------------------------------- workloads

void Leases::StartWorkload(Lease& l, const alloc::Holder& h, Time now, store::Batch& batch) {
  const json stored = StoredWorkload(l.rec);
  if (stored.is_null()) return;
  auto spec = workload::ParseSpec(stored.value("spec", json::object()));
  workload::WorkloadStatus s;
  if (workloads_ == nullptr || !spec.ok()) {
    s.state = workload::State::kFailed;
    s.ended_at = now;
    s.error = spec.ok() ? "this server runs no workloads" : std::string(spec.status().message());
  } else {
    std::vector<std::string> nodes;
    for (const auto& sh : h.shares) nodes.push_back(topology().nodes[sh.node.v].name);
    // The sim fleet's GPUs have no device files: the lease's count on its first node, from 0.
    std::string cuda;
    for (Gpus g = 0; !h.shares.empty() && g < h.shares[0].gpus; ++g) cuda += fmt::format("{}{}", g == 0 ? "" : ",", g);
    s = workloads_->Start(l.rec.id, std::move(nodes), std::move(cuda), *spec);
  }
  RecordWorkload(*book_.IndexOf(l.rec.id), s, now, batch);
}

// Each transition once (the sandbox's own report of a start recorded here already is ignored),
// and never back from an end.
void Leases::RecordWorkload(size_t index, const workload::WorkloadStatus& s, Time now, store::Batch& batch) {
  Lease& l = book_[index];
  json stored = StoredWorkload(l.rec);
  if (stored.is_null()) return;
  const json status = s.ToJson();
  const std::string before = stored.value("status", json::object()).value("state", "pending");
  if (before == status["state"] || EndedState(before) || s.state == workload::State::kPending) return;
  stored["status"] = status;
  l.rec.workload = stored.dump();
  const bool started = s.state == workload::State::kRunning;
  const Time at = started ? s.started_at.value_or(now) : s.ended_at.value_or(now);
  Emit(l, started ? "workload_started" : "workload_exited", at, batch, status);
}

// A workload that was running (or about to) when the server stopped died with it.
void Leases::EndWorkloadAtLoad(size_t index, Time now, store::Batch& batch) {
  Lease& l = book_[index];
  json stored = StoredWorkload(l.rec);
  if (stored.is_null()) return;
  json status = stored.value("status", json::object());
  const std::string state = status.value("state", "pending");
  if (EndedState(state) || (state == "pending" && l.rec.state == LeaseState::kScheduled)) return;
  status["state"] = "killed";
  status["ended_at"] = FormatUtc(now);
  status["error"] = "server restarted";
  if (!status.contains("exit_code")) status["exit_code"] = nullptr;
  stored["status"] = status;
  l.rec.workload = stored.dump();
  Emit(l, "workload_exited", now, batch, status);
}

}  // namespace ll::control
