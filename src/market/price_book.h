// What the owner charges and what selling costs: list price, floor, reserved discounts,
// token prices, and the power figures behind the default floor.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/money.h"
#include "core/time.h"

namespace ll::market {

struct ReservedTerm {
  Duration term;
  int discount_permille = 0;  // off the on-demand list price
};

struct PriceBook {
  std::string gpu_model = "H100";
  Money list_per_gpu_hour = Money::Micros(2'500'000);  // on-demand list price
  // Floor = (busy - idle watts) x electricity price + wear allowance, per GPU-hour.
  int busy_watts = 700;
  int idle_watts = 70;
  Money electricity_per_kwh = Money::Micros(120'000);
  Money wear_per_gpu_hour = Money::Micros(150'000);
  std::vector<ReservedTerm> reserved_terms = {
      {Duration::Hours(4), 200}, {Duration::Hours(24), 300}, {Duration::Hours(24 * 7), 400}};
  Money input_per_mtok = Money::Micros(200'000);  // model API, unless the model has its own
  Money output_per_mtok = Money::Micros(800'000);
  struct TokenPrices {
    Money input_per_mtok, output_per_mtok;
  };
  std::map<std::string, TokenPrices> models;  // per served model
  // The flash spot tier (a shorter notice, reclaimed first) pays the spot price less this.
  int flash_discount_permille = 300;

  TokenPrices TokenPricesFor(const std::string& model) const;

  Money Floor() const;  // exact: integer arithmetic
  Money ReservedPrice(const ReservedTerm& t) const;
};

// `price` less `permille`/1000 of it (rounded down), never below `floor`.
Money Discounted(Money price, int permille, Money floor);

}  // namespace ll::market
