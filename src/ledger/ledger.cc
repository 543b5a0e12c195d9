#include "ledger/ledger.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace ll::ledger {
namespace {

constexpr int64_t kMsPerHour = 3'600'000;
constexpr int64_t kMaxGpus = 1'000'000;
constexpr int64_t kMaxPriceMicros = 1'000'000'000'000;  // $1M per GPU-hour

// The exact amount owed so far, in µ$ × 3.6e6 (GPU-ms × µ$/GPU-h), accumulated piece by piece.
struct Accrual {
  __int128 num = 0;
  void Add(int gpus, Duration d, Money price) { num += static_cast<__int128>(gpus) * d.ms * price.micros; }
  Money Floor() const { return Money::Micros(static_cast<int64_t>(num / kMsPerHour)); }
};

// The price in effect at t (the last point at or before it).
Money PriceAt(const LeaseUsage& u, Time t) {
  auto it = std::upper_bound(u.prices.begin(), u.prices.end(), t,
                             [](Time x, const PricePoint& p) { return x < p.at; });
  return std::prev(it)->per_gpu_hour;
}

// Every cut point in (start, limit]: price changes and month starts; and the lease's end if it
// is at or before `until`. Sorted, unique.
std::vector<Time> CutPoints(const LeaseUsage& u, Time until) {
  const Time limit = std::min(u.end, until);
  std::vector<Time> cuts;
  for (const auto& p : u.prices) {
    if (u.start < p.at && p.at <= limit) cuts.push_back(p.at);
  }
  for (Time m = NextMonthStartUtc(u.start); m <= limit; m = NextMonthStartUtc(m)) cuts.push_back(m);
  if (u.end <= until) cuts.push_back(u.end);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  return cuts;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string GpuSeconds(int64_t gpu_ms) { return fmt::format("{}.{:03}", gpu_ms / 1000, gpu_ms % 1000); }

}  // namespace

Status Validate(const LeaseUsage& u) {
  const std::string& id = u.lease_id;
  if (u.gpus < 1 || u.gpus > kMaxGpus) return Status::Invalid(fmt::format("usage of `{}`: `gpus` must be in [1, {}]", id, kMaxGpus));
  if (u.end != kTimeMax && u.end <= u.start) return Status::Invalid(fmt::format("usage of `{}`: `end` must be after `start`", id));
  if (u.start.ms < 0 || u.start >= kTimeMax) return Status::Invalid(fmt::format("usage of `{}`: bad `start`", id));
  if (u.prices.empty() || u.prices.front().at > u.start) {
    return Status::Invalid(fmt::format("usage of `{}`: no price at its start", id));
  }
  for (size_t i = 0; i < u.prices.size(); ++i) {
    const auto& p = u.prices[i];
    if (p.per_gpu_hour.micros < 0 || p.per_gpu_hour.micros > kMaxPriceMicros) {
      return Status::Invalid(fmt::format("usage of `{}`: price #{} out of range", id, i));
    }
    if (i > 0 && p.at <= u.prices[i - 1].at) {
      return Status::Invalid(fmt::format("usage of `{}`: prices not in strictly increasing time order at #{}", id, i));
    }
  }
  return Status::Ok();
}

Result<std::vector<UsageEvent>> CompletedEvents(const LeaseUsage& u, Time until) {
  LL_RETURN_IF_ERROR(Validate(u));
  std::vector<UsageEvent> out;
  Accrual acc;
  Time a = u.start;
  for (Time b : CutPoints(u, until)) {
    const Money price = PriceAt(u, a);
    const Money before = acc.Floor();
    acc.Add(u.gpus, b - a, price);
    UsageEvent e;
    e.key = fmt::format("{}/{}-{}", u.lease_id, a.ms, b.ms);
    e.tenant_id = u.tenant_id;
    e.lease_id = u.lease_id;
    e.kind = u.kind;
    e.period = MonthUtc(a);
    e.start = a;
    e.end = b;
    e.gpus = u.gpus;
    e.gpu_ms = static_cast<int64_t>(u.gpus) * (b - a).ms;
    e.price = price;
    e.amount = acc.Floor() - before;
    out.push_back(std::move(e));
    a = b;
  }
  return out;
}

std::vector<PricePoint> LastAtEachInstant(const std::vector<PricePoint>& prices) {
  std::vector<PricePoint> out;
  for (const PricePoint& p : prices) {
    if (!out.empty() && out.back().at == p.at) {
      out.back() = p;
    } else {
      out.push_back(p);
    }
  }
  return out;
}

Result<Money> AccruedUntil(const LeaseUsage& u, Time until) {
  LL_RETURN_IF_ERROR(Validate(u));
  const Time stop = std::min(u.end, until);
  Accrual acc;
  for (size_t i = 0; i < u.prices.size(); ++i) {
    Time from = std::max(u.start, u.prices[i].at);
    Time to = i + 1 < u.prices.size() ? std::min(stop, u.prices[i + 1].at) : stop;
    if (from < to) acc.Add(u.gpus, to - from, u.prices[i].per_gpu_hour);
  }
  return acc.Floor();
}

Money TokenCost(int64_t tokens, Money per_mtok) {
  return Money::Micros(static_cast<int64_t>(static_cast<__int128>(tokens) * per_mtok.micros / 1'000'000));
}

Invoice BuildInvoice(const std::string& tenant_id, const std::string& period, const std::vector<UsageEvent>& events) {
  Invoice inv;
  inv.tenant_id = tenant_id;
  inv.period = period;
  std::map<std::tuple<std::string, std::string, int64_t>, LineItem> items;
  for (const auto& e : events) {
    if (e.tenant_id != tenant_id || e.period != period) continue;
    LineItem& li = items[{e.lease_id, e.kind, e.price.micros}];
    li.lease_id = e.lease_id;
    li.kind = e.kind;
    li.price = e.price;
    li.gpu_ms += e.gpu_ms;
    li.tokens += e.tokens;
    li.amount += e.amount;
  }
  for (auto& [k, li] : items) {
    inv.total += li.amount;
    inv.gpu_ms += li.gpu_ms;
    inv.items.push_back(std::move(li));
  }
  return inv;
}

std::string InvoiceCsv(const Invoice& inv) {
  std::string out = "tenant_id,period,item,kind,unit_price_usd,gpu_seconds,tokens,amount_usd\n";
  int64_t tokens = 0;
  for (const auto& li : inv.items) {
    out += fmt::format("{},{},{},{},{},{},{},{}\n", CsvField(inv.tenant_id), inv.period, CsvField(li.lease_id),
                       CsvField(li.kind), FormatMoney(li.price), GpuSeconds(li.gpu_ms), li.tokens,
                       FormatMoney(li.amount));
    tokens += li.tokens;
  }
  out += fmt::format("{},{},total,,,{},{},{}\n", CsvField(inv.tenant_id), inv.period, GpuSeconds(inv.gpu_ms), tokens,
                     FormatMoney(inv.total));
  return out;
}

Result<Balance> Balance::Restore(Money credited, Money charged, const std::map<std::string, Money>& open_holds) {
  Balance b(credited);
  b.charged_ = charged;
  for (const auto& [id, amount] : open_holds) {
    b.holds_[id] = amount;
    b.held_ += amount;
  }
  if (credited.micros < 0 || charged.micros < 0 || b.available().micros < 0) {
    return Status::Invalid("balance: charged and held exceed what was credited");
  }
  return b;
}

Status Balance::Credit(Money m) {
  auto sum = CheckedAdd(credited_, m);
  if (!sum || *sum > kMaxBalance) {
    return Status::Invalid(fmt::format("the balance would pass the most one may hold, ${}", FormatMoney(kMaxBalance)));
  }
  credited_ = *sum;
  return Status::Ok();
}

Status Balance::Reserve(const std::string& hold_id, Money worst) {
  if (worst.micros < 0) return Status::Invalid("reserve: the amount must be ≥ 0");
  if (holds_.contains(hold_id)) return Status::Conflict(fmt::format("reserve: hold `{}` exists", hold_id));
  if (worst > available()) {
    return Status::Exhausted(fmt::format("insufficient balance: {} needed, {} available", FormatMoney(worst),
                                         FormatMoney(available())));
  }
  holds_[hold_id] = worst;
  held_ += worst;
  return Status::Ok();
}

Result<Money> Balance::Settle(const std::string& hold_id, Money actual) {
  auto it = holds_.find(hold_id);
  if (it == holds_.end()) return Status::NotFound(fmt::format("settle: no hold `{}`", hold_id));
  const Money held = it->second;
  const Money charge = std::clamp(actual, Money{}, held);
  held_ = held_ - held;
  charged_ += charge;
  holds_.erase(it);
  return charge;
}

Result<Money> Balance::Charge(const std::string& hold_id, Money actual) {
  auto it = holds_.find(hold_id);
  if (it == holds_.end()) return Status::NotFound(fmt::format("charge: no hold `{}`", hold_id));
  const Money charge = std::clamp(actual, Money{}, it->second);
  it->second = it->second - charge;
  held_ = held_ - charge;
  charged_ += charge;
  return charge;
}

Status Balance::Resize(const std::string& hold_id, Money amount) {
  auto it = holds_.find(hold_id);
  if (it == holds_.end()) return Status::NotFound(fmt::format("resize: no hold `{}`", hold_id));
  if (amount.micros < 0) return Status::Invalid("resize: the amount must be ≥ 0");
  if (amount - it->second > available()) {
    return Status::Exhausted(fmt::format("insufficient balance: {} more needed, {} available",
                                         FormatMoney(amount - it->second), FormatMoney(available())));
  }
  held_ = held_ - it->second + amount;
  it->second = amount;
  return Status::Ok();
}

Money Balance::HeldBy(const std::string& hold_id) const {
  auto it = holds_.find(hold_id);
  return it == holds_.end() ? Money{} : it->second;
}

}  // namespace ll::ledger
