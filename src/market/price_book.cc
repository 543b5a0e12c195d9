#include "market/price_book.h"

namespace ll::market {

Money PriceBook::Floor() const {
  // watts x $/kWh / 1000 = $/h; integer micro-dollars, rounded up so the floor covers cost.
  int64_t num = static_cast<int64_t>(busy_watts - idle_watts) * electricity_per_kwh.micros;
  return Money::Micros((num + 999) / 1000) + wear_per_gpu_hour;
}

PriceBook::TokenPrices PriceBook::TokenPricesFor(const std::string& model) const {
  auto it = models.find(model);
  return it != models.end() ? it->second : TokenPrices{input_per_mtok, output_per_mtok};
}

Money PriceBook::ReservedPrice(const ReservedTerm& t) const {
  return Discounted(list_per_gpu_hour, t.discount_permille, Floor());
}

Money Discounted(Money price, int permille, Money floor) {
  __int128 v = static_cast<__int128>(price.micros) * (1000 - permille);
  Money p = Money::Micros(static_cast<int64_t>(v / 1000));
  return p < floor ? floor : p;
}

}  // namespace ll::market
