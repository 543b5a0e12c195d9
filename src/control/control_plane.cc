#include "control/control_plane.h"

#include <algorithm>
#include <unordered_set>
#include <cmath>

#include <fmt/format.h>

#include "control/placement.h"
#include "core/check.h"
#include "market/auction.h"

namespace ll::control {

using alloc::HolderClass;
using alloc::HolderState;
using nlohmann::json;

json TimeJson(Time t) { return t == kTimeMax ? json(nullptr) : json(FormatUtc(t)); }

std::string InternalPlacementKey(int pool) { return fmt::format("internal_placement:{}", pool); }

Time ScaledClock::Now() const {
  double elapsed = static_cast<double>((wall_->Now() - origin_wall_).ms) * speed_;
  return origin_ + Duration::Millis(static_cast<int64_t>(elapsed));
}

// ---------------------------------------------------------------- time

void ControlPlane::Advance() {
  AdvanceTo(clock_->Now());
  replicas_.Place(*alloc_, overrides_->sellable, floor_, now_);
  accounts_.ExpireSlices(pending_);  // gateways' slices whose lease ran out: their rest returns
  Flush();
}

void ControlPlane::SetReplicaHost(gateway::ReplicaHost* host, std::vector<gateway::SimModelConfig> models) {
  replicas_.SetHost(host, std::move(models));
  Advance();
}

void ControlPlane::AdvanceTo(Time now) {
  if (now < now_) now = now_;  // the clock never runs backwards for the core
  // Each change of the owner's demand, and each of the allocator's deadlines (a reclaim, the
  // end of a term), is taken at its own time, not at the next tick: the policy then sees the
  // same history however the server ticks, a restart (WarmUp) replays it exactly, and the
  // steps are those `landlord sim` takes (tests/step/sim_predicts_serve_test.cc).
  const std::vector<Time> changes = DemandChanges(now_, now);
  for (size_t i = 0;;) {
    const Time next = i < changes.size() ? changes[i] : now;
    if (const Time deadline = alloc_->NextDeadline(); deadline < next) {
      Step(std::max(deadline, now_));
      continue;
    }
    if (i == changes.size()) break;
    Step(changes[i++]);
  }
  Step(now);
}

void ControlPlane::Step(Time now) {
  // A new month closes the last one's usage of every live lease (its invoice period).
  if (MonthStartUtc(now) != billed_month_) {
    if (billed_month_ != kTimeMax) leases_.MarkLiveDirty();
    billed_month_ = MonthStartUtc(now);
  }
  step::Step(*alloc_, *this, now);
  if (stats_.SampleDue(now, config_.sample_every)) {
    control::FleetStats::Sample s = stats_.Occupancy(*alloc_, now);
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      s.demand += alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want;
      s.forecast += forecast_->Quantile(p, 1.0, now, now + config_.sample_every);
    }
    s.spot_price = market_.price();
    stats_.Add(s);
  }
}

void ControlPlane::Integrate(Time now) {
  int64_t ms = (now - now_).ms;
  if (ms <= 0) return;
  stats_.Integrate(*alloc_, leases_.Rate(), ms);
  now_ = now;
}

void ControlPlane::StartBookings(Time now) { leases_.StartBookings(now, pending_); }

void ControlPlane::Market(Time now) { ClearMarket(now); }

void ControlPlane::SetDemand(Time now) {
  if (std::optional<fleet::PollResult> poll = fleet_->Poll(now)) ApplyPoll(*poll, now);
  if (!fleet_->DemandFromTrace()) return;
  std::erase_if(jobs_, [&](const store::InternalJobRecord& j) { return j.end <= now; });
  std::vector<Gpus> want(pool_count(), 0);
  for (int p = 0; p < pool_count(); ++p) want[p] = DemandAt(p, now);
  for (int p = 0; p < pool_count(); ++p) {
    if (want[p] == demand_[p]) continue;
    demand_[p] = want[p];
    PoolId pool{static_cast<uint32_t>(p)};
    alloc_->SetInternalDemand(pool, want[p], now);
    forecast_->Observe(p, alloc_->pool(pool).internal_want, now);
  }
}

// The spot market's clearing (control::Leases reprices the leases), and the price's history.
void ControlPlane::ClearMarket(Time now) {
  if (!leases_.ClearMarket(now, pending_)) return;
  if (decisions_ != nullptr) decisions_->Price(now, market_.price());
  if (market_.price() != recorded_spot_) {
    pending_.spot_prices.push_back({now, market_.price().micros});
    recorded_spot_ = market_.price();
  }
}

// ---------------------------------------------------------------- events and persistence

void ControlPlane::Flush() {
  if (defer_commits_) return;  // the server commits after the request (group commit)
  if (!PrepareCommit()) return;
  Status st = store_->Commit(pending_);
  LL_CHECK(st.ok());  // fail-stop: the store holds what was acknowledged; a restart resumes from it
  last_usage_inserted_ = pending_.usage_inserted;
  // Deliver after the commit, with the seqs the store assigned, after those of the commits
  // handed to the commit thread before (their seqs are lower).
  std::vector<store::LeaseEventRecord> events = std::move(pending_.events);
  pending_ = store::Batch{};
  if (commits_ != nullptr) DeliverCommitted(/*run_durable=*/false);
  Publish(std::move(events));
}

bool ControlPlane::PrepareCommit() {
  leases_.Flush(now_, pending_);
  // An event's payload is whole when it is stored: the lease as it is now, at the end of the
  // step that made the event. A replay (`Last-Event-ID`) then sends the bytes the live stream
  // sent, never the lease as it became later.
  for (store::LeaseEventRecord& e : pending_.events) {
    json data = json::parse(e.data, nullptr, false);
    if (!data.is_object()) data = json::object();
    data["lease"] = LeaseJson(book()[*book().IndexOf(e.lease_id)].rec);
    data["now"] = FormatUtc(now_);
    data["clock_speed"] = clock_->speed();
    e.data = data.dump();
  }
  // Where the owner's GPUs sit decides which nodes are free: kept so a restart is exact.
  for (int p = 0; p < alloc_->pool_count(); ++p) {
    std::string text = FormatPlacement(alloc_->InternalShares(PoolId{static_cast<uint32_t>(p)}));
    if (text == internal_placement_[p]) continue;
    pending_.settings.emplace_back(InternalPlacementKey(p), text);
    internal_placement_[p] = std::move(text);
  }
  if (pending_.empty()) return false;
  // A balance is a snapshot: only the last one of each tenant in the batch needs writing (a
  // group commit of gateway usage holds one per request).
  if (pending_.balances.size() > 1) {
    std::vector<store::BalanceRecord> last;
    std::unordered_set<std::string> seen;
    for (auto it = pending_.balances.rbegin(); it != pending_.balances.rend(); ++it) {
      if (seen.insert(it->tenant_id).second) last.push_back(std::move(*it));
    }
    pending_.balances = std::move(last);
  }
  return true;
}

void ControlPlane::Publish(std::vector<store::LeaseEventRecord> events) {
  if (events.empty()) return;
  OnPublished(events);
  events_.Publish(std::move(events));
}

void ControlPlane::UseCommitThread(store::CommitThread* commits, std::function<void(std::function<void()>)> post) {
  LL_CHECK(commits != nullptr && &commits->store() == store_);
  commits_ = commits;
  post_ = std::move(post);
}

void ControlPlane::FlushAsync(std::function<void()> durable) {
  if (commits_ == nullptr) {
    Flush();
    if (durable) durable();
    return;
  }
  // Nothing queued still waits for the commits before it (an empty batch is a barrier).
  PrepareCommit();
  store::Batch batch = std::move(pending_);
  pending_ = store::Batch{};
  commits_->Submit(std::move(batch), [this, durable = std::move(durable)](Status st, store::Batch& b) mutable {
    LL_CHECK(st.ok());  // fail-stop, as in Flush: nothing of this batch was acknowledged
    {
      std::lock_guard<std::mutex> lock(committed_mu_);
      committed_.push_back({std::move(b.events), std::move(durable)});
    }
    post_([this] { DeliverCommitted(/*run_durable=*/true); });
  });
}

void ControlPlane::DeliverCommitted(bool run_durable) {
  std::deque<Committed> done;
  {
    std::lock_guard<std::mutex> lock(committed_mu_);
    done.swap(committed_);
  }
  for (Committed& c : done) {
    Publish(std::move(c.events));
    if (c.durable) ready_.push_back(std::move(c.durable));
  }
  if (!run_durable) return;  // inside a unit of work: the posted delivery runs them
  std::vector<std::function<void()>> run;
  run.swap(ready_);
  for (auto& f : run) f();
}

void ControlPlane::FlushPending() {
  Flush();
  if (commits_ == nullptr) return;
  store::Batch barrier;  // empty: committed after every batch handed over, with nothing of its own
  LL_CHECK(commits_->store().Commit(barrier).ok());
  DeliverCommitted(/*run_durable=*/true);
}

// ---------------------------------------------------------------- leases' events

Lease* ControlPlane::Find(const Principal& who, const std::string& id) {
  auto i = book().Find(who, id);
  return i.ok() ? &book()[*i] : nullptr;
}

Result<std::vector<LeaseEvent>> ControlPlane::LeaseEvents(const Principal& who, const std::string& id, int64_t after) {
  Advance();
  Lease* l = Find(who, id);
  if (l == nullptr) return Status::NotFound(fmt::format("no lease `{}`", id));
  LL_ASSIGN_OR_RETURN(auto records, store_->LeaseEvents(id, after));
  std::vector<LeaseEvent> out;
  for (const auto& e : records) {
    LeaseEvent ev;
    ev.seq = e.seq;
    ev.type = e.type;
    ev.data = e.data;
    if (ev.data.find("\"lease\":") == std::string::npos) {
      // Written before payloads were stored whole: the lease as it is now.
      json data = json::parse(e.data, nullptr, false);
      if (!data.is_object()) data = json::object();
      data["lease"] = LeaseJson(l->rec);
      data["now"] = FormatUtc(now_);
      data["clock_speed"] = clock_->speed();
      ev.data = data.dump();
    }
    ev.final = FinalState(e.type);
    out.push_back(std::move(ev));
  }
  return out;
}

uint64_t ControlPlane::Subscribe(const std::string& lease_id, std::function<bool(const LeaseEvent&)> fn) {
  return events_.Subscribe(lease_id, std::move(fn));
}

void ControlPlane::Unsubscribe(uint64_t token) { events_.Unsubscribe(token); }

std::string ControlPlane::PolicySettingsJson() const {
  json j = {{"headroom_gpus", overrides_->headroom},
            {"notice_ms", alloc_->options().notice.ms},
            {"floor_micros", floor_.micros},
            {"sellable", overrides_->sellable}};
  return j.dump();
}

// The allocator's listener: a replica's holder is the replicas', every other outside holder a lease's.
void ControlPlane::OnStart(const alloc::Holder& h, Time now) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnStart(h, topology(), now);
  leases_.OnStart(h, now, pending_);
}

void ControlPlane::OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason) {
  if (!h.outside()) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnNotice(h);
  leases_.OnNotice(h, now, reason, pending_);
}

void ControlPlane::OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason) {
  if (!h.outside() || reason == alloc::EndReason::kRejected) return;
  if (h.cls == alloc::HolderClass::kInference) return replicas_.OnEnd(h, reason);
  leases_.OnEnd(h, now, reason, pending_);
}

// ---------------------------------------------------------------- tenant API

std::optional<Principal> ControlPlane::Authenticate(std::string_view key) const {
  const store::KeyRecord* k = tenants_.Find(key, clock_->Now());
  if (k == nullptr) return std::nullopt;
  return Principal{k->admin, k->tenant_id};
}

int ControlPlane::PoolIndex(std::string_view name) const {
  const auto& pools = topology().pools;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

json ControlPlane::LeaseJson(const store::LeaseRecord& r) const {
  json nodes = json::array();
  if (auto shares = ParsePlacement(r.placement); shares.ok()) {
    for (const auto& s : *shares) {
      json n = {{"node", topology().nodes[s.node.v].name}, {"gpus", s.gpus}};
      if (auto access = fleet_->Access(topology().nodes[s.node.v].name)) n["access"] = *access;
      nodes.push_back(std::move(n));
    }
  }
  return {{"id", r.id},
          {"object", "lease"},
          {"tenant_id", r.tenant_id},
          {"kind", Name(r.kind)},
          {"state", Name(r.state)},
          {"gpus", r.gpus},
          {"pool", topology().pools[r.pool].name},
          {"price_per_gpu_hour", FormatMoney(Money::Micros(r.price_micros))},
          {"max_price_per_gpu_hour", r.kind == LeaseKind::kSpot ? json(FormatMoney(Money::Micros(r.max_price_micros))) : json(nullptr)},
          {"notice_tier", r.kind == LeaseKind::kSpot ? json(Name(r.notice_tier)) : json(nullptr)},
          {"created_at", TimeJson(r.created)},
          {"started_at", TimeJson(r.started)},
          {"noticed_at", TimeJson(r.noticed_at)},
          {"reclaim_at", TimeJson(r.reclaim_at)},
          {"term_end", TimeJson(r.term_end)},
          {"ended_at", TimeJson(r.ended)},
          {"end_reason", r.end_reason == LeaseEnd::kNone ? json(nullptr) : json(Name(r.end_reason))},
          {"nodes", nodes},
          {"workload", WorkloadJson(r)}};
}



}  // namespace ll::control
