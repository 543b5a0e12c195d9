// The selling policies and their factory.
#include <algorithm>
#include <charconv>
#include <deque>
#include <vector>

#include <fmt/format.h>

#include "alloc/policy.h"
#include "core/check.h"
#include "forecast/forecast.h"
#include "forecast/hazard.h"

namespace ll::alloc {
namespace {

Gpus Unwanted(const PoolView& p) {
  return std::max<Gpus>(0, p.capacity - p.internal_want - p.reserved);
}

// Sells nothing: the owner's fleet as it is today.
class BaselinePolicy final : public Policy {
 public:
  const std::string& name() const override { return name_; }
  Gpus SellLimit(const PoolView&, Time) override { return 0; }

 private:
  std::string name_ = "baseline";
};

// Sells every GPU the owner does not want this instant; reclaims on demand.
class SpotAllPolicy final : public Policy {
 public:
  const std::string& name() const override { return name_; }
  Gpus SellLimit(const PoolView& p, Time) override { return Unwanted(p); }

 private:
  std::string name_ = "spot-all";
};

// Lends at most a fraction F of each pool (Kueue's lendingLimit), reclaiming on demand.
class LendLimitPolicy final : public Policy {
 public:
  LendLimitPolicy(std::string name, double fraction) : name_(std::move(name)), fraction_(fraction) {}
  const std::string& name() const override { return name_; }
  Gpus SellLimit(const PoolView& p, Time) override {
    Gpus cap = static_cast<Gpus>(fraction_ * p.capacity);
    return std::min(Unwanted(p), std::max<Gpus>(0, cap - p.reserved));
  }

 private:
  std::string name_;
  double fraction_;
};

// Knows the owner's future demand: sells everything that will not be wanted before a notice
// given now would run out. The upper bound on harvest at zero delay.
class OraclePolicy final : public Policy {
 public:
  explicit OraclePolicy(const PolicyContext& ctx) : ctx_(ctx) { LL_CHECK(ctx.future != nullptr); }
  const std::string& name() const override { return name_; }
  Gpus SellLimit(const PoolView& p, Time now) override {
    // The recorded future does not change during a run: one lookup per pool and instant (a step
    // asks several times at the same instant).
    if (p.pool.v >= last_.size()) last_.resize(p.pool.v + 1, {kTimeMax, 0});
    auto& [at, future] = last_[p.pool.v];
    if (at != now) {
      at = now;
      future = ctx_.future->MaxDemand(p.pool, now, now + ctx_.notice + ctx_.tick);
    }
    return std::max<Gpus>(0, p.capacity - p.reserved - std::max(future, p.internal_want));
  }

 private:
  std::string name_ = "oracle";
  PolicyContext ctx_;
  std::vector<std::pair<Time, Gpus>> last_;  // per pool: the instant asked last, its future demand
};

// landlord: forecast + headroom + cooldown + reserved terms.
//
// Sell limit = capacity - reserved - hold - H, where
// - hold is the most the owner wanted in the last `cooldown` (GPUs that a job just gave back
//   are often taken again by the next job; selling them only to reclaim them minutes later
//   would make the owner wait a notice for them);
// - H is the headroom: the smallest h such that, over the rises of demand seen so far that
//   went past `hold`, Σ max(0, rise - h) × notice ≤ delay_budget × the pool's owner GPU-time.
//   It is the quantile of arrivals within the notice window that keeps the owner's expected
//   delay inside the budget, learned per pool (busy, churning pools keep more).
// Reserved terms are admitted when the forecast's `reserved_quantile` of demand over the term
// (and the owner's peak so far), plus reserved, plus headroom fits the pool.
// The flash tier's own cooldown: freed GPUs are sold as flash only after this long (chosen on
// the first two weeks of Helios May 2020; docs/sim.md).
constexpr Duration kFlashCooldown = Duration::Minutes(5);

class LandlordPolicy final : public Policy {
 public:
  explicit LandlordPolicy(const PolicyContext& ctx) : ctx_(ctx), pools_(ctx.pools), hazards_(ctx.pools) {}
  const std::string& name() const override { return name_; }

  // With a flash tier: everything the owner does not want now less the flash headroom; the
  // cooldown's hold and the standard headroom then only bound the standard tier.
  Gpus SellLimit(const PoolView& p, Time now) override {
    if (ctx_.flash_notice.ms <= 0) return StandardLimit(p, now);
    PoolState& s = State(p);
    if (!s.started || now - s.first_seen < ctx_.warmup) return 0;
    if (!FlashPays(p, now)) return StandardLimit(p, now);
    Expire(s.flash_window, now, kFlashCooldown, s.last_want);
    const Gpus hold = std::max(p.internal_want, s.flash_window.empty() ? 0 : s.flash_window.front().second);
    const Gpus headroom = Headroom(s.flash, s.owner_ms, ctx_.flash_notice, p.capacity);
    return std::max<Gpus>(0, p.capacity - p.reserved - hold - headroom);
  }

  Gpus StandardLimit(const PoolView& p, Time now) override {
    PoolState& s = State(p);
    if (!s.started || now - s.first_seen < ctx_.warmup) return 0;
    const Recent& r = RecentAt(s, now, p.capacity);
    Gpus hold = std::max(p.internal_want, r.hold);
    return std::max<Gpus>(0, p.capacity - p.reserved - hold - r.headroom);
  }

  Gpus ReservedRoom(const PoolView& p, Time now, Time end) override {
    PoolState& s = State(p);
    if (ctx_.forecast == nullptr || !s.started || now - s.first_seen < ctx_.reserved_min_history) {
      return 0;  // enough history (two weeks by default) before promising anything
    }
    Gpus demand = ctx_.forecast->Quantile(static_cast<int>(p.pool.v), ctx_.reserved_quantile, now, end);
    const Recent& r = RecentAt(s, now, p.capacity);
    // By default a term is promised only out of capacity the owner has not touched in all the
    // history seen: hour-of-week patterns alone missed too often on real traces (Helios). Below
    // 1, the forecast's quantile alone sizes it (docs/sim.md measures what that costs).
    Gpus hold = std::max({demand, ctx_.reserved_quantile < 1 ? 0 : s.peak, r.hold});
    return std::max<Gpus>(0, p.capacity - p.reserved - hold - r.headroom);
  }

  // What the flash tier cost the owner: its hazards count GPUs taken back from flash leases.
  void OnOwnerReclaim(const PoolView& p, Gpus gpus, Duration notice, Time now) override {
    if (ctx_.flash_notice.ms > 0 && notice <= ctx_.flash_notice) hazards_.Rise(static_cast<int>(p.pool.v), gpus, now);
  }

  void OnDemand(const PoolView& p, Time now) override {
    PoolState& s = State(p);
    if (!s.started) {
      s.started = true;
      s.first_seen = now;
      s.last = now;
    }
    s.owner_ms += static_cast<int64_t>(s.last_want) * (now - s.last).ms;
    hazards_.Exposed(static_cast<int>(p.pool.v), p.capacity - p.reserved - s.last_want, s.last, now);
    s.last = now;
    Expire(s.window, now, ctx_.cooldown, s.last_want);
    Expire(s.flash_window, now, kFlashCooldown, s.last_want);
    // A repeated level is no news: it must not move the window's entry (and so the cooldown),
    // or a driver that re-reports a level (serve after a restart) would diverge from one that
    // does not.
    if (!s.window.empty() && p.internal_want == s.last_want) return;
    Gpus recent = s.window.empty() ? s.last_want : s.window.front().second;
    if (p.internal_want > recent) s.standard.Add(p.internal_want - recent);
    Gpus flash_recent = s.flash_window.empty() ? s.last_want : s.flash_window.front().second;
    if (p.internal_want > flash_recent) s.flash.Add(p.internal_want - flash_recent);
    // Monotonic deque of (time, want): front is the max over the cooldown window.
    while (!s.window.empty() && s.window.back().second <= p.internal_want) s.window.pop_back();
    s.window.emplace_back(now, p.internal_want);
    while (!s.flash_window.empty() && s.flash_window.back().second <= p.internal_want) s.flash_window.pop_back();
    s.flash_window.emplace_back(now, p.internal_want);
    s.last_want = p.internal_want;
    s.peak = std::max(s.peak, p.internal_want);
    s.recent.at = kTimeMax;  // the window and the headroom may have moved
  }

 private:
  // The most the owner wanted within the cooldown, and the headroom, as of `at`. They change
  // only with time and demand, and the driver asks several times per pool and tick.
  struct Recent {
    Time at = kTimeMax;
    Gpus hold = 0;
    Gpus headroom = 0;
  };
  // Rises of the owner's demand past what is held back, and the headroom they call for.
  struct Rises {
    std::vector<int64_t> count;  // count[r] = number of rises of r GPUs
    bool valid = false;
    Gpus headroom = 0;
    int64_t owner_ms = -1;  // when it was computed
    void Add(Gpus rise) {
      if (static_cast<size_t>(rise) >= count.size()) count.resize(rise + 1, 0);
      ++count[rise];
      valid = false;
    }
  };
  struct PoolState {
    bool started = false;
    Time first_seen, last;
    Gpus last_want = 0;
    Gpus peak = 0;  // the most the owner ever wanted
    int64_t owner_ms = 0;  // owner GPU-milliseconds seen
    std::deque<std::pair<Time, Gpus>> window;        // (time, want), max first, over the cooldown
    std::deque<std::pair<Time, Gpus>> flash_window;  // the same over kFlashCooldown
    Rises standard;  // past the cooldown's hold, at the standard notice
    Rises flash;     // past the demand of the moment, at the flash notice
    Recent recent;  // RecentAt's answer for recent.at
  };

  // Whether the flash tier pays in the pool at this hour of the week: the owner's learned delay
  // (flash GPUs it took back per GPU-hour it left unwanted, × the flash notice) stays within
  // `flash_max_delay` (0: always).
  bool FlashPays(const PoolView& p, Time now) const {
    if (ctx_.flash_max_delay <= 0) return true;
    const double notice_h = static_cast<double>(ctx_.flash_notice.ms) / 3'600'000.0;
    return hazards_.PerGpuHour(static_cast<int>(p.pool.v), now) * notice_h <= ctx_.flash_max_delay;
  }

  PoolState& State(const PoolView& p) {
    if (p.pool.v >= pools_.size()) pools_.resize(p.pool.v + 1);
    return pools_[p.pool.v];
  }

  const Recent& RecentAt(PoolState& s, Time now, Gpus capacity) {
    if (s.recent.at != now) {
      Expire(s.window, now, ctx_.cooldown, s.last_want);
      s.recent.hold = s.window.empty() ? 0 : s.window.front().second;
      s.recent.headroom = Headroom(s.standard, s.owner_ms, ctx_.notice, capacity);
      s.recent.at = now;
    }
    return s.recent;
  }

  static void Expire(std::deque<std::pair<Time, Gpus>>& window, Time now, Duration cooldown, Gpus last_want) {
    // Keep the last entry that started before the window: its level lasted into it.
    while (window.size() > 1 && window[1].first <= now - cooldown) window.pop_front();
    if (window.size() == 1 && window.front().first <= now - cooldown && window.front().second > last_want) {
      window.front().second = last_want;
    }
  }

  Gpus Headroom(Rises& s, int64_t owner_ms, Duration notice, Gpus capacity) {
    // The budget grows with owner GPU-time; recompute when it has grown by 1% or rises changed.
    if (s.valid && owner_ms < s.owner_ms + s.owner_ms / 100 + 1) return s.headroom;
    const double budget_ms = ctx_.delay_budget * static_cast<double>(owner_ms);
    const double notice_ms = static_cast<double>(notice.ms);
    // S(h) = Σ_r cnt[r] · max(0, r - h), computed from the top down.
    Gpus top = static_cast<Gpus>(s.count.size()) - 1;
    Gpus h = std::max<Gpus>(top, 0);
    int64_t above = 0;  // rises with r > h
    double sum = 0;     // S(h)
    while (h > 0) {
      // S(h-1) = S(h) + #(r > h-1)
      int64_t above_next = above + (static_cast<size_t>(h) < s.count.size() ? s.count[h] : 0);
      double next = sum + static_cast<double>(above_next);
      if (next * notice_ms > budget_ms) break;
      sum = next;
      above = above_next;
      --h;
    }
    s.headroom = std::min(h, capacity);
    s.valid = true;
    s.owner_ms = owner_ms;
    return s.headroom;
  }

  std::string name_ = "landlord";
  PolicyContext ctx_;
  std::vector<PoolState> pools_;
  forecast::RiseHazards hazards_;  // flash GPUs the owner took back, per pool and hour of week
};

}  // namespace

Result<std::unique_ptr<Policy>> MakePolicy(const std::string& name, const PolicyContext& ctx) {
  if (name == "baseline") return std::unique_ptr<Policy>(new BaselinePolicy());
  if (name == "spot-all") return std::unique_ptr<Policy>(new SpotAllPolicy());
  if (name == "landlord") return std::unique_ptr<Policy>(new LandlordPolicy(ctx));
  if (name == "oracle") {
    if (ctx.future == nullptr) return Status::Invalid("policy `oracle` needs the future demand");
    return std::unique_ptr<Policy>(new OraclePolicy(ctx));
  }
  const std::string prefix = "lend-limit:";
  if (name.rfind(prefix, 0) == 0) {
    std::string arg = name.substr(prefix.size());
    double f = -1;
    auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), f);
    if (ec != std::errc() || ptr != arg.data() + arg.size() || !(f >= 0 && f <= 1)) {
      return Status::Invalid(fmt::format("policy `{}`: F must be a number in [0, 1]", name));
    }
    return std::unique_ptr<Policy>(new LendLimitPolicy(name, f));
  }
  return Status::Invalid(fmt::format(
      "unknown policy `{}`: expected baseline, spot-all, lend-limit:F, landlord or oracle", name));
}

Status ValidatePolicyName(const std::string& name) {
  struct NoFuture final : FutureDemand {
    Gpus MaxDemand(PoolId, Time, Time) const override { return 0; }
  } none;
  PolicyContext ctx;
  ctx.future = &none;
  auto p = MakePolicy(name, ctx);
  return p.ok() ? Status::Ok() : p.status();
}

}  // namespace ll::alloc
