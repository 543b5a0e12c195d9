// The owner-demand trace readers: Helios occupancy, Alibaba openb (re-sampled), Slurm sacct and
// a plain job CSV. Each turns its format into the one Trace shape of trace.h and reports bad
// input as a Status naming file:line:field; none of them aborts on any input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "sim/csv.h"
#include "sim/trace.h"

namespace ll::sim {
namespace {

constexpr Duration kMinGap = Duration::Minutes(30);
// Times in relative-seconds traces (openb, csv) start here: a Monday, so that hour-of-week
// forecasts see a natural week.
constexpr Time kSyntheticEpoch = Time::FromSeconds(1'704'067'200);  // 2024-01-01T00:00:00Z
// Bounds on relative seconds: far beyond any real trace, small enough that *1000 stays exact.
constexpr double kMaxSeconds = 1e12;
// Far above any real fleet (DESIGN: 100,000 GPUs), low enough that a corrupt count fails
// with a message instead of allocating millions of nodes.
constexpr int64_t kMaxFleetGpus = 10'000'000;

// Thousands separators make the job and GPU counts in descriptions readable.
std::string WithCommas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string Printf(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Pools in order of first appearance, looked up by name without allocating per row.
class PoolTable {
 public:
  int Intern(std::string_view name) {
    if (last_ >= 0 && names_[last_] == name) return last_;
    auto it = index_.find(name);
    if (it == index_.end()) {
      it = index_.emplace(std::string(name), static_cast<int>(names_.size())).first;
      names_.emplace_back(name);
    }
    last_ = it->second;
    return last_;
  }
  const std::vector<std::string>& names() const { return names_; }
  int size() const { return static_cast<int>(names_.size()); }

 private:
  std::vector<std::string> names_;
  std::map<std::string, int, std::less<>> index_;
  int last_ = -1;
};

// What a pool of a job trace needs from a fleet that the trace does not describe.
struct PoolDemand {
  std::string name;
  Gpus peak = 0;         // peak concurrent GPUs as recorded
  Gpus largest_job = 0;  // GPUs of the pool's largest job
};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

Status CheckFleetOptions(const FleetOptions& fleet) {
  if (fleet.gpus_per_node < 1) return Status::Invalid("fleet: `gpus_per_node` must be at least 1");
  if (fleet.nodes_per_rack < 1) {
    return Status::Invalid("fleet: `nodes_per_rack` must be at least 1");
  }
  if (fleet.nodes < 0) return Status::Invalid("fleet: `nodes` must not be negative");
  if (static_cast<int64_t>(fleet.nodes) * fleet.gpus_per_node > kMaxFleetGpus) {
    return Status::Invalid("fleet: more than " + std::to_string(kMaxFleetGpus) + " GPUs");
  }
  return Status::Ok();
}

// Builds pools and nodes of `fleet.gpus_per_node` GPUs for a job trace. With fleet.nodes == 0
// each pool gets the smallest number of nodes that holds its recorded peak (at least one node
// and at least its largest job). With a fixed node count each pool first gets enough nodes for
// its largest job, and the rest are shared in proportion to the pools' peaks (largest
// remainder, ties to the earlier pool) so that the split is deterministic.
Status BuildFleet(const std::vector<PoolDemand>& demand, const FleetOptions& fleet, Trace* trace) {
  LL_RETURN_IF_ERROR(CheckFleetOptions(fleet));
  const int64_t gpn = fleet.gpus_per_node;
  std::vector<int64_t> nodes(demand.size());
  std::vector<int64_t> min_nodes(demand.size());
  int64_t min_sum = 0;
  for (size_t p = 0; p < demand.size(); ++p) {
    min_nodes[p] = std::max<int64_t>(1, CeilDiv(demand[p].largest_job, gpn));
    min_sum += min_nodes[p];
  }
  if (fleet.nodes == 0) {
    for (size_t p = 0; p < demand.size(); ++p) {
      nodes[p] = std::max(min_nodes[p], CeilDiv(demand[p].peak, gpn));
    }
  } else {
    if (fleet.nodes < min_sum) {
      return Status::Invalid("fleet: " + std::to_string(fleet.nodes) + " nodes of " +
                             std::to_string(gpn) + " GPUs are too few: the trace's " +
                             std::to_string(demand.size()) + " pools need at least " +
                             std::to_string(min_sum) +
                             " (one per pool, and enough for each pool's largest job)");
    }
    const int64_t rest = fleet.nodes - min_sum;
    int64_t peak_sum = 0;
    for (const PoolDemand& d : demand) peak_sum += d.peak;
    std::vector<std::pair<int64_t, size_t>> remainders;  // (remainder, pool)
    int64_t given = 0;
    for (size_t p = 0; p < demand.size(); ++p) {
      const int64_t weight = peak_sum > 0 ? demand[p].peak : 1;
      const int64_t total = peak_sum > 0 ? peak_sum : static_cast<int64_t>(demand.size());
      const int64_t share = rest * weight / total;
      nodes[p] = min_nodes[p] + share;
      given += share;
      remainders.emplace_back(rest * weight % total, p);
    }
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; given < rest; ++i, ++given) {
      ++nodes[remainders[i % remainders.size()].second];
    }
  }
  int64_t total_nodes = 0;
  for (int64_t n : nodes) total_nodes += n;
  if (total_nodes * gpn > kMaxFleetGpus) {
    return Status::Invalid("fleet: the trace would need " + std::to_string(total_nodes * gpn) +
                           " GPUs, more than " + std::to_string(kMaxFleetGpus));
  }
  int global = 0;
  for (size_t p = 0; p < demand.size(); ++p) {
    PoolSpec pool{demand[p].name, 0};
    for (int64_t k = 0; k < nodes[p]; ++k, ++global) {
      NodeSpec node;
      node.name = demand[p].name + "-n" + std::to_string(k);
      node.pool = static_cast<int>(p);
      node.rack = global / fleet.nodes_per_rack;
      node.gpus = fleet.gpus_per_node;
      node.model = fleet.model;
      pool.gpus += node.gpus;
      trace->nodes.push_back(std::move(node));
    }
    trace->pools.push_back(std::move(pool));
  }
  return Status::Ok();
}

// Peak of concurrent GPUs over [start, end) intervals; ends sort before starts at equal
// times, so back-to-back jobs do not count twice.
Gpus PeakConcurrent(std::vector<std::pair<Time, Gpus>> events) {
  std::sort(events.begin(), events.end());
  int64_t now = 0, peak = 0;
  for (const auto& [t, delta] : events) {
    now += delta;
    peak = std::max(peak, now);
  }
  return static_cast<Gpus>(std::min<int64_t>(peak, INT32_MAX));
}

std::string FleetDescription(const Trace& trace, const FleetOptions& fleet) {
  return std::to_string(trace.nodes.size()) + " nodes x " + std::to_string(fleet.gpus_per_node) +
         " GPUs" + (fleet.nodes == 0 ? " (sized to the recorded peak)" : "");
}

// "May 2020" for a trace within one calendar month, else "2020-05-01 to 2020-06-03".
std::string MonthSpan(Time begin, Time last) {
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::string b = FormatUtc(begin), l = FormatUtc(last);
  if (b.substr(0, 7) == l.substr(0, 7)) {
    int month = std::stoi(b.substr(5, 2));
    return std::string(kMonths[(month - 1) % 12]) + " " + b.substr(0, 4);
  }
  return b.substr(0, 10) + " to " + l.substr(0, 10);
}

// A time field; the message echoes the text so that the user sees what was wrong.
Result<Time> TimeField(const DelimitedReader& in, int column) {
  LL_ASSIGN_OR_RETURN(std::string_view text, in.Field(column));
  Result<Time> t = ParseUtc(text);
  if (!t.ok()) {
    return in.FieldError(
        column, "expected a time like `2020-05-01 00:00:00`, got `" + QuoteForError(text) + "`");
  }
  return t;
}

// Relative seconds (openb, csv) as milliseconds, rejecting values whose *1000 could overflow.
Result<int64_t> SecondsField(const DelimitedReader& in, int column) {
  LL_ASSIGN_OR_RETURN(double s, in.Double(column));
  if (std::fabs(s) > kMaxSeconds) {
    return in.FieldError(column, "out of range: " + Printf("%g", s) + " s");
  }
  return static_cast<int64_t>(std::llround(s * 1000.0));
}

Status NoRowsError(const DelimitedReader& in, std::string_view what) {
  return Status::Invalid(in.path() + ":" + std::to_string(in.line_number() + 1) + ": " +
                         std::string(what));
}

// ---------------------------------------------------------------------------------------------
// Helios

constexpr const char* kHeliosFile = "earth_vc_sequence_2020-05_changepoints.csv";
constexpr Gpus kHeliosGpusPerNode = 8;

struct HeliosRow {
  Time t;
  int pool = 0;
  Gpus gpus = 0;      // running + pending
  bool busy = false;  // any running or pending job
};

// Maximal runs (at least kMinGap long) during which no pool has a running or pending job.
// `order` lists rows sorted by (t, pool). The state of a pool holds until its next row; a pool
// before its first row counts as idle.
std::vector<Gap> FindGaps(const std::vector<HeliosRow>& rows, const std::vector<size_t>& order,
                          int num_pools, Time end) {
  std::vector<Gap> gaps;
  std::vector<char> busy(num_pools, 0);
  int busy_count = 0;
  bool idle = false;
  Time idle_start;
  auto close = [&](Time until) {
    if (until - idle_start >= kMinGap) gaps.push_back({idle_start, until});
  };
  for (size_t i = 0; i < order.size();) {
    const Time t = rows[order[i]].t;
    for (; i < order.size() && rows[order[i]].t == t; ++i) {
      const HeliosRow& r = rows[order[i]];
      busy_count += (r.busy ? 1 : 0) - busy[r.pool];
      busy[r.pool] = r.busy ? 1 : 0;
    }
    if (busy_count == 0 && !idle) {
      idle = true;
      idle_start = t;
    } else if (busy_count > 0 && idle) {
      idle = false;
      close(t);
    }
  }
  if (idle) close(end);
  return gaps;
}

}  // namespace

Gpus Trace::total_gpus() const {
  int64_t total = 0;
  for (const NodeSpec& n : nodes) total += n.gpus;
  return static_cast<Gpus>(total);
}

Result<Trace> ReadTrace(const std::string& spec, const ReadOptions& options) {
  const size_t colon = spec.find(':');
  const std::string kind = colon == std::string::npos ? "" : spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const char* kAccepted = "expected helios:DIR, openb:DIR, sacct:FILE or csv:FILE";
  if (kind.empty() || (kind != "helios" && kind != "openb" && kind != "sacct" && kind != "csv")) {
    return Status::Invalid("unknown trace `" + spec + "`: " + kAccepted);
  }
  if (arg.empty()) return Status::Invalid("trace `" + spec + "` names no path: " + kAccepted);
  Result<Trace> trace = kind == "helios"  ? ReadHelios(arg, options)
                        : kind == "openb" ? ReadOpenb(arg, options)
                        : kind == "sacct" ? ReadSacct(arg, options)
                                          : ReadJobCsv(arg, options);
  if (trace.ok()) trace->spec = spec;
  return trace;
}

// Helios change-point file: one row per VC per minute at which anything changed (see
// data/README.md). The level of a VC holds until its next row.
Result<Trace> ReadHelios(const std::string& dir, const ReadOptions& options) {
  if (options.nodes_per_rack < 1) return Status::Invalid("`nodes_per_rack` must be at least 1");
  const std::string path = dir + "/" + kHeliosFile;
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(path, ','));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_vc, in.Column("vc"));
  LL_ASSIGN_OR_RETURN(const int c_time, in.Column("time"));
  LL_ASSIGN_OR_RETURN(const int c_total, in.Column("total_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_running, in.Column("running_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_pending, in.Column("pending_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_running_jobs, in.Column("running_job_num"));
  LL_ASSIGN_OR_RETURN(const int c_pending_jobs, in.Column("pending_job_num"));

  PoolTable pools;
  std::vector<Gpus> capacity;
  std::vector<Time> last_time;
  std::vector<int> last_line;
  std::vector<HeliosRow> rows;
  rows.reserve(1 << 16);
  while (in.Next()) {
    if (in.line().empty()) continue;
    LL_RETURN_IF_ERROR(in.CheckArity());
    LL_ASSIGN_OR_RETURN(std::string_view vc, in.Field(c_vc));
    if (vc.empty()) return in.FieldError(c_vc, "empty VC name");
    LL_ASSIGN_OR_RETURN(Time t, TimeField(in, c_time));
    LL_ASSIGN_OR_RETURN(int total, in.Count(c_total));
    if (total > kMaxFleetGpus) return in.FieldError(c_total, "implausibly large");
    LL_ASSIGN_OR_RETURN(int running, in.Count(c_running));
    LL_ASSIGN_OR_RETURN(int pending, in.Count(c_pending));
    LL_ASSIGN_OR_RETURN(int running_jobs, in.Count(c_running_jobs));
    LL_ASSIGN_OR_RETURN(int pending_jobs, in.Count(c_pending_jobs));
    const int pool = pools.Intern(vc);
    if (pool == static_cast<int>(capacity.size())) {
      capacity.push_back(0);
      last_time.push_back(Time{INT64_MIN});
      last_line.push_back(0);
    }
    if (t <= last_time[pool]) {
      return in.FieldError(c_time, "out of order (`" + FormatUtc(t) + "` after `" +
                                       FormatUtc(last_time[pool]) + "` on line " +
                                       std::to_string(last_line[pool]) + " for VC `" +
                                       std::string(vc) + "`)");
    }
    last_time[pool] = t;
    last_line[pool] = in.line_number();
    capacity[pool] = std::max(capacity[pool], total);
    const int64_t demand = static_cast<int64_t>(running) + pending;
    rows.push_back({t, pool, static_cast<Gpus>(std::min<int64_t>(demand, INT32_MAX)),
                    running_jobs + pending_jobs > 0});
  }
  if (rows.empty()) return NoRowsError(in, "no data rows after the header");

  // (t, pool) order: the file is grouped by VC, the engine wants time order with ties in
  // pool order.
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return rows[a].t != rows[b].t ? rows[a].t < rows[b].t : rows[a].pool < rows[b].pool;
  });

  Trace trace;
  trace.spec = "helios:" + dir;
  trace.kind = DemandKind::kOccupancy;
  trace.begin = rows[order.front()].t;
  const Time last = rows[order.back()].t;
  trace.end = last + Duration::Minutes(1);
  trace.gaps = FindGaps(rows, order, pools.size(), trace.end);

  int64_t fleet_gpus = 0;
  for (Gpus c : capacity) fleet_gpus += c;
  if (fleet_gpus > kMaxFleetGpus) {
    return Status::Invalid(path + ": the VCs add up to " + std::to_string(fleet_gpus) +
                           " GPUs, more than " + std::to_string(kMaxFleetGpus));
  }
  // Fleet: ceil(cap / 8) nodes of 8 GPUs per VC (Helios Earth servers have 8 V100s).
  int global = 0;
  for (int p = 0; p < pools.size(); ++p) {
    PoolSpec pool{pools.names()[p], capacity[p]};
    for (Gpus left = capacity[p], k = 0; left > 0; left -= kHeliosGpusPerNode, ++k, ++global) {
      NodeSpec node;
      node.name = pool.name + "-n" + std::to_string(k);
      node.pool = p;
      node.rack = global / options.nodes_per_rack;
      node.gpus = std::min(left, kHeliosGpusPerNode);
      node.model = "V100";
      trace.nodes.push_back(std::move(node));
    }
    trace.pools.push_back(std::move(pool));
  }

  // Levels outside the gaps. Inside a gap the data is missing, not zero: the level from before
  // the gap holds through it, and at its end each pool resumes with the level in force then.
  trace.levels.reserve(rows.size());
  size_t g = 0;
  for (size_t i : order) {
    const HeliosRow& r = rows[i];
    while (g < trace.gaps.size() && trace.gaps[g].end <= r.t) ++g;
    if (g < trace.gaps.size() && trace.gaps[g].begin <= r.t) continue;
    trace.levels.push_back({r.t, r.pool, r.gpus});
  }
  if (!trace.gaps.empty()) {
    std::vector<std::vector<size_t>> by_pool(pools.size());
    for (size_t i = 0; i < rows.size(); ++i) by_pool[rows[i].pool].push_back(i);  // t ascending
    for (const Gap& gap : trace.gaps) {
      if (gap.end >= trace.end) continue;
      for (int p = 0; p < pools.size(); ++p) {
        const std::vector<size_t>& idx = by_pool[p];
        auto it = std::upper_bound(idx.begin(), idx.end(), gap.end,
                                   [&](Time t, size_t i) { return t < rows[i].t; });
        if (it == idx.begin()) continue;  // the pool has no data yet
        const HeliosRow& r = rows[*std::prev(it)];
        if (r.t == gap.end) continue;  // that row is kept as it is
        trace.levels.push_back({gap.end, p, r.gpus});
      }
    }
    std::stable_sort(trace.levels.begin(), trace.levels.end(),
                     [](const DemandLevel& a, const DemandLevel& b) {
                       return a.t != b.t ? a.t < b.t : a.pool < b.pool;
                     });
  }

  Duration gap_total;
  for (const Gap& gap : trace.gaps) gap_total += gap.end - gap.begin;
  trace.description = "Helios Earth (SenseTime), " + std::to_string(pools.size()) + " VCs, " +
                      WithCommas(trace.total_gpus()) + " GPUs, " + MonthSpan(trace.begin, last) +
                      ", per-minute occupancy";
  if (!trace.gaps.empty()) {
    trace.description += ", " + std::to_string(trace.gaps.size()) + " data gaps (" +
                         WithCommas(gap_total.ms / 60'000) + " min) excluded";
  }
  return trace;
}

// ---------------------------------------------------------------------------------------------
// Alibaba openb

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

  // The fleet: the GPU nodes of the node list (CPU-only nodes cannot hold owner GPU jobs).
  {
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
      if (trace.pools[0].gpus + static_cast<int64_t>(gpus) > kMaxFleetGpus) {
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
      trace.pools[0].gpus += gpus;
      trace.nodes.push_back(std::move(node));
    }
    if (trace.nodes.empty()) return NoRowsError(in, "no GPU nodes in the node list");
  }
  Gpus largest_node = 0;
  for (const NodeSpec& n : trace.nodes) largest_node = std::max(largest_node, n.gpus);

  // The empirical distribution of (GPUs, lifetime) of the GPU pods that were scheduled.
  std::vector<OpenbPod> pods;
  int too_big = 0;
  {
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
        ++too_big;
        continue;
      }
      LL_ASSIGN_OR_RETURN(std::string_view name, in.Field(c_name));
      pods.push_back({std::string(name), gpus, Duration::Millis(del_ms - sched_ms)});
    }
    if (rows == 0) return NoRowsError(in, "no pods after the header");
    if (pods.empty()) return NoRowsError(in, "no scheduled GPU pods to sample from");
  }

  // Poisson arrivals at the rate that offers `load` of the fleet: λ·E[gpus·duration] = load·G,
  // with durations capped as the jobs will be.
  double mean_gpu_ms = 0;
  for (const OpenbPod& p : pods) {
    mean_gpu_ms += static_cast<double>(p.gpus) *
                   static_cast<double>(std::min(p.duration, kOpenbMaxDuration).ms);
  }
  mean_gpu_ms /= static_cast<double>(pods.size());
  const double rate_per_ms = load * trace.total_gpus() / mean_gpu_ms;
  const double expected_jobs = rate_per_ms * static_cast<double>(kOpenbSpan.ms);
  if (expected_jobs > kOpenbMaxJobs) {
    return Status::Invalid("openb: load scale " + Printf("%g", load) + " would make about " +
                           WithCommas(static_cast<int64_t>(expected_jobs)) + " jobs, more than " +
                           WithCommas(static_cast<int64_t>(kOpenbMaxJobs)));
  }
  Rng rng(options.seed);
  const double mean_gap_ms = 1.0 / rate_per_ms;
  trace.jobs.reserve(static_cast<size_t>(expected_jobs * 1.05) + 16);
  double t = 0;
  for (int64_t seq = 0;; ++seq) {
    t += rng.Exponential(mean_gap_ms);
    if (!(t < static_cast<double>(kOpenbSpan.ms))) break;
    const OpenbPod& pod = pods[rng.Below(pods.size())];
    JobSpec job;
    job.id = "openb-" + std::to_string(seq) + "-" + pod.name;
    job.submit = trace.begin + Duration::Millis(static_cast<int64_t>(t));
    job.gpus = pod.gpus;
    job.duration = std::min(pod.duration, kOpenbMaxDuration);
    job.pool = 0;
    trace.jobs.push_back(std::move(job));
  }

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

// ---------------------------------------------------------------------------------------------
// Slurm sacct

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

}  // namespace

Result<Trace> ReadSacct(const std::string& file, const ReadOptions& options) {
  LL_RETURN_IF_ERROR(CheckFleetOptions(options.fleet));
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(file, '|'));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_id, in.Column("JobID"));
  LL_ASSIGN_OR_RETURN(const int c_submit, in.Column("Submit"));
  LL_ASSIGN_OR_RETURN(const int c_start, in.Column("Start"));
  LL_ASSIGN_OR_RETURN(const int c_end, in.Column("End"));
  LL_ASSIGN_OR_RETURN(const int c_partition, in.Column("Partition"));
  const int c_alloc = in.FindColumn("AllocTRES");
  const int c_req = in.FindColumn("ReqTRES");
  if (c_alloc < 0 && c_req < 0) {
    return Status::Invalid(file + ":1: missing column `AllocTRES` (or `ReqTRES`) in the header");
  }

  Trace trace;
  trace.spec = "sacct:" + file;
  trace.kind = DemandKind::kJobs;
  PoolTable pools;
  std::vector<Time> starts;  // the recorded Start of each job, for the fleet's peak
  int rows = 0, unstarted = 0, zero_length = 0;
  while (in.Next()) {
    if (in.line().empty()) continue;
    ++rows;
    LL_RETURN_IF_ERROR(in.CheckArity());
    LL_ASSIGN_OR_RETURN(std::string_view id, in.Field(c_id));
    if (id.find('.') != std::string_view::npos) continue;  // a step of a job counted already
    LL_ASSIGN_OR_RETURN(std::string_view start_text, in.Field(c_start));
    LL_ASSIGN_OR_RETURN(std::string_view end_text, in.Field(c_end));
    if (IsUnknownTime(start_text) || IsUnknownTime(end_text)) {
      ++unstarted;  // pending, cancelled before start, or still running
      continue;
    }
    std::string_view tres;
    int c_tres = c_alloc;
    if (c_alloc >= 0) {
      LL_ASSIGN_OR_RETURN(tres, in.Field(c_alloc));
    }
    if (tres.empty() && c_req >= 0) {
      c_tres = c_req;
      LL_ASSIGN_OR_RETURN(tres, in.Field(c_req));
    }
    LL_ASSIGN_OR_RETURN(Gpus gpus, TresGpus(in, c_tres, tres));
    if (gpus == 0) continue;
    if (gpus > kMaxFleetGpus) return in.FieldError(c_tres, "implausibly many GPUs");
    LL_ASSIGN_OR_RETURN(Time submit, TimeField(in, c_submit));
    LL_ASSIGN_OR_RETURN(Time start, TimeField(in, c_start));
    LL_ASSIGN_OR_RETURN(Time end, TimeField(in, c_end));
    if (end < start) {
      return in.FieldError(c_end, "`" + QuoteForError(end_text) + "` is before Start `" +
                                      QuoteForError(start_text) + "`");
    }
    if (submit > start) {
      return in.FieldError(c_submit, "after Start `" + QuoteForError(start_text) + "`");
    }
    if (end == start) {
      ++zero_length;  // holds no GPU time; a zero-length job would only add events
      continue;
    }
    LL_ASSIGN_OR_RETURN(std::string_view partition, in.Field(c_partition));
    JobSpec job;
    job.id = std::string(id);
    job.submit = submit;
    job.gpus = gpus;
    job.duration = end - start;
    job.pool = pools.Intern(partition.empty() ? "default" : partition);
    starts.push_back(start);
    trace.jobs.push_back(std::move(job));
  }
  if (rows == 0) return NoRowsError(in, "no jobs after the header");
  if (trace.jobs.empty()) {
    return NoRowsError(in, "no GPU jobs with a Start and End (" + std::to_string(unstarted) +
                               " without a Start or End)");
  }

  // Peak concurrent GPUs per partition over the recorded [Start, End).
  std::vector<std::vector<std::pair<Time, Gpus>>> events(pools.size());
  std::vector<PoolDemand> demand(pools.size());
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    const JobSpec& job = trace.jobs[i];
    events[job.pool].push_back({starts[i], job.gpus});
    events[job.pool].push_back({starts[i] + job.duration, -job.gpus});
    demand[job.pool].largest_job = std::max(demand[job.pool].largest_job, job.gpus);
  }
  for (int p = 0; p < pools.size(); ++p) {
    demand[p].name = pools.names()[p];
    demand[p].peak = PeakConcurrent(std::move(events[p]));
  }
  LL_RETURN_IF_ERROR(BuildFleet(demand, options.fleet, &trace));

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

// ---------------------------------------------------------------------------------------------
// Job CSV

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
