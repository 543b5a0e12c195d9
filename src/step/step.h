// One core, two drivers: the step that `landlord sim` and `landlord serve` both take, and the
// spot market and lease placement they share, so that the simulator predicts the server.
//
// A driver (sim::Engine replaying a trace, the control plane on its clock) decides *when* to
// step: at each change of the owner's demand, at each of its ticks and, in the server, at each
// API call. What a step does, and in which order, is here:
//
//   integrate  the totals since the last step (GPU-hours by class, revenue)
//   advance    the allocator's deadlines up to now: reclaims at reclaim_at, terms that end
//   bookings   reserved leases booked to start by now are placed
//   demand     the owner's demand as of now (reclaims what free GPUs do not cover)
//   rebalance  every pool's sell limit is enforced (outsiders above it get a notice)
//   market     the spot market clears (SpotMarket) and the driver's tenant demand is offered
//
// Everything here is pure: time comes in as an argument, decisions go out through the
// allocator's listener and the callbacks given.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "alloc/allocator.h"
#include "core/money.h"
#include "core/status.h"
#include "core/time.h"
#include "market/auction.h"
#include "market/price_book.h"

namespace ll::step {

// The phases of a step that belong to the driver; Step() calls them in the one order.
class Phases {
 public:
  virtual ~Phases() = default;
  virtual void Integrate(Time now) = 0;
  virtual void StartBookings(Time /*now*/) {}
  virtual void SetDemand(Time now) = 0;
  virtual void Market(Time now) = 0;
};

// integrate → advance → bookings → demand → rebalance → market, at `now`.
void Step(alloc::Allocator& alloc, Phases& phases, Time now);

// The spot market of DESIGN.md ("Spot market"): a uniform-price auction over the active spot
// holders (and, in the simulator, requests waiting for capacity) and the sellable GPUs. The
// price is the highest losing max price, never below the floor; a holder whose max is below it
// gets a notice (kPriceAboveMax), every other one pays the new price.
//
// A driver clears only when Due(): while nothing a clearing reads changed (the holders' set and
// states — Changed() — the sellable supply and the floor, with no request waiting) the answer
// would be the same, and it walks every live lease.
class SpotMarket {
 public:
  explicit SpotMarket(Money floor) : floor_(floor), price_(floor) {}

  // A spot holder (key: the driver's id for it, also the tie-break: lower wins ties).
  struct Holder {
    uint64_t key;
    HolderId id;
  };
  struct Result {
    std::vector<uint64_t> winners;  // keys of waiting requests that won (to be placed by the driver)
  };
  // Clears at `now`. `holders` are the live spot holders (ended or noticed ones are skipped),
  // `waiting` the requests waiting for capacity. `repriced(key, id, old)` runs for each active
  // holder whose price the clearing changed, after the allocator took the new price (PriceFor).
  // Whether a clearing could change anything since the last one; remembers the supply it read.
  bool Due(alloc::Allocator& alloc, Time now, bool requests_waiting);
  // Clears (after Due() said so).
  Result Clear(alloc::Allocator& alloc, Time now, std::span<const Holder> holders,
               std::vector<market::Bid> waiting, const std::function<void(uint64_t key, HolderId id, Money old)>& repriced);

  // Something a clearing reads changed: a spot or reserved holder started, was noticed or ended.
  void Changed() { ++version_; }
  Money price() const { return price_; }
  Money floor() const { return floor_; }
  void set_floor(Money floor) { floor_ = floor; }
  // The flash tier (holders with a notice of their own): they pay the clearing price less
  // this discount (never below the floor), and bid in the auction with the standard price
  // their max price matches.
  void set_flash_discount(int permille) { flash_discount_permille_ = permille; }
  Money flash_price() const { return market::Discounted(price_, flash_discount_permille_, floor_); }
  // What `h` pays at the current clearing: its tier's price.
  Money PriceFor(const alloc::Holder& h) const { return h.notice.ms > 0 ? flash_price() : price_; }

 private:
  // A flash holder's max price as the standard price it matches (the discount undone).
  Money StandardBid(const alloc::Holder& h) const;

  Money floor_, price_;
  int flash_discount_permille_ = 0;
  uint64_t version_ = 0;
  struct Cleared {
    uint64_t version = ~uint64_t{0};
    Gpus sellable = -1;
    Money floor;
  } cleared_;
};

// The pools a lease may go to: `pool` alone, or every pool (-1), in index order.
std::vector<int> CandidatePools(int pool_count, int pool);

// Places a spot lease of `gpus` at `price` for a tenant bidding `max_price`: in the candidate
// pool with the most sellable GPUs first. The holder, or why no pool could take it.
// A shorter `notice` than the allocator's puts it on that (flash) tier.
Result<HolderId> PlaceSpot(alloc::Allocator& alloc, std::vector<int> pools, Gpus gpus, Money price, Money max_price,
                           uint64_t tag, Time now, int* placed_pool, Duration notice = {});

// Places a reserved lease until `end` at `price`, in the candidate pool with the most room for
// the term first; an error when no pool's forecast can guarantee it.
Result<HolderId> PlaceReserved(alloc::Allocator& alloc, std::vector<int> pools, Gpus gpus, Time end, Money price,
                               uint64_t tag, Time now, int* placed_pool);

// The price per GPU-hour of a reserved lease of `term`: the longest offered term not longer
// than it sets the price, never below the floor.
Money ReservedPrice(const market::PriceBook& prices, Duration term, Money floor);

}  // namespace ll::step
