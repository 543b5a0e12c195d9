// control::Leases: creating and releasing leases, and what the allocator and the fleet report
// about their holders. Restoring, workloads and billing are in lease_records.cc.
#include "control/leases.h"

#include <algorithm>

#include <fmt/format.h>

#include "control/placement.h"
#include "core/check.h"

namespace ll::control {

using alloc::HolderClass;
using nlohmann::json;

// A lease being created: it holds the next index, and gives it back unless kept.
class Leases::Slot {
 public:
  Slot(LeaseBook* book, const Principal& who, LeaseKind kind, Time now) : book_(book) {
    Lease l;
    l.rec.id = MakeExternalId("lease", book->size() + 1);
    l.rec.tenant_id = who.tenant_id;
    l.rec.kind = kind;
    l.rec.created = now;
    index_ = book->Add(std::move(l));
  }
  ~Slot() {
    if (!kept_) book_->PopBack();
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  Lease& lease() { return (*book_)[index_]; }
  size_t index() const { return index_; }
  void Keep() { kept_ = true; }

 private:
  LeaseBook* book_;
  size_t index_;
  bool kept_ = false;
};

Status Leases::MayCreate(const Principal& who) {
  if (who.admin) return Status(StatusCode::kPermissionDenied, "tenant_only", "leases are created with a tenant key");
  return Status::Ok();
}

Status Leases::CanRun(const LeaseRequest& req) const {
  if (!req.workload) return Status::Ok();
  if (workloads_ == nullptr) {
    return Status(StatusCode::kUnavailable, "workloads_unavailable",
                  "this server runs no workloads (`[workloads] enabled`, true by default)", "workload");
  }
  // What this fleet cannot run (on Slurm: SSH keys, an image without a container template).
  workload::SpecError why;
  if (Status st = workloads_->Accepts(*req.workload, &why); !st.ok()) {
    return Status(st.code(), why.reason, std::string(st.message()), why.param);
  }
  return Status::Ok();
}

Result<size_t> Leases::Create(const Principal& who, LeaseRequest req, Time now, store::Batch& batch,
                              ReservedOffer* offer) {
  const Duration notice = c_.alloc->options().notice;
  if (Status st = c_.fleet->Available(); !st.ok()) {
    return Status(st.code(), "fleet_unavailable", std::string(st.message()));
  }
  if (c_.fleet->ReservesWholeNodes() && req.kind == LeaseKind::kReserved) {
    req.gpus = c_.alloc->RoundToNodes(PoolId{0}, std::max<Gpus>(req.gpus, c_.alloc->fleet().max_node_gpus()));
  }
  if (req.start_at && (*req.start_at < now + notice || *req.start_at > now + Duration::Hours(24 * 365))) {
    return Status(StatusCode::kInvalidArgument, "invalid_value",
                  fmt::format("`start_at` must be from the reclaim notice ({} s) after the server's now ({}) to a "
                              "year later, so that spot leases can make way; leave it out to start now",
                              notice.ms / 1000, FormatUtc(now)),
                  "start_at");
  }
  Slot slot(&book_, who, req.kind, now);
  if (req.workload) {
    slot.lease().rec.workload =
        json{{"spec", req.workload->ToJson()}, {"status", workload::WorkloadStatus{}.ToJson()}}.dump();
  }
  Status placed = req.kind == LeaseKind::kSpot ? PlaceSpot(req, slot, now) : PlaceReserved(req, slot, now, batch, offer);
  if (!placed.ok()) return placed;
  slot.Keep();
  Lease& lease = slot.lease();
  if (lease.holder.valid()) {
    const alloc::Holder& h = c_.alloc->holder(lease.holder);
    lease.rec.gpus = h.gpus;
    lease.rec.price_micros = h.price.micros;
    if (!h.shares.empty()) lease.rec.placement = FormatPlacement(h.shares);
  }
  dirty_.push_back(slot.index());
  if (!lease.refused.empty() && lease.holder.valid() && book_.IsLive(slot.index())) {
    // The fleet refused the holder: the lease ends at once (nothing billed) and the tenant is told.
    lease.lost_at = now;
    c_.alloc->Release(lease.holder, now);
    return Status(StatusCode::kUnavailable, "fleet_unavailable",
                  fmt::format("{} did not take the lease `{}`: {}", c_.fleet->name(), lease.rec.id, lease.refused));
  }
  return slot.index();
}

Status Leases::PlaceSpot(const LeaseRequest& req, Slot& slot, Time now) {
  const bool flash = req.notice_tier == NoticeTier::kFlash;
  if (flash && !c_.overrides->FlashOffered()) {
    return Status(StatusCode::kConflict, "tier_unavailable",
                  fmt::format("the flash tier is not offered: its notice ({} s) must be shorter than the reclaim "
                              "notice ({} s)",
                              c_.overrides->flash_notice.ms / 1000, c_.overrides->notice.ms / 1000),
                  "notice_tier");
  }
  const Money price = flash ? c_.market->flash_price() : c_.market->price();
  if (req.max_price < price) {
    return Status(StatusCode::kConflict, "price_below_market",
                  fmt::format("`max_price_per_gpu_hour` {} is below the {} spot price {}", FormatMoney(req.max_price),
                              Name(req.notice_tier), FormatMoney(price)),
                  "max_price_per_gpu_hour");
  }
  Lease& lease = slot.lease();
  lease.rec.notice_tier = req.notice_tier;
  int placed = -1;
  const std::vector<int> pools = step::CandidatePools(c_.alloc->pool_count(), req.pool);
  auto id = step::PlaceSpot(*c_.alloc, pools, req.gpus, price, req.max_price, slot.index(), now, &placed,
                            flash ? c_.overrides->flash_notice : Duration{});
  if (!id.ok()) {
    return Status(StatusCode::kResourceExhausted, "insufficient_capacity",
                  fmt::format("no {} GPUs can be sold now on the {} tier: {}", req.gpus, Name(req.notice_tier),
                              id.status().message()),
                  "gpus");
  }
  lease.holder = *id;
  lease.rec.pool = placed;
  lease.rec.max_price_micros = req.max_price.micros;
  return Status::Ok();
}

// Reserved now (placed), or from `start_at` (booked: promised out of the forecast now, placed
// when it starts; see StartBookings).
Status Leases::PlaceReserved(const LeaseRequest& req, Slot& slot, Time now, store::Batch& batch,
                             ReservedOffer* offer) {
  const Time start = req.start_at.value_or(now);
  const Time end = start + Duration::Seconds(req.duration_s);
  const Money price = ReservedPriceFor(Duration::Seconds(req.duration_s));
  const std::vector<int> pools = step::CandidatePools(c_.alloc->pool_count(), req.pool);
  auto room_for = [&](int p, Time until) {
    const PoolId pid{static_cast<uint32_t>(p)};
    return start > now ? c_.alloc->BookableRoom(pid, until, now) : c_.alloc->ReservedRoom(pid, until, now);
  };
  Lease& lease = slot.lease();
  lease.rec.term_end = end;
  if (start == now) {
    auto id = step::PlaceReserved(*c_.alloc, pools, req.gpus, end, price, slot.index(), now, &lease.rec.pool);
    if (id.ok()) {
      lease.holder = *id;
      return Status::Ok();
    }
  } else {
    std::vector<int> by_room = pools;
    std::stable_sort(by_room.begin(), by_room.end(), [&](int a, int b) { return room_for(a, end) > room_for(b, end); });
    for (int p : by_room) {
      const Gpus g = c_.alloc->RoundToNodes(PoolId{static_cast<uint32_t>(p)}, req.gpus);
      if (g > room_for(p, end)) continue;
      c_.overrides->bookings.push_back({slot.index(), p, g, start, end});
      lease.rec.pool = p;
      lease.rec.gpus = g;
      lease.rec.price_micros = price.micros;
      lease.rec.state = LeaseState::kScheduled;
      lease.rec.started = start;
      Emit(lease, "scheduled", now, batch, {{"start_at", FormatUtc(start)}});
      Changed();
      return Status::Ok();
    }
  }
  return ForecastConflict(req, start, now, offer);
}

Status Leases::ForecastConflict(const LeaseRequest& req, Time start, Time now, ReservedOffer* offer) const {
  const std::vector<int> pools = step::CandidatePools(c_.alloc->pool_count(), req.pool);
  auto room_for = [&](int p, Time until) {
    const PoolId pid{static_cast<uint32_t>(p)};
    return start > now ? c_.alloc->BookableRoom(pid, until, now) : c_.alloc->ReservedRoom(pid, until, now);
  };
  const Time end = start + Duration::Seconds(req.duration_s);
  ReservedOffer o;
  o.duration_s = req.duration_s;
  for (int p : pools) o.gpus = std::max(o.gpus, room_for(p, end));
  for (const auto& t : c_.prices->reserved_terms) {
    Gpus room = 0;
    for (int p : pools) room = std::max(room, room_for(p, start + t.term));
    if (room >= req.gpus) o.longest_term_s = t.term.ms / 1000;
  }
  if (offer != nullptr) *offer = o;
  return Status(StatusCode::kConflict, "forecast_conflict",
                fmt::format("the forecast of the owner's demand cannot guarantee {} GPUs for {} s from {}; the largest "
                            "accepted now for that term is {} GPUs{}",
                            req.gpus, req.duration_s, FormatUtc(start), o.gpus,
                            o.longest_term_s ? fmt::format(", and {} GPUs fit a term of {} s", req.gpus, *o.longest_term_s)
                                             : ""),
                "gpus");
}

Result<size_t> Leases::Release(const Principal& who, const std::string& id, Time now, store::Batch& batch) {
  LL_ASSIGN_OR_RETURN(const size_t i, book_.Find(who, id));
  Lease& l = book_[i];
  if (l.rec.state == LeaseState::kScheduled) {
    // A booking not yet started: cancelled, nothing was held.
    std::erase_if(c_.overrides->bookings, [&](const auto& b) { return b.lease == i; });
    l.rec.state = LeaseState::kReleased;
    l.rec.end_reason = LeaseEnd::kReleased;
    l.rec.ended = now;
    Emit(l, "released", now, batch);
    Changed();
  } else if (!Final(l.rec.state)) {
    l.releasing = true;
    c_.alloc->Release(l.holder, now);
  }
  return i;
}

// ---------------------------------------------------------------- the allocator's listener

void Leases::OnStart(const alloc::Holder& h, Time now, store::Batch& batch) {
  Changed();
  if (decisions_ != nullptr) decisions_->Started(now, h.tag, h);
  Lease& l = book_[h.tag];
  {
    std::vector<std::pair<std::string, Gpus>> nodes;
    for (const auto& sh : h.shares) nodes.emplace_back(topology().nodes[sh.node.v].name, sh.gpus);
    Status st = c_.fleet->StartLease(l.rec.id, nodes, h.cls == HolderClass::kReserved ? h.term_end : kTimeMax, now);
    if (!st.ok()) {
      l.refused = st.message();
      l.lost = fmt::format("{} did not take the holder job: {}", c_.fleet->name(), st.message());
    }
  }
  book_.SetLive(h.tag, true);
  l.rec.state = LeaseState::kActive;
  l.rec.started = now;
  l.prices.push_back({now, h.price});
  batch.lease_prices.push_back({l.rec.id, now, h.price.micros});
  ++c_.stats->counters().leases_started;
  Emit(l, "active", now, batch);
  StartWorkload(l, h, now, batch);
}

void Leases::OnNotice(const alloc::Holder& h, Time now, alloc::NoticeReason reason, store::Batch& batch) {
  Changed();
  if (decisions_ != nullptr) decisions_->Noticed(now, h.tag, h, reason);
  Lease& l = book_[h.tag];
  l.rec.state = LeaseState::kNoticed;
  l.rec.noticed_at = now;
  l.rec.reclaim_at = h.reclaim_at;
  Emit(l, "reclaim_notice", now, batch,
       {{"reclaim_at", FormatUtc(h.reclaim_at)}, {"reason", alloc::NoticeReasonName(reason)}});
  if (workloads_ != nullptr && !l.rec.workload.empty()) workloads_->Notice(l.rec.id, h.reclaim_at);
}

void Leases::OnEnd(const alloc::Holder& h, Time now, alloc::EndReason reason, store::Batch& batch) {
  Changed();
  if (decisions_ != nullptr) decisions_->Ended(now, h.tag, reason);
  Lease& l = book_[h.tag];
  book_.SetLive(h.tag, false);
  l.rec.ended = now;
  StopWorkload(l, reason, now, batch);
  if (!l.lost.empty()) {
    // The holder is gone without Landlord (slurm): billing stops when it went.
    if (l.lost_at != kTimeMax) l.rec.ended = std::clamp(l.lost_at, l.rec.started, now);
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kHolderLost;
    Emit(l, std::string(Name(l.rec.state)), l.rec.ended, batch, {{"message", l.lost}});
    return;
  }
  if (reason == alloc::EndReason::kReclaimed) {
    ++c_.stats->counters().reclaims;
    l.rec.state = LeaseState::kReclaimed;
    l.rec.end_reason = LeaseEnd::kReclaimed;
  } else if (l.releasing) {
    l.rec.state = LeaseState::kReleased;
    l.rec.end_reason = LeaseEnd::kReleased;
  } else {
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kTermEnded;
  }
  Emit(l, std::string(Name(l.rec.state)), now, batch);
}

// A lease's end ends its workload and its holder. A released lease's running workload has
// `stop_grace` to end after its SIGTERM (on Slurm the holder job waits as long: its steps are
// signalled, then killed); any other end kills it at once, and that end is recorded here, before
// the lease's final event, so the event stream shows `workload_exited` first.
void Leases::StopWorkload(Lease& l, alloc::EndReason reason, Time now, store::Batch& batch) {
  const bool has = workloads_ != nullptr && !l.rec.workload.empty();
  const bool running = has && StoredWorkload(l.rec).value("status", json::object()).value("state", "") == "running";
  const Duration grace = reason == alloc::EndReason::kReclaimed || !l.lost.empty() || !running
                             ? Duration{}
                             : workloads_->options().stop_grace;
  c_.fleet->EndHolder(l.rec.id, grace);
  if (!has) return;
  if (grace.ms > 0) return workloads_->Stop(l.rec.id, grace);
  if (auto s = workloads_->StopNow(l.rec.id, now)) RecordWorkload(*book_.IndexOf(l.rec.id), *s, now, batch);
}

// Booked reserved leases whose start has come are placed. The promise was made out of the
// forecast when they were booked, so the room is not checked again; if the owner took the
// GPUs anyway (demand above the forecast), the lease ends as a forecast miss.
void Leases::StartBookings(Time now, store::Batch& batch) {
  auto& bookings = c_.overrides->bookings;
  for (size_t k = 0; k < bookings.size();) {
    const auto b = bookings[k];
    if (b.start > now) {
      ++k;
      continue;
    }
    bookings.erase(bookings.begin() + static_cast<std::ptrdiff_t>(k));
    Lease& l = book_[b.lease];
    auto id = c_.alloc->PlaceReserved(PoolId{static_cast<uint32_t>(b.pool)}, b.gpus, b.end,
                                      Money::Micros(l.rec.price_micros), b.lease, now, /*booked=*/true);
    if (id.ok()) {
      l.holder = *id;  // OnStart made it active
      continue;
    }
    ++c_.stats->counters().bookings_missed;
    l.rec.state = LeaseState::kEnded;
    l.rec.end_reason = LeaseEnd::kForecastMiss;
    l.rec.ended = now;
    Emit(l, "ended", now, batch, {{"reason", "forecast_miss"}, {"message", id.status().message()}});
    Changed();
  }
}

// Uniform-price auction over the spot leases (DESIGN.md "Spot market"): the price is the
// highest losing max price, never below the floor; a lease whose max is below it is noticed.
// Skipped when nothing it reads changed since the last run (the lease set and states, the
// sellable supply, the floor): the answer would be the same and it walks every live lease.
bool Leases::ClearMarket(Time now, store::Batch& batch) {
  step::SpotMarket& market = *c_.market;
  if (!market.Due(*c_.alloc, now, /*requests_waiting=*/false)) return false;
  std::vector<step::SpotMarket::Holder> holders;
  for (size_t i : book_.live()) {
    const Lease& l = book_[i];
    if (l.rec.kind == LeaseKind::kSpot) holders.push_back({i, l.holder});
  }
  auto cleared = market.Clear(*c_.alloc, now, holders, {}, [&](uint64_t i, HolderId id, Money) {
    Lease& l = book_[i];
    const Money price = c_.alloc->holder(id).price;  // its tier's price
    l.rec.price_micros = price.micros;
    l.prices.push_back({now, price});
    batch.lease_prices.push_back({l.rec.id, now, price.micros});
    rate_dirty_ = true;
    if (decisions_ != nullptr) decisions_->Repriced(now, i, price);
    Emit(l, "price_changed", now, batch, {{"price_per_gpu_hour", FormatMoney(price)}});
  });
  (void)cleared;
  return true;
}

void Leases::Lost(const std::string& id, const std::string& why, Time at, Time now) {
  std::optional<size_t> i = book_.IndexOf(id);
  if (!i) return;
  Lease& l = book_[*i];
  if (!book_.IsLive(*i) || !l.holder.valid()) return;
  l.lost = why;
  l.lost_at = at;
  c_.alloc->Release(l.holder, now);
}

bool Leases::Preempted(const std::string& id, Time now) {
  std::optional<size_t> i = book_.IndexOf(id);
  if (!i) return false;
  const Lease& l = book_[*i];
  if (!book_.IsLive(*i) || !l.holder.valid() || l.rec.state != LeaseState::kActive || l.rec.kind != LeaseKind::kSpot) {
    return false;
  }
  c_.alloc->Notice(l.holder, alloc::NoticeReason::kInternalDemand, now);
  return true;
}

void Leases::Emit(Lease& l, std::string type, Time at, store::Batch& batch, json extra) {
  dirty_.push_back(*book_.IndexOf(l.rec.id));
  store::LeaseEventRecord e;
  e.lease_id = l.rec.id;
  e.tenant_id = l.rec.tenant_id;
  e.type = type;
  e.at = at;
  json data = extra.is_object() ? extra : json::object();
  data["type"] = type;
  data["at"] = FormatUtc(at);
  e.data = data.dump();
  batch.events.push_back(e);
}

void Leases::Changed() {
  c_.market->Changed();
  rate_dirty_ = true;
}

__int128 Leases::Rate() {
  if (rate_dirty_) {
    rate_ = 0;
    for (size_t i : book_.live()) rate_ += static_cast<__int128>(book_[i].rec.price_micros) * book_[i].rec.gpus;
    rate_dirty_ = false;
  }
  return rate_;
}

Money Leases::ReservedPriceFor(Duration d) const { return step::ReservedPrice(*c_.prices, d, *c_.floor); }

}  // namespace ll::control
