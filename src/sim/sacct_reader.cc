// The Slurm sacct reader: GPU jobs from `sacct --parsable2` output, on a fleet sized to each
// partition's recorded peak (or to a fixed node count).
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/csv.h"
#include "sim/trace.h"
#include "sim/trace_reader_common.h"

namespace ll::sim {
namespace {

bool IsUnknownTime(std::string_view s) { return s.empty() || s == "Unknown" || s == "None"; }

// GPUs in a TRES string such as `billing=8,cpu=64,gres/gpu=8,gres/gpu:a100=8,mem=512G`.
// Slurm lists the untyped total and, when typed, each type again; the untyped total wins,
// else the typed entries are summed. `gres/gpumem` and the like are not GPU counts.
Result<Gpus> TresGpus(const DelimitedReader& in, int column, std::string_view tres) {
  int64_t untyped = 0, typed = 0;
  bool has_untyped = false;
  size_t start = 0;
  while (start <= tres.size()) {
    size_t end = tres.find(',', start);
    if (end == std::string_view::npos) end = tres.size();
    std::string_view entry = tres.substr(start, end - start);
    start = end + 1;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = entry.substr(0, eq);
    const bool is_untyped = key == "gres/gpu";
    if (!is_untyped && key.rfind("gres/gpu:", 0) != 0) continue;
    int64_t v;
    if (!ParseInt64(entry.substr(eq + 1), &v) || v < 0 || v > INT32_MAX) {
      return in.FieldError(column, "expected a GPU count in `" + QuoteForError(entry) + "`");
    }
    (is_untyped ? untyped : typed) += v;
    has_untyped = has_untyped || is_untyped;
  }
  const int64_t gpus = has_untyped ? untyped : typed;
  if (gpus > INT32_MAX) {
    return in.FieldError(column, "too many GPUs in `" + QuoteForError(tres) + "`");
  }
  return static_cast<Gpus>(gpus);
}

struct SacctColumns {
  int id, submit, start, end, partition;
  int alloc, req;  // AllocTRES, ReqTRES: -1 when absent (one of them is there)
};

Result<SacctColumns> ReadSacctHeader(DelimitedReader& in, const std::string& file) {
  LL_RETURN_IF_ERROR(in.ReadHeader());
  SacctColumns c;
  LL_ASSIGN_OR_RETURN(c.id, in.Column("JobID"));
  LL_ASSIGN_OR_RETURN(c.submit, in.Column("Submit"));
  LL_ASSIGN_OR_RETURN(c.start, in.Column("Start"));
  LL_ASSIGN_OR_RETURN(c.end, in.Column("End"));
  LL_ASSIGN_OR_RETURN(c.partition, in.Column("Partition"));
  c.alloc = in.FindColumn("AllocTRES");
  c.req = in.FindColumn("ReqTRES");
  if (c.alloc < 0 && c.req < 0) {
    return Status::Invalid(file + ":1: missing column `AllocTRES` (or `ReqTRES`) in the header");
  }
  return c;
}

// What one row of sacct output is to the trace.
enum class SacctRow {
  kJob,         // a GPU job that ran: *job and *start are set
  kSkipped,     // a job step, or a job without GPUs
  kUnstarted,   // pending, cancelled before start, or still running
  kZeroLength,  // holds no GPU time; a zero-length job would only add events
};

Result<SacctRow> ReadSacctRow(const DelimitedReader& in, const SacctColumns& c, PoolTable* pools,
                              JobSpec* job, Time* start_out) {
  LL_RETURN_IF_ERROR(in.CheckArity());
  LL_ASSIGN_OR_RETURN(std::string_view id, in.Field(c.id));
  if (id.find('.') != std::string_view::npos) return SacctRow::kSkipped;  // a step, counted already
  LL_ASSIGN_OR_RETURN(std::string_view start_text, in.Field(c.start));
  LL_ASSIGN_OR_RETURN(std::string_view end_text, in.Field(c.end));
  if (IsUnknownTime(start_text) || IsUnknownTime(end_text)) return SacctRow::kUnstarted;
  std::string_view tres;
  int c_tres = c.alloc;
  if (c.alloc >= 0) {
    LL_ASSIGN_OR_RETURN(tres, in.Field(c.alloc));
  }
  if (tres.empty() && c.req >= 0) {
    c_tres = c.req;
    LL_ASSIGN_OR_RETURN(tres, in.Field(c.req));
  }
  LL_ASSIGN_OR_RETURN(Gpus gpus, TresGpus(in, c_tres, tres));
  if (gpus == 0) return SacctRow::kSkipped;
  if (gpus > kMaxFleetGpus) return in.FieldError(c_tres, "implausibly many GPUs");
  LL_ASSIGN_OR_RETURN(Time submit, TimeField(in, c.submit));
  LL_ASSIGN_OR_RETURN(Time start, TimeField(in, c.start));
  LL_ASSIGN_OR_RETURN(Time end, TimeField(in, c.end));
  if (end < start) {
    return in.FieldError(c.end, "`" + QuoteForError(end_text) + "` is before Start `" +
                                    QuoteForError(start_text) + "`");
  }
  if (submit > start) {
    return in.FieldError(c.submit, "after Start `" + QuoteForError(start_text) + "`");
  }
  if (end == start) return SacctRow::kZeroLength;
  LL_ASSIGN_OR_RETURN(std::string_view partition, in.Field(c.partition));
  job->id = std::string(id);
  job->submit = submit;
  job->gpus = gpus;
  job->duration = end - start;
  job->pool = pools->Intern(partition.empty() ? "default" : partition);
  *start_out = start;
  return SacctRow::kJob;
}

// Peak concurrent GPUs per partition over the recorded [Start, End).
Status SizeSacctFleet(const PoolTable& pools, const std::vector<Time>& starts,
                      const FleetOptions& fleet, Trace* trace) {
  std::vector<std::vector<std::pair<Time, Gpus>>> events(pools.size());
  std::vector<PoolDemand> demand(pools.size());
  for (size_t i = 0; i < trace->jobs.size(); ++i) {
    const JobSpec& job = trace->jobs[i];
    events[job.pool].push_back({starts[i], job.gpus});
    events[job.pool].push_back({starts[i] + job.duration, -job.gpus});
    demand[job.pool].largest_job = std::max(demand[job.pool].largest_job, job.gpus);
  }
  for (int p = 0; p < pools.size(); ++p) {
    demand[p].name = pools.names()[p];
    demand[p].peak = PeakConcurrent(std::move(events[p]));
  }
  return BuildFleet(demand, fleet, trace);
}

}  // namespace

Result<Trace> ReadSacct(const std::string& file, const ReadOptions& options) {
  LL_RETURN_IF_ERROR(CheckFleetOptions(options.fleet));
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(file, '|'));
  LL_ASSIGN_OR_RETURN(const SacctColumns columns, ReadSacctHeader(in, file));

  Trace trace;
  trace.spec = "sacct:" + file;
  trace.kind = DemandKind::kJobs;
  PoolTable pools;
  std::vector<Time> starts;  // the recorded Start of each job, for the fleet's peak
  int rows = 0, unstarted = 0, zero_length = 0;
  while (in.Next()) {
    if (in.line().empty()) continue;
    ++rows;
    JobSpec job;
    Time start;
    LL_ASSIGN_OR_RETURN(SacctRow row, ReadSacctRow(in, columns, &pools, &job, &start));
    if (row == SacctRow::kUnstarted) ++unstarted;
    if (row == SacctRow::kZeroLength) ++zero_length;
    if (row != SacctRow::kJob) continue;
    starts.push_back(start);
    trace.jobs.push_back(std::move(job));
  }
  if (rows == 0) return NoRowsError(in, "no jobs after the header");
  if (trace.jobs.empty()) {
    return NoRowsError(in, "no GPU jobs with a Start and End (" + std::to_string(unstarted) +
                               " without a Start or End)");
  }
  LL_RETURN_IF_ERROR(SizeSacctFleet(pools, starts, options.fleet, &trace));

  trace.begin = kTimeMax;
  trace.end = Time{INT64_MIN};
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    trace.begin = std::min(trace.begin, trace.jobs[i].submit);
    trace.end = std::max(trace.end, starts[i] + trace.jobs[i].duration);
  }
  // sacct lists jobs by id; a requeued or held job can be submitted out of id order.
  std::stable_sort(trace.jobs.begin(), trace.jobs.end(),
                   [](const JobSpec& a, const JobSpec& b) { return a.submit < b.submit; });

  trace.description = "Slurm sacct `" + file + "`: " + WithCommas(trace.jobs.size()) +
                      " GPU jobs in " + std::to_string(pools.size()) + " partitions, " +
                      FleetDescription(trace, options.fleet);
  if (unstarted > 0) {
    trace.description += ", " + WithCommas(unstarted) + " jobs without a Start or End skipped";
  }
  if (zero_length > 0) {
    trace.description += ", " + WithCommas(zero_length) + " zero-length jobs skipped";
  }
  return trace;
}

}  // namespace ll::sim
