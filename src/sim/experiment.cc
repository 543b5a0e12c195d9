#include "sim/experiment.h"

#include <algorithm>

#include <fmt/format.h>

#include "alloc/policy.h"
#include "sim/report.h"

namespace ll::sim {
namespace {

void OnProgress(double fraction, void* arg) {
  static_cast<Progress*>(arg)->Update(static_cast<int64_t>(fraction * 1000));
}

}  // namespace

Result<SimReport> RunExperiment(const Trace& trace, const ExperimentOptions& options) {
  // Validate every name before spending time on runs.
  for (const std::string& name : options.policies) LL_RETURN_IF_ERROR(alloc::ValidatePolicyName(name));
  SimReport report;
  TraceSummary& ts = report.trace;
  ts.spec = trace.spec;
  ts.description = trace.description;
  ts.begin = FormatUtc(trace.begin);
  ts.end = FormatUtc(trace.end);
  ts.nodes = static_cast<int64_t>(trace.nodes.size());
  ts.gpus = trace.total_gpus();
  ts.pools = static_cast<int64_t>(trace.pools.size());
  ts.jobs = static_cast<int64_t>(trace.jobs.size());
  for (const Gap& g : trace.gaps) ts.excluded_h += (g.end - g.begin).hours();
  ts.external = options.sim.external;
  const auto& pb = options.sim.prices;
  ts.external_prices = options.sim.external == "saturating"
                           ? fmt::format("every GPU offered is taken at the floor, ${}/GPU-h", FormatMoney(pb.Floor()))
                           : fmt::format("max prices uniform in [floor ${}, 2 x list ${}] per GPU-h, seed {}",
                                         FormatMoney(pb.Floor()), FormatMoney(pb.list_per_gpu_hour), options.sim.seed);
  ts.inference = options.sim.inference.spec;
  ts.notice_s = options.sim.notice.ms / 1000;
  ts.seed = options.sim.seed;

  auto run = [&](const std::string& name, const BaselineRecord* base) -> Result<RunResult> {
    Progress bar(fmt::format("{:<16}", name), options.progress ? 1000 : 0);
    auto r = RunPolicy(trace, name, options.sim, base, options.progress ? OnProgress : nullptr, &bar);
    bar.Finish();
    return r;
  };
  LL_ASSIGN_OR_RETURN(RunResult base, run("baseline", nullptr));
  const double idle_gpu_h = base.metrics.capacity_gpu_h - base.metrics.internal_gpu_h;
  for (const std::string& name : options.policies) {
    RunResult r;
    if (name == "baseline") {
      r.metrics = base.metrics;
    } else {
      LL_ASSIGN_OR_RETURN(r, run(name, &base.record));
    }
    r.metrics.idle_gpu_h = idle_gpu_h;
    r.metrics.harvest_ratio = idle_gpu_h > 0 ? r.metrics.harvested_gpu_h / idle_gpu_h : 0;
    if (name == "landlord") report.landlord_series = std::move(r.series);
    report.policies.emplace_back(name, r.metrics);
  }
  return report;
}

}  // namespace ll::sim
