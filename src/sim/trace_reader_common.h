// What the owner-demand trace readers share, private to them (trace_readers.cc and the
// *_reader.cc files): field parsing whose errors name file:line:field, and the fleet built for
// job traces that do not describe one (sacct, csv). Not for use outside src/sim.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/csv.h"
#include "sim/trace.h"

namespace ll::sim {

// Times in relative-seconds traces (openb, csv) start here: a Monday, so that hour-of-week
// forecasts see a natural week.
inline constexpr Time kSyntheticEpoch = Time::FromSeconds(1'704'067'200);  // 2024-01-01T00:00:00Z
// Far above any real fleet (DESIGN: 100,000 GPUs), low enough that a corrupt count fails
// with a message instead of allocating millions of nodes.
inline constexpr int64_t kMaxFleetGpus = 10'000'000;

// Thousands separators make the job and GPU counts in descriptions readable.
std::string WithCommas(int64_t v);

std::string Printf(const char* format, double v);

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

Status CheckFleetOptions(const FleetOptions& fleet);

// Builds pools and nodes of `fleet.gpus_per_node` GPUs for a job trace. With fleet.nodes == 0
// each pool gets the smallest number of nodes that holds its recorded peak (at least one node
// and at least its largest job). With a fixed node count each pool first gets enough nodes for
// its largest job, and the rest are shared in proportion to the pools' peaks (largest
// remainder, ties to the earlier pool) so that the split is deterministic.
Status BuildFleet(const std::vector<PoolDemand>& demand, const FleetOptions& fleet, Trace* trace);

// Peak of concurrent GPUs over [start, end) intervals; ends sort before starts at equal
// times, so back-to-back jobs do not count twice.
Gpus PeakConcurrent(std::vector<std::pair<Time, Gpus>> events);

std::string FleetDescription(const Trace& trace, const FleetOptions& fleet);

// A time field; the message echoes the text so that the user sees what was wrong.
Result<Time> TimeField(const DelimitedReader& in, int column);

// Relative seconds (openb, csv) as milliseconds, rejecting values whose *1000 could overflow.
Result<int64_t> SecondsField(const DelimitedReader& in, int column);

// "path:LINE: what" for a file that ended without the rows it needs.
Status NoRowsError(const DelimitedReader& in, std::string_view what);

}  // namespace ll::sim
