// The allocator's contract (DESIGN.md "Capacity classes", "The allocator"), checked for every
// selling policy under long seeded random event sequences, Mesos CommonSorterTest style: one
// typed suite, instantiated once per policy. After every event the allocator checks its own
// rules (CheckInvariants aborts on a broken one) and the suite checks, from the outside, what
// a tenant and the owner can observe through the Listener:
// - every reclaim ends the holder exactly at reclaim_at = notice time + the full notice
//   (inference: min(drain, notice)), and a noticed holder keeps all its GPUs until then;
// - a reserved holder is never noticed nor reclaimed; its term ends exactly at term_end;
// - `baseline` never starts an outside holder;
// - occupancy mode, `spot-all` / `lend-limit` / `landlord`: an increase of the owner's demand
//   is fully served at most one notice after it was seen, unless reserved leases hold the
//   GPUs (then the allocator must have counted a forecast miss);
// - a placement never takes the outsiders past the policy's sell limit, and the allocator's
//   answers (Sellable, ReservedRoom) predict PlaceOutside / PlaceReserved.
// The unit cases at the end pin placement, reclaim order, job claims and MakePolicy errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "core/money.h"
#include "core/rng.h"
#include "core/time.h"
#include "forecast/forecast.h"

namespace ll::alloc {
namespace {

constexpr int64_t kMonday = 1'588'550'400'000;  // 2020-05-04T00:00:00Z
const Money kFloor = Money::Micros(225'600);    // (700 - 70) W × $0.30/kWh + wear, roughly
constexpr Duration kSlot = Duration::Minutes(5);

// ---------------------------------------------------------------- policies under test

struct BaselinePolicy {
  static constexpr uint64_t kSeed = 11;
  static constexpr const char* kName = "baseline";
  static constexpr const char* kTestName = "Baseline";
  static constexpr bool kBoundedWait = false;
  static constexpr int kWarmupDays = 1;
};
struct SpotAllPolicy {
  static constexpr uint64_t kSeed = 23;
  static constexpr const char* kName = "spot-all";
  static constexpr const char* kTestName = "SpotAll";
  static constexpr bool kBoundedWait = true;
  static constexpr int kWarmupDays = 1;
};
struct LendLimitPolicy {
  static constexpr uint64_t kSeed = 37;
  static constexpr const char* kName = "lend-limit:0.5";
  static constexpr const char* kTestName = "LendLimitHalf";
  static constexpr bool kBoundedWait = true;
  static constexpr int kWarmupDays = 1;
};
struct LandlordPolicy {
  static constexpr uint64_t kSeed = 41;
  static constexpr const char* kName = "landlord";
  static constexpr const char* kTestName = "Landlord";
  static constexpr bool kBoundedWait = true;
  // Two weeks of history before it sells any reserved term, plus a day.
  static constexpr int kWarmupDays = 15;
};
struct OraclePolicy {
  static constexpr uint64_t kSeed = 53;
  static constexpr const char* kName = "oracle";
  static constexpr const char* kTestName = "Oracle";
  static constexpr bool kBoundedWait = false;  // not asserted: it may sell across a gap in events
  static constexpr int kWarmupDays = 1;
};

// ---------------------------------------------------------------- the owner's demand

// The owner's demand, recorded in advance: per pool and 5-minute slot, the most the owner will
// want in that slot. Demand events draw a level at most that (up to 1/16 of the pool below
// it), so the oracle's view is an exact upper bound. A random walk below 60% of the pool, with
// rare surges to the whole pool after the warm-up (they beat any forecast).
class DemandTable final : public FutureDemand {
 public:
  DemandTable(std::vector<Gpus> caps, Time start, Time surge_from, Duration horizon, uint64_t seed)
      : caps_(std::move(caps)), start_(start) {
    Rng rng(seed);
    const int64_t slots = horizon.ms / kSlot.ms + 1;
    slot_max_.resize(caps_.size());
    for (size_t p = 0; p < caps_.size(); ++p) {
      const Gpus cap = caps_[p], high = cap * 6 / 10;
      Gpus level = cap * 3 / 10;
      for (int64_t s = 0; s < slots; ++s) {
        double u = rng.Uniform();
        if (u < 0.02) {
          level = static_cast<Gpus>(rng.Below(high + 1));
        } else if (u < 0.55) {
          Gpus step = static_cast<Gpus>(rng.Below(cap / 10 + 1));
          level += rng.Below(2) == 0 ? step : -step;
        }
        level = std::clamp<Gpus>(level, 0, high);
        Gpus v = level;
        if (start + kSlot * s >= surge_from && rng.Uniform() < 0.01) v = cap;  // a surge
        slot_max_[p].push_back(v);
      }
    }
  }

  Gpus SlotMax(PoolId pool, Time t) const {
    const auto& v = slot_max_[pool.v];
    int64_t s =
        std::clamp<int64_t>((t - start_).ms / kSlot.ms, 0, static_cast<int64_t>(v.size()) - 1);
    return v[s];
  }
  Gpus Jitter(PoolId pool) const { return caps_[pool.v] / 16; }

  Gpus MaxDemand(PoolId pool, Time t0, Time t1) const override {
    Gpus m = 0;
    for (Time t = t0; t <= t1; t += kSlot) m = std::max(m, SlotMax(pool, t));
    return std::max(m, SlotMax(pool, t1));
  }

 private:
  std::vector<Gpus> caps_;
  Time start_;
  std::vector<std::vector<Gpus>> slot_max_;
};

// Three pools, 22 nodes: two of 8-GPU nodes over two racks each, one of 4-GPU nodes in one
// rack.
FleetSpec ContractFleet() {
  FleetSpec s;
  s.pools = {"train", "serve", "mixed"};
  int i = 0;
  auto add = [&](uint32_t pool, uint32_t rack, Gpus gpus) {
    s.nodes.push_back({fmt::format("n{:02d}", i++), PoolId{pool}, RackId{rack}, gpus});
  };
  for (int k = 0; k < 8; ++k) add(0, k < 4 ? 0 : 1, 8);
  for (int k = 0; k < 8; ++k) add(1, k < 3 ? 2 : 3, 8);
  // Uniform sizes within a pool: mixed sizes over-allocate large requests (see
  // AllocatorPlacement.MixedNodeSizesTakeTheRoundedRequestExactly).
  for (int k = 0; k < 6; ++k) add(2, 4, 4);
  return s;
}

struct RunConfig {
  bool occupancy = true;
  uint64_t seed = 1;
  int busy_events = 5000;
  int warmup_days = 1;
  Duration notice = Duration::Seconds(120);
  Duration drain = Duration::Seconds(30);
  bool bounded_wait = false;
  bool sells_nothing = false;
};

struct RunStats {
  int64_t events = 0;
  int64_t placed_spot = 0, placed_inference = 0, placed_reserved = 0;
  int64_t reclaims = 0, notices = 0, releases = 0, jobs_started = 0;
  int64_t wait_checks = 0, blocked_by_reserved = 0;
  int64_t reserved_conflicts = 0, exhausted = 0;
  void Add(const RunStats& o) {
    events += o.events;
    placed_spot += o.placed_spot;
    placed_inference += o.placed_inference;
    placed_reserved += o.placed_reserved;
    reclaims += o.reclaims;
    notices += o.notices;
    releases += o.releases;
    jobs_started += o.jobs_started;
    wait_checks += o.wait_checks;
    blocked_by_reserved += o.blocked_by_reserved;
    reserved_conflicts += o.reserved_conflicts;
    exhausted += o.exhausted;
  }
};

// One allocator driven by one seeded random event sequence.
class ContractRun final : public Listener {
 public:
  ContractRun(const std::string& policy_name, const RunConfig& cfg)
      : cfg_(cfg),
        rng_(cfg.seed),
        now_(Time{kMonday}),
        fleet_(ContractFleet()),
        forecast_(PoolCaps()),
        table_(PoolCaps(), now_, now_ + Duration::Hours(24 * cfg.warmup_days),
               Duration::Hours(24 * (cfg.warmup_days + 30)), cfg.seed * 7919 + 1) {
    PolicyContext ctx;
    ctx.notice = cfg.notice;
    ctx.forecast = &forecast_;
    ctx.future = &table_;
    ctx.pools = static_cast<int>(fleet_.pools.size());
    auto policy = MakePolicy(policy_name, ctx);
    LL_CHECK(policy.ok());
    AllocatorOptions opt;
    opt.notice = cfg.notice;
    opt.inference_drain = cfg.drain;
    opt.occupancy = cfg.occupancy;
    opt.floor = kFloor;
    alloc_ = std::make_unique<Allocator>(fleet_, opt, std::move(*policy), this);
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      want_log_.push_back({{now_, 0}});
      Gpus max_node = 0;
      for (const NodeSpec& n : fleet_.nodes) {
        if (n.pool.v == static_cast<uint32_t>(p)) max_node = std::max(max_node, n.gpus);
      }
      max_node_.push_back(max_node);
    }
  }

  const RunStats& stats() const { return stats_; }

  // The last events, oldest first.
  std::string Recent() const {
    std::string out = "last events:\n";
    for (const LogEntry& e : recent_) {
      out +=
          "  " + fmt::format(fmt::runtime(e.format), e.word, e.v[0], e.v[1], e.v[2], e.v[3]) + "\n";
    }
    return out;
  }
  const Allocator& alloc() const { return *alloc_; }

  void Run() {
    const Time warm_end = now_ + Duration::Hours(24 * cfg_.warmup_days);
    // Warm-up: only the owner's demand, in big steps (history for the forecast and landlord).
    while (now_ < warm_end && !::testing::Test::HasFatalFailure()) {
      Step(Duration::Minutes(cfg_.occupancy ? 30 : 90));
      for (int p = 0; p < alloc_->pool_count(); ++p) {
        OwnerDemand(PoolId{static_cast<uint32_t>(p)}, true);
        AfterEvent();
      }
    }
    for (int i = 0; i < cfg_.busy_events && !::testing::Test::HasFatalFailure(); ++i) {
      BusyEvent();
      AfterEvent();
    }
  }

  // ---- Listener: what tenants and the owner observe

  void OnStart(const Holder& h, Time t) override {
    Log("start #{1} {0} pool {2} gpus {3}", HolderClassName(h.cls), h.id.v, h.pool.v, h.gpus);
    EXPECT_EQ(t, now_);
    if (h.outside()) {
      EXPECT_FALSE(cfg_.sells_nothing) << "baseline started an outside holder";
      EXPECT_GE(h.price, kFloor);
      EXPECT_GT(h.gpus, 0);
      live_outside_.push_back(h.id);
      if (h.cls == HolderClass::kSpot) {
        EXPECT_GE(h.max_price, h.price);
      }
      if (h.cls == HolderClass::kReserved) {
        EXPECT_GT(h.term_end, t);
      }
    } else {
      EXPECT_EQ(h.gpus, h.want);
      ++stats_.jobs_started;
    }
  }

  void OnNotice(const Holder& h, Time t, NoticeReason reason) override {
    Log("notice #{1} ({0}) pool {2} gpus {3} until t={4}ms", NoticeReasonName(reason), h.id.v,
        h.pool.v, h.gpus, (h.reclaim_at - Time{kMonday}).ms);
    ++stats_.notices;
    EXPECT_EQ(t, now_);
    EXPECT_TRUE(h.cls == HolderClass::kSpot || h.cls == HolderClass::kInference)
        << "noticed a " << HolderClassName(h.cls) << " holder";
    EXPECT_EQ(h.noticed_at, t);
    EXPECT_EQ(h.reclaim_at, t + NoticeOf(h.cls));
    EXPECT_FALSE(notices_.contains(h.id.v)) << "noticed twice";
    notices_[h.id.v] = {t, h.reclaim_at, h.gpus};
    noticed_.push_back(h.id);
  }

  void OnEnd(const Holder& h, Time t, EndReason reason) override {
    Log("end #{1} {0} pool {2} at t={3}ms (reason {4})", HolderClassName(h.cls), h.id.v, h.pool.v,
        (t - Time{kMonday}).ms, static_cast<int>(reason));
    EXPECT_LE(t, now_);
    auto n = notices_.find(h.id.v);
    if (reason == EndReason::kReclaimed) {
      ++stats_.reclaims;
      EXPECT_NE(h.cls, HolderClass::kReserved) << "reserved holder reclaimed";
      EXPECT_NE(h.cls, HolderClass::kInternal);
      if (h.cls == HolderClass::kReserved) {
        EXPECT_GE(t, h.term_end) << "reserved reclaimed in its term";
      }
      EXPECT_TRUE(n != notices_.end()) << "reclaimed without a notice";
      if (n != notices_.end()) {
        EXPECT_EQ(t, n->second.reclaim_at) << "reclaim not at reclaim_at";
        EXPECT_EQ(n->second.reclaim_at - n->second.noticed_at, NoticeOf(h.cls)) << "short notice";
      }
    } else if (reason == EndReason::kFinished && h.cls == HolderClass::kReserved && !releasing_) {
      EXPECT_EQ(t, h.term_end) << "reserved term ended early or late";
    } else if (reason == EndReason::kFinished && h.outside()) {
      EXPECT_TRUE(releasing_) << "an outside holder ended without release, term end or reclaim";
    }
    if (n != notices_.end()) notices_.erase(n);
  }

 private:
  struct NoticeRecord {
    Time noticed_at, reclaim_at;
    Gpus gpus = 0;
  };

  std::vector<Gpus> PoolCaps() const {
    std::vector<Gpus> caps(fleet_.pools.size(), 0);
    for (const NodeSpec& n : fleet_.nodes) caps[n.pool.v] += n.gpus;
    return caps;
  }

  // Kept cheap: formatted only when a failure prints them.
  struct LogEntry {
    const char* format;
    const char* word;
    int64_t v[4];
  };
  void Log(const char* format, const char* word, int64_t a = 0, int64_t b = 0, int64_t c = 0,
           int64_t d = 0) {
    if (recent_.size() == 60) recent_.pop_front();
    recent_.push_back({format, word, {a, b, c, d}});
  }

  Duration NoticeOf(HolderClass c) const {
    return c == HolderClass::kInference ? std::min(cfg_.drain, cfg_.notice) : cfg_.notice;
  }

  PoolId RandomPool() { return PoolId{static_cast<uint32_t>(rng_.Below(alloc_->pool_count()))}; }
  Money RandomPrice() {
    return kFloor + Money::Micros(static_cast<int64_t>(rng_.Below(2'000'000)));
  }
  Gpus Rounded(PoolId pool, Gpus g) const {
    Gpus n = max_node_[pool.v];
    return g <= n ? g : (g + n - 1) / n * n;
  }

  // A random live holder from `v` matching `pred`; ended ones are dropped on the way.
  template <typename Pred>
  HolderId PickLive(std::vector<HolderId>& v, Pred pred) {
    for (int tries = 0; tries < 8 && !v.empty(); ++tries) {
      size_t i = rng_.Below(v.size());
      const Holder& h = alloc_->holder(v[i]);
      if (h.state == HolderState::kEnded) {
        v[i] = v.back();
        v.pop_back();
        continue;
      }
      if (pred(h)) return h.id;
    }
    return HolderId{};
  }

  void Step(Duration d) {
    now_ += d;
    Log("{0} to t={1}ms (+{2} ms)", "advance", (now_ - Time{kMonday}).ms, d.ms);
    alloc_->AdvanceTo(now_);
  }

  // `warm`: the warm-up, when the owner's demand stays near the table (landlord learns its
  // peak from it, and sells reserved terms only below that peak).
  void OwnerDemand(PoolId pool, bool warm) {
    if (cfg_.occupancy) {
      Gpus top = table_.SlotMax(pool, now_);
      Gpus level = std::max<Gpus>(0, top - static_cast<Gpus>(rng_.Below(table_.Jitter(pool) + 1)));
      Log("{0} pool {1} {2} -> {3}", "demand", pool.v, alloc_->pool(pool).internal_want, level);
      alloc_->SetInternalDemand(pool, level, now_);
      EXPECT_EQ(alloc_->pool(pool).internal_want, level);
    } else {
      // Jobs arrive while the owner wants less than the table says, and finish otherwise.
      const Gpus target = table_.SlotMax(pool, now_);
      const PoolCounters& pc = alloc_->pool(pool);
      if (pc.internal_want < target || (!warm && rng_.Below(4) == 0)) {
        static constexpr Gpus kSizes[] = {1, 2, 4, 8, 8, 16, 3, 24};
        Gpus g = kSizes[rng_.Below(std::size(kSizes))];
        if (warm) g = std::min(g, std::max<Gpus>(1, target - pc.internal_want));
        if (Rounded(pool, g) > pc.capacity) g = 1;
        Log("{0} job pool {1} gpus {2}", "submit", pool.v, g);
        auto r = alloc_->SubmitJob(pool, g, static_cast<int>(rng_.Below(3)), 0, now_);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        if (r.ok()) jobs_.push_back(*r);
      } else {
        HolderId j = PickLive(jobs_, [&](const Holder& h) { return h.pool == pool; });
        if (j.valid()) {
          Log("{0} job #{1}", "finish", j.v);
          alloc_->FinishJob(j, now_);
        }
      }
    }
    forecast_.Observe(static_cast<int>(pool.v), alloc_->pool(pool).internal_want, now_);
  }

  void BusyEvent() {
    ++stats_.events;
    const uint64_t k = rng_.Below(100);
    if (k < 15) {  // the owner
      OwnerDemand(RandomPool(), false);
    } else if (k < 36) {  // time passes
      uint64_t kind = rng_.Below(10);
      Duration d;
      if (kind < 4) {
        d = Duration::Millis(1 + static_cast<int64_t>(rng_.Below(cfg_.notice.ms / 4)));
      } else if (kind < 7) {
        Time next = alloc_->NextDeadline();
        d = next != kTimeMax && next > now_ && next - now_ <= cfg_.notice * 2
                ? next - now_
                : Duration::Seconds(1);
      } else if (kind < 9) {
        d = cfg_.notice + Duration::Millis(static_cast<int64_t>(rng_.Below(cfg_.notice.ms)));
      } else {
        d = Duration::Minutes(5 + static_cast<int64_t>(rng_.Below(55)));
      }
      Step(d);
    } else if (k < 56) {  // spot or inference
      const bool spot = k < 50;
      static constexpr Gpus kSizes[] = {1, 2, 4, 8, 8, 8, 16, 5, 24};
      PoolId pool = RandomPool();
      Gpus g = kSizes[rng_.Below(std::size(kSizes))];
      Money price = RandomPrice();
      Money max = price + Money::Micros(static_cast<int64_t>(rng_.Below(1'000'000)));
      Gpus sellable = alloc_->Sellable(pool, now_);
      Log("place {0} pool {1} gpus {2} price {3} micros", spot ? "spot" : "inference", pool.v, g,
          price.micros);
      auto r = alloc_->PlaceOutside(spot ? HolderClass::kSpot : HolderClass::kInference, pool, g,
                                    price, max, 0, now_);
      if (r.ok()) {
        EXPECT_LE(Rounded(pool, g), sellable) << "placed past Sellable";
        const Holder& h = alloc_->holder(*r);
        EXPECT_EQ(h.gpus, Rounded(pool, g));
        ++(spot ? stats_.placed_spot : stats_.placed_inference);
        // Never past the policy's limit.
        EXPECT_LE(alloc_->View(pool).outside_active,
                  alloc_->policy().SellLimit(alloc_->View(pool), now_));
        CheckTopology(h);
      } else {
        ++stats_.exhausted;
        EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
        if (Rounded(pool, g) <= sellable) {
          EXPECT_NE(r.status().message().find("fragmented"), std::string::npos)
              << "Sellable said " << sellable << " for " << g << ": " << r.status().ToString();
        }
      }
    } else if (k < 60) {  // reserved
      PoolId pool = RandomPool();
      Gpus g = 1 + static_cast<Gpus>(rng_.Below(16));
      Time end = now_ + Duration::Minutes(30 + static_cast<int64_t>(rng_.Below(30 * 60)));
      Gpus room = alloc_->ReservedRoom(pool, end, now_);
      auto r = alloc_->PlaceReserved(pool, g, end, RandomPrice(), 0, now_);
      if (r.ok()) {
        ++stats_.placed_reserved;
        EXPECT_LE(Rounded(pool, g), room);
        EXPECT_EQ(alloc_->holder(*r).term_end, end);
        CheckTopology(alloc_->holder(*r));
      } else {
        ++stats_.reserved_conflicts;
        EXPECT_EQ(r.status().code(), StatusCode::kConflict) << r.status().ToString();
        if (Rounded(pool, g) > room) {
          EXPECT_NE(r.status().message().find(fmt::format("largest accepted now is {}", room)),
                    std::string::npos)
              << r.status().ToString();
        }
      }
    } else if (k < 72) {  // a tenant releases
      HolderId h = PickLive(live_outside_, [](const Holder&) { return true; });
      if (h.valid()) {
        ++stats_.releases;
        releasing_ = true;
        Log("{0} #{1}", "release", h.v);
        alloc_->Release(h, now_);
        releasing_ = false;
      }
    } else if (k < 76) {  // the price rose above a tenant's max
      HolderId h = PickLive(live_outside_, [](const Holder& o) {
        return o.state == HolderState::kActive && o.cls != HolderClass::kReserved;
      });
      if (h.valid()) {
        Log("{0} #{1}", "price notice", h.v);
        alloc_->Notice(h, NoticeReason::kPriceAboveMax, now_);
      }
    } else if (k < 83) {  // a new clearing price
      HolderId h =
          PickLive(live_outside_, [](const Holder& o) { return o.cls == HolderClass::kSpot; });
      if (h.valid()) {
        Money p = RandomPrice();
        alloc_->SetPrice(h, p);
        EXPECT_EQ(alloc_->holder(h).price, p);
        if (p > alloc_->holder(h).max_price) alloc_->Notice(h, NoticeReason::kPriceAboveMax, now_);
      }
    } else if (k < 86) {  // inference wants the cheapest spot GPUs
      const PoolId pool = RandomPool();
      const Gpus g = 1 + static_cast<Gpus>(rng_.Below(16));
      Log("{0} pool {1} gpus {2}", "notice cheapest spot", pool.v, g);
      alloc_->NoticeCheapestSpot(pool, g, now_);
    } else if (k < 94) {
      alloc_->Rebalance(now_);
    } else {  // queries change nothing
      const PoolId pool = RandomPool();
      const PoolCounters before = alloc_->pool(pool);
      Gpus s = alloc_->Sellable(pool, now_);
      EXPECT_GE(s, 0);
      EXPECT_LE(s, before.free_unclaimed);
      Gpus room = alloc_->ReservedRoom(pool, now_ + Duration::Hours(4), now_);
      EXPECT_GE(room, 0);
      EXPECT_LE(room, before.free_unclaimed);
      Gpus free = 0;
      for (auto& [node, g] : alloc_->FreeNodes(pool)) {
        EXPECT_EQ(fleet_.nodes[node.v].pool, pool);
        free += g;
      }
      EXPECT_EQ(free, before.free_unclaimed);
      EXPECT_GT(alloc_->NextDeadline(), now_);
      EXPECT_EQ(alloc_->pool(pool).spot, before.spot);
    }
  }

  // ≤ N GPUs on one node; more on whole nodes.
  void CheckTopology(const Holder& h) {
    if (h.gpus <= max_node_[h.pool.v]) {
      EXPECT_EQ(h.shares.size(), 1u) << "a request of " << h.gpus << " GPUs split over nodes";
    } else {
      for (const Share& s : h.shares)
        EXPECT_EQ(s.gpus, fleet_.nodes[s.node.v].gpus) << "not a whole node";
    }
  }

  // The owner's demand level in force at each moment since `t` (per pool).
  Gpus MinWantSince(uint32_t pool, Time t) {
    auto& log = want_log_[pool];
    while (log.size() >= 2 && log[1].first <= t) log.pop_front();
    Gpus m = INT32_MAX;
    for (auto& [when, w] : log) m = std::min(m, w);
    return m;
  }

  void AfterEvent() {
    alloc_->CheckInvariants(now_);  // aborts on a broken rule
    const Allocator& a = *alloc_;
    if (cfg_.sells_nothing) {
      ASSERT_EQ(a.TotalSpot() + a.TotalInference() + a.TotalReserved(), 0);
    }
    // Noticed holders keep every GPU until reclaim_at.
    for (size_t i = 0; i < noticed_.size();) {
      const Holder& h = a.holder(noticed_[i]);
      if (h.state != HolderState::kNoticed) {
        noticed_[i] = noticed_.back();
        noticed_.pop_back();
        continue;
      }
      ASSERT_EQ(h.gpus, notices_[h.id.v].gpus) << "a noticed holder lost GPUs before reclaim_at";
      ASSERT_GT(h.reclaim_at, now_);
      ++i;
    }
    Gpus total_outside = 0;
    for (uint32_t p = 0; p < static_cast<uint32_t>(a.pool_count()); ++p) {
      const PoolCounters& pc = a.pool(PoolId{p});
      total_outside += pc.spot + pc.inference + pc.reserved;
      ASSERT_LE(pc.internal_held, pc.internal_want);
      if (!cfg_.occupancy) continue;
      auto& log = want_log_[p];
      // Every level counts, even one that lasted no time: a dip frees GPUs that may be sold at
      // once, and the rise after it is new demand.
      if (log.back().second != pc.internal_want) log.emplace_back(now_, pc.internal_want);
      if (!cfg_.bounded_wait) continue;
      // Demand in force for a whole notice has been served, except what reserved leases hold.
      Gpus settled = MinWantSince(p, now_ - cfg_.notice);
      Gpus can = pc.capacity - pc.reserved;
      ++stats_.wait_checks;
      if (settled > can) {
        ++stats_.blocked_by_reserved;
        ASSERT_GT(a.forecast_misses(), 0) << "the owner waits on reserved GPUs but no miss counted";
      }
      ASSERT_GE(pc.internal_held, std::min(settled, can))
          << "pool " << p << " at " << FormatUtc(now_) << ": owner demand of " << settled
          << " GPUs older than the notice is not served (held " << pc.internal_held << ", want "
          << pc.internal_want << ", noticed " << pc.noticed << ", free " << pc.free << ")\n"
          << Recent();
    }
    ASSERT_EQ(total_outside, a.TotalSpot() + a.TotalInference() + a.TotalReserved());
  }

  RunConfig cfg_;
  Rng rng_;
  Time now_;
  FleetSpec fleet_;
  forecast::DemandForecast forecast_;
  DemandTable table_;
  std::unique_ptr<Allocator> alloc_;
  std::vector<Gpus> max_node_;
  std::vector<HolderId> live_outside_, jobs_, noticed_;
  std::unordered_map<uint32_t, NoticeRecord> notices_;
  std::vector<std::deque<std::pair<Time, Gpus>>> want_log_;
  RunStats stats_;
  bool releasing_ = false;
  std::deque<LogEntry> recent_;  // the last events, for failure messages
};

template <typename P>
class AllocatorContractTest : public ::testing::Test {
 protected:
  // Runs `runs` seeded sequences; returns the summed stats.
  RunStats RunMany(bool occupancy, int runs, int busy_events, Duration notice, Duration drain) {
    RunStats total;
    for (int r = 0; r < runs && !HasFatalFailure(); ++r) {
      RunConfig cfg;
      cfg.occupancy = occupancy;
      cfg.seed = 1000 * static_cast<uint64_t>(r + 1) + (occupancy ? 0 : 500) + P::kSeed;
      cfg.busy_events = busy_events;
      cfg.warmup_days = P::kWarmupDays;
      cfg.notice = notice;
      cfg.drain = drain;
      cfg.bounded_wait = P::kBoundedWait;
      cfg.sells_nothing = std::string(P::kName) == "baseline";
      ContractRun run(P::kName, cfg);
      SCOPED_TRACE(fmt::format("policy {} seed {}", P::kName, cfg.seed));
      run.Run();
      total.Add(run.stats());
    }
    return total;
  }

  void ExpectExercised(const RunStats& s, bool occupancy) {
    const std::string name = P::kName;
    RecordProperty("events", static_cast<int>(s.events));
    std::printf(
        "[ exercised] %s %s: %lld events; placed %lld spot, %lld inference, %lld reserved; "
        "%lld notices, %lld reclaims, %lld releases, %lld jobs started, %lld exhausted; "
        "%lld wait checks, %lld blocked by reserved\n",
        name.c_str(), occupancy ? "occupancy" : "jobs", static_cast<long long>(s.events),
        static_cast<long long>(s.placed_spot), static_cast<long long>(s.placed_inference),
        static_cast<long long>(s.placed_reserved), static_cast<long long>(s.notices),
        static_cast<long long>(s.reclaims), static_cast<long long>(s.releases),
        static_cast<long long>(s.jobs_started), static_cast<long long>(s.exhausted),
        static_cast<long long>(s.wait_checks), static_cast<long long>(s.blocked_by_reserved));
    if (name == "baseline") {
      EXPECT_EQ(s.placed_spot + s.placed_inference + s.placed_reserved, 0);
      EXPECT_EQ(s.notices, 0);
      return;
    }
    // The sequences must actually reach the interesting paths.
    EXPECT_GT(s.placed_spot, 100) << name;
    EXPECT_GT(s.placed_inference, 20) << name;
    EXPECT_GT(s.releases, 100) << name;
    EXPECT_GT(s.notices, 50) << name;
    EXPECT_GT(s.reclaims, 20) << name;
    EXPECT_GT(s.exhausted, 50) << name;
    if (name == "landlord") {
      EXPECT_GT(s.placed_reserved, 0) << name;
    }
    if (occupancy && P::kBoundedWait) {
      EXPECT_GT(s.wait_checks, 10'000) << name;
    }
    if (!occupancy) {
      EXPECT_GT(s.jobs_started, 500) << name;
    }
  }
};

struct PolicyTestNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kTestName;
  }
};

using AllPolicies =
    ::testing::Types<BaselinePolicy, SpotAllPolicy, LendLimitPolicy, LandlordPolicy, OraclePolicy>;
TYPED_TEST_SUITE(AllocatorContractTest, AllPolicies, PolicyTestNames);

// Owner demand as occupancy levels. 24 sequences × (warm-up + 2,200 events): short sequences
// keep CheckInvariants, O(every holder ever made), cheap.
TYPED_TEST(AllocatorContractTest, OccupancyRandomEvents) {
  RunStats s = this->RunMany(true, 24, 2'200, Duration::Seconds(120), Duration::Seconds(30));
  this->ExpectExercised(s, true);
  EXPECT_GE(s.events, 52'800);
}

// Owner demand as jobs; here the drain (90 s) is longer than the notice (60 s), so inference
// gets the notice.
TYPED_TEST(AllocatorContractTest, JobRandomEvents) {
  RunStats s = this->RunMany(false, 24, 2'200, Duration::Seconds(60), Duration::Seconds(90));
  this->ExpectExercised(s, false);
  EXPECT_GE(s.events, 52'800);
}

// The policy's own name, and the reserved door: only `landlord` sells reserved terms (after
// two weeks of history); everyone else answers kConflict with the largest size accepted.
TYPED_TEST(AllocatorContractTest, ReservedRoomAndName) {
  forecast::DemandForecast fc({32});
  DemandTable table({32}, Time{kMonday}, kTimeMax, Duration::Hours(1), 1);
  PolicyContext ctx;
  ctx.forecast = &fc;
  ctx.future = &table;
  ctx.pools = 1;
  auto policy = MakePolicy(TypeParam::kName, ctx);
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  EXPECT_EQ((*policy)->name(), TypeParam::kName);
  AllocatorOptions opt;
  opt.floor = kFloor;
  Allocator a(UniformFleet(4, 8, 1, 4), opt, std::move(*policy), nullptr);
  const Time now{kMonday};
  a.SetInternalDemand(PoolId{0}, 8, now);
  auto r = a.PlaceReserved(PoolId{0}, 8, now + Duration::Hours(4), Money::Dollars(1), 0, now);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("largest accepted now is 0"), std::string::npos)
      << r.status().message();
  a.CheckInvariants(now);
}

// ---------------------------------------------------------------- unit cases

// Records what the allocator told the driver, in order.
class Recorder final : public Listener {
 public:
  struct Event {
    char kind;  // 's'tart, 'n'otice, 'e'nd
    HolderId id;
    Time t;
    int detail;  // NoticeReason or EndReason
  };
  void OnStart(const Holder& h, Time t) override { events.push_back({'s', h.id, t, 0}); }
  void OnNotice(const Holder& h, Time t, NoticeReason r) override {
    events.push_back({'n', h.id, t, static_cast<int>(r)});
  }
  void OnEnd(const Holder& h, Time t, EndReason r) override {
    events.push_back({'e', h.id, t, static_cast<int>(r)});
  }
  std::vector<HolderId> Noticed() const {
    std::vector<HolderId> out;
    for (const Event& e : events) {
      if (e.kind == 'n') out.push_back(e.id);
    }
    return out;
  }
  std::vector<Event> events;
};

std::unique_ptr<Policy> Named(const std::string& name) {
  PolicyContext ctx;
  auto p = MakePolicy(name, ctx);
  LL_CHECK(p.ok());
  return std::move(*p);
}

AllocatorOptions Options(bool occupancy) {
  AllocatorOptions o;
  o.occupancy = occupancy;
  o.floor = kFloor;
  return o;
}

HolderId Spot(Allocator& a, PoolId pool, Gpus g, int64_t price_micros, Time now) {
  auto r = a.PlaceOutside(HolderClass::kSpot, pool, g, Money::Micros(price_micros),
                          Money::Micros(price_micros + 1'000'000), 0, now);
  LL_CHECK(r.ok());
  return *r;
}

std::vector<uint32_t> NodesOf(const Holder& h) {
  std::vector<uint32_t> out;
  for (const Share& s : h.shares) out.push_back(s.node.v);
  std::sort(out.begin(), out.end());
  return out;
}

int WholeFreeNodes(const Allocator& a, PoolId pool) {
  int n = 0;
  for (auto& [node, g] : a.FreeNodes(pool)) n += g == a.fleet().node(node).gpus;
  return n;
}

TEST(AllocatorPlacement, SmallRequestsStayOnOneNodeBestFit) {
  // 2 racks × 4 nodes × 8 GPUs.
  Allocator a(UniformFleet(8, 8, 1, 4), Options(true), Named("spot-all"), nullptr);
  const Time t{kMonday};
  const PoolId p{0};
  HolderId x = Spot(a, p, 4, 300'000, t);
  ASSERT_EQ(a.holder(x).shares.size(), 1u);
  EXPECT_EQ(a.holder(x).shares[0].gpus, 4);
  EXPECT_EQ(WholeFreeNodes(a, p), 7);
  // Best fit: the next 4 and the 2 go to partly used nodes, keeping whole nodes free.
  HolderId y = Spot(a, p, 4, 300'000, t);
  EXPECT_EQ(NodesOf(a.holder(y)), NodesOf(a.holder(x)));
  EXPECT_EQ(WholeFreeNodes(a, p), 7);
  HolderId z = Spot(a, p, 2, 300'000, t);
  EXPECT_EQ(WholeFreeNodes(a, p), 6);
  HolderId w = Spot(a, p, 6, 300'000, t);
  EXPECT_EQ(NodesOf(a.holder(w)), NodesOf(a.holder(z)));  // the 6 fills the node with 6 free
  EXPECT_EQ(WholeFreeNodes(a, p), 6);
  // Occupancy demand also fills partly used nodes first.
  a.Release(w, t);
  a.SetInternalDemand(p, 6, t);
  EXPECT_EQ(WholeFreeNodes(a, p), 6);
  a.CheckInvariants(t);
}

TEST(AllocatorPlacement, LargeRequestsTakeWholeNodesInOneRack) {
  Allocator a(UniformFleet(8, 8, 1, 4), Options(true), Named("spot-all"), nullptr);
  const Time t{kMonday};
  const PoolId p{0};
  // Use one node of rack 0: rack 1 then has the most whole nodes.
  HolderId small = Spot(a, p, 8, 300'000, t);
  const uint32_t small_rack = a.fleet().node(a.holder(small).shares[0].node).rack.v;
  HolderId big = Spot(a, p, 16, 300'000, t);
  const Holder& h = a.holder(big);
  ASSERT_EQ(h.shares.size(), 2u);
  for (const Share& s : h.shares) EXPECT_EQ(s.gpus, 8);
  EXPECT_EQ(a.fleet().node(h.shares[0].node).rack, a.fleet().node(h.shares[1].node).rack);
  EXPECT_NE(a.fleet().node(h.shares[0].node).rack.v, small_rack);
  // 12 GPUs round up to two whole nodes.
  HolderId twelve = Spot(a, p, 12, 300'000, t);
  EXPECT_EQ(a.holder(twelve).gpus, 16);
  EXPECT_EQ(a.holder(twelve).shares.size(), 2u);
  EXPECT_EQ(a.fleet().node(a.holder(twelve).shares[0].node).rack,
            a.fleet().node(a.holder(twelve).shares[1].node).rack);
  // 24 GPUs: the last three whole nodes, across both racks.
  HolderId rest = Spot(a, p, 24, 300'000, t);
  EXPECT_EQ(a.holder(rest).shares.size(), 3u);
  EXPECT_EQ(a.pool(p).free, 0);
  a.CheckInvariants(t);
}

// Regression: in a pool whose nodes differ in size (OpenB node lists; Helios VCs whose
// capacity is not a multiple of 8 end in a partial node), a request larger than the largest
// node used to take whole nodes past the rounded size (8 + 4 + 8 = 20 for 16), so holders got
// more than they asked for and outsiders passed the policy's sell limit.
TEST(AllocatorPlacement, MixedNodeSizesTakeTheRoundedRequestExactly) {
  FleetSpec spec;
  spec.pools = {"p"};
  spec.nodes = {{"a", PoolId{0}, RackId{0}, 8},
                {"b", PoolId{0}, RackId{0}, 4},
                {"c", PoolId{0}, RackId{0}, 8}};
  const Time t{kMonday};
  {
    Allocator a(spec, Options(true), Named("lend-limit:0.85"), nullptr);  // sells at most 17
    ASSERT_EQ(a.Sellable(PoolId{0}, t), 17);
    auto r = a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 16, Money::Dollars(1), Money::Dollars(1),
                            0, t);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(a.holder(*r).gpus, 16);
    EXPECT_LE(a.TotalSpot(), 17) << "sold past the policy's sell limit";
    a.CheckInvariants(t);
  }
  {
    Allocator a(spec, Options(false), Named("baseline"), nullptr);
    auto job = a.SubmitJob(PoolId{0}, 16, 0, 0, t);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    EXPECT_EQ(a.holder(*job).gpus, a.holder(*job).want);
    EXPECT_LE(a.pool(PoolId{0}).internal_held, a.pool(PoolId{0}).internal_want);
    a.CheckInvariants(t);
  }
}

TEST(AllocatorPlacement, FragmentedPoolRefusesLargeRequests) {
  Allocator a(UniformFleet(2, 8, 1, 2), Options(true), Named("spot-all"), nullptr);
  const Time t{kMonday};
  Spot(a, PoolId{0}, 4, 300'000, t);
  Spot(a, PoolId{0}, 8, 300'000, t);
  // 4 GPUs are free but on no whole node: 8 does not fit, 4 does.
  auto r =
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 8, Money::Dollars(1), Money::Dollars(1), 0, t);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  auto r5 =
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 5, Money::Dollars(1), Money::Dollars(1), 0, t);
  ASSERT_FALSE(r5.ok());
  EXPECT_EQ(r5.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 4, Money::Dollars(1), Money::Dollars(1), 0, t)
          .ok());
  a.CheckInvariants(t);
}

TEST(AllocatorPlacement, RejectsBadRequests) {
  Allocator a(UniformFleet(2, 8, 1, 2), Options(true), Named("spot-all"), nullptr);
  const Time t{kMonday};
  auto below = a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 1, Money::Micros(kFloor.micros - 1),
                              Money::Dollars(1), 0, t);
  EXPECT_EQ(below.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(below.status().message().find("below the floor"), std::string::npos);
  auto max_low =
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 1, Money::Dollars(1), Money::Micros(1), 0, t);
  EXPECT_EQ(max_low.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 0, Money::Dollars(1), Money::Dollars(1), 0, t)
          .status()
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      a.PlaceOutside(HolderClass::kSpot, PoolId{7}, 1, Money::Dollars(1), Money::Dollars(1), 0, t)
          .status()
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(a.PlaceReserved(PoolId{0}, 1, t, Money::Dollars(1), 0, t).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      a.PlaceReserved(PoolId{0}, 1, t + Duration::Hours(1), Money::Micros(1), 0, t).status().code(),
      StatusCode::kInvalidArgument);
  // Selling past the pool: exhausted.
  EXPECT_EQ(
      a.PlaceOutside(HolderClass::kSpot, PoolId{0}, 24, Money::Dollars(1), Money::Dollars(1), 0, t)
          .status()
          .code(),
      StatusCode::kResourceExhausted);
  a.CheckInvariants(t);
}

TEST(AllocatorReclaim, InferenceFirstThenSpotByAscendingPrice) {
  Recorder rec;
  Allocator a(UniformFleet(5, 8, 1, 5), Options(true), Named("spot-all"), &rec);
  Time t{kMonday};
  const PoolId p{0};
  HolderId s50 = Spot(a, p, 8, 500'000, t);
  HolderId s30 = Spot(a, p, 8, 300'000, t);
  auto inf = a.PlaceOutside(HolderClass::kInference, p, 8, Money::Micros(900'000), Money(), 0, t);
  ASSERT_TRUE(inf.ok());
  HolderId s40 = Spot(a, p, 8, 400'000, t);
  // Demand for the free node first: nobody is noticed.
  a.SetInternalDemand(p, 8, t);
  EXPECT_TRUE(rec.Noticed().empty());
  // Then one node more at a time.
  a.SetInternalDemand(p, 12, t);
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({*inf}));  // inference first, whatever it pays
  a.SetInternalDemand(p, 16, t);  // still covered by the running notice: no new victim
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({*inf}));
  a.SetInternalDemand(p, 40, t);
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({*inf, s30, s40, s50}));
  // Inference drains in 30 s, spot gets the full 120 s.
  EXPECT_EQ(a.holder(*inf).reclaim_at, t + Duration::Seconds(30));
  EXPECT_EQ(a.holder(s30).reclaim_at, t + Duration::Seconds(120));
  a.CheckInvariants(t);
  a.AdvanceTo(t + Duration::Seconds(30));
  EXPECT_EQ(a.holder(*inf).state, HolderState::kEnded);
  EXPECT_EQ(a.pool(p).internal_held, 16);
  a.CheckInvariants(t + Duration::Seconds(30));
  a.AdvanceTo(t + Duration::Seconds(119));
  EXPECT_EQ(a.holder(s30).state, HolderState::kNoticed);  // the notice is honoured
  a.AdvanceTo(t + Duration::Seconds(120));
  EXPECT_EQ(a.pool(p).internal_held, 40);
  EXPECT_EQ(a.TotalSpot(), 0);
  a.CheckInvariants(t + Duration::Seconds(120));
}

TEST(AllocatorReclaim, NoticeCheapestSpotSkipsInference) {
  Recorder rec;
  Allocator a(UniformFleet(4, 8, 1, 4), Options(true), Named("spot-all"), &rec);
  const Time t{kMonday};
  HolderId s5 = Spot(a, PoolId{0}, 8, 500'000, t);
  HolderId s3 = Spot(a, PoolId{0}, 8, 300'000, t);
  ASSERT_TRUE(
      a.PlaceOutside(HolderClass::kInference, PoolId{0}, 8, Money::Micros(250'000), Money(), 0, t)
          .ok());
  a.NoticeCheapestSpot(PoolId{0}, 4, t);
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({s3}));
  a.NoticeCheapestSpot(PoolId{0}, 9, t);
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({s3, s5}));
  a.CheckInvariants(t);
}

TEST(AllocatorJobs, JobThatDoesNotFitClaimsANodeAndNoticesItsVictims) {
  Recorder rec;
  Allocator a(UniformFleet(3, 8, 1, 3), Options(false), Named("spot-all"), &rec);
  const Time t{kMonday};
  const PoolId p{0};
  HolderId cheap = Spot(a, p, 8, 300'000, t);
  HolderId dear = Spot(a, p, 8, 500'000, t);
  HolderId mid = Spot(a, p, 8, 400'000, t);
  auto job = a.SubmitJob(p, 4, 0, 7, t);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(a.holder(*job).state, HolderState::kQueued);
  // The node of the cheapest victim is claimed; only that victim is noticed.
  EXPECT_EQ(rec.Noticed(), std::vector<HolderId>({cheap}));
  ASSERT_EQ(a.holder(*job).claimed.size(), 1u);
  EXPECT_EQ(a.holder(*job).claimed[0], a.holder(cheap).shares[0].node);
  EXPECT_EQ(a.pool(p).internal_want, 4);
  EXPECT_EQ(a.InternalWaiting(), 4);
  a.CheckInvariants(t);
  a.AdvanceTo(t + Duration::Seconds(119));
  EXPECT_EQ(a.holder(*job).state, HolderState::kQueued);
  const NodeId claimed = a.holder(*job).claimed[0];
  a.AdvanceTo(t + Duration::Seconds(120));
  a.CheckInvariants(t + Duration::Seconds(120));
  const Holder& j = a.holder(*job);
  EXPECT_EQ(j.state, HolderState::kActive);
  EXPECT_EQ(j.started, t + Duration::Seconds(120));
  EXPECT_EQ(NodesOf(j), std::vector<uint32_t>({claimed.v}));
  EXPECT_TRUE(j.claimed.empty());
  EXPECT_EQ(a.holder(dear).state, HolderState::kActive);
  EXPECT_EQ(a.holder(mid).state, HolderState::kActive);
  EXPECT_EQ(a.InternalWaiting(), 0);
  // The 4 GPUs left on the claimed node are free to sell again.
  EXPECT_EQ(a.pool(p).free_unclaimed, 4);
  // The tag comes back with the holder.
  EXPECT_EQ(j.tag, 7u);
  a.FinishJob(*job, t + Duration::Seconds(200));
  EXPECT_EQ(a.pool(p).internal_want, 0);
  a.CheckInvariants(t + Duration::Seconds(200));
}

TEST(AllocatorJobs, LargeJobClaimsWholeNodes) {
  Recorder rec;
  Allocator a(UniformFleet(4, 8, 1, 2), Options(false), Named("spot-all"), &rec);
  const Time t{kMonday};
  const PoolId p{0};
  auto first = a.SubmitJob(p, 8, 0, 0, t);  // runs on one node at once
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(a.holder(*first).state, HolderState::kActive);
  HolderId s1 = Spot(a, p, 8, 300'000, t);
  HolderId s2 = Spot(a, p, 4, 350'000, t);
  HolderId s3 = Spot(a, p, 4, 600'000, t);  // shares s2's node (best fit)
  ASSERT_EQ(NodesOf(a.holder(s2)), NodesOf(a.holder(s3)));
  auto big = a.SubmitJob(p, 16, 0, 0, t);
  ASSERT_TRUE(big.ok());
  const Holder& b = a.holder(*big);
  EXPECT_EQ(b.state, HolderState::kQueued);
  // The whole free node and the node with the two small leases, in one rack; the node of the
  // 8-GPU lease (other rack) is left alone.
  ASSERT_EQ(b.claimed.size(), 2u);
  EXPECT_EQ(a.fleet().node(b.claimed[0]).rack, a.fleet().node(b.claimed[1]).rack);
  EXPECT_EQ(a.holder(s2).state, HolderState::kNoticed);
  EXPECT_EQ(a.holder(s3).state, HolderState::kNoticed);
  EXPECT_EQ(a.holder(s1).state, HolderState::kActive);
  a.CheckInvariants(t);
  a.AdvanceTo(t + Duration::Seconds(120));
  EXPECT_EQ(a.holder(*big).state, HolderState::kActive);
  EXPECT_EQ(a.holder(*big).gpus, 16);
  a.CheckInvariants(t + Duration::Seconds(120));
}

TEST(AllocatorJobs, SubmitValidates) {
  Allocator a(UniformFleet(2, 8, 1, 2), Options(false), Named("baseline"), nullptr);
  const Time t{kMonday};
  EXPECT_EQ(a.SubmitJob(PoolId{0}, 0, 0, 0, t).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.SubmitJob(PoolId{0}, 17, 0, 0, t).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.SubmitJob(PoolId{3}, 1, 0, 0, t).status().code(), StatusCode::kInvalidArgument);
  auto ok = a.SubmitJob(PoolId{0}, 9, 0, 0, t);  // rounds up to two whole nodes
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(a.holder(*ok).gpus, 16);
  // A queued job cancelled before it starts.
  auto queued = a.SubmitJob(PoolId{0}, 1, 0, 0, t);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(a.holder(*queued).state, HolderState::kQueued);
  a.FinishJob(*queued, t);
  EXPECT_EQ(a.pool(PoolId{0}).internal_want, 16);
  a.CheckInvariants(t);
}

TEST(AllocatorReserved, ConflictStatesTheLargestAccepted) {
  for (const char* name : {"baseline", "spot-all", "lend-limit:0.5"}) {
    Allocator a(UniformFleet(4, 8, 1, 4), Options(true), Named(name), nullptr);
    const Time t{kMonday};
    EXPECT_EQ(a.ReservedRoom(PoolId{0}, t + Duration::Hours(4), t), 0) << name;
    auto r = a.PlaceReserved(PoolId{0}, 8, t + Duration::Hours(4), Money::Dollars(2), 0, t);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kConflict) << name;
    EXPECT_NE(r.status().message().find("largest accepted"), std::string::npos)
        << r.status().message();
  }
}

TEST(AllocatorPolicy, MakePolicyNamesAndErrors) {
  PolicyContext ctx;
  for (const char* bad : {"lend-limit:2", "lend-limit:x", "nope", "lend-limit:", "lend-limit:-0.1",
                          "lend-limit:0.5x", "lend-limit:nan", "Baseline", "oracle"}) {
    auto p = MakePolicy(bad, ctx);  // `oracle` without the future is an error too
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(MakePolicy("nope", ctx).status().message().find("unknown policy `nope`"),
            std::string::npos);
  EXPECT_NE(MakePolicy("lend-limit:2", ctx).status().message().find("[0, 1]"), std::string::npos);
  for (const char* good :
       {"baseline", "spot-all", "landlord", "lend-limit:0", "lend-limit:1", "lend-limit:0.25"}) {
    auto p = MakePolicy(good, ctx);
    ASSERT_TRUE(p.ok()) << good << ": " << p.status().ToString();
    EXPECT_EQ((*p)->name(), good);
  }
  // lend-limit:F lends at most F of the pool.
  PoolView v;
  v.pool = PoolId{0};
  v.capacity = 100;
  EXPECT_EQ((*MakePolicy("lend-limit:0.25", ctx))->SellLimit(v, Time{}), 25);
  EXPECT_EQ((*MakePolicy("spot-all", ctx))->SellLimit(v, Time{}), 100);
  v.internal_want = 90;
  EXPECT_EQ((*MakePolicy("lend-limit:0.25", ctx))->SellLimit(v, Time{}), 10);
  EXPECT_EQ((*MakePolicy("baseline", ctx))->SellLimit(v, Time{}), 0);
}

// A backend that knows where the owner runs (Slurm) places the owner's GPUs itself: exactly
// there, never reclaiming for it (the scheduler preempts on its own), and a share on GPUs a
// lease still holds is cut to what is free.
TEST(AllocatorPlacement, PlaceInternalPutsTheOwnerWhereTheBackendSaysAndReclaimsNothing) {
  Recorder rec;
  Allocator a(UniformFleet(4, 8, 1, 4), Options(true), Named("spot-all"), &rec);
  const Time t{kMonday};
  const PoolId p{0};
  a.PlaceInternal(p, {{NodeId{2}, 8}, {NodeId{3}, 3}}, t);
  EXPECT_EQ(a.pool(p).internal_held, 11);
  EXPECT_EQ(a.pool(p).internal_want, 11);
  ASSERT_EQ(a.InternalShares(p).size(), 2u);
  HolderId lease = Spot(a, p, 16, 300'000, t);
  EXPECT_EQ(NodesOf(a.holder(lease)), (std::vector<uint32_t>{0, 1}));  // the idle nodes
  // The owner moves onto the lease's node (the scheduler preempted it): cut to what is free,
  // and no notice from the allocator.
  a.PlaceInternal(p, {{NodeId{0}, 8}, {NodeId{3}, 5}}, t + Duration::Seconds(1));
  EXPECT_EQ(a.pool(p).internal_held, 5);
  EXPECT_EQ(a.pool(p).internal_want, 5);
  EXPECT_TRUE(rec.Noticed().empty());
  EXPECT_EQ(a.holder(lease).state, HolderState::kActive);
  a.Release(lease, t + Duration::Seconds(2));
  a.PlaceInternal(p, {{NodeId{0}, 8}, {NodeId{3}, 5}}, t + Duration::Seconds(3));
  EXPECT_EQ(a.pool(p).internal_held, 13);
  a.CheckInvariants(t + Duration::Seconds(3));
}

}  // namespace
}  // namespace ll::alloc
