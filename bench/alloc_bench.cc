// Allocator decision latency: a 100,000-GPU fleet (12,500 nodes of 8 GPUs, 32 nodes a rack)
// with about 10,000 live holders, internal demand as jobs (AllocatorOptions::occupancy =
// false).
//
// Each benchmark keeps the fleet in a steady state: every timed decision is paired with an
// untimed one that undoes its effect on the live-holder count (an arrival with a release, a
// placement with a lease ending). Only the decision itself is timed, with the steady clock
// around the single call; that time is also handed to Google Benchmark (UseManualTime), so
// its `Time` column is the mean decision latency, and the counters `p50_us`/`p99_us` are the
// percentiles over every decision of the final run. Target: p50 ≤ 20 µs (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "alloc/fleet.h"
#include "alloc/policy.h"
#include "core/check.h"
#include "core/money.h"
#include "core/rng.h"
#include "core/time.h"

namespace ll::alloc {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kNodes = 12'500;  // × 8 GPUs = 100,000 GPUs
constexpr Gpus kGpusPerNode = 8;
constexpr int kNodesPerRack = 32;
constexpr Duration kNotice = Duration::Seconds(120);
constexpr Time kStart = Time::FromSeconds(1'588'291'200);  // 2020-05-01T00:00:00Z
constexpr Money kFloor = Money::Dollars(1);
// Past landlord's warm-up (6 h), during which it sells nothing.
constexpr Duration kWarm = Duration::Hours(7);

double Nanos(Clock::time_point t0, Clock::time_point t1) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
}

// The q-quantile (nearest rank) of `v`, sorted in place.
double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// Publishes `<prefix>p50_us` and `<prefix>p99_us` over the latencies in `ns`.
void PublishPercentiles(benchmark::State& state, std::vector<double>& ns,
                        const std::string& prefix = "") {
  state.counters[prefix + "p50_us"] = Quantile(ns, 0.50) / 1000.0;
  state.counters[prefix + "p99_us"] = Quantile(ns, 0.99) / 1000.0;
}

// Live holders of one kind, with O(1) insert, erase and uniform pick.
class LiveSet {
 public:
  void Add(HolderId id) {
    if (id.v >= pos_.size()) pos_.resize(id.v + 1, kAbsent);
    LL_CHECK(pos_[id.v] == kAbsent);
    pos_[id.v] = static_cast<uint32_t>(ids_.size());
    ids_.push_back(id);
  }
  void Remove(HolderId id) {
    if (id.v >= pos_.size() || pos_[id.v] == kAbsent) return;
    uint32_t i = pos_[id.v];
    ids_[i] = ids_.back();
    pos_[ids_[i].v] = i;
    ids_.pop_back();
    pos_[id.v] = kAbsent;
  }
  HolderId Pick(Rng& rng) const { return ids_[rng.Below(ids_.size())]; }
  size_t size() const { return ids_.size(); }

 private:
  static constexpr uint32_t kAbsent = UINT32_MAX;
  std::vector<uint32_t> pos_;  // by holder id
  std::vector<HolderId> ids_;
};

// One allocator and the driver-side bookkeeping the benchmarks need: which jobs and spot
// leases are live (kept by the Listener), the simulated clock and a seeded generator.
class Env final : public Listener {
 public:
  Env(const std::string& policy, int pools) : pools_(pools) {
    PolicyContext ctx;
    ctx.notice = kNotice;
    ctx.pools = pools;  // landlord keeps per-pool state
    auto p = MakePolicy(policy, ctx);
    LL_CHECK(p.ok());
    AllocatorOptions ao;
    ao.notice = kNotice;
    ao.occupancy = false;
    ao.floor = kFloor;
    alloc_ = std::make_unique<Allocator>(UniformFleet(kNodes, kGpusPerNode, pools, kNodesPerRack),
                                         ao, std::move(p).value(), this);
  }

  void OnEnd(const Holder& h, Time, EndReason) override {
    (h.outside() ? spot : jobs).Remove(h.id);
  }

  Allocator& alloc() { return *alloc_; }
  PoolId RandomPool() { return PoolId{static_cast<uint32_t>(rng.Below(pools_))}; }

  // Owner job sizes, roughly Helios-shaped: mostly single-node jobs, some multi-node ones
  // (16 and 32 GPUs go on whole nodes). Mean 5.3 GPUs.
  Gpus JobGpus() {
    uint64_t u = rng.Below(100);
    return u < 40 ? 1 : u < 55 ? 2 : u < 70 ? 4 : u < 90 ? 8 : u < 95 ? 16 : 32;
  }
  Gpus SpotGpus() { return Gpus{1} << rng.Below(4); }  // 1, 2, 4 or 8
  Money SpotPrice() {
    return Money::Micros(kFloor.micros + static_cast<int64_t>(rng.Below(2'000'001)));
  }

  HolderId Submit(PoolId pool, Gpus gpus) {
    auto id = alloc_->SubmitJob(pool, gpus, 0, 0, now);
    LL_CHECK(id.ok());
    jobs.Add(*id);
    return *id;
  }
  void AddJobs(int n) {
    for (int i = 0; i < n; ++i) Submit(RandomPool(), JobGpus());
  }

  bool PlaceSpot(PoolId pool, Gpus gpus) {
    Money price = SpotPrice();
    auto id = alloc_->PlaceOutside(HolderClass::kSpot, pool, gpus, price, price + kFloor, 0, now);
    if (id.ok()) spot.Add(*id);
    return id.ok();
  }
  // Spot leases of `gpus` GPUs in random pools until `target` are live (or the fleet is full).
  void TopUpSpot(size_t target, Gpus gpus) {
    for (int tries = 0; spot.size() < target && tries < 4 * pools_; ++tries) {
      PlaceSpot(RandomPool(), gpus);
    }
  }
  // Sells every free GPU: whole free nodes in two-node leases (16 GPUs), the rest node by node.
  void FillWithSpot() {
    for (int p = 0; p < pools_; ++p) {
      PoolId pool{static_cast<uint32_t>(p)};
      int whole = 0;
      for (auto& [node, free] : alloc_->FreeNodes(pool)) {
        if (free == kGpusPerNode) {
          ++whole;
        } else {
          PlaceSpot(pool, free);
        }
      }
      for (; whole >= 2; whole -= 2) PlaceSpot(pool, 2 * kGpusPerNode);
      if (whole == 1) PlaceSpot(pool, kGpusPerNode);
    }
  }

  // The owner's jobs first (landlord starts learning), then past the warm-up.
  void StartWithJobs(int n) {
    AddJobs(n);
    now = now + kWarm;
    alloc_->AdvanceTo(now);
  }

  // Between decisions: time moves on and notices run out (untimed).
  void Tick(Duration d) {
    now = now + d;
    alloc_->AdvanceTo(now);
  }

  LiveSet jobs;  // internal jobs, queued or running
  LiveSet spot;  // spot leases, active or noticed
  Rng rng{42};
  Time now = kStart;

 private:
  int pools_;
  std::unique_ptr<Allocator> alloc_;
};

// 8,000 owner jobs (≈ 42,400 GPUs) and 2,000 spot leases of 8 GPUs (16,000 GPUs): 10,000
// live holders, 58% of the fleet busy, so an arriving job fits.
constexpr int kJobs = 8'000;
constexpr size_t kSpotLeases = 2'000;

void SetCommonCounters(benchmark::State& state, Env& env) {
  state.counters["holders"] = static_cast<double>(env.jobs.size() + env.spot.size());
}

// (a) An owner job arrives and fits. Paired with a random job finishing (untimed).
// `node_*`: jobs of ≤ 8 GPUs (best fit on one node); `multi_*`: 16 and 32 GPUs (whole nodes).
void BM_Arrival(benchmark::State& state, const char* policy) {
  Env env(policy, static_cast<int>(state.range(0)));
  env.StartWithJobs(kJobs);
  env.TopUpSpot(kSpotLeases, kGpusPerNode);
  std::vector<double> ns, node_ns, multi_ns;
  ns.reserve(state.max_iterations);
  int64_t started = 0;
  for (auto _ : state) {
    env.Tick(Duration::Seconds(1));
    env.TopUpSpot(kSpotLeases, kGpusPerNode);
    HolderId leaving = env.jobs.Pick(env.rng);
    PoolId pool = env.RandomPool();
    Gpus gpus = env.JobGpus();
    auto t0 = Clock::now();
    auto id = env.alloc().SubmitJob(pool, gpus, 0, 0, env.now);
    auto t1 = Clock::now();
    LL_CHECK(id.ok());
    env.jobs.Add(*id);
    started += env.alloc().holder(*id).state == HolderState::kActive;
    env.alloc().FinishJob(leaving, env.now);
    ns.push_back(Nanos(t0, t1));
    (gpus <= kGpusPerNode ? node_ns : multi_ns).push_back(ns.back());
    state.SetIterationTime(ns.back() / 1e9);
  }
  PublishPercentiles(state, ns);
  PublishPercentiles(state, node_ns, "node_");
  PublishPercentiles(state, multi_ns, "multi_");
  state.counters["started"] = static_cast<double>(started) / static_cast<double>(ns.size());
  SetCommonCounters(state, env);
}

// (b) A running owner job finishes. Paired with a new job arriving (untimed).
void BM_Release(benchmark::State& state, const char* policy) {
  Env env(policy, static_cast<int>(state.range(0)));
  env.StartWithJobs(kJobs);
  env.TopUpSpot(kSpotLeases, kGpusPerNode);
  std::vector<double> ns;
  ns.reserve(state.max_iterations);
  for (auto _ : state) {
    env.Tick(Duration::Seconds(1));
    env.TopUpSpot(kSpotLeases, kGpusPerNode);
    HolderId leaving = env.jobs.Pick(env.rng);
    auto t0 = Clock::now();
    env.alloc().FinishJob(leaving, env.now);
    auto t1 = Clock::now();
    env.Submit(env.RandomPool(), env.JobGpus());
    ns.push_back(Nanos(t0, t1));
    state.SetIterationTime(ns.back() / 1e9);
  }
  PublishPercentiles(state, ns);
  SetCommonCounters(state, env);
}

// (c) An owner job arrives to a fleet whose free GPUs are all sold as spot, so it must
// reclaim: SubmitJob claims a node and gives the cheapest spot there a notice; the notice
// runs out and AdvanceTo(now + notice) ends the victims and starts the job. Both calls are
// timed; `p50_us`/`p99_us` are of their sum, `notice_*` and `advance_*` of each, `node_*` and
// `multi_*` of the sum for single-node and multi-node jobs.
// Paired with a random job finishing, its GPUs sold again as spot (untimed).
// 5,000 jobs (≈ 26,500 GPUs) and the rest in spot leases: about 10,000 live holders.
void BM_Reclaim(benchmark::State& state, const char* policy) {
  Env env(policy, static_cast<int>(state.range(0)));
  env.StartWithJobs(5'000);
  env.FillWithSpot();
  std::vector<double> ns, notice_ns, advance_ns, node_ns, multi_ns;
  ns.reserve(state.max_iterations);
  notice_ns.reserve(state.max_iterations);
  advance_ns.reserve(state.max_iterations);
  int64_t reclaimed = 0, started = 0;
  for (auto _ : state) {
    env.alloc().FinishJob(env.jobs.Pick(env.rng), env.now);
    env.FillWithSpot();
    PoolId pool = env.RandomPool();
    Gpus gpus = env.JobGpus();
    auto t0 = Clock::now();
    auto id = env.alloc().SubmitJob(pool, gpus, 0, 0, env.now);
    auto t1 = Clock::now();
    LL_CHECK(id.ok());
    env.jobs.Add(*id);
    reclaimed += env.alloc().pool(pool).noticed > 0;
    env.now = env.now + kNotice;
    auto t2 = Clock::now();
    env.alloc().AdvanceTo(env.now);
    auto t3 = Clock::now();
    started += env.alloc().holder(*id).state == HolderState::kActive;
    notice_ns.push_back(Nanos(t0, t1));
    advance_ns.push_back(Nanos(t2, t3));
    ns.push_back(notice_ns.back() + advance_ns.back());
    (gpus <= kGpusPerNode ? node_ns : multi_ns).push_back(ns.back());
    state.SetIterationTime(ns.back() / 1e9);
  }
  double n = static_cast<double>(ns.size());
  PublishPercentiles(state, ns);
  PublishPercentiles(state, notice_ns, "notice_");
  PublishPercentiles(state, advance_ns, "advance_");
  PublishPercentiles(state, node_ns, "node_");
  PublishPercentiles(state, multi_ns, "multi_");
  state.counters["reclaimed"] = static_cast<double>(reclaimed) / n;  // arrivals that noticed spot
  state.counters["started"] = static_cast<double>(started) / n;      // started after the notice
  SetCommonCounters(state, env);
}

// (d) A spot lease of 1-8 GPUs is placed (or refused: the policy's limit, fragmentation).
// Paired with a random spot lease ending (untimed).
void BM_PlaceSpot(benchmark::State& state, const char* policy) {
  Env env(policy, static_cast<int>(state.range(0)));
  env.StartWithJobs(kJobs);
  env.TopUpSpot(kSpotLeases, kGpusPerNode);
  std::vector<double> ns;
  ns.reserve(state.max_iterations);
  int64_t accepted = 0;
  for (auto _ : state) {
    env.Tick(Duration::Seconds(1));
    env.TopUpSpot(kSpotLeases, kGpusPerNode);
    HolderId leaving = env.spot.Pick(env.rng);
    PoolId pool = env.RandomPool();
    Gpus gpus = env.SpotGpus();
    Money price = env.SpotPrice();
    auto t0 = Clock::now();
    auto id =
        env.alloc().PlaceOutside(HolderClass::kSpot, pool, gpus, price, price + kFloor, 0, env.now);
    auto t1 = Clock::now();
    if (id.ok()) {
      env.spot.Add(*id);
      ++accepted;
    }
    env.alloc().Release(leaving, env.now);
    ns.push_back(Nanos(t0, t1));
    state.SetIterationTime(ns.back() / 1e9);
  }
  PublishPercentiles(state, ns);
  state.counters["accepted"] = static_cast<double>(accepted) / static_cast<double>(ns.size());
  SetCommonCounters(state, env);
}

// The argument is the number of quota pools (8: 1,562 nodes a pool).
#define LL_ALLOC_BENCH(fn, tag, policy) \
  BENCHMARK_CAPTURE(fn, tag, policy)    \
      ->ArgName("pools")                \
      ->Arg(8)                          \
      ->UseManualTime()                 \
      ->Unit(benchmark::kMicrosecond)

LL_ALLOC_BENCH(BM_Arrival, spot_all, "spot-all");
LL_ALLOC_BENCH(BM_Arrival, landlord, "landlord");
LL_ALLOC_BENCH(BM_Release, spot_all, "spot-all");
LL_ALLOC_BENCH(BM_Release, landlord, "landlord");
// landlord keeps headroom free, so arrivals rarely have to reclaim under it: only spot-all
// fills the fleet. One pool (12,500 nodes) shows how the reclaim scan grows with pool size.
LL_ALLOC_BENCH(BM_Reclaim, spot_all, "spot-all")->Arg(1);
LL_ALLOC_BENCH(BM_PlaceSpot, spot_all, "spot-all");
LL_ALLOC_BENCH(BM_PlaceSpot, landlord, "landlord");

}  // namespace
}  // namespace ll::alloc
