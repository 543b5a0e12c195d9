// The owner-demand trace readers: Helios occupancy (helios_reader.cc), Alibaba openb re-sampled
// (openb_reader.cc), Slurm sacct (sacct_reader.cc) and a plain job CSV (job_csv_reader.cc). Each
// turns its format into the one Trace shape of trace.h and reports bad input as a Status naming
// file:line:field; none of them aborts on any input. This file dispatches on the trace spec and
// holds what the readers share (trace_reader_common.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "sim/csv.h"
#include "sim/trace.h"
#include "sim/trace_reader_common.h"

namespace ll::sim {
namespace {

// Bounds on relative seconds: far beyond any real trace, small enough that *1000 stays exact.
constexpr double kMaxSeconds = 1e12;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

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

Result<Time> TimeField(const DelimitedReader& in, int column) {
  LL_ASSIGN_OR_RETURN(std::string_view text, in.Field(column));
  Result<Time> t = ParseUtc(text);
  if (!t.ok()) {
    return in.FieldError(
        column, "expected a time like `2020-05-01 00:00:00`, got `" + QuoteForError(text) + "`");
  }
  return t;
}

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

}  // namespace ll::sim
