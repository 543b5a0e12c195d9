// Simulator throughput: the Helios Earth month (May 2020, occupancy change points) replayed
// through RunPolicy with the default SimOptions, as `landlord sim` does. `events_per_s` is
// the engine's events (trace levels, ticks, samples, deadlines) over the benchmark's wall
// time, RunPolicy's set-up and metrics included. Target: ≥ 2,000,000 events/s on one thread.
//
// BM_EventQueueFloor is the cost floor of any discrete-event replay of the same trace: each
// level is pushed into and popped from a std::priority_queue ordered by (time, sequence), with
// the engine's event layout, and nothing else is done. docs/benchmarks.md reports each policy
// against it.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

#include "sim/engine.h"
#include "sim/trace.h"

namespace ll::sim {
namespace {

struct Helios {
  Status status;
  Trace trace;
  BaselineRecord baseline;  // from one `baseline` run, for the other policies
};

// Read once per process: the trace, then the baseline record every other policy needs.
const Helios& LoadHelios() {
  static const Helios* const helios = [] {
    auto* h = new Helios;
    auto trace = ReadTrace("helios:" LL_SOURCE_DIR "/data/helios_earth_2020_05", ReadOptions{});
    if (!trace.ok()) {
      h->status = trace.status();
      return h;
    }
    h->trace = std::move(trace).value();
    auto base = RunPolicy(h->trace, "baseline", SimOptions{}, nullptr);
    if (!base.ok()) {
      h->status = base.status();
      return h;
    }
    h->baseline = std::move(base->record);
    return h;
  }();
  return *helios;
}

void BM_HeliosReplay(benchmark::State& state, const char* policy) {
  const Helios& h = LoadHelios();
  if (!h.status.ok()) {
    state.SkipWithError(h.status.ToString().c_str());
    return;
  }
  const SimOptions options;
  int64_t events = 0;
  for (auto _ : state) {
    auto run = RunPolicy(h.trace, policy, options, &h.baseline);
    if (!run.ok()) {
      state.SkipWithError(run.status().ToString().c_str());
      return;
    }
    events += run->metrics.events;
    benchmark::DoNotOptimize(run->metrics.revenue_usd);
  }
  double iterations = static_cast<double>(state.iterations());
  state.counters["events"] = static_cast<double>(events) / iterations;  // per replay
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}

// Mirrors the engine's queue entry (sim/engine.cc).
struct Event {
  int64_t t;
  uint64_t seq;
  uint8_t type;
  uint64_t index;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

void BM_EventQueueFloor(benchmark::State& state) {
  const Helios& h = LoadHelios();
  if (!h.status.ok()) {
    state.SkipWithError(h.status.ToString().c_str());
    return;
  }
  const std::vector<DemandLevel>& levels = h.trace.levels;
  int64_t events = 0;
  for (auto _ : state) {
    std::priority_queue<Event, std::vector<Event>, std::greater<>> queue;
    uint64_t seq = 0;
    for (size_t i = 0; i < levels.size(); ++i) queue.push({levels[i].t.ms, seq++, 0, i});
    int64_t gpus = 0;
    while (!queue.empty()) {
      gpus += levels[queue.top().index].gpus;
      queue.pop();
      ++events;
    }
    benchmark::DoNotOptimize(gpus);
  }
  state.counters["events"] = static_cast<double>(events) / static_cast<double>(state.iterations());
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_EventQueueFloor)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_HeliosReplay, baseline, "baseline")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_HeliosReplay, spot_all, "spot-all")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_HeliosReplay, landlord, "landlord")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ll::sim
