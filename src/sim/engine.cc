#include "sim/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>

#include <fmt/format.h>

#include "alloc/allocator.h"
#include "core/check.h"
#include "core/rng.h"
#include "forecast/forecast.h"
#include "alloc/harvest.h"
#include "market/auction.h"
#include "sim/baseline_idle.h"
#include "sim/inference_demand.h"
#include "sim/recorded_future.h"
#include "step/step.h"

namespace ll::sim {
namespace {

using alloc::Allocator;
using alloc::EndReason;
using alloc::Holder;
using alloc::HolderClass;
using alloc::NoticeReason;

enum class EventType : uint8_t { kLevel, kJobSubmit, kJobEnd, kExtArrive, kExtEnd, kTick, kSample, kScript };

struct Event {
  int64_t t;
  uint64_t seq;
  EventType type;
  uint64_t index;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct ExternalRequest {
  Time arrive;
  Gpus gpus;
  Duration duration;
  Money max_price;
};

class Run final : public alloc::Listener, private step::Phases {
 public:
  Run(const Trace& trace, const SimOptions& options, const BaselineRecord* baseline)
      : trace_(trace), options_(options), baseline_(baseline), rng_(options.seed), market_(options.prices.Floor()) {}

  Status Init(const std::string& policy_name) {
    policy_name_ = policy_name;
    is_baseline_ = policy_name == "baseline";
    for (size_t i = 0; i < trace_.gaps.size(); ++i) {
      const Gap& g = trace_.gaps[i];
      if (g.end <= g.begin || (i > 0 && g.begin < trace_.gaps[i - 1].end)) {
        return Status::Invalid("trace: data gaps must be non-empty, sorted and disjoint");
      }
    }
    std::vector<Gpus> pool_caps;
    alloc::FleetSpec spec = FleetSpecOf(trace_, &pool_caps);
    forecast_ = std::make_unique<forecast::DemandForecast>(pool_caps);
    if (baseline_ != nullptr) {
      future_ = std::make_unique<RecordedFuture>(baseline_->demand);
      base_idle_ = std::make_unique<BaselineIdle>(baseline_->idle);
    }
    alloc::PolicyContext ctx;
    ctx.notice = options_.notice;
    ctx.tick = options_.tick;
    ctx.forecast = forecast_.get();
    ctx.future = policy_name == "oracle" ? future_.get() : nullptr;
    ctx.cooldown = options_.cooldown;
    ctx.flash_notice = options_.flash_notice < options_.notice ? options_.flash_notice : Duration{};
    ctx.delay_budget = options_.delay_budget;
    ctx.warmup = options_.warmup;
    ctx.reserved_min_history = options_.reserved_min_history;
    ctx.reserved_quantile = options_.reserved_quantile;
    ctx.flash_max_delay = options_.flash_max_delay;
    ctx.pools = static_cast<int>(trace_.pools.size());
    if (policy_name == "oracle" && baseline_ == nullptr) {
      return Status::Invalid("policy `oracle` needs a baseline run first");
    }
    auto policy = alloc::MakePolicy(policy_name, ctx);
    if (!policy.ok()) return policy.status();
    alloc::AllocatorOptions ao;
    ao.notice = options_.notice;
    ao.occupancy = trace_.kind == DemandKind::kOccupancy;
    ao.floor = options_.prices.Floor();
    ao.min_runtime = options_.min_runtime;
    auto fleet = alloc::Fleet::Create(spec);
    if (!fleet.ok()) return fleet.status();
    alloc_ = std::make_unique<Allocator>(spec, ao, std::move(policy).value(), this);
    floor_ = ao.floor;
    record_.demand.resize(trace_.pools.size());
    record_.idle.resize(trace_.pools.size());
    last_want_.assign(trace_.pools.size(), -1);
    last_idle_.assign(trace_.pools.size(), -1);
    if (trace_.kind == DemandKind::kJobs) {
      job_holder_.assign(trace_.jobs.size(), HolderId{});
      job_start_.assign(trace_.jobs.size(), -1);
    }
    return LoadExternal();
  }

  Result<RunResult> Go(void (*progress)(double, void*), void* arg) {
    auto wall0 = std::chrono::steady_clock::now();
    // Seed the event queue.
    if (trace_.kind == DemandKind::kOccupancy) {
      for (size_t i = 0; i < trace_.levels.size(); ++i) Push(trace_.levels[i].t, EventType::kLevel, i);
    } else {
      for (size_t i = 0; i < trace_.jobs.size(); ++i) Push(trace_.jobs[i].submit, EventType::kJobSubmit, i);
    }
    for (size_t i = 0; i < ext_.size(); ++i) Push(ext_[i].arrive, EventType::kExtArrive, i);
    for (size_t i = 0; i < options_.script.size(); ++i) Push(options_.script[i].at, EventType::kScript, i);
    Push(trace_.begin, EventType::kTick, 0);
    Push(trace_.begin, EventType::kSample, 0);
    now_ = trace_.begin;
    const double span = static_cast<double>((trace_.end - trace_.begin).ms);
    int64_t events = 0;
    while (true) {
      Time next = queue_.empty() ? trace_.end : Time{queue_.top().t};
      Time deadline = alloc_->NextDeadline();
      Time t = std::min({next, deadline, trace_.end});
      if (deadline <= t) {
        event_ = nullptr;
        step::Step(*alloc_, *this, t);
        ++events;
        AfterEvent();
        continue;
      }
      Integrate(t);
      if (t >= trace_.end) break;
      Event e = queue_.top();
      queue_.pop();
      event_ = &e;
      step::Step(*alloc_, *this, t);
      ++events;
      AfterEvent();
      if (progress != nullptr && (events & 0xffff) == 0) progress((now_ - trace_.begin).ms / span, arg);
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return Finish(events, wall);
  }

  // ---- Listener ----
  void OnStart(const Holder& h, Time now) override {
    if (h.cls == HolderClass::kInternal) {
      if (trace_.kind == DemandKind::kJobs) {
        job_start_[h.tag] = now.ms;
        Push(now + trace_.jobs[h.tag].duration, EventType::kJobEnd, h.id.v);
      }
      return;
    }
    ++leases_;
    if (h.notice.ms > 0) flash_gpus_ += h.want;
    if (h.cls != HolderClass::kInference) {
      rate_ += static_cast<__int128>(h.price.micros) * h.gpus;
      market_.Changed();
    }
    if (scripted()) {
      ScriptedLease& l = scripted_.at(h.tag);
      l.start = now;
      l.prices.emplace_back(now, h.price);
      if (options_.decisions != nullptr) options_.decisions->Started(now, h.tag, h);
    }
  }
  void OnNotice(const Holder& h, Time now, NoticeReason reason) override {
    if (!h.outside() || h.cls == HolderClass::kInference) return;
    market_.Changed();
    if (scripted() && options_.decisions != nullptr) options_.decisions->Noticed(now, h.tag, h, reason);
  }
  void OnEnd(const Holder& h, Time now, EndReason reason) override {
    if (!h.outside() || reason == EndReason::kRejected) return;
    if (h.notice.ms > 0) flash_gpus_ -= h.want;
    if (h.cls != HolderClass::kInference) {
      rate_ -= static_cast<__int128>(h.price.micros) * h.want;
      market_.Changed();
      if (scripted()) {
        scripted_.at(h.tag).end = now;
        if (options_.decisions != nullptr) options_.decisions->Ended(now, h.tag, reason);
      }
    }
    if (reason == EndReason::kReclaimed) {
      ++reclaims_;
      if (h.cls == HolderClass::kSpot) ++spot_preemptions_;
      if (h.demand_seen != kTimeMax) reclaim_latency_s_.push_back((now - h.demand_seen).seconds());
    }
  }

 private:
  // ---- step::Phases: the event being handled (null for the allocator's own deadlines) is the
  // owner's demand or the tenants'; the market runs on ticks (requests from a job trace wait
  // for the next tick's auction, as a batch).
  void Integrate(Time now) override { IntegrateTo(now); }
  void SetDemand(Time) override {
    if (event_ != nullptr && event_->type != EventType::kTick && event_->type != EventType::kScript) Handle(*event_);
  }
  void Market(Time) override {
    if (scripted()) ClearScripted();
    if (event_ != nullptr && (event_->type == EventType::kTick || event_->type == EventType::kScript)) Handle(*event_);
  }
  bool scripted() const { return !options_.script.empty(); }

  void Push(Time t, EventType type, uint64_t index) { queue_.push({t.ms, seq_++, type, index}); }

  // Gaps are sorted and disjoint (checked in Init): the first gap ending after t decides.
  bool InGap(Time t) const {
    const auto& gaps = trace_.gaps;
    auto it = std::partition_point(gaps.begin(), gaps.end(), [&](const Gap& g) { return g.end <= t; });
    return it != gaps.end() && it->begin <= t;
  }

  // Adds the state since now_ to the totals; gap time counts for nothing.
  void IntegrateTo(Time t) {
    if (t <= now_) return;
    const auto& gaps = trace_.gaps;
    const bool was_in_gap = InGap(now_);
    Time from = now_;
    while (from < t) {
      // Split at gap edges; next_gap_ is the first gap that ends after `from`.
      while (next_gap_ < gaps.size() && gaps[next_gap_].end <= from) ++next_gap_;
      const bool gap = next_gap_ < gaps.size() && gaps[next_gap_].begin <= from;
      Time to = t;
      if (next_gap_ < gaps.size()) to = std::min(to, gap ? gaps[next_gap_].end : gaps[next_gap_].begin);
      if (base_idle_ != nullptr) to = std::min(to, base_idle_->AdvanceTo(from));  // the baseline's idle changes
      if (!gap) Accumulate((to - from).ms);
      from = to;
    }
    if (was_in_gap != InGap(t)) {
      if (InGap(t)) forecast_->Pause(t); else forecast_->Resume(t);
    }
    now_ = t;
  }

  void Accumulate(int64_t ms) {
    capacity_ms_ += static_cast<int64_t>(alloc_->TotalCapacity()) * ms;
    internal_ms_ += static_cast<int64_t>(alloc_->TotalInternal()) * ms;
    reserved_ms_ += static_cast<int64_t>(alloc_->TotalReserved()) * ms;
    spot_ms_ += static_cast<int64_t>(alloc_->TotalSpot()) * ms;
    flash_ms_ += static_cast<int64_t>(flash_gpus_) * ms;
    inference_ms_ += static_cast<int64_t>(alloc_->TotalInference()) * ms;
    waiting_ms_ += static_cast<int64_t>(alloc_->InternalWaiting()) * ms;
    const alloc::SoldSplit split = alloc::SplitSold(*alloc_, base_idle_ != nullptr ? &base_idle_->idle() : nullptr);
    harvested_ms_ += static_cast<int64_t>(split.harvested) * ms;
    sold_waiting_ms_ += static_cast<int64_t>(split.while_owner_waited) * ms;
    revenue_rate_ms_ += rate_ * ms;
    price_ms_ += static_cast<__int128>(market_.price().micros) * ms;
    priced_ms_ += ms;
    if (inference_.enabled()) inference_.Serve(*alloc_, now_ - trace_.begin, ms);
  }

  void Handle(const Event& e) {
    switch (e.type) {
      case EventType::kLevel: {
        const DemandLevel& l = trace_.levels[e.index];
        alloc_->SetInternalDemand(PoolId{static_cast<uint32_t>(l.pool)}, l.gpus, now_);
        break;
      }
      case EventType::kJobSubmit: {
        const JobSpec& j = trace_.jobs[e.index];
        auto id = alloc_->SubmitJob(PoolId{static_cast<uint32_t>(j.pool)}, j.gpus, j.priority, e.index, now_);
        if (id.ok()) job_holder_[e.index] = *id;
        break;
      }
      case EventType::kJobEnd:
        alloc_->FinishJob(HolderId{static_cast<uint32_t>(e.index)}, now_);
        break;
      case EventType::kExtArrive:
        waiting_ext_.push_back(e.index);
        break;
      case EventType::kExtEnd: {
        HolderId id{static_cast<uint32_t>(e.index)};
        if (alloc_->holder(id).state != alloc::HolderState::kEnded) alloc_->Release(id, now_);
        break;
      }
      case EventType::kTick:
        Tick();
        if (now_ + options_.tick < trace_.end) Push(now_ + options_.tick, EventType::kTick, 0);
        break;
      case EventType::kSample:
        Sample();
        if (now_ + options_.sample_every < trace_.end) Push(now_ + options_.sample_every, EventType::kSample, 0);
        break;
      case EventType::kScript:
        Play(e.index);
        break;
    }
  }

  // After every event: record the owner's demand (forecast, oracle) and check the rules.
  void AfterEvent() {
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      Gpus want = alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want;
      if (want != last_want_[p]) {
        last_want_[p] = want;
        forecast_->Observe(p, want, now_);
        record_.demand[p].emplace_back(now_, want);
      }
      const alloc::PoolCounters& c = alloc_->pool(PoolId{static_cast<uint32_t>(p)});
      if (is_baseline_ && c.capacity - c.internal_held != last_idle_[p]) {
        last_idle_[p] = c.capacity - c.internal_held;
        record_.idle[p].emplace_back(now_, last_idle_[p]);
      }
    }
    if (options_.check_invariants) alloc_->CheckInvariants(now_);
  }

  // The tick's tenant demand (the step rebalanced just before).
  void Tick() {
    if (inference_.enabled()) {
      inference_.Size(*alloc_, now_, now_ - trace_.begin, options_.prices, floor_, market_.price(), is_baseline_);
    }
    if (!is_baseline_ && !scripted()) {
      OfferReserved();
      if (saturating_) {
        FillSaturating();
      } else {
        ClearMarket();
      }
    }
  }

  // Standard leases first, then (with a flash tier) flash leases on the rest of the limit.
  void FillSaturating() {
    const Duration flash = options_.flash_notice < options_.notice ? options_.flash_notice : Duration{};
    for (int p = 0; p < alloc_->pool_count() * (flash.ms > 0 ? 2 : 1); ++p) {
      PoolId pool{static_cast<uint32_t>(p % alloc_->pool_count())};
      const bool tier = p >= alloc_->pool_count();
      Gpus room = alloc_->Sellable(pool, now_, tier);
      if (room <= 0) continue;
      Gpus g = std::min(room, alloc_->LargestFreeNode(pool));
      while (room > 0 && g > 0) {
        auto id = alloc_->PlaceOutside(HolderClass::kSpot, pool, std::min(g, room), floor_, floor_, 0, now_,
                                       tier ? flash : Duration{});
        if (id.ok()) {
          room -= alloc_->holder(*id).gpus;
        } else {
          --g;  // fragmented: try a smaller lease
        }
      }
    }
  }

  void OfferReserved() {
    if (options_.reserved_term.ms <= 0) return;
    const auto& terms = options_.prices.reserved_terms;
    const market::ReservedTerm* term = nullptr;
    for (const auto& t : terms) {
      if (t.term == options_.reserved_term) term = &t;
    }
    market::ReservedTerm fallback{options_.reserved_term, 0};
    Money price = options_.prices.ReservedPrice(term != nullptr ? *term : fallback);
    Time end = now_ + options_.reserved_term;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      PoolId pool{static_cast<uint32_t>(p)};
      Gpus room = alloc_->ReservedRoom(pool, end, now_);
      Gpus node = trace_.nodes.empty() ? 8 : trace_.nodes.front().gpus;
      Gpus g = room / node * node;
      if (g > 0) {
        auto id = alloc_->PlaceReserved(pool, g, end, price, 0, now_);
        (void)id;  // a fragmented pool may refuse; offered again next tick
      }
    }
  }

  // Spot requests from a job trace: they bid in the spot market (step::SpotMarket) beside the
  // spot holders; a request that wins is placed in the first pool that can take it.
  void ClearMarket() {
    // Requests wait at most an hour for capacity, then go elsewhere.
    std::erase_if(waiting_ext_, [&](uint64_t i) { return now_ - ext_[i].arrive > Duration::Hours(1); });
    if (!market_.Due(*alloc_, now_, !waiting_ext_.empty())) return;
    std::vector<market::Bid> waiting;
    for (uint64_t i : waiting_ext_) waiting.push_back({i, ext_[i].gpus, ext_[i].max_price});
    std::vector<step::SpotMarket::Holder> holders;
    for (HolderId id : active_spot_) holders.push_back({(uint64_t{1} << 40) + id.v, id});
    auto cleared = market_.Clear(*alloc_, now_, holders, std::move(waiting), [&](uint64_t, HolderId id, Money old) {
      rate_ += static_cast<__int128>(alloc_->holder(id).price.micros - old.micros) * alloc_->holder(id).gpus;
    });
    std::erase_if(active_spot_, [&](HolderId id) { return alloc_->holder(id).state == alloc::HolderState::kEnded; });
    const Money price = market_.price();
    for (uint64_t key : cleared.winners) {
      const ExternalRequest& r = ext_[key];
      // The pool with the most room that can place it.
      for (int p = 0; p < alloc_->pool_count(); ++p) {
        PoolId pool{static_cast<uint32_t>(p)};
        if (alloc_->Sellable(pool, now_) < r.gpus) continue;
        auto id = alloc_->PlaceOutside(HolderClass::kSpot, pool, r.gpus, price, r.max_price, key, now_);
        if (id.ok()) {
          active_spot_.push_back(*id);
          Push(now_ + r.duration, EventType::kExtEnd, id->v);
          std::erase(waiting_ext_, key);
          break;
        }
      }
    }
  }

  // ---- scripted tenants: each request as the control plane takes the API call ----

  // The market over the scripted spot leases, keyed (and tie-broken) by lease number as the
  // control plane keys them by lease index.
  void ClearScripted() {
    if (!market_.Due(*alloc_, now_, /*requests_waiting=*/false)) return;
    std::vector<step::SpotMarket::Holder> holders;
    for (uint64_t n = 0; n < scripted_.size(); ++n) {
      if (!scripted_[n].reserved && scripted_[n].end == kTimeMax) holders.push_back({n, script_holders_[n]});
    }
    market_.Clear(*alloc_, now_, holders, {}, [&](uint64_t n, HolderId id, Money old) {
      const Money price = alloc_->holder(id).price;
      rate_ += static_cast<__int128>(price.micros - old.micros) * alloc_->holder(id).gpus;
      scripted_[n].prices.emplace_back(now_, price);
      if (options_.decisions != nullptr) options_.decisions->Repriced(now_, n, price);
    });
    if (options_.decisions != nullptr) options_.decisions->Price(now_, market_.price());
  }

  void Play(size_t index) {
    const TenantAction& a = options_.script[index];
    auto refuse = [&](std::string_view code) {
      if (options_.decisions != nullptr) options_.decisions->Refused(now_, index, code);
    };
    const std::vector<int> pools = step::CandidatePools(alloc_->pool_count(), -1);
    const uint64_t n = scripted_.size();
    switch (a.kind) {
      case TenantAction::Kind::kSpot: {
        if (a.max_price < market_.price()) return refuse("price_below_market");
        scripted_.emplace_back();
        int placed = -1;
        auto id = step::PlaceSpot(*alloc_, pools, a.gpus, market_.price(), a.max_price, n, now_, &placed);
        return Placed(id, "insufficient_capacity", refuse);
      }
      case TenantAction::Kind::kReserved: {
        scripted_.emplace_back().reserved = true;
        const Money price = step::ReservedPrice(options_.prices, a.term, floor_);
        int placed = -1;
        auto id = step::PlaceReserved(*alloc_, pools, a.gpus, now_ + a.term, price, n, now_, &placed);
        return Placed(id, "forecast_conflict", refuse);
      }
      case TenantAction::Kind::kRelease:
        if (a.lease < scripted_.size() && scripted_[a.lease].end == kTimeMax) {
          alloc_->Release(script_holders_[a.lease], now_);
        }
        return;
      case TenantAction::Kind::kFloor:
        // As PUT /admin/policy: the new floor, then limits and the market at once.
        floor_ = a.floor;
        alloc_->SetFloor(floor_);
        market_.set_floor(floor_);
        alloc_->Rebalance(now_);
        ClearScripted();
        return;
    }
  }

  template <typename Refuse>
  void Placed(const Result<HolderId>& id, std::string_view code, const Refuse& refuse) {
    if (!id.ok()) {
      scripted_.pop_back();
      return refuse(code);
    }
    script_holders_.push_back(*id);
    scripted_.back().gpus = alloc_->holder(*id).gpus;
  }

  Status LoadExternal() {
    saturating_ = options_.external == "saturating";
    if (!saturating_) {
      ReadOptions ro;
      ro.seed = options_.seed;
      auto ext = ReadTrace(options_.external, ro);
      if (!ext.ok()) return Status::Invalid("--external: " + ext.status().message());
      if (ext->kind != DemandKind::kJobs) return Status::Invalid("--external: needs a job trace (sacct:, csv:, openb:)");
      // Max prices: uniform between the floor and twice the list price (seeded).
      Rng rng(options_.seed ^ 0x5eed);
      int64_t lo = floor_.micros, hi = 2 * options_.prices.list_per_gpu_hour.micros;
      Duration shift = trace_.begin - ext->begin;
      for (const JobSpec& j : ext->jobs) {
        Time at = j.submit + shift;
        if (at >= trace_.end) break;
        ext_.push_back({at, j.gpus, j.duration, Money::Micros(lo + static_cast<int64_t>(rng.Below(hi - lo + 1)))});
      }
    }
    return inference_.Load(options_.inference);
  }

  void Sample() {
    FleetSample s;
    s.t = now_;
    s.internal = alloc_->TotalInternal();
    s.reserved = alloc_->TotalReserved();
    s.spot = alloc_->TotalSpot();
    s.inference = alloc_->TotalInference();
    s.idle = alloc_->TotalCapacity() - s.internal - s.reserved - s.spot - s.inference;
    for (int p = 0; p < alloc_->pool_count(); ++p) {
      s.demand += alloc_->pool(PoolId{static_cast<uint32_t>(p)}).internal_want;
      if (forecast_) s.forecast += forecast_->Quantile(p, 1.0, now_, now_ + options_.sample_every);
    }
    s.spot_price_micros = market_.price().micros;
    s.revenue_micros = static_cast<int64_t>(revenue_rate_ms_ / 3'600'000);
    s.in_gap = InGap(now_);
    series_.push_back(s);
  }

  Result<RunResult> Finish(int64_t events, double wall) {
    RunResult out;
    PolicyMetrics& m = out.metrics;
    auto h = [](int64_t ms) { return static_cast<double>(ms) / 3'600'000.0; };
    m.capacity_gpu_h = h(capacity_ms_);
    m.internal_gpu_h = h(internal_ms_);
    m.reserved_gpu_h = h(reserved_ms_);
    m.spot_gpu_h = h(spot_ms_);
    m.flash_gpu_h = h(flash_ms_);
    m.inference_gpu_h = h(inference_ms_);
    m.sold_gpu_h = m.reserved_gpu_h + m.spot_gpu_h + m.inference_gpu_h;
    m.harvested_gpu_h = h(harvested_ms_);
    m.sold_while_owner_waited_gpu_h = h(sold_waiting_ms_);
    m.utilization = m.capacity_gpu_h > 0 ? (m.internal_gpu_h + m.sold_gpu_h) / m.capacity_gpu_h : 0;
    if (trace_.kind == DemandKind::kOccupancy) {
      m.internal_delayed_gpu_h = h(waiting_ms_);
    }
    // Per-job added wait against baseline (jobs matched by index).
    if (trace_.kind == DemandKind::kJobs) {
      out.record.job_wait_ms.resize(trace_.jobs.size());
      std::vector<double> added;
      double delayed_gpu_ms = 0;
      for (size_t i = 0; i < trace_.jobs.size(); ++i) {
        int64_t wait = (job_start_[i] >= 0 ? job_start_[i] : trace_.end.ms) - trace_.jobs[i].submit.ms;
        out.record.job_wait_ms[i] = wait;
        if (baseline_ != nullptr && i < baseline_->job_wait_ms.size()) {
          double a = static_cast<double>(wait - baseline_->job_wait_ms[i]) / 1000.0;
          added.push_back(a);
          delayed_gpu_ms += std::max(0.0, a * 1000.0) * trace_.jobs[i].gpus;
        }
      }
      if (is_baseline_) added.assign(trace_.jobs.size(), 0.0);
      double sum = 0;
      for (double a : added) sum += a;
      m.internal_wait_added_mean_s = added.empty() ? 0 : sum / static_cast<double>(added.size());
      m.internal_wait_added_p99_s = Quantile(added, 0.99);
      m.internal_delayed_gpu_h = delayed_gpu_ms / 3.6e6;
    }
    m.internal_delayed_frac = m.internal_gpu_h > 0 ? m.internal_delayed_gpu_h / m.internal_gpu_h : 0;
    m.reclaim_latency_p50_s = Quantile(reclaim_latency_s_, 0.5);
    m.reclaim_latency_p99_s = Quantile(reclaim_latency_s_, 0.99);
    m.spot_preemptions_per_1k_lease_h = m.spot_gpu_h > 0 ? spot_preemptions_ / (m.spot_gpu_h / 8.0) * 1000.0 : 0;
    m.reserved_violations = alloc_->reserved_violations();
    m.forecast_misses = alloc_->forecast_misses();
    __int128 lease_micros = revenue_rate_ms_ / 3'600'000;
    const double in_tokens = inference_.in_tokens(), out_tokens = inference_.out_tokens();
    double token_micros = in_tokens * options_.prices.input_per_mtok.micros / 1e6 +
                          out_tokens * options_.prices.output_per_mtok.micros / 1e6;
    m.revenue_usd = (static_cast<double>(lease_micros) + token_micros) / 1e6;
    m.revenue_per_gpu_h = m.capacity_gpu_h > 0 ? m.revenue_usd / m.capacity_gpu_h : 0;
    double mtok = (in_tokens + out_tokens) / 1e6;
    if (inference_.enabled()) {
      m.cost_per_mtok_usd = mtok > 0 ? m.inference_gpu_h * floor_.dollars() / mtok : NAN;
    }
    const auto& pb = options_.prices;
    double busy_h = m.internal_gpu_h + m.sold_gpu_h;
    m.energy_kwh = (busy_h * pb.busy_watts + (m.capacity_gpu_h - busy_h) * pb.idle_watts) / 1000.0;
    m.revenue_per_kwh_usd = m.energy_kwh > 0 ? m.revenue_usd / m.energy_kwh : 0;
    m.margin_usd = m.revenue_usd - m.sold_gpu_h * (pb.busy_watts - pb.idle_watts) / 1000.0 * pb.electricity_per_kwh.dollars();
    m.spot_price_mean_usd = priced_ms_ > 0 ? static_cast<double>(price_ms_ / priced_ms_) / 1e6 : 0;
    m.reclaims = reclaims_;
    m.leases = leases_;
    m.events = events;
    m.wall_s = wall;
    m.events_per_s = wall > 0 ? static_cast<double>(events) / wall : 0;
    out.series = std::move(series_);
    out.scripted = std::move(scripted_);
    out.record.demand = std::move(record_.demand);
    out.record.idle = std::move(record_.idle);
    return out;
  }

  const Trace& trace_;
  const SimOptions& options_;
  const BaselineRecord* baseline_;
  Rng rng_;
  std::string policy_name_;
  bool is_baseline_ = false;
  std::unique_ptr<forecast::DemandForecast> forecast_;
  std::unique_ptr<RecordedFuture> future_;
  std::unique_ptr<BaselineIdle> base_idle_;  // null in the baseline run itself
  std::unique_ptr<Allocator> alloc_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  uint64_t seq_ = 0;
  Time now_;
  Money floor_;
  step::SpotMarket market_;
  const Event* event_ = nullptr;  // the event of the step being taken
  bool saturating_ = true;
  std::vector<ExternalRequest> ext_;
  std::vector<uint64_t> waiting_ext_;
  std::vector<HolderId> active_spot_;
  std::vector<ScriptedLease> scripted_;   // by lease number
  std::vector<HolderId> script_holders_;  // by lease number
  InferenceDemand inference_;
  std::vector<HolderId> job_holder_;
  std::vector<int64_t> job_start_;
  std::vector<Gpus> last_want_, last_idle_;
  size_t next_gap_ = 0;  // Integrate's cursor into trace_.gaps
  BaselineRecord record_;
  std::vector<FleetSample> series_;
  int64_t capacity_ms_ = 0, internal_ms_ = 0, reserved_ms_ = 0, spot_ms_ = 0, inference_ms_ = 0, waiting_ms_ = 0;
  int64_t harvested_ms_ = 0, sold_waiting_ms_ = 0, flash_ms_ = 0;
  Gpus flash_gpus_ = 0;  // spot GPUs on the flash notice
  __int128 rate_ = 0, revenue_rate_ms_ = 0, price_ms_ = 0;
  int64_t priced_ms_ = 0;
  int64_t reclaims_ = 0, spot_preemptions_ = 0, leases_ = 0;
  std::vector<double> reclaim_latency_s_;
};

}  // namespace

alloc::FleetSpec FleetSpecOf(const Trace& trace, std::vector<Gpus>* pool_gpus) {
  return fleet::FleetSpecOf(trace.pools, trace.nodes, pool_gpus);
}

Result<RunResult> RunPolicy(const Trace& trace, const std::string& policy, const SimOptions& options,
                            const BaselineRecord* baseline, void (*progress)(double, void*), void* arg) {
  if (trace.nodes.empty()) return Status::Invalid("trace has no nodes");
  if (trace.end <= trace.begin) return Status::Invalid("trace is empty");
  Run run(trace, options, baseline);
  LL_RETURN_IF_ERROR(run.Init(policy));
  return run.Go(progress, arg);
}

}  // namespace ll::sim
