// Output of `landlord sim`: the comparison table, the JSON file, the SVG chart, and a
// progress bar for long runs.
#pragma once

#include <cstdio>
#include <string>

#include "core/status.h"
#include "sim/metrics.h"

namespace ll::sim {

// A fixed-width table: one row per metric, one column per policy.
std::string FormatTable(const SimReport& report);

// {"trace": {...}, "policies": {"<name>": {<metric>: value, ...}}}; NaN becomes null.
std::string ToJson(const SimReport& report);
Status WriteJson(const std::string& path, const SimReport& report);

// One self-contained HTML page (the dashboard's own charts and styles inlined, nothing
// fetched): the policy comparison table and, for the landlord policy's run, GPUs by class,
// revenue, spot price and the owner's demand against its forecast.
std::string ToHtml(const SimReport& report, const std::string& title);
Status WriteHtml(const std::string& path, const SimReport& report, const std::string& title);

// A self-contained SVG: GPUs by class over time (internal, reserved, spot, inference, idle),
// stacked, with data gaps shaded and a legend.
std::string ToSvg(const std::vector<FleetSample>& series, const std::string& title);
Status WriteSvg(const std::string& path, const std::vector<FleetSample>& series,
                const std::string& title);

// A progress bar on stderr, drawn only when stderr is a terminal. Not thread-safe.
class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void Update(int64_t done);  // cheap when called often: redraws only when the per-mille changes
  void Finish();

 private:
  std::string label_;
  int64_t total_;
  int64_t last_drawn_ = -1;
  bool enabled_;
  bool finished_ = false;
};

}  // namespace ll::sim
