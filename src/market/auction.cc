#include "market/auction.h"

#include <algorithm>

namespace ll::market {

Clearing ClearSpot(std::vector<Bid> bids, Gpus supply, Money floor) {
  std::sort(bids.begin(), bids.end(), [](const Bid& a, const Bid& b) {
    return a.max_price != b.max_price ? a.max_price > b.max_price : a.key < b.key;
  });
  Clearing out;
  out.price = floor;
  Money lowest_winner = Money::Micros(INT64_MAX);
  for (const Bid& b : bids) {
    if (b.max_price >= floor && b.gpus <= supply) {
      supply -= b.gpus;
      out.winners.push_back(b.key);
      lowest_winner = b.max_price;  // bids are sorted: the last winner bids lowest
    } else {
      out.losers.push_back(b.key);
      if (b.max_price > out.price) out.price = b.max_price;
    }
  }
  // The highest losing bid sets the price, but a winner never pays above its own max (a
  // higher bid can lose only because it did not fit).
  if (!out.winners.empty() && lowest_winner < out.price) out.price = std::max(lowest_winner, floor);
  return out;
}

}  // namespace ll::market
