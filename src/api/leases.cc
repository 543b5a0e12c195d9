// The tenant's leases: create (spot, reserved now, reserved booked ahead), list, get,
// release, and their events.
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
#include "api/control_plane_internal.h"
#include "api/fields.h"

namespace ll::api {

using alloc::HolderClass;
using nlohmann::json;

// POST /v1/leases, validated.
struct ControlPlane::LeaseRequest {
  LeaseKind kind = LeaseKind::kSpot;
  Gpus gpus = 0;
  int pool = -1;  // -1: any pool
  Money max_price;              // spot
  int64_t duration_s = 0;       // reserved
  std::optional<Time> start_at;  // reserved: booked to start then
  std::optional<workload::Spec> workload;  // the tenant's command, run while the lease is active
};

// A lease being created: it holds the next index, and gives it back unless kept.
class ControlPlane::NewLease {
 public:
  NewLease(ControlPlane* cp, const Principal& who, LeaseKind kind) : cp_(cp) {
    Lease l;
    l.rec.id = MakeExternalId("lease", cp->leases_.size() + 1);
    l.rec.tenant_id = who.tenant_id;
    l.rec.kind = kind;
    l.rec.created = cp->now_;
    index_ = cp->leases_.Add(std::move(l));
  }
  ~NewLease() {
    if (!kept_) cp_->leases_.PopBack();
  }
  NewLease(const NewLease&) = delete;
  NewLease& operator=(const NewLease&) = delete;
  Lease& lease() { return cp_->leases_[index_]; }
  size_t index() const { return index_; }
  void Keep() { kept_ = true; }

 private:
  ControlPlane* cp_;
  size_t index_;
  bool kept_ = false;
};

std::optional<ControlPlane::LeaseRequest> ControlPlane::ParseLeaseRequest(const json& body, Reply* error) const {
  if (!body.is_object()) {
    *error = ErrorReply(StatusCode::kInvalidArgument, "invalid_type", "the body must be a JSON object");
    return std::nullopt;
  }
  Fields f(body);
  f.Only({"kind", "gpus", "max_price_per_gpu_hour", "duration_s", "pool", "start_at", "workload"});
  LeaseRequest req;
  const std::string kind = f.Str("kind", false).value_or("spot");
  auto gpus = f.Int("gpus", 1, 1024, true);
  auto pool_name = f.Str("pool", false);
  if (f.ok() && kind == "spot") {
    req.max_price = f.Dollars("max_price_per_gpu_hour", true).value_or(Money{});
    if (f.ok() && body.contains("duration_s")) f.Fail("invalid_value", "`duration_s` is for reserved leases", "duration_s");
    if (f.ok() && body.contains("start_at")) f.Fail("invalid_value", "`start_at` is for reserved leases", "start_at");
  } else if (f.ok() && kind == "reserved") {
    req.kind = LeaseKind::kReserved;
    req.duration_s = f.Int("duration_s", 60, 365LL * 24 * 3600, true).value_or(0);
    auto start_text = f.Str("start_at", false);
    if (f.ok() && start_text) {
      auto t = ParseUtc(*start_text);
      if (!t.ok()) {
        f.Fail("invalid_value", fmt::format("`start_at`: {}", t.status().message()), "start_at");
      } else {
        req.start_at = *t;
      }
    }
    if (f.ok() && body.contains("max_price_per_gpu_hour")) {
      f.Fail("invalid_value", "`max_price_per_gpu_hour` is for spot leases", "max_price_per_gpu_hour");
    }
  } else if (f.ok()) {
    f.Fail("invalid_value", fmt::format("`kind` must be \"spot\" or \"reserved\", got \"{}\"", kind), "kind");
  }
  if (f.ok() && pool_name) {
    req.pool = PoolIndex(*pool_name);
    if (req.pool < 0) f.Fail("invalid_value", fmt::format("unknown pool `{}`", *pool_name), "pool");
  }
  if (f.ok() && body.contains("workload")) {
    workload::SpecError why;
    auto spec = workload::ParseSpec(body["workload"], &why);
    if (spec.ok()) {
      req.workload = std::move(*spec);
    } else {
      f.Fail(why.reason, std::string(spec.status().message()), why.param);
    }
  }
  if (!f.ok()) {
    *error = f.error();
    return std::nullopt;
  }
  req.gpus = static_cast<Gpus>(*gpus);
  return req;
}

Reply ControlPlane::CreateLease(const Principal& who, const json& body) {
  if (who.admin) return ErrorReply(StatusCode::kPermissionDenied, "tenant_only", "leases are created with a tenant key");
  Reply error;
  std::optional<LeaseRequest> req = ParseLeaseRequest(body, &error);
  if (!req) return error;
  if (req->workload && workloads_ == nullptr) {
    return ErrorReply(StatusCode::kUnavailable, "workloads_unavailable",
                      "this server runs no workloads (`[workloads] enabled`, true by default)", "workload");
  }
  if (req->workload) {
    workload::SpecError why;
    if (Status st = workloads_->Accepts(*req->workload, &why); !st.ok()) {
      return ErrorReply(st.code(), why.reason, std::string(st.message()), why.param);
    }
  }
  Work work(this);  // declared first: commits after NewLease gave back a refused lease's index
  const Time now = now_;
  const Duration notice = alloc_->options().notice;
  if (Status st = fleet_->Available(); !st.ok()) {
    return ErrorReply(st.code(), "fleet_unavailable", std::string(st.message()));
  }
  if (fleet_->ReservesWholeNodes() && req->kind == LeaseKind::kReserved) {
    req->gpus = alloc_->RoundToNodes(PoolId{0}, std::max<Gpus>(req->gpus, alloc_->fleet().max_node_gpus()));
  }
  if (req->start_at && (*req->start_at < now + notice || *req->start_at > now + Duration::Hours(24 * 365))) {
    return ErrorReply(StatusCode::kInvalidArgument, "invalid_value",
                      fmt::format("`start_at` must be from the reclaim notice ({} s) after the server's now ({}) to a "
                                  "year later, so that spot leases can make way; leave it out to start now",
                                  notice.ms / 1000, FormatUtc(now)),
                      "start_at");
  }
  NewLease slot(this, who, req->kind);
  if (req->workload) {
    slot.lease().rec.workload =
        json{{"spec", req->workload->ToJson()}, {"status", workload::WorkloadStatus{}.ToJson()}}.dump();
  }
  std::optional<Reply> refused = req->kind == LeaseKind::kSpot ? PlaceSpotLease(*req, slot) : PlaceReservedLease(*req, slot);
  if (refused) return *refused;
  slot.Keep();
  Lease& lease = slot.lease();
  if (lease.holder.valid()) {
    const alloc::Holder& h = alloc_->holder(lease.holder);
    lease.rec.gpus = h.gpus;
    lease.rec.price_micros = h.price.micros;
    if (!h.shares.empty()) lease.rec.placement = FormatPlacement(h.shares);
  }
  dirty_leases_.push_back(slot.index());
  if (!lease.refused.empty() && lease.holder.valid() && leases_.IsLive(slot.index())) {
    // The fleet refused the holder: the lease ends at once (nothing billed) and the tenant is told.
    lease.lost_at = now;
    alloc_->Release(lease.holder, now);
    return ErrorReply(StatusCode::kUnavailable, "fleet_unavailable",
                      fmt::format("{} did not take the lease `{}`: {}", fleet_->name(), lease.rec.id, lease.refused));
  }
  Reply r;  // committed (Work) before it is sent
  r.status = 201;
  r.body = LeaseJson(lease.rec);
  return r;
}

std::optional<Reply> ControlPlane::PlaceSpotLease(const LeaseRequest& req, NewLease& slot) {
  if (req.max_price < market_.price()) {
    return ErrorReply(StatusCode::kConflict, "price_below_market",
                      fmt::format("`max_price_per_gpu_hour` {} is below the spot price {}", FormatMoney(req.max_price),
                                  FormatMoney(market_.price())),
                      "max_price_per_gpu_hour");
  }
  Lease& lease = slot.lease();
  int placed = -1;
  const std::vector<int> pools = step::CandidatePools(pool_count(), req.pool);
  auto id = step::PlaceSpot(*alloc_, pools, req.gpus, market_.price(), req.max_price, slot.index(), now_, &placed);
  if (!id.ok()) {
    return ErrorReply(StatusCode::kResourceExhausted, "insufficient_capacity",
                      fmt::format("no {} GPUs can be sold now: {}", req.gpus, id.status().message()), "gpus");
  }
  lease.holder = *id;
  lease.rec.pool = placed;
  lease.rec.max_price_micros = req.max_price.micros;
  return std::nullopt;
}

// Reserved now (placed), or from `start_at` (booked: promised out of the forecast now, placed
// when it starts; see StartBookings).
std::optional<Reply> ControlPlane::PlaceReservedLease(const LeaseRequest& req, NewLease& slot) {
  const Time now = now_;
  const Time start = req.start_at.value_or(now);
  const Time end = start + Duration::Seconds(req.duration_s);
  const Money price = ReservedPriceFor(Duration::Seconds(req.duration_s));
  const std::vector<int> pools = step::CandidatePools(pool_count(), req.pool);
  auto room_for = [&](int p, Time until) {
    const PoolId pid{static_cast<uint32_t>(p)};
    return start > now ? alloc_->BookableRoom(pid, until, now) : alloc_->ReservedRoom(pid, until, now);
  };
  Lease& lease = slot.lease();
  lease.rec.term_end = end;
  if (start == now) {
    auto id = step::PlaceReserved(*alloc_, pools, req.gpus, end, price, slot.index(), now, &lease.rec.pool);
    if (id.ok()) {
      lease.holder = *id;
      return std::nullopt;
    }
  } else {
    std::vector<int> by_room = pools;
    std::stable_sort(by_room.begin(), by_room.end(), [&](int a, int b) { return room_for(a, end) > room_for(b, end); });
    for (int p : by_room) {
      const Gpus g = alloc_->RoundToNodes(PoolId{static_cast<uint32_t>(p)}, req.gpus);
      if (g > room_for(p, end)) continue;
      overrides_->bookings.push_back({slot.index(), p, g, start, end});
      lease.rec.pool = p;
      lease.rec.gpus = g;
      lease.rec.price_micros = price.micros;
      lease.rec.state = LeaseState::kScheduled;
      lease.rec.started = start;
      Emit(lease, "scheduled", now, {{"start_at", FormatUtc(start)}});
      LeasesChanged();
      return std::nullopt;
    }
  }
  Gpus best_room = 0;
  for (int p : pools) best_room = std::max(best_room, room_for(p, end));
  // The longest offered term that `gpus` would fit in, for the message.
  json longest = nullptr;
  for (const auto& t : prices_.reserved_terms) {
    Gpus room = 0;
    for (int p : pools) room = std::max(room, room_for(p, start + t.term));
    if (room >= req.gpus) longest = t.term.ms / 1000;
  }
  Reply r = ErrorReply(StatusCode::kConflict, "forecast_conflict",
      fmt::format("the forecast of the owner's demand cannot guarantee {} GPUs for {} s from {}; the largest "
                  "accepted now for that term is {} GPUs{}",
                  req.gpus, req.duration_s, FormatUtc(start), best_room,
                  longest.is_null() ? "" : fmt::format(", and {} GPUs fit a term of {} s", req.gpus, longest.get<int64_t>())),
      "gpus");
  r.body["error"]["accepted"] = {{"gpus", best_room}, {"duration_s", req.duration_s}, {"longest_term_s_for_gpus", longest}};
  return r;
}

ControlPlane::Lease* ControlPlane::Find(const Principal& who, const std::string& id) {
  auto i = leases_.Find(who, id);
  return i.ok() ? &leases_[*i] : nullptr;
}

Reply ControlPlane::ListLeases(const Principal& who, int limit, const std::string& after) {
  Advance();
  auto page = leases_.List(who, limit, after);
  if (!page.ok()) return ErrorReply(page.status());
  json data = json::array();
  for (size_t i : page->leases) data.push_back(LeaseJson(leases_[i].rec));
  Reply r;
  r.body = {{"object", "list"}, {"data", data}, {"has_more", page->has_more}};
  return r;
}

Reply ControlPlane::GetLease(const Principal& who, const std::string& id) {
  Advance();
  Lease* l = Find(who, id);
  if (l == nullptr) return ErrorReply(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}`", id), "id");
  Reply r;
  r.body = LeaseJson(l->rec);
  return r;
}

Reply ControlPlane::ReleaseLease(const Principal& who, const std::string& id) {
  Work work(this);
  Lease* l = Find(who, id);
  if (l == nullptr) return ErrorReply(StatusCode::kNotFound, "lease_not_found", fmt::format("no lease `{}`", id), "id");
  if (l->rec.state == LeaseState::kScheduled) {
    // A booking not yet started: cancelled, nothing was held.
    std::erase_if(overrides_->bookings, [&](const auto& b) { return b.lease == *leases_.IndexOf(id); });
    l->rec.state = LeaseState::kReleased;
    l->rec.end_reason = LeaseEnd::kReleased;
    l->rec.ended = now_;
    Emit(*l, "released", now_);
    LeasesChanged();
  } else if (!Final(l->rec.state)) {
    l->releasing = true;
    alloc_->Release(l->holder, now_);
  }
  Reply r;
  r.body = LeaseJson(l->rec);
  return r;
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

Reply ControlPlane::Quote(const Principal&, std::optional<int64_t> gpus) {
  Advance();
  Gpus spot_room = 0;
  for (int p = 0; p < alloc_->pool_count(); ++p) spot_room = std::max(spot_room, alloc_->Sellable(PoolId{static_cast<uint32_t>(p)}, now_));
  json reserved = json::array();
  for (const auto& t : prices_.reserved_terms) {
    Gpus room = 0;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      room = std::max(room, alloc_->ReservedRoom(PoolId{static_cast<uint32_t>(p)}, now_ + t.term, now_));
    }
    json q = {{"duration_s", t.term.ms / 1000}, {"price_per_gpu_hour", FormatMoney(ReservedPriceFor(t.term))}, {"max_gpus", room}};
    if (gpus) q["available"] = room >= *gpus;
    reserved.push_back(q);
  }
  json spot = {{"price_per_gpu_hour", FormatMoney(market_.price())}, {"available_gpus", spot_room}};
  if (gpus) spot["available"] = spot_room >= *gpus;
  Reply r;
  r.body = {{"object", "quote"}, {"now", FormatUtc(now_)}, {"spot", spot}, {"reserved", reserved}};
  return r;
}

Reply ControlPlane::Prices(std::optional<Time> from, std::optional<Time> to) {
  Advance();
  json history = nullptr;
  if (from || to) {
    const Time t1 = to.value_or(now_ + Duration::Millis(1));
    const Time t0 = from.value_or(t1 - Duration::Hours(24));
    if (t0 >= t1) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "`from` must be before `to`", "from");
    if (t1 - t0 > Duration::Hours(24 * 366)) return ErrorReply(StatusCode::kInvalidArgument, "invalid_value", "at most 366 days of history at once", "from");
    auto points = store_->SpotPrices(t0, t1);
    LL_CHECK(points.ok());  // fail-stop, as for every store failure
    history = json::array();
    for (const auto& p : *points) {
      history.push_back({{"at", FormatUtc(std::max(p.at, t0))}, {"spot_per_gpu_hour", FormatMoney(Money::Micros(p.price_micros))}});
    }
  }
  json reserved = json::array();
  for (const auto& t : prices_.reserved_terms) {
    reserved.push_back({{"duration_s", t.term.ms / 1000},
                        {"discount", t.discount_permille / 1000.0},
                        {"price_per_gpu_hour", FormatMoney(ReservedPriceFor(t.term))}});
  }
  Reply r;
  r.body = {{"floor_per_gpu_hour", FormatMoney(floor_)},
            {"spot_per_gpu_hour", FormatMoney(market_.price())},
            {"list_per_gpu_hour", FormatMoney(prices_.list_per_gpu_hour)},
            {"reserved", reserved},
            {"now", FormatUtc(now_)}};
  if (!history.is_null()) r.body["history"] = history;
  return r;
}

}  // namespace ll::api
