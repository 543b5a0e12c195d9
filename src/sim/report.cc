#include "sim/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/time.h"
#include "sim/report_internal.h"
#include "web/web_assets.h"

namespace ll::sim {
namespace {

// ---------------------------------------------------------------------------------------------
// Numbers

// The metrics that are counts. Fields() hands every metric over as a double; these are read
// from the struct instead so JSON gets exact integers. A new integer metric must be added here.
std::optional<int64_t> IntegerMetric(const PolicyMetrics& m, std::string_view name) {
  if (name == "reserved_violations") return m.reserved_violations;
  if (name == "forecast_misses") return m.forecast_misses;
  if (name == "reclaims") return m.reclaims;
  if (name == "leases") return m.leases;
  if (name == "events") return m.events;
  return std::nullopt;
}

bool IsIntegerMetricName(std::string_view name) {
  static const PolicyMetrics kAny;
  return IntegerMetric(kAny, name).has_value();
}

// How a metric reads in the table, decided from its name so that a metric added to Fields()
// gets a sensible format without touching this file.
enum class Unit { kCount, kQuantity, kDollars, kRatio, kSeconds, kRate };

Unit UnitOf(std::string_view name) {
  if (IsIntegerMetricName(name)) return Unit::kCount;
  // `revenue_per_gpu_h` ends like a GPU-hour total but is a price.
  if (name.find("usd") != std::string_view::npos || name.starts_with("revenue_per")) {
    return Unit::kDollars;
  }
  // `events_per_s` ends like a duration but is a rate.
  if (name.ends_with("_per_s") || name.find("_per_1k_") != std::string_view::npos) {
    return Unit::kRate;
  }
  if (name.ends_with("_ratio") || name.ends_with("_frac") || name == "utilization") {
    return Unit::kRatio;
  }
  if (name.ends_with("_s")) return Unit::kSeconds;
  return Unit::kQuantity;  // GPU-hours, kWh
}

// Inserts thousands separators into the integer part of a plain "%f" rendering.
std::string GroupThousands(std::string s) {
  size_t begin = (!s.empty() && s[0] == '-') ? 1 : 0;
  size_t end = s.find('.');
  if (end == std::string::npos) end = s.size();
  for (size_t i = end; i > begin + 3;) {
    i -= 3;
    s.insert(i, 1, ',');
  }
  return s;
}

}  // namespace

std::string FormatFixed(double v, int decimals, bool group) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  // A tiny negative that rounds to zero would read "-0.00", which looks like a sign bug.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return group ? GroupThousands(std::move(s)) : s;
}

namespace {

// "0–2 decimals": big totals need no fraction, small ones need two to say anything.
std::string FormatQuantity(double v) {
  double a = std::fabs(v);
  return FormatFixed(v, a >= 1000 ? 0 : a >= 10 ? 1 : 2, true);
}

std::string FormatRatio(double v) {
  double a = std::fabs(v);
  if (a == 0 || a >= 0.01) return FormatFixed(v, 4, true);
  // Below 0.01 fixed decimals would hide the value (a preemption rate of 0.000412 would
  // read 0.0004), so show three significant digits instead.
  int decimals = 2 - static_cast<int>(std::floor(std::log10(a)));
  return FormatFixed(v, std::min(decimals, 12), false);
}

// Rates span engine speeds (hundreds of thousands per second) down to preemptions per 1,000
// lease-hours, which a good policy drives to a few ten-thousandths.
std::string FormatRate(double v) {
  double a = std::fabs(v);
  if (a >= 1000) return FormatFixed(v, 0, true);
  if (a == 0 || a >= 0.1) return FormatFixed(v, 2, false);
  return FormatRatio(v);
}

std::string FormatMetric(std::string_view name, double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  switch (UnitOf(name)) {
    case Unit::kCount:
      return FormatFixed(v, 0, true);
    case Unit::kDollars:
      return FormatFixed(v, std::fabs(v) >= 10'000 ? 0 : 2, true);
    case Unit::kRatio:
      return FormatRatio(v);
    case Unit::kSeconds:
      return FormatFixed(v, 1, true);
    case Unit::kRate:
      return FormatRate(v);
    case Unit::kQuantity:
      return FormatQuantity(v);
  }
  return FormatQuantity(v);
}

std::string PadLeft(const std::string& s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::string PadRight(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Files

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  auto fail = [&path](int err) {
    return Status::Io("cannot write `" + path +
                      "`: " + std::error_code(err, std::generic_category()).message());
  };
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(errno);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(err);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err);
  }
  return Status::Ok();
}

namespace {

// ---------------------------------------------------------------------------------------------
// JSON

nlohmann::ordered_json JsonNumber(double v) {
  // JSON has no NaN or infinity; null is what readers of `--json` expect for "not applicable".
  if (!std::isfinite(v)) return nullptr;
  return v;
}

}  // namespace

// =============================================================================================

std::string FormatTable(const SimReport& report) {
  const TraceSummary& t = report.trace;
  std::string out;
  auto line = [&out](const char* key, const std::string& value) {
    out += "  " + PadRight(key, 11) + value + "\n";
  };
  line("trace", t.spec);
  if (!t.description.empty()) line("about", t.description);
  line("period", t.begin + " .. " + t.end);
  std::string fleet = GroupThousands(std::to_string(t.gpus)) + " GPUs, " +
                      GroupThousands(std::to_string(t.nodes)) + " nodes, " +
                      GroupThousands(std::to_string(t.pools)) + " pools";
  if (t.jobs > 0) fleet += ", " + GroupThousands(std::to_string(t.jobs)) + " jobs";
  line("fleet", fleet);
  line("excluded", FormatQuantity(t.excluded_h) + " h of data gaps");
  std::string external = t.external.empty() ? "none" : t.external;
  if (!t.external_prices.empty()) external += "; max prices " + t.external_prices;
  line("external", external);
  line("inference", t.inference.empty() ? "none" : t.inference);
  line("notice", std::to_string(t.notice_s) + " s");
  line("seed", std::to_string(t.seed));
  out += "\n";

  // Cells first, then widths: a column is as wide as its widest cell or its policy name.
  const std::vector<std::pair<std::string, double>> names = PolicyMetrics{}.Fields();
  size_t name_width = 6;  // "metric"
  for (const auto& [name, unused] : names) name_width = std::max(name_width, name.size());
  std::vector<std::vector<std::string>> cells;  // [policy][metric]
  std::vector<size_t> widths;
  for (const auto& [policy, metrics] : report.policies) {
    std::vector<std::string> column;
    size_t width = std::max<size_t>(policy.size(), 8);
    for (const auto& [name, value] : metrics.Fields()) {
      column.push_back(FormatMetric(name, value));
      width = std::max(width, column.back().size());
    }
    cells.push_back(std::move(column));
    widths.push_back(width);
  }

  out += PadRight("metric", name_width);
  for (size_t p = 0; p < report.policies.size(); ++p) {
    out += "  " + PadLeft(report.policies[p].first, widths[p]);
  }
  out += "\n" + std::string(name_width, '-');
  for (size_t w : widths) out += "  " + std::string(w, '-');
  out += "\n";
  for (size_t r = 0; r < names.size(); ++r) {
    out += PadRight(names[r].first, name_width);
    for (size_t p = 0; p < cells.size(); ++p) {
      out += "  " + PadLeft(r < cells[p].size() ? cells[p][r] : "-", widths[p]);
    }
    out += "\n";
  }
  return out;
}

namespace {

nlohmann::ordered_json ReportJson(const SimReport& report) {
  using Json = nlohmann::ordered_json;
  const TraceSummary& t = report.trace;
  Json trace = Json::object();
  trace["spec"] = t.spec;
  trace["description"] = t.description;
  trace["begin"] = t.begin;
  trace["end"] = t.end;
  trace["nodes"] = t.nodes;
  trace["gpus"] = t.gpus;
  trace["pools"] = t.pools;
  trace["jobs"] = t.jobs;
  trace["excluded_h"] = JsonNumber(t.excluded_h);
  trace["external"] = t.external;
  trace["external_prices"] = t.external_prices;
  trace["inference"] = t.inference;
  trace["notice_s"] = t.notice_s;
  trace["seed"] = t.seed;

  Json policies = Json::object();
  for (const auto& [name, metrics] : report.policies) {
    Json m = Json::object();
    for (const auto& [metric, value] : metrics.Fields()) {
      if (std::optional<int64_t> i = IntegerMetric(metrics, metric)) {
        m[metric] = *i;
      } else {
        m[metric] = JsonNumber(value);
      }
    }
    policies[name] = std::move(m);
  }
  Json root = Json::object();
  root["trace"] = std::move(trace);
  root["policies"] = std::move(policies);
  return root;
}

// Text placed inside an inline <script> or <style> must not close it (`</script`, `</style`)
// nor open an HTML comment (`<!--`). In JSON every `<` becomes `\u003c`. In the bundle and the
// styles a `\` goes between `<` and `/` or `!`: the same characters inside a string, the only
// place where they can occur in minified code (today's bundle has none).
std::string InlineSafe(std::string_view text, bool json) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<' && json) {
      out += "\\u003c";
    } else if (c == '<' && i + 1 < text.size() && (text[i + 1] == '/' || text[i + 1] == '!')) {
      out += '<';
      out += '\\';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string ToJson(const SimReport& report) {
  // Trace descriptions come from files; replacing invalid UTF-8 keeps dump() from throwing.
  return ReportJson(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string ToHtml(const SimReport& report, const std::string& title) {
  using Json = nlohmann::ordered_json;
  Json root = ReportJson(report);
  Json data = Json::object();
  data["title"] = title;
  data["trace"] = root["trace"];
  Json policies = Json::array();
  for (auto& [name, metrics] : root["policies"].items()) policies.push_back({{"name", name}, {"metrics", metrics}});
  data["policies"] = std::move(policies);
  // The landlord policy's run, one point per sample (data gaps left out).
  Json t = Json::array(), internal = Json::array(), reserved = Json::array(), spot = Json::array(),
       inference = Json::array(), idle = Json::array(), price = Json::array(), demand = Json::array(),
       forecast = Json::array(), revenue = Json::array();
  for (const FleetSample& x : report.landlord_series) {
    if (x.in_gap) continue;
    t.push_back(static_cast<double>(x.t.ms) / 1000.0);
    internal.push_back(x.internal);
    reserved.push_back(x.reserved);
    spot.push_back(x.spot);
    inference.push_back(x.inference);
    idle.push_back(x.idle);
    price.push_back(static_cast<double>(x.spot_price_micros) / 1e6);
    demand.push_back(x.demand);
    forecast.push_back(x.forecast);
    revenue.push_back(static_cast<double>(x.revenue_micros) / 1e6);
  }
  data["series"] = {{"t", t},         {"internal", internal}, {"reserved", reserved}, {"spot", spot},
                    {"inference", inference}, {"idle", idle}, {"spot_price", price},    {"demand", demand},
                    {"forecast", forecast},   {"revenue_usd", revenue}};
  const web::Asset* js = web::FindAsset("app.js");
  const web::Asset* css = web::FindAsset("app.css");
  std::string html = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  for (char c : title) {
    if (c == '<') html += "&lt;";
    else if (c == '&') html += "&amp;";
    else html += c;
  }
  html += "</title>\n<style>\n";
  html += InlineSafe(css != nullptr ? css->body : "", false);
  html += "\n</style>\n</head>\n<body>\n<div id=\"app\"></div>\n<script>window.__LANDLORD_REPORT__ = ";
  html += InlineSafe(data.dump(-1, ' ', false, Json::error_handler_t::replace), true);
  html += ";</script>\n<script>\n";
  html += InlineSafe(js != nullptr ? js->body : "", false);
  html += "\n</script>\n</body>\n</html>\n";
  return html;
}

Status WriteHtml(const std::string& path, const SimReport& report, const std::string& title) {
  return WriteFileAtomically(path, ToHtml(report, title));
}

Status WriteJson(const std::string& path, const SimReport& report) {
  return WriteFileAtomically(path, ToJson(report) + "\n");
}

// =============================================================================================

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { Finish(); }

void Progress::Update(int64_t done) {
  if (!enabled_ || finished_ || total_ <= 0) return;
  done = std::clamp<int64_t>(done, 0, total_);
  // Redrawing on per-mille changes bounds the output to 1,001 draws whatever the call rate,
  // without reading a clock (which the simulator must not do).
  const int64_t permille = static_cast<int64_t>(
      std::floor(1000.0 * static_cast<double>(done) / static_cast<double>(total_)));
  if (permille == last_drawn_) return;
  last_drawn_ = permille;
  constexpr int kBar = 30;
  const int filled = static_cast<int>(permille * kBar / 1000);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kBar - filled), '.');
  std::fprintf(stderr, "\r%s [%s] %5.1f%%", label_.c_str(), bar.c_str(),
               static_cast<double>(permille) / 10.0);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  // Only end a line we started; an untouched terminal gets no stray blank line.
  if (enabled_ && last_drawn_ >= 0) {
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
}

}  // namespace ll::sim
