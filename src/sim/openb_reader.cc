// The Alibaba openb reader (ATC '23 GPU cluster): the fleet from the node list, and owner jobs
// re-sampled from the scheduled GPU pods, arriving as a Poisson process at a target load.
#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "sim/csv.h"
#include "sim/trace.h"
#include "sim/trace_reader_common.h"

namespace ll::sim {
namespace {

struct OpenbPod {
  std::string name;
  Gpus gpus = 0;
  Duration duration;
};

constexpr Duration kOpenbSpan = Duration::Hours(14 * 24);
constexpr Duration kOpenbMaxDuration = Duration::Hours(7 * 24);
// Guards against a load scale that would make millions of jobs by mistake.
constexpr double kOpenbMaxJobs = 20e6;

// The fleet: the GPU nodes of the node list (CPU-only nodes cannot hold owner GPU jobs).
Status ReadOpenbNodes(const std::string& dir, const ReadOptions& options, Trace* trace) {
  LL_ASSIGN_OR_RETURN(DelimitedReader in,
                      DelimitedReader::Open(dir + "/openb_node_list_gpu_node.csv", ','));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_sn, in.Column("sn"));
  LL_ASSIGN_OR_RETURN(const int c_gpu, in.Column("gpu"));
  LL_ASSIGN_OR_RETURN(const int c_model, in.Column("model"));
  int index = 0;
  while (in.Next()) {
    if (in.line().empty()) continue;
    LL_RETURN_IF_ERROR(in.CheckArity());
    LL_ASSIGN_OR_RETURN(int gpus, in.Count(c_gpu));
    if (gpus == 0) continue;
    if (trace->pools[0].gpus + static_cast<int64_t>(gpus) > kMaxFleetGpus) {
      return in.FieldError(
          c_gpu, "the node list adds up to more than " + std::to_string(kMaxFleetGpus) + " GPUs");
    }
    LL_ASSIGN_OR_RETURN(std::string_view sn, in.Field(c_sn));
    LL_ASSIGN_OR_RETURN(std::string_view model, in.Field(c_model));
    NodeSpec node;
    node.name = std::string(sn);
    node.pool = 0;
    node.rack = index++ / options.nodes_per_rack;
    node.gpus = gpus;
    node.model = model.empty() ? "unknown" : std::string(model);
    trace->pools[0].gpus += gpus;
    trace->nodes.push_back(std::move(node));
  }
  if (trace->nodes.empty()) return NoRowsError(in, "no GPU nodes in the node list");
  return Status::Ok();
}

// The empirical distribution of (GPUs, lifetime) of the GPU pods that were scheduled. Pods
// larger than `largest_node` are counted in `too_big` and left out.
Status ReadOpenbPods(const std::string& dir, Gpus largest_node, std::vector<OpenbPod>* pods,
                     int* too_big) {
  LL_ASSIGN_OR_RETURN(DelimitedReader in,
                      DelimitedReader::Open(dir + "/openb_pod_list_default.csv", ','));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_name, in.Column("name"));
  LL_ASSIGN_OR_RETURN(const int c_gpu, in.Column("num_gpu"));
  LL_ASSIGN_OR_RETURN(const int c_sched, in.Column("scheduled_time"));
  LL_ASSIGN_OR_RETURN(const int c_del, in.Column("deletion_time"));
  int rows = 0;
  while (in.Next()) {
    if (in.line().empty()) continue;
    ++rows;
    LL_RETURN_IF_ERROR(in.CheckArity());
    LL_ASSIGN_OR_RETURN(int gpus, in.Count(c_gpu));
    LL_ASSIGN_OR_RETURN(std::string_view sched_text, in.Field(c_sched));
    LL_ASSIGN_OR_RETURN(std::string_view del_text, in.Field(c_del));
    if (gpus < 1 || sched_text.empty() || del_text.empty()) continue;  // never held a GPU
    LL_ASSIGN_OR_RETURN(int64_t sched_ms, SecondsField(in, c_sched));
    LL_ASSIGN_OR_RETURN(int64_t del_ms, SecondsField(in, c_del));
    if (del_ms <= sched_ms) continue;
    // A pod runs on one node; one larger than every node could never have been placed.
    if (gpus > largest_node) {
      ++*too_big;
      continue;
    }
    LL_ASSIGN_OR_RETURN(std::string_view name, in.Field(c_name));
    pods->push_back({std::string(name), gpus, Duration::Millis(del_ms - sched_ms)});
  }
  if (rows == 0) return NoRowsError(in, "no pods after the header");
  if (pods->empty()) return NoRowsError(in, "no scheduled GPU pods to sample from");
  return Status::Ok();
}

// Poisson arrivals at the rate that offers `load` of the fleet: λ·E[gpus·duration] = load·G,
// with durations capped as the jobs will be.
Status SampleOpenbJobs(const std::vector<OpenbPod>& pods, double load, uint64_t seed,
                       Trace* trace) {
  double mean_gpu_ms = 0;
  for (const OpenbPod& p : pods) {
    mean_gpu_ms += static_cast<double>(p.gpus) *
                   static_cast<double>(std::min(p.duration, kOpenbMaxDuration).ms);
  }
  mean_gpu_ms /= static_cast<double>(pods.size());
  const double rate_per_ms = load * trace->total_gpus() / mean_gpu_ms;
  const double expected_jobs = rate_per_ms * static_cast<double>(kOpenbSpan.ms);
  if (expected_jobs > kOpenbMaxJobs) {
    return Status::Invalid("openb: load scale " + Printf("%g", load) + " would make about " +
                           WithCommas(static_cast<int64_t>(expected_jobs)) + " jobs, more than " +
                           WithCommas(static_cast<int64_t>(kOpenbMaxJobs)));
  }
  Rng rng(seed);
  const double mean_gap_ms = 1.0 / rate_per_ms;
  trace->jobs.reserve(static_cast<size_t>(expected_jobs * 1.05) + 16);
  double t = 0;
  for (int64_t seq = 0;; ++seq) {
    t += rng.Exponential(mean_gap_ms);
    if (!(t < static_cast<double>(kOpenbSpan.ms))) break;
    const OpenbPod& pod = pods[rng.Below(pods.size())];
    JobSpec job;
    job.id = "openb-" + std::to_string(seq) + "-" + pod.name;
    job.submit = trace->begin + Duration::Millis(static_cast<int64_t>(t));
    job.gpus = pod.gpus;
    job.duration = std::min(pod.duration, kOpenbMaxDuration);
    job.pool = 0;
    trace->jobs.push_back(std::move(job));
  }
  return Status::Ok();
}

}  // namespace

Result<Trace> ReadOpenb(const std::string& dir, const ReadOptions& options) {
  if (options.nodes_per_rack < 1) return Status::Invalid("`nodes_per_rack` must be at least 1");
  const double load = options.load_scale == 0 ? 0.7 : options.load_scale;
  if (!(load > 0) || !std::isfinite(load)) {
    return Status::Invalid("openb: the load scale must be positive, got " + Printf("%g", load));
  }
  Trace trace;
  trace.spec = "openb:" + dir;
  trace.kind = DemandKind::kJobs;
  trace.begin = kSyntheticEpoch;
  trace.end = trace.begin + kOpenbSpan;
  trace.pools.push_back({"openb", 0});
  LL_RETURN_IF_ERROR(ReadOpenbNodes(dir, options, &trace));
  Gpus largest_node = 0;
  for (const NodeSpec& n : trace.nodes) largest_node = std::max(largest_node, n.gpus);
  std::vector<OpenbPod> pods;
  int too_big = 0;
  LL_RETURN_IF_ERROR(ReadOpenbPods(dir, largest_node, &pods, &too_big));
  LL_RETURN_IF_ERROR(SampleOpenbJobs(pods, load, options.seed, &trace));

  trace.description = "Alibaba openb GPU cluster (ATC '23), " + WithCommas(trace.nodes.size()) +
                      " nodes, " + WithCommas(trace.total_gpus()) + " GPUs; " +
                      WithCommas(trace.jobs.size()) + " jobs re-sampled from " +
                      WithCommas(pods.size()) +
                      " scheduled GPU pods, Poisson arrivals over 14 days at load scale " +
                      Printf("%.2f", load) + ", seed " + std::to_string(options.seed);
  if (too_big > 0) {
    trace.description += ", " + std::to_string(too_big) + " pods larger than any node skipped";
  }
  return trace;
}

}  // namespace ll::sim
