// The Helios reader: per-VC occupancy from the SenseTime Helios change-point file, with the
// minutes where every VC is idle (data gaps) excluded.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "sim/csv.h"
#include "sim/data_files.h"
#include "sim/trace.h"
#include "sim/trace_reader_common.h"

namespace ll::sim {
namespace {

constexpr Duration kMinGap = Duration::Minutes(30);
constexpr Gpus kHeliosGpusPerNode = 8;

struct HeliosRow {
  Time t;
  int pool = 0;
  Gpus gpus = 0;      // running + pending
  bool busy = false;  // any running or pending job
};

// The file's rows in file order, with the VCs (pools) in order of first appearance and the
// capacity of each (the largest total it records).
struct HeliosRows {
  PoolTable pools;
  std::vector<Gpus> capacity;
  std::vector<HeliosRow> rows;
};

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

// A Helios cluster directory's files: `<cluster>_vc_sequence*.csv` (the change-point file) and
// `<cluster>_gpu_number.csv` (GPUs per VC per day; optional, not read), found by name so that any
// cluster (Earth, Saturn, Venus, ...) reads. None or several matches name the candidates.
struct HeliosFiles {
  std::string sequence;  // path
  std::string cluster;   // "Earth"
};

Result<HeliosFiles> FindHeliosFiles(const std::string& asked) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> sequences, gpu_numbers, all;
  // The default trace works from any directory: data/… resolves to the installed copy.
  const std::string dir = DataPath(asked);
  if (!fs::is_directory(dir, ec)) {
    return Status::Invalid("helios:" + dir + ": not a directory (a Helios cluster directory holds "
                           "`<cluster>_vc_sequence*.csv` and `<cluster>_gpu_number.csv`)");
  }
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    all.push_back(name);
    if (name.find("_vc_sequence") != std::string::npos && name.ends_with(".csv")) sequences.push_back(name);
    if (name.ends_with("_gpu_number.csv")) gpu_numbers.push_back(name);
  }
  std::sort(sequences.begin(), sequences.end());
  std::sort(gpu_numbers.begin(), gpu_numbers.end());
  std::sort(all.begin(), all.end());
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& n : v) s += (s.empty() ? "`" : ", `") + n + "`";
    return s.empty() ? std::string("none") : s;
  };
  if (sequences.size() != 1) {
    return Status::Invalid("helios:" + dir + ": " + (sequences.empty() ? "no" : "several") +
                           " `*_vc_sequence*.csv` files (candidates: " + list(sequences.empty() ? all : sequences) +
                           "); keep exactly one");
  }
  if (gpu_numbers.size() > 1) {
    return Status::Invalid("helios:" + dir + ": several `*_gpu_number.csv` files (candidates: " + list(gpu_numbers) +
                           "); keep at most one");
  }
  std::string cluster = sequences[0].substr(0, sequences[0].find("_vc_sequence"));
  if (!cluster.empty()) cluster[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(cluster[0])));
  return HeliosFiles{dir + "/" + sequences[0], cluster.empty() ? std::string("cluster") : cluster};
}

// Reads every row of the change-point file at `path`; the times of each VC must increase.
Status ReadHeliosRows(const std::string& path, HeliosRows* out) {
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(path, ','));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_vc, in.Column("vc"));
  LL_ASSIGN_OR_RETURN(const int c_time, in.Column("time"));
  LL_ASSIGN_OR_RETURN(const int c_total, in.Column("total_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_running, in.Column("running_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_pending, in.Column("pending_gpu_num"));
  LL_ASSIGN_OR_RETURN(const int c_running_jobs, in.Column("running_job_num"));
  LL_ASSIGN_OR_RETURN(const int c_pending_jobs, in.Column("pending_job_num"));

  PoolTable& pools = out->pools;
  std::vector<Gpus>& capacity = out->capacity;
  std::vector<Time> last_time;
  std::vector<int> last_line;
  std::vector<HeliosRow>& rows = out->rows;
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
  return Status::Ok();
}

// Fleet: ceil(cap / 8) nodes of 8 GPUs per VC (Helios Earth servers have 8 V100s).
Status AddHeliosFleet(const std::string& path, const HeliosRows& data, const ReadOptions& options,
                      Trace* trace) {
  const PoolTable& pools = data.pools;
  const std::vector<Gpus>& capacity = data.capacity;
  int64_t fleet_gpus = 0;
  for (Gpus c : capacity) fleet_gpus += c;
  if (fleet_gpus > kMaxFleetGpus) {
    return Status::Invalid(path + ": the VCs add up to " + std::to_string(fleet_gpus) +
                           " GPUs, more than " + std::to_string(kMaxFleetGpus));
  }
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
      trace->nodes.push_back(std::move(node));
    }
    trace->pools.push_back(std::move(pool));
  }
  return Status::Ok();
}

// Levels outside the gaps. Inside a gap the data is missing, not zero: the level from before
// the gap holds through it, and at its end each pool resumes with the level in force then.
void AddHeliosLevels(const std::vector<HeliosRow>& rows, const std::vector<size_t>& order,
                     int num_pools, Trace* trace) {
  trace->levels.reserve(rows.size());
  size_t g = 0;
  for (size_t i : order) {
    const HeliosRow& r = rows[i];
    while (g < trace->gaps.size() && trace->gaps[g].end <= r.t) ++g;
    if (g < trace->gaps.size() && trace->gaps[g].begin <= r.t) continue;
    trace->levels.push_back({r.t, r.pool, r.gpus});
  }
  if (trace->gaps.empty()) return;
  std::vector<std::vector<size_t>> by_pool(num_pools);
  for (size_t i = 0; i < rows.size(); ++i) by_pool[rows[i].pool].push_back(i);  // t ascending
  for (const Gap& gap : trace->gaps) {
    if (gap.end >= trace->end) continue;
    for (int p = 0; p < num_pools; ++p) {
      const std::vector<size_t>& idx = by_pool[p];
      auto it = std::upper_bound(idx.begin(), idx.end(), gap.end,
                                 [&](Time t, size_t i) { return t < rows[i].t; });
      if (it == idx.begin()) continue;  // the pool has no data yet
      const HeliosRow& r = rows[*std::prev(it)];
      if (r.t == gap.end) continue;  // that row is kept as it is
      trace->levels.push_back({gap.end, p, r.gpus});
    }
  }
  std::stable_sort(trace->levels.begin(), trace->levels.end(),
                   [](const DemandLevel& a, const DemandLevel& b) {
                     return a.t != b.t ? a.t < b.t : a.pool < b.pool;
                   });
}

}  // namespace

// Helios change-point file: one row per VC per minute at which anything changed (see
// data/README.md). The level of a VC holds until its next row.
Result<Trace> ReadHelios(const std::string& dir, const ReadOptions& options) {
  if (options.nodes_per_rack < 1) return Status::Invalid("`nodes_per_rack` must be at least 1");
  LL_ASSIGN_OR_RETURN(const HeliosFiles files, FindHeliosFiles(dir));
  const std::string& path = files.sequence;
  HeliosRows data;
  LL_RETURN_IF_ERROR(ReadHeliosRows(path, &data));
  const std::vector<HeliosRow>& rows = data.rows;

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
  trace.gaps = FindGaps(rows, order, data.pools.size(), trace.end);
  LL_RETURN_IF_ERROR(AddHeliosFleet(path, data, options, &trace));
  AddHeliosLevels(rows, order, data.pools.size(), &trace);

  Duration gap_total;
  for (const Gap& gap : trace.gaps) gap_total += gap.end - gap.begin;
  trace.description = "Helios " + files.cluster + " (SenseTime), " + std::to_string(data.pools.size()) +
                      " VCs, " + WithCommas(trace.total_gpus()) + " GPUs, " +
                      MonthSpan(trace.begin, last) + ", per-minute occupancy";
  if (!trace.gaps.empty()) {
    trace.description += ", " + std::to_string(trace.gaps.size()) + " data gaps (" +
                         WithCommas(gap_total.ms / 60'000) + " min) excluded";
  }
  return trace;
}

}  // namespace ll::sim
