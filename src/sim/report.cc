#include "sim/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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

std::string FormatFixed(double v, int decimals, bool group) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  // A tiny negative that rounds to zero would read "-0.00", which looks like a sign bug.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return group ? GroupThousands(std::move(s)) : s;
}

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

// ---------------------------------------------------------------------------------------------
// Files

// Writes through a temporary file in the same directory and renames it over `path`, so a
// reader (or a crash) never sees half a report.
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

// ---------------------------------------------------------------------------------------------
// JSON

nlohmann::ordered_json JsonNumber(double v) {
  // JSON has no NaN or infinity; null is what readers of `--json` expect for "not applicable".
  if (!std::isfinite(v)) return nullptr;
  return v;
}

// ---------------------------------------------------------------------------------------------
// SVG

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Coordinates with one decimal: sub-pixel enough, and keeps a month of data small.
std::string Px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A point of the plotted series: one sample, or the mean of a bucket of samples.
struct Point {
  double t_ms;
  std::array<double, 5> gpus;  // internal, reserved, spot, inference, idle
};

// The chart is at most ~1,000 px wide, so more points than this add bytes and nothing visible.
constexpr size_t kMaxPoints = 2000;

std::vector<Point> Downsample(const std::vector<FleetSample>& series) {
  const size_t n = series.size();
  const size_t buckets = std::min(n, kMaxPoints);
  std::vector<Point> out;
  out.reserve(buckets);
  for (size_t b = 0; b < buckets; ++b) {
    const size_t lo = b * n / buckets;
    const size_t hi = (b + 1) * n / buckets;
    Point p{0, {0, 0, 0, 0, 0}};
    for (size_t i = lo; i < hi; ++i) {
      const FleetSample& s = series[i];
      p.t_ms += static_cast<double>(s.t.ms);
      p.gpus[0] += s.internal;
      p.gpus[1] += s.reserved;
      p.gpus[2] += s.spot;
      p.gpus[3] += s.inference;
      p.gpus[4] += s.idle;
    }
    const double k = static_cast<double>(hi - lo);
    p.t_ms /= k;
    for (double& g : p.gpus) g /= k;
    out.push_back(p);
  }
  return out;
}

// 1, 2 or 5 times a power of ten, so that about `target` steps cover `max`.
double NiceStep(double max, int target) {
  double raw = max / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) return std::max(1.0, m * mag);  // GPUs come in whole numbers
  }
  return std::max(1.0, 10 * mag);
}

// Tick spacing on the time axis: the smallest calendar-friendly step giving at most 10 ticks
// (a 5-character date label is about 35 px; the plot is 760 px wide).
int64_t TimeStepMs(int64_t span_ms) {
  constexpr int64_t kMin = 60'000, kHour = 60 * kMin, kDay = 24 * kHour;
  static constexpr std::array<int64_t, 16> kSteps = {
      kMin,      5 * kMin,   10 * kMin, 15 * kMin, 30 * kMin, kHour,     2 * kHour, 3 * kHour,
      6 * kHour, 12 * kHour, kDay,      2 * kDay,  7 * kDay,  14 * kDay, 28 * kDay, 91 * kDay};
  for (int64_t step : kSteps) {
    if (span_ms / step <= 10) return step;
  }
  int64_t step = kSteps.back();
  while (span_ms / step > 10) step *= 2;
  return step;
}

struct SvgLayer {
  const char* label;
  const char* colour;
};

// Okabe–Ito colours, distinguishable with the common forms of colour blindness. Bottom of the
// stack first.
constexpr std::array<SvgLayer, 5> kLayers = {{
    {"internal", "#0072B2"},
    {"reserved", "#E69F00"},
    {"spot", "#009E73"},
    {"inference", "#CC79A7"},
    {"idle", "#F0E442"},
}};
// Opaque: what a trace reports inside a gap is not data, so it is hidden rather than tinted.
constexpr const char* kGapColour = "#C8C8C8";

constexpr double kWidth = 960, kHeight = 440;
constexpr double kLeft = 70, kRight = 130, kTop = 44, kBottom = 52;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;

std::string SvgOpen(const std::string& title) {
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Px(kWidth) + "\" height=\"" +
       Px(kHeight) + "\" viewBox=\"0 0 " + Px(kWidth) + " " + Px(kHeight) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<title>" + XmlEscape(title) + "</title>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + Px(kWidth) + "\" height=\"" + Px(kHeight) +
       "\" fill=\"#FFFFFF\"/>\n";
  s += "<text x=\"" + Px(kWidth / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">" +
       XmlEscape(title) + "</text>\n";
  return s;
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

std::string ToSvg(const std::vector<FleetSample>& series, const std::string& title) {
  std::string s = SvgOpen(title);
  if (series.empty()) {
    s += "<text x=\"" + Px(kWidth / 2) + "\" y=\"" + Px(kHeight / 2) +
         "\" text-anchor=\"middle\" font-size=\"14\" fill=\"#555555\">no data</text>\n";
    s += "</svg>\n";
    return s;
  }

  const std::vector<Point> points = Downsample(series);
  int64_t t0 = series.front().t.ms, t1 = series.front().t.ms;
  for (const FleetSample& f : series) {
    t0 = std::min(t0, f.t.ms);
    t1 = std::max(t1, f.t.ms);
  }
  if (t1 <= t0) t1 = t0 + 60'000;  // a single instant still gets an axis
  double y_top = 0;
  for (const Point& p : points) {
    double total = 0;
    for (double g : p.gpus) total += g;
    y_top = std::max(y_top, total);
  }
  const double y_step = NiceStep(std::max(y_top, 1.0), 6);
  const double y_max = std::max(1.0, std::ceil(y_top / y_step)) * y_step;

  auto x_of = [&](double t_ms) {
    return kLeft + (t_ms - static_cast<double>(t0)) / static_cast<double>(t1 - t0) * kPlotW;
  };
  auto y_of = [&](double gpus) { return kTop + kPlotH - gpus / y_max * kPlotH; };

  // Grid and y ticks.
  s += "<g stroke=\"#E0E0E0\" stroke-width=\"1\">\n";
  for (double v = y_step; v <= y_max + 1e-9; v += y_step) {
    s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(y_of(v)) + "\" x2=\"" + Px(kLeft + kPlotW) +
         "\" y2=\"" + Px(y_of(v)) + "\"/>\n";
  }
  s += "</g>\n";

  // Stacked areas. Each layer is drawn as the area from zero up to its cumulative top, from the
  // top of the stack down, so each path needs one boundary instead of two.
  std::vector<std::array<double, 5>> cumulative(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    double acc = 0;
    for (size_t k = 0; k < kLayers.size(); ++k) {
      acc += points[i].gpus[k];
      cumulative[i][k] = acc;
    }
  }
  for (size_t k = kLayers.size(); k-- > 0;) {
    std::string d = "M" + Px(x_of(points.front().t_ms)) + "," + Px(y_of(0));
    for (size_t i = 0; i < points.size(); ++i) {
      d += "L" + Px(x_of(points[i].t_ms)) + "," + Px(y_of(cumulative[i][k]));
    }
    // One sample would make a zero-width area; stretch it across the plot.
    if (points.size() == 1) d += "L" + Px(kLeft + kPlotW) + "," + Px(y_of(cumulative[0][k]));
    d += "L" + Px(points.size() == 1 ? kLeft + kPlotW : x_of(points.back().t_ms)) + "," +
         Px(y_of(0)) + "Z";
    s += "<path class=\"" + std::string(kLayers[k].label) + "\" fill=\"" + kLayers[k].colour +
         "\" d=\"" + d + "\"/>\n";
  }

  // Data gaps, from the raw samples so a short gap is not averaged away. A gap sample covers
  // the time to the next sample; runs closer than a pixel are merged to bound the output.
  std::vector<std::pair<double, double>> gaps;  // [x0, x1] in px
  for (size_t i = 0; i < series.size(); ++i) {
    if (!series[i].in_gap) continue;
    const int64_t end = i + 1 < series.size() ? series[i + 1].t.ms : series[i].t.ms;
    double x0 = x_of(static_cast<double>(series[i].t.ms));
    double x1 = std::max(x_of(static_cast<double>(end)), x0 + 1.0);
    if (!gaps.empty() && x0 <= gaps.back().second + 1.0) {
      gaps.back().second = std::max(gaps.back().second, x1);
    } else {
      gaps.emplace_back(x0, x1);
    }
  }
  for (auto [x0, x1] : gaps) {
    x1 = std::min(x1, kLeft + kPlotW);
    s += "<rect class=\"gap\" x=\"" + Px(x0) + "\" y=\"" + Px(kTop) + "\" width=\"" +
         Px(std::max(x1 - x0, 1.0)) + "\" height=\"" + Px(kPlotH) + "\" fill=\"" + kGapColour +
         "\"/>\n";
    if (x1 - x0 >= 44) {
      s += "<text x=\"" + Px((x0 + x1) / 2) + "\" y=\"" + Px(kTop + 16) +
           "\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333333\">no data</text>\n";
    }
  }

  // Axes.
  s += "<g stroke=\"#333333\" stroke-width=\"1\">\n";
  s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(kTop) + "\" x2=\"" + Px(kLeft) + "\" y2=\"" +
       Px(kTop + kPlotH) + "\"/>\n";
  s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(kTop + kPlotH) + "\" x2=\"" +
       Px(kLeft + kPlotW) + "\" y2=\"" + Px(kTop + kPlotH) + "\"/>\n";
  s += "</g>\n";

  s += "<g text-anchor=\"end\" fill=\"#333333\">\n";
  for (double v = 0; v <= y_max + 1e-9; v += y_step) {
    s += "<text x=\"" + Px(kLeft - 6) + "\" y=\"" + Px(y_of(v) + 4) + "\">" +
         FormatFixed(v, 0, true) + "</text>\n";
  }
  s += "</g>\n";
  s += "<text transform=\"translate(18," + Px(kTop + kPlotH / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" fill=\"#333333\">GPUs</text>\n";

  // Sub-day ticks fall on multiples of the step since the epoch (each divides a day, so they
  // land on round clock times); multi-day ticks start at the first UTC midnight of the data so a
  // month reads 05-01, 05-08, ... rather than from whatever weekday the epoch was.
  constexpr int64_t kDayMs = 24 * 3'600'000;
  const int64_t step = TimeStepMs(t1 - t0);
  const bool by_day = step >= kDayMs;
  const bool many_years = FormatUtc(Time{t0}).substr(0, 4) != FormatUtc(Time{t1}).substr(0, 4);
  const int64_t align = by_day ? kDayMs : step;
  int64_t first = t0 >= 0 ? (t0 + align - 1) / align * align : t0 / align * align;
  s += "<g text-anchor=\"middle\" fill=\"#333333\">\n";
  for (int64_t tick = first; tick <= t1; tick += step) {
    const std::string utc = FormatUtc(Time{tick});  // YYYY-MM-DDTHH:MM:SSZ
    const std::string date = many_years ? utc.substr(0, 10) : utc.substr(5, 5);
    const double x = x_of(static_cast<double>(tick));
    s += "<line x1=\"" + Px(x) + "\" y1=\"" + Px(kTop + kPlotH) + "\" x2=\"" + Px(x) + "\" y2=\"" +
         Px(kTop + kPlotH + 5) + "\" stroke=\"#333333\"/>\n";
    // Within a day the clock time is the label; the date goes underneath where it changes,
    // which keeps labels short enough not to collide.
    s += "<text x=\"" + Px(x) + "\" y=\"" + Px(kTop + kPlotH + 19) + "\">" +
         (by_day ? date : utc.substr(11, 5)) + "</text>\n";
    if (!by_day && (tick == first || tick % kDayMs == 0)) {
      s += "<text x=\"" + Px(x) + "\" y=\"" + Px(kTop + kPlotH + 33) + "\">" + date + "</text>\n";
    }
  }
  s += "</g>\n";
  s += "<text x=\"" + Px(kLeft + kPlotW) + "\" y=\"" + Px(kHeight - 6) +
       "\" text-anchor=\"end\" fill=\"#333333\">time (UTC)</text>\n";

  // Legend, top of the stack first so it reads in the same order as the chart.
  const double lx = kLeft + kPlotW + 16;
  double ly = kTop + 4;
  s += "<g fill=\"#333333\">\n";
  auto legend = [&](const char* label, const char* colour) {
    s += "<rect x=\"" + Px(lx) + "\" y=\"" + Px(ly) + "\" width=\"14\" height=\"14\" fill=\"" +
         colour + "\"/>\n";
    s += "<text x=\"" + Px(lx + 20) + "\" y=\"" + Px(ly + 11) + "\">" + label + "</text>\n";
    ly += 22;
  };
  for (size_t k = kLayers.size(); k-- > 0;) legend(kLayers[k].label, kLayers[k].colour);
  if (!gaps.empty()) legend("no data", kGapColour);
  s += "</g>\n";
  s += "</svg>\n";
  return s;
}

Status WriteSvg(const std::string& path, const std::vector<FleetSample>& series,
                const std::string& title) {
  return WriteFileAtomically(path, ToSvg(series, title));
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
