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

std::optional<control::LeaseRequest> ControlPlane::ParseLeaseRequest(const json& body, Reply* error) const {
  Fields f(body);
  f.Only({"kind", "gpus", "max_price_per_gpu_hour", "duration_s", "pool", "start_at", "workload", "notice_tier"});
  control::LeaseRequest req;
  const std::string kind = f.Str("kind", false).value_or("spot");
  auto gpus = f.Int("gpus", 1, 1024, true);
  auto pool_name = f.Str("pool", false);
  if (f.ok() && kind == "spot") {
    req.max_price = f.Dollars("max_price_per_gpu_hour", true).value_or(Money{});
    const std::string tier = f.Str("notice_tier", false).value_or("standard");
    if (auto t = ParseNoticeTier(tier); f.ok() && t.ok()) {
      req.notice_tier = *t;
    } else if (f.ok()) {
      f.Fail("invalid_value", fmt::format("`notice_tier` must be \"standard\" or \"flash\", got \"{}\"", tier),
             "notice_tier");
    }
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
    if (f.ok() && body.contains("notice_tier")) f.Fail("invalid_value", "`notice_tier` is for spot leases", "notice_tier");
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
  if (Status st = control::Leases::MayCreate(who); !st.ok()) return ErrorReply(st);
  Reply error;
  std::optional<control::LeaseRequest> req = ParseLeaseRequest(body, &error);
  if (!req) return error;
  if (Status st = leases_.CanRun(*req); !st.ok()) return ErrorReply(st);
  Work work(this);  // commits what the call changed, refusals included, before the reply is sent
  control::ReservedOffer offer;
  auto created = leases_.Create(who, std::move(*req), now_, pending_, &offer);
  if (!created.ok()) {
    Reply r = ErrorReply(created.status());
    if (created.status().reason() == "forecast_conflict") {
      r.body["error"]["accepted"] = {{"gpus", offer.gpus},
                                     {"duration_s", offer.duration_s},
                                     {"longest_term_s_for_gpus", offer.longest_term_s ? json(*offer.longest_term_s) : json(nullptr)}};
    }
    return r;
  }
  Reply r;
  r.status = 201;
  r.body = LeaseJson(book()[*created].rec);
  return r;
}

ControlPlane::Lease* ControlPlane::Find(const Principal& who, const std::string& id) {
  auto i = book().Find(who, id);
  return i.ok() ? &book()[*i] : nullptr;
}

Reply ControlPlane::ListLeases(const Principal& who, int limit, const std::string& after) {
  Advance();
  auto page = book().List(who, limit, after);
  if (!page.ok()) return ErrorReply(page.status());
  json data = json::array();
  for (size_t i : page->leases) data.push_back(LeaseJson(book()[i].rec));
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
  auto i = leases_.Release(who, id, now_, pending_);
  if (!i.ok()) return ErrorReply(i.status());
  Reply r;
  r.body = LeaseJson(book()[*i].rec);
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
  json tiers = SpotTiers();
  for (json& t : tiers) {
    const bool flash = t["notice_tier"] == "flash";
    Gpus room = 0;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      room = std::max(room, alloc_->Sellable(PoolId{static_cast<uint32_t>(p)}, now_, flash));
    }
    t["available_gpus"] = room;
    if (gpus) t["available"] = room >= *gpus;
  }
  Reply r;
  r.body = {{"object", "quote"}, {"now", FormatUtc(now_)}, {"spot", spot}, {"spot_tiers", tiers}, {"reserved", reserved}};
  return r;
}

// The spot tiers on offer: each with its notice and its price now (flash: the clearing price
// less the flash discount, never below the floor).
nlohmann::json ControlPlane::SpotTiers() const {
  json tiers = json::array({{{"notice_tier", "standard"},
                             {"notice_s", alloc_->options().notice.ms / 1000},
                             {"price_per_gpu_hour", FormatMoney(market_.price())}}});
  if (overrides_->FlashOffered()) {
    tiers.push_back({{"notice_tier", "flash"},
                     {"notice_s", overrides_->flash_notice.ms / 1000},
                     {"discount", prices_.flash_discount_permille / 1000.0},
                     {"price_per_gpu_hour", FormatMoney(market_.flash_price())}});
  }
  return tiers;
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
            {"spot_tiers", SpotTiers()},
            {"list_per_gpu_hour", FormatMoney(prices_.list_per_gpu_hour)},
            {"reserved", reserved},
            {"now", FormatUtc(now_)}};
  if (!history.is_null()) r.body["history"] = history;
  return r;
}

}  // namespace ll::api
