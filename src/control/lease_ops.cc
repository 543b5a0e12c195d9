// The tenant's leases through the facade: create, list, get, release; and what is on offer
// (quotes, prices). Each call is a unit of work (Work) or a read after Advance.
#include <algorithm>

#include <fmt/format.h>

#include "control/control_plane.h"
#include "core/check.h"

namespace ll::control {

Result<const store::LeaseRecord*> ControlPlane::CreateLease(const Principal& who, LeaseRequest req,
                                                            ReservedOffer* offer) {
  LL_RETURN_IF_ERROR(Leases::MayCreate(who));
  LL_RETURN_IF_ERROR(leases_.CanRun(req));
  Work work(this);  // commits what the call changed, refusals included, before the answer
  ReservedOffer ignored;
  LL_ASSIGN_OR_RETURN(size_t i, leases_.Create(who, std::move(req), now_, pending_, offer != nullptr ? offer : &ignored));
  return &book()[i].rec;
}

Result<LeasePage> ControlPlane::ListLeases(const Principal& who, int limit, const std::string& after) {
  Advance();
  LL_ASSIGN_OR_RETURN(auto page, book().List(who, limit, after));
  LeasePage out;
  for (size_t i : page.leases) out.leases.push_back(&book()[i].rec);
  out.has_more = page.has_more;
  return out;
}

Result<const store::LeaseRecord*> ControlPlane::GetLease(const Principal& who, const std::string& id) {
  Advance();
  LL_ASSIGN_OR_RETURN(size_t i, book().Find(who, id));
  return &book()[i].rec;
}

Result<const store::LeaseRecord*> ControlPlane::ReleaseLease(const Principal& who, const std::string& id) {
  Work work(this);
  LL_ASSIGN_OR_RETURN(size_t i, leases_.Release(who, id, now_, pending_));
  return &book()[i].rec;
}

std::vector<SpotTierOffer> ControlPlane::SpotTiers() const {
  std::vector<SpotTierOffer> tiers{{.tier = NoticeTier::kStandard,
                                    .notice = alloc_->options().notice,
                                    .price = market_.price(),
                                    .discount = 0,
                                    .room = 0}};
  if (overrides_->FlashOffered()) {
    tiers.push_back({.tier = NoticeTier::kFlash,
                     .notice = overrides_->flash_notice,
                     .price = market_.flash_price(),
                     .discount = prices_.flash_discount_permille / 1000.0,
                     .room = 0});
  }
  return tiers;
}

Quote ControlPlane::GetQuote() {
  Advance();
  Quote q{.now = now_, .spot_price = market_.price(), .spot_room = 0, .tiers = SpotTiers(), .reserved = {}};
  auto pools = [&](auto room_of) {
    Gpus room = 0;
    for (int p = 0; p < alloc_->pool_count(); ++p) room = std::max(room, room_of(PoolId{static_cast<uint32_t>(p)}));
    return room;
  };
  q.spot_room = pools([&](PoolId p) { return alloc_->Sellable(p, now_); });
  for (const auto& t : prices_.reserved_terms) {
    q.reserved.push_back({.term = t.term,
                          .discount = t.discount_permille / 1000.0,
                          .price = ReservedPriceFor(t.term),
                          .room = pools([&](PoolId p) { return alloc_->ReservedRoom(p, now_ + t.term, now_); })});
  }
  for (SpotTierOffer& t : q.tiers) {
    const bool flash = t.tier == NoticeTier::kFlash;
    t.room = pools([&](PoolId p) { return alloc_->Sellable(p, now_, flash); });
  }
  return q;
}

Result<PriceList> ControlPlane::Prices(std::optional<Time> from, std::optional<Time> to) {
  Advance();
  PriceList out{.now = now_,
                .floor = floor_,
                .spot_price = market_.price(),
                .list_price = prices_.list_per_gpu_hour,
                .tiers = SpotTiers(),
                .reserved = {},
                .history = std::nullopt};
  if (from || to) {
    const Time t1 = to.value_or(now_ + Duration::Millis(1));
    const Time t0 = from.value_or(t1 - Duration::Hours(24));
    if (t0 >= t1) return Status(StatusCode::kInvalidArgument, "invalid_value", "`from` must be before `to`", "from");
    if (t1 - t0 > Duration::Hours(24 * 366)) {
      return Status(StatusCode::kInvalidArgument, "invalid_value", "at most 366 days of history at once", "from");
    }
    auto points = store_->SpotPrices(t0, t1);
    LL_CHECK(points.ok());  // fail-stop, as for every store failure
    out.history.emplace();
    for (const auto& p : *points) out.history->emplace_back(std::max(p.at, t0), Money::Micros(p.price_micros));
  }
  for (const auto& t : prices_.reserved_terms) {
    out.reserved.push_back(
        {.term = t.term, .discount = t.discount_permille / 1000.0, .price = ReservedPriceFor(t.term), .room = 0});
  }
  return out;
}

}  // namespace ll::control
