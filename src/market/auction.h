// The spot market: a uniform-price auction. Spot capacity goes to the highest max-prices that
// fit; everyone pays the clearing price, which is the highest losing bid and never below the
// floor. Pure: bids and supply in, price and winners out.
#pragma once

#include <cstdint>
#include <vector>

#include "core/gpu.h"
#include "core/money.h"

namespace ll::market {

struct Bid {
  uint64_t key = 0;  // caller's id (holder or request), also the deterministic tie-break
  Gpus gpus = 0;
  Money max_price;
};

struct Clearing {
  Money price;                  // per GPU-hour
  std::vector<uint64_t> winners;  // keys of bids that fit, in priority order
  std::vector<uint64_t> losers;
};

// REQUIRES: every bid has gpus > 0. Bids below the floor always lose. Ties in max price go
// to the lower key (earlier bid). A bid that does not fit is skipped and later, smaller bids
// may still win (fill what fits).
Clearing ClearSpot(std::vector<Bid> bids, Gpus supply, Money floor);

}  // namespace ll::market
