// The SVG chart of `landlord sim --svg`: GPUs by class over time, stacked, with data gaps
// shaded, the axes and a legend. Drawn piece by piece onto one string, in paint order.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/time.h"
#include "sim/report.h"
#include "sim/report_internal.h"

namespace ll::sim {
namespace {

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

// The plot's scales: time [t0, t1] across, GPUs [0, y_max] up, a gridline every y_step.
struct Frame {
  int64_t t0, t1;
  double y_step, y_max;

  double X(double t_ms) const {
    return kLeft + (t_ms - static_cast<double>(t0)) / static_cast<double>(t1 - t0) * kPlotW;
  }
  double Y(double gpus) const { return kTop + kPlotH - gpus / y_max * kPlotH; }
};

Frame FrameOf(const std::vector<FleetSample>& series, const std::vector<Point>& points) {
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
  return Frame{t0, t1, y_step, y_max};
}

// Grid and y ticks.
void DrawGrid(const Frame& f, std::string* svg) {
  std::string& s = *svg;
  s += "<g stroke=\"#E0E0E0\" stroke-width=\"1\">\n";
  for (double v = f.y_step; v <= f.y_max + 1e-9; v += f.y_step) {
    s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(f.Y(v)) + "\" x2=\"" + Px(kLeft + kPlotW) +
         "\" y2=\"" + Px(f.Y(v)) + "\"/>\n";
  }
  s += "</g>\n";
}

// Stacked areas. Each layer is drawn as the area from zero up to its cumulative top, from the
// top of the stack down, so each path needs one boundary instead of two.
void DrawLayers(const std::vector<Point>& points, const Frame& f, std::string* svg) {
  std::string& s = *svg;
  std::vector<std::array<double, 5>> cumulative(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    double acc = 0;
    for (size_t k = 0; k < kLayers.size(); ++k) {
      acc += points[i].gpus[k];
      cumulative[i][k] = acc;
    }
  }
  for (size_t k = kLayers.size(); k-- > 0;) {
    std::string d = "M" + Px(f.X(points.front().t_ms)) + "," + Px(f.Y(0));
    for (size_t i = 0; i < points.size(); ++i) {
      d += "L" + Px(f.X(points[i].t_ms)) + "," + Px(f.Y(cumulative[i][k]));
    }
    // One sample would make a zero-width area; stretch it across the plot.
    if (points.size() == 1) d += "L" + Px(kLeft + kPlotW) + "," + Px(f.Y(cumulative[0][k]));
    d += "L" + Px(points.size() == 1 ? kLeft + kPlotW : f.X(points.back().t_ms)) + "," +
         Px(f.Y(0)) + "Z";
    s += "<path class=\"" + std::string(kLayers[k].label) + "\" fill=\"" + kLayers[k].colour +
         "\" d=\"" + d + "\"/>\n";
  }
}

// Data gaps, from the raw samples so a short gap is not averaged away. A gap sample covers
// the time to the next sample; runs closer than a pixel are merged to bound the output.
std::vector<std::pair<double, double>> GapSpans(const std::vector<FleetSample>& series,
                                                const Frame& f) {
  std::vector<std::pair<double, double>> gaps;  // [x0, x1] in px
  for (size_t i = 0; i < series.size(); ++i) {
    if (!series[i].in_gap) continue;
    const int64_t end = i + 1 < series.size() ? series[i + 1].t.ms : series[i].t.ms;
    double x0 = f.X(static_cast<double>(series[i].t.ms));
    double x1 = std::max(f.X(static_cast<double>(end)), x0 + 1.0);
    if (!gaps.empty() && x0 <= gaps.back().second + 1.0) {
      gaps.back().second = std::max(gaps.back().second, x1);
    } else {
      gaps.emplace_back(x0, x1);
    }
  }
  return gaps;
}

void DrawGaps(const std::vector<std::pair<double, double>>& gaps, std::string* svg) {
  std::string& s = *svg;
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
}

// The axes, the GPU labels on the left and the axis title.
void DrawYAxis(const Frame& f, std::string* svg) {
  std::string& s = *svg;
  s += "<g stroke=\"#333333\" stroke-width=\"1\">\n";
  s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(kTop) + "\" x2=\"" + Px(kLeft) + "\" y2=\"" +
       Px(kTop + kPlotH) + "\"/>\n";
  s += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(kTop + kPlotH) + "\" x2=\"" +
       Px(kLeft + kPlotW) + "\" y2=\"" + Px(kTop + kPlotH) + "\"/>\n";
  s += "</g>\n";

  s += "<g text-anchor=\"end\" fill=\"#333333\">\n";
  for (double v = 0; v <= f.y_max + 1e-9; v += f.y_step) {
    s += "<text x=\"" + Px(kLeft - 6) + "\" y=\"" + Px(f.Y(v) + 4) + "\">" +
         FormatFixed(v, 0, true) + "</text>\n";
  }
  s += "</g>\n";
  s += "<text transform=\"translate(18," + Px(kTop + kPlotH / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" fill=\"#333333\">GPUs</text>\n";
}

// Sub-day ticks fall on multiples of the step since the epoch (each divides a day, so they
// land on round clock times); multi-day ticks start at the first UTC midnight of the data so a
// month reads 05-01, 05-08, ... rather than from whatever weekday the epoch was.
void DrawTimeAxis(const Frame& f, std::string* svg) {
  std::string& s = *svg;
  constexpr int64_t kDayMs = 24 * 3'600'000;
  const int64_t step = TimeStepMs(f.t1 - f.t0);
  const bool by_day = step >= kDayMs;
  const bool many_years =
      FormatUtc(Time{f.t0}).substr(0, 4) != FormatUtc(Time{f.t1}).substr(0, 4);
  const int64_t align = by_day ? kDayMs : step;
  int64_t first = f.t0 >= 0 ? (f.t0 + align - 1) / align * align : f.t0 / align * align;
  s += "<g text-anchor=\"middle\" fill=\"#333333\">\n";
  for (int64_t tick = first; tick <= f.t1; tick += step) {
    const std::string utc = FormatUtc(Time{tick});  // YYYY-MM-DDTHH:MM:SSZ
    const std::string date = many_years ? utc.substr(0, 10) : utc.substr(5, 5);
    const double x = f.X(static_cast<double>(tick));
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
}

// Legend, top of the stack first so it reads in the same order as the chart.
void DrawLegend(bool with_gaps, std::string* svg) {
  std::string& s = *svg;
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
  if (with_gaps) legend("no data", kGapColour);
  s += "</g>\n";
}

}  // namespace

std::string ToSvg(const std::vector<FleetSample>& series, const std::string& title) {
  std::string s = SvgOpen(title);
  if (series.empty()) {
    s += "<text x=\"" + Px(kWidth / 2) + "\" y=\"" + Px(kHeight / 2) +
         "\" text-anchor=\"middle\" font-size=\"14\" fill=\"#555555\">no data</text>\n";
    s += "</svg>\n";
    return s;
  }

  const std::vector<Point> points = Downsample(series);
  const Frame frame = FrameOf(series, points);
  DrawGrid(frame, &s);
  DrawLayers(points, frame, &s);
  const std::vector<std::pair<double, double>> gaps = GapSpans(series, frame);  // [x0, x1] in px
  DrawGaps(gaps, &s);
  DrawYAxis(frame, &s);
  DrawTimeAxis(frame, &s);
  DrawLegend(!gaps.empty(), &s);
  s += "</svg>\n";
  return s;
}

Status WriteSvg(const std::string& path, const std::vector<FleetSample>& series,
                const std::string& title) {
  return WriteFileAtomically(path, ToSvg(series, title));
}

}  // namespace ll::sim
