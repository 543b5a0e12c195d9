// The tenant's leases and what is on offer, as the API takes and shows them: the body of
// `POST /v1/leases` decoded (errors name the field), and leases, quotes and prices rendered.
// The operations themselves are control::ControlPlane's (control/lease_ops.cc).
#include <algorithm>

#include <fmt/format.h>

#include "api/control_plane.h"
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
  // Who may create comes before what the body says (an owner's key is refused whatever it asks).
  if (Status st = control::Leases::MayCreate(who); !st.ok()) return ErrorReply(st);
  Reply error;
  std::optional<control::LeaseRequest> req = ParseLeaseRequest(body, &error);
  if (!req) return error;
  control::ReservedOffer offer;
  auto created = control::ControlPlane::CreateLease(who, std::move(*req), &offer);
  if (!created.ok()) {
    Reply r = ErrorReply(created.status());
    if (created.status().reason() == "forecast_conflict") {
      r.body["error"]["accepted"] = {{"gpus", offer.gpus},
                                     {"duration_s", offer.duration_s},
                                     {"longest_term_s_for_gpus", offer.longest_term_s ? json(*offer.longest_term_s) : json(nullptr)}};
    }
    return r;
  }
  return {.status = 201, .body = LeaseJson(**created), .content_type = ""};
}

Reply ControlPlane::ListLeases(const Principal& who, int limit, const std::string& after) {
  auto page = control::ControlPlane::ListLeases(who, limit, after);
  if (!page.ok()) return ErrorReply(page.status());
  json data = json::array();
  for (const store::LeaseRecord* l : page->leases) data.push_back(LeaseJson(*l));
  return {.status = 200, .body = {{"object", "list"}, {"data", data}, {"has_more", page->has_more}}, .content_type = ""};
}

// A lease as the answer, or its error.
static Reply LeaseReply(const control::ControlPlane& cp, const Result<const store::LeaseRecord*>& l) {
  if (!l.ok()) return ErrorReply(l.status());
  return {.status = 200, .body = cp.LeaseJson(**l), .content_type = ""};
}

Reply ControlPlane::GetLease(const Principal& who, const std::string& id) {
  return LeaseReply(*this, control::ControlPlane::GetLease(who, id));
}

Reply ControlPlane::ReleaseLease(const Principal& who, const std::string& id) {
  return LeaseReply(*this, control::ControlPlane::ReleaseLease(who, id));
}

namespace {

// The spot tiers on offer (with `gpus` asked: their room, and whether it is enough).
json SpotTiersJson(const std::vector<control::SpotTierOffer>& tiers, bool quote, std::optional<int64_t> gpus) {
  json out = json::array();
  for (const control::SpotTierOffer& t : tiers) {
    json j = {{"notice_tier", Name(t.tier)}, {"notice_s", t.notice.ms / 1000}, {"price_per_gpu_hour", FormatMoney(t.price)}};
    if (t.tier == NoticeTier::kFlash) j["discount"] = t.discount;
    if (quote) j["available_gpus"] = t.room;
    if (quote && gpus) j["available"] = t.room >= *gpus;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

Reply ControlPlane::Quote(const Principal&, std::optional<int64_t> gpus) {
  const control::Quote q = GetQuote();
  json reserved = json::array();
  for (const control::ReservedTermOffer& t : q.reserved) {
    json j = {{"duration_s", t.term.ms / 1000}, {"price_per_gpu_hour", FormatMoney(t.price)}, {"max_gpus", t.room}};
    if (gpus) j["available"] = t.room >= *gpus;
    reserved.push_back(std::move(j));
  }
  json spot = {{"price_per_gpu_hour", FormatMoney(q.spot_price)}, {"available_gpus", q.spot_room}};
  if (gpus) spot["available"] = q.spot_room >= *gpus;
  json body = {{"object", "quote"},
               {"now", FormatUtc(q.now)},
               {"spot", spot},
               {"spot_tiers", SpotTiersJson(q.tiers, true, gpus)},
               {"reserved", reserved}};
  return {.status = 200, .body = std::move(body), .content_type = ""};
}

Reply ControlPlane::Prices(std::optional<Time> from, std::optional<Time> to) {
  auto p = control::ControlPlane::Prices(from, to);
  if (!p.ok()) return ErrorReply(p.status());
  json reserved = json::array();
  for (const control::ReservedTermOffer& t : p->reserved) {
    reserved.push_back({{"duration_s", t.term.ms / 1000},
                        {"discount", t.discount},
                        {"price_per_gpu_hour", FormatMoney(t.price)}});
  }
  Reply r;
  r.body = {{"floor_per_gpu_hour", FormatMoney(p->floor)},
            {"spot_per_gpu_hour", FormatMoney(p->spot_price)},
            {"spot_tiers", SpotTiersJson(p->tiers, false, std::nullopt)},
            {"list_per_gpu_hour", FormatMoney(p->list_price)},
            {"reserved", reserved},
            {"now", FormatUtc(p->now)}};
  if (p->history) {
    json history = json::array();
    for (const auto& [at, price] : *p->history) {
      history.push_back({{"at", FormatUtc(at)}, {"spot_per_gpu_hour", FormatMoney(price)}});
    }
    r.body["history"] = std::move(history);
  }
  return r;
}

}  // namespace ll::api
