// The job CSV reader: `submit_s,gpus,duration_s[,priority]` lines, one pool, on a fleet sized to
// the jobs running as soon as submitted (or to a fixed node count).
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/csv.h"
#include "sim/trace.h"
#include "sim/trace_reader_common.h"

namespace ll::sim {

Result<Trace> ReadJobCsv(const std::string& file, const ReadOptions& options) {
  LL_RETURN_IF_ERROR(CheckFleetOptions(options.fleet));
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(file, ','));
  in.SetColumns({"submit_s", "gpus", "duration_s", "priority"});
  constexpr int kSubmit = 0, kGpus = 1, kDuration = 2, kPriority = 3;
  const char* kExpected = "expected lines of `submit_s`, `gpus`, `duration_s` [, `priority`]";

  Trace trace;
  trace.spec = "csv:" + file;
  trace.kind = DemandKind::kJobs;
  trace.begin = kSyntheticEpoch;
  bool any_line = false, first_content = true;
  int64_t last_submit_ms = 0;
  int last_submit_line = 0;
  while (in.Next()) {
    any_line = true;
    std::string_view line = in.line();
    const size_t content = line.find_first_not_of(" \t");
    if (content == std::string_view::npos || line[content] == '#') continue;
    if (first_content && line.substr(content).rfind("submit_s", 0) == 0) {
      first_content = false;
      continue;
    }
    first_content = false;
    // Fields are read in order, so a short line fails on its first missing field and a line of
    // garbage on its first field.
    if (in.num_fields() > 4) LL_RETURN_IF_ERROR(in.CheckArity(3));
    LL_ASSIGN_OR_RETURN(int64_t submit_ms, SecondsField(in, kSubmit));
    if (submit_ms < 0) return in.FieldError(kSubmit, "must not be negative");
    if (submit_ms < last_submit_ms) {
      return in.FieldError(kSubmit, "out of order: " + Printf("%.3f", submit_ms / 1000.0) +
                                        " s after " + Printf("%.3f", last_submit_ms / 1000.0) +
                                        " s on line " + std::to_string(last_submit_line) +
                                        " (submits must not decrease)");
    }
    LL_ASSIGN_OR_RETURN(int gpus, in.Count(kGpus));
    if (gpus < 1) return in.FieldError(kGpus, "must be at least 1");
    if (gpus > kMaxFleetGpus) return in.FieldError(kGpus, "implausibly many GPUs");
    LL_ASSIGN_OR_RETURN(int64_t duration_ms, SecondsField(in, kDuration));
    if (duration_ms <= 0) return in.FieldError(kDuration, "must be positive");
    int64_t priority = 0;
    if (in.num_fields() > kPriority) {
      LL_ASSIGN_OR_RETURN(priority, in.Int(kPriority));
      if (priority < INT32_MIN || priority > INT32_MAX) {
        return in.FieldError(kPriority, "out of range");
      }
    }
    last_submit_ms = submit_ms;
    last_submit_line = in.line_number();
    JobSpec job;
    job.id = "job-" + std::to_string(in.line_number());
    job.submit = trace.begin + Duration::Millis(submit_ms);
    job.gpus = gpus;
    job.duration = Duration::Millis(duration_ms);
    job.priority = static_cast<int>(priority);
    job.pool = 0;
    trace.jobs.push_back(std::move(job));
  }
  if (!any_line) return in.Error(std::string("empty file, ") + kExpected);
  if (trace.jobs.empty()) return NoRowsError(in, std::string("no jobs, ") + kExpected);

  PoolDemand demand{"default", 0, 0};
  std::vector<std::pair<Time, Gpus>> events;
  events.reserve(trace.jobs.size() * 2);
  trace.end = trace.begin + Duration::Seconds(1);
  for (const JobSpec& job : trace.jobs) {
    // Without a record of when jobs ran, size for them running as soon as submitted.
    events.push_back({job.submit, job.gpus});
    events.push_back({job.submit + job.duration, -job.gpus});
    demand.largest_job = std::max(demand.largest_job, job.gpus);
    trace.end = std::max(trace.end, job.submit + job.duration);
  }
  demand.peak = PeakConcurrent(std::move(events));
  LL_RETURN_IF_ERROR(BuildFleet({demand}, options.fleet, &trace));
  trace.description = "job CSV `" + file + "`: " + WithCommas(trace.jobs.size()) + " jobs, " +
                      FleetDescription(trace, options.fleet);
  return trace;
}

}  // namespace ll::sim
